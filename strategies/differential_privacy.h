// DifferentialPrivacy: user-level differential privacy (DP-FedAvg, McMahan
// et al., "Learning Differentially Private Recurrent Language Models", ICLR
// 2018) as a wrapper around any strategy that aggregates by the mean of the
// clients' updates (FedAvg, FedProx, FedAvgM, FedAdagrad, FedAdam, FedYogi:
// FedAvg::AggregatesByMean).
//
// Each round:
//   1. every update is clipped to L2 norm C: by the server as results
//      arrive ("server" clipping), or by each client before it uploads
//      ("client" clipping: the round asks for the client half
//      "differential_privacy" with param clip_norm = C,
//      client/algorithms/differential_privacy.cc; the server refuses an
//      update longer than C);
//   2. the clipped updates are summed with equal weights (num_examples
//      would let one client's weight, and so its influence, grow without
//      bound), Gaussian noise N(0, (z C)^2) is added to the sum, and it is
//      divided by m, the number of clients sampled for the round (fixed
//      before any result arrives; dropouts shrink the step a little);
//   3. the wrapped strategy takes that noisy mean as its mean update
//      (FedAvg adds it, FedAdam takes an Adam step with it, ...).
// With adaptive clipping (Andrew et al., "Differentially Private Learning
// with Adaptive Clipping", NeurIPS 2021) C follows a target quantile gamma
// of the update norms: from the count of updates within C, noised with
// stddev sigma_b, C <- C * exp(-eta_C * (noisy fraction - gamma)). The noise
// multiplier z then covers both releases: the updates get
// z_update = (z^-2 - (2 sigma_b)^-2)^-1/2.
//
// Privacy accounting: a Rényi-DP accountant (strategies/privacy_accountant.h)
// composes one Poisson-subsampled Gaussian mechanism per completed round
// with sampling rate q = sampled clients / population, and the run reports
// the running (epsilon, delta) after each round (RoundMetrics "dp_epsilon",
// "dp_delta"). With a target epsilon, the run stops before a round that
// would exceed it. The guarantee is user-level (adding or removing one
// client's whole data). With a population (q < 1) the accountant models the
// sampling as Poisson with rate q, while the Coordinator samples a cohort of
// fixed size uniformly: the usual approximation (TensorFlow Federated makes
// it too), not a proof. With population 0 (q = 1, the default) no sampling
// assumption is needed. It does not cover: the cohort size (treated as
// public), the noise source (mt19937 seeded from OS entropy; not hardened
// against floating-point attacks, Mironov 2012), or a server that does not
// run this code.
//
// Server-side clipping needs each update in the clear, although it still
// folds results as they arrive in one model's memory. Client-side clipping
// would need only the sum, but the wrapper does not aggregate by the mean
// (AggregatesByMean is false), so secure aggregation refuses both.
#ifndef SHOAL_STRATEGIES_DIFFERENTIAL_PRIVACY_H_
#define SHOAL_STRATEGIES_DIFFERENTIAL_PRIVACY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "strategies/fedavg.h"
#include "strategies/privacy_accountant.h"
#include "strategies/registry.h"

