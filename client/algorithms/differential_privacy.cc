// Client-side clipping, the client half of the DP wrapper
// (strategies/differential_privacy.cc): the update is clipped before it
// leaves the device, so the server never sees more than the clipping norm
// of any client.
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "client/algorithms/builtin.h"
#include "client/trainer.h"
#include "common/client_algorithms.h"
#include "common/status.h"

namespace shoal::client {
namespace {

class DifferentialPrivacyClient : public ClientAlgorithm {
 public:
  explicit DifferentialPrivacyClient(double clip_norm) : clip_norm_(clip_norm) {}

  // Scales the update down to the clipping norm when longer, and reports
  // whether it was within it (adaptive clipping estimates a quantile of the
  // norms from these bits).
  absl::Status AfterTraining(const ClientRound& /*round*/, const FitOutcome& /*outcome*/,
                             Parameters* /*state*/, FitRes* res) override {
    const double norm = res->update.L2Norm();
    res->metrics[kDpBelowClipMetric] = int64_t{norm <= clip_norm_};
    if (norm > clip_norm_) res->update = res->update.Scaled(clip_norm_ / norm);
    return absl::OkStatus();
  }

 private:
  const double clip_norm_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeDifferentialPrivacyClient(
    ClientAlgorithmParams& params) {
  if (!params.Has(kClipNormParam)) {
    return absl::InvalidArgumentError(absl::StrCat("client algorithm '", params.algorithm(),
                                                   "' needs param '", kClipNormParam, "'"));
  }
  double clip_norm = 0;
  SHOAL_RETURN_IF_ERROR(params.Number(kClipNormParam, 0, std::numeric_limits<double>::max(),
                                      &clip_norm, /*lo_open=*/true));
  return std::make_unique<DifferentialPrivacyClient>(clip_norm);
}

}  // namespace shoal::client
