#include "secagg/participant.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "secagg/update_codec.h"

namespace shoal::secagg {

absl::StatusOr<v1::SecAggClientMessage> SecAggParticipant::Handle(
    const v1::SecAggServerMessage& message) {
  absl::MutexLock lock(&mu_);
  if (message.has_setup()) {
    session_ = std::make_unique<SecAggClient>();
  } else if (session_ == nullptr || session_->session_id() != message.session_id()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "secure-aggregation message for session '", message.session_id(),
        "', which this client never set up (it may have restarted)"));
  }
  return session_->Handle(message);
}

absl::StatusOr<v1::SecAggClientMessage> SecAggParticipant::MaskUpdate(
    const v1::SecAggServerMessage& shares, const FitRes& result) {
  absl::MutexLock lock(&mu_);
  if (session_ == nullptr || session_->session_id() != shares.session_id() ||
      session_->setup() == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "secure-aggregation shares for session '", shares.session_id(),
        "', which this client never set up (it may have restarted)"));
  }
  const v1::SecAggSetup& setup = *session_->setup();
  const UpdateEncoding encoding =
      UpdateEncoding::FromProto(setup.encoding(), setup.modulus());
  if (VectorLength(result.update) != setup.vector_length()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the update has ", result.update.NumElements(), " elements; the round's "
        "secure aggregation expects ", setup.vector_length() - 1));
  }
  SHOAL_ASSIGN_OR_RETURN(std::vector<uint64_t> codes,
                         EncodeUpdate(result.update, result.num_examples, encoding));
  SHOAL_RETURN_IF_ERROR(session_->SetInput(std::move(codes)));
  return session_->Handle(shares);
}

absl::StatusOr<FitRes> SecAggParticipant::MaskedResult(const v1::SecAggServerMessage& shares,
                                                       const FitRes& result) {
  SHOAL_ASSIGN_OR_RETURN(v1::SecAggClientMessage masked, MaskUpdate(shares, result));
  FitRes out;
  out.secagg = std::move(masked);
  return out;
}

}  // namespace shoal::secagg