namespace shoal {

struct DifferentialPrivacyOptions {
  enum class Clipping { kServer, kClient };
  Clipping clipping = Clipping::kServer;
  // z: stddev of the noise on the sum of clipped updates, in units of C.
  // 0 clips without noise, which gives no privacy guarantee.
  double noise_multiplier = 1.0;
  // C, the L2 clipping norm (the initial one when adaptive).
  double clip_norm = 1.0;
  // Adaptive clipping (Andrew et al. 2021); defaults are the paper's.
  bool adaptive = false;
  double target_quantile = 0.5;     // gamma
  double clip_learning_rate = 0.2;  // eta_C
  // sigma_b, the noise on the count of updates within C; 0 (default): the
  // paper's choice, expected clients per round / 20, when noise_multiplier
  // > 0, and no noise on the count when noise_multiplier is 0 (the count
  // then protects nothing, and its noise would only slow C's adaptation).
  double clipped_count_stddev = 0;
  // N, for the sampling rate q = sampled / N. 0 (default): q = 1, no
  // amplification by sampling (a valid, pessimistic bound).
  int64_t population = 0;
  double delta = 1e-5;
  // Stop the run before a round whose epsilon would exceed this; 0: never.
  double target_epsilon = 0;
  // Seeds the noise, for reproducible experiments only: a known seed makes
  // the noise predictable and voids the guarantee. Default: OS entropy.
  std::optional<uint64_t> noise_seed;
};

class DifferentialPrivacy : public Strategy {
 public:
  // Wrap returns `inner` with differential privacy. InvalidArgument when
  // `inner` does not aggregate by the mean update (FedNova, q-FedAvg,
  // SCAFFOLD, the robust strategies) or an option is out of range.
  // `expected_clients` (the cohort size per round) sizes sigma_b's default.
  static absl::StatusOr<std::unique_ptr<DifferentialPrivacy>> Wrap(
      std::unique_ptr<Strategy> inner, DifferentialPrivacyOptions options,
      uint32_t expected_clients);

  absl::string_view name() const override { return name_; }
  std::optional<Parameters> InitializeParameters() override {
    return inner_->InitializeParameters();
  }
  std::optional<std::string> StopReason(uint32_t round) override;
  // Server clipping clips what the server decodes: as the wrapped strategy.
  // Client clipping refuses every compression: the clipped norm would not
  // bound what is sent (quantization error, top-k's residual).
  absl::Status CheckCompression(Compression kind) const override;
  std::vector<FitInstruction> ConfigureFit(
      uint32_t round, const Parameters& global,
      const std::vector<std::string>& sampled_clients) override;
  std::unique_ptr<FitAggregator> BeginAggregateFit(
      uint32_t round, std::shared_ptr<const Parameters> global) override;
  std::vector<EvaluateInstruction> ConfigureEvaluate(
      uint32_t round, const Parameters& global,
      const std::vector<std::string>& clients) override {
    return inner_->ConfigureEvaluate(round, global, clients);
  }

  // State: "dp/clip_norm" (adaptive clipping moves it), "dp/rdp" (the
  // privacy spent, per order of the accountant) and the wrapped strategy's
  // state under "inner/". The noise generator is not saved: a restarted
  // server draws fresh noise.
  Parameters SaveState() const override;
  absl::Status LoadState(const Parameters& state) override;

  // The clipping norm the next round uses.
  double clip_norm() const { return clip_norm_; }
  const RdpAccountant& accountant() const { return accountant_; }
  // The noise multiplier the updates get (z, or z_update when adaptive).
  double update_noise_multiplier() const { return update_noise_; }

 private:
  friend class DpAggregator;
  DifferentialPrivacy(std::unique_ptr<FedAvg> inner, DifferentialPrivacyOptions options,
                      double count_stddev, double update_noise);

  std::unique_ptr<FedAvg> inner_;
  const DifferentialPrivacyOptions options_;
  const std::string name_;
  const double count_stddev_;  // sigma_b (adaptive only)
  const double update_noise_;  // z_update
  double clip_norm_;
  double sampling_rate_ = 1;   // of the round in progress
  size_t cohort_size_ = 0;     // clients sampled for the round in progress
  RdpAccountant accountant_;
  at::Generator noise_;
};

// ParseDifferentialPrivacyOptions reads the experiment config's "privacy"
// object (keys as in DifferentialPrivacyOptions: clipping "server"|"client",
// noise_multiplier, clip_norm, adaptive, target_quantile,
// clip_learning_rate, clipped_count_stddev, population, delta,
// target_epsilon, noise_seed), refusing unknown keys and values out of
// range, naming them.
absl::StatusOr<DifferentialPrivacyOptions> ParseDifferentialPrivacyOptions(
    const nlohmann::json& privacy);

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_DIFFERENTIAL_PRIVACY_H_
