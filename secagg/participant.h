// SecAggParticipant: a device's side of securely aggregated rounds, over
// the transport-free protocol in secagg/client.h. The gRPC agent, the
// simulator's virtual clients and test proxies all use it, so they cannot
// drift.
//
// A setup message starts a new session (forgetting any older one); the other
// stage messages continue it. The masked-input stage arrives with a fit
// task: the caller trains as usual and hands the result to MaskUpdate, which
// encodes it (secagg/update_codec.h) and answers with the masked vector.
#ifndef SHOAL_SECAGG_PARTICIPANT_H_
#define SHOAL_SECAGG_PARTICIPANT_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/types.h"
#include "secagg/client.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal::secagg {

// Thread-safe (calls are serialized).
class SecAggParticipant {
 public:
  // Handle answers a stage message that needs no training: setup, the
  // neighbours' keys, or the unmasking request.
  absl::StatusOr<v1::SecAggClientMessage> Handle(const v1::SecAggServerMessage& message);

  // MaskUpdate answers the masked-input stage (`shares`, from
  // FitIns.secagg) with `result`'s update and num_examples, encoded and
  // masked. The result's metrics are not sent.
  absl::StatusOr<v1::SecAggClientMessage> MaskUpdate(const v1::SecAggServerMessage& shares,
                                                     const FitRes& result);

  // MaskedResult wraps MaskUpdate's answer as the FitRes a transport sends.
  absl::StatusOr<FitRes> MaskedResult(const v1::SecAggServerMessage& shares,
                                      const FitRes& result);

 private:
  absl::Mutex mu_;
  std::unique_ptr<SecAggClient> session_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::secagg

#endif  // SHOAL_SECAGG_PARTICIPANT_H_
