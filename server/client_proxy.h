// ClientProxy: how the Coordinator reaches one client, whatever the
// transport. A gRPC-connected device is one implementation
// (GrpcClientProxy); an in-process virtual client is another.
#ifndef SHOAL_SERVER_CLIENT_PROXY_H_
#define SHOAL_SERVER_CLIENT_PROXY_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/types.h"

namespace shoal {

// A result handler takes a client's result (or the error that stopped it)
// and returns whether the server accepted it; a transport passes that status
// back to the client. Handlers are thread-safe and may be called after the
// round is over (they then refuse).
using FitResultHandler = std::function<absl::Status(absl::StatusOr<FitRes>)>;
using EvaluateResultHandler =
    std::function<absl::Status(absl::StatusOr<EvaluateRes>)>;
using SecAggResultHandler =
    std::function<absl::Status(absl::StatusOr<v1::SecAggClientMessage>)>;

// ClientProxy implementations are thread-safe.
class ClientProxy {
 public:
  virtual ~ClientProxy() = default;

  virtual const std::string& id() const = 0;
  // declared_examples is what the client declared when it joined (zeros:
  // nothing, e.g. a device of an older version or a virtual client). The
  // Coordinator caps the client's num_examples at it.
  virtual DeclaredExamples declared_examples() const { return {}; }
  // model_version is the training model version the client last fetched
  // (-1: unknown, e.g. a virtual client).
  virtual int64_t model_version() const { return -1; }

  // Fit hands the client a fit task. The proxy calls `handler` at most once,
  // from any thread; a task replaced by a newer one or cancelled is never
  // answered.
  virtual void Fit(const FitIns& ins, absl::Time deadline,
                   FitResultHandler handler) = 0;
  virtual void Evaluate(const EvaluateIns& ins, absl::Time deadline,
                        EvaluateResultHandler handler) = 0;
  // SecAgg hands the client one secure-aggregation message of round
  // `round` that needs no training (setup, neighbours' keys, unmasking);
  // the masked-input stage travels with Fit (FitIns.secagg). Same contract
  // as Fit: `handler` is called at most once.
  virtual void SecAgg(const v1::SecAggServerMessage& message, uint32_t round,
                      absl::Time deadline, SecAggResultHandler handler) = 0;
  // Cancel withdraws the task in flight, if any; a late result is refused.
  virtual void Cancel() = 0;
  // Shutdown tells the client that the run is over and which model version
  // is final.
  virtual void Shutdown(const std::string& reason, int64_t final_version) = 0;
};

}  // namespace shoal

#endif  // SHOAL_SERVER_CLIENT_PROXY_H_
