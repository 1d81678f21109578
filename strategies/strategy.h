// Strategy: what a federated algorithm decides in a round. The Coordinator
// calls it; it never sees a transport.
//
// Lifecycle of round r (all calls on the Coordinator's thread except
// FitAggregator::Accept, see below):
//   StopReason(r)                    -> end the run before round r?
//   ConfigureFit(r, global, sampled) -> one FitConfig per sampled client
//   BeginAggregateFit(r, global)     -> a FitAggregator for this round
//     aggregator->Accept(result)     (once per valid result, as it arrives)
//     aggregator->Finish(failures)   -> the new global parameters
//     aggregator->RoundMetrics()     -> strategy figures for the history
//   EvaluateGlobal(r, new_global)    -> server-side evaluation, if any
//   ConfigureEvaluate / AggregateEvaluate: federated evaluation, if any
#ifndef SHOAL_STRATEGIES_STRATEGY_H_
#define SHOAL_STRATEGIES_STRATEGY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/metrics.h"
#include "common/parameters.h"
#include "common/types.h"
#include "common/update_compression.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal {

// FitAggregator folds the results of one round. Accept may be called from
// several threads (one per arriving result); the Coordinator serializes the
// calls, so implementations need no locking. The results Accept sees are
// already validated: compatible with the global parameters and finite.
class FitAggregator {
 public:
  virtual ~FitAggregator() = default;
  // Accept folds one client's result in. An error refuses that result
  // (the client then counts as a failure) and must leave the aggregate as
  // it was.
  virtual absl::Status Accept(const std::string& client_id, const FitRes& res) = 0;
  // Finish returns the new global parameters. `failures` lists the sampled
  // clients whose result never arrived or was refused.
  virtual absl::StatusOr<Parameters> Finish(
      const std::vector<ClientFailure>& failures) = 0;
  // Metrics the strategy reports for the round once Finish succeeded (for
  // example the privacy spent so far); they join the round's history.
  virtual Metrics RoundMetrics() const { return {}; }
};

struct FitInstruction {
  std::string client_id;
  v1::FitConfig config;
  // Optional tensors sent along with the model (see FitIns::aux); the same
  // shared object for every client of a round costs one copy.
  std::shared_ptr<const Parameters> aux;
};

struct EvaluateInstruction {
  std::string client_id;
  v1::EvaluateConfig config;
};

// ServerEvaluator evaluates global parameters on the server's own data (for
// example the Fashion-MNIST test set).
using ServerEvaluator =
    std::function<absl::StatusOr<EvaluateRes>(const Parameters& params)>;

// Strategy is implemented once per algorithm (one per file). Not
// thread-safe; the Coordinator owns the calls.
class Strategy {
 public:
  virtual ~Strategy() = default;

  virtual absl::string_view name() const = 0;

  // AggregatesByMean is the one answer to "can this strategy be securely
  // aggregated": true when the new model depends on the round's
  // results only through their num_examples-weighted mean update. Only such
  // strategies can run under secure aggregation (the server learns nothing
  // but that mean) or be wrapped by differential privacy (which replaces
  // it). A strategy that says yes must produce, from a single result
  // carrying the mean update and the total num_examples, the same model as
  // from the individual results.
  virtual bool AggregatesByMean() const { return false; }

  // CheckCompression says whether the strategy stays right when clients
  // upload their updates compressed with `kind` (common/update_compression.h);
  // the Coordinator asks before the first round. The default takes the
  // quantizers (unbiased) everywhere, and top-k only where the model
  // depends on a sum of the updates (AggregatesByMean): a strategy that
  // compares clients coordinate-wise or by distance (median, trimmed mean,
  // Krum, Bulyan) would read the coordinates a client did not send as
  // agreement on "no change". InvalidArgument naming the strategy otherwise.
  virtual absl::Status CheckCompression(Compression kind) const;

  // InitializeParameters may replace the model's own initial parameters.
  virtual std::optional<Parameters> InitializeParameters() { return std::nullopt; }

  // ConfigureFit returns the instruction for each sampled client.
  virtual std::vector<FitInstruction> ConfigureFit(
      uint32_t round, const Parameters& global,
      const std::vector<std::string>& sampled_clients) = 0;

  // BeginAggregateFit starts the aggregation of round `round` against
  // `global` (the parameters the clients started from).
  virtual std::unique_ptr<FitAggregator> BeginAggregateFit(
      uint32_t round, std::shared_ptr<const Parameters> global) = 0;

  // StopReason is asked before round `round` starts; a reason ends the run
  // there, after the last completed round (for example: one more round
  // would spend more privacy than the budget allows).
  virtual std::optional<std::string> StopReason(uint32_t round) { return std::nullopt; }

  // SaveState returns what the strategy keeps between rounds (optimizer
  // moments, control variates, the privacy spent) as named tensors, for a
  // checkpoint after a completed round; LoadState restores it into a
  // strategy freshly built with the same parameters, so the next round
  // continues exactly. Stateless strategies keep the defaults: nothing to
  // save, and LoadState refuses any state. LoadState is all or nothing: on
  // error the strategy is as it was.
  virtual Parameters SaveState() const { return {}; }
  virtual absl::Status LoadState(const Parameters& state);

  // ConfigureEvaluate picks clients for federated evaluation; the default
  // picks none (the server evaluates on its own data instead).
  virtual std::vector<EvaluateInstruction> ConfigureEvaluate(
      uint32_t round, const Parameters& global,
      const std::vector<std::string>& sampled_clients) {
    return {};
  }

  // AggregateEvaluate combines federated evaluation results; the default is
  // the num_examples-weighted mean of loss and of every metric.
  virtual absl::StatusOr<EvaluateRes> AggregateEvaluate(
      uint32_t round,
      const std::vector<std::pair<std::string, EvaluateRes>>& results,
      const std::vector<ClientFailure>& failures);

  // EvaluateGlobal evaluates the new global parameters on the server;
  // nullopt when no evaluator is set.
  virtual std::optional<absl::StatusOr<EvaluateRes>> EvaluateGlobal(
      uint32_t round, const Parameters& params);

  void set_server_evaluator(ServerEvaluator evaluator) {
    server_evaluator_ = std::move(evaluator);
  }

 private:
  ServerEvaluator server_evaluator_;
};

}  // namespace shoal

#endif  // SHOAL_STRATEGIES_STRATEGY_H_
