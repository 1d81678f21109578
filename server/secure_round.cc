#include "server/secure_round.h"

#include <algorithm>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/status.h"
#include "secagg/crypto.h"
#include "secagg/server.h"
#include "secagg/wire.h"
#include "server/result_collector.h"

namespace shoal {
namespace {

// A complete graph costs n^2 share pairs on the server; beyond this many
// edges the settings must allow a sparse graph.
constexpr uint64_t kMaxGraphEdges = uint64_t{50} * 1000 * 1000;

// ThreadsFor runs the tasks on threads of their own (the server's
// unmasking: a few long, independent PRG expansions).
void ThreadsFor(size_t tasks, const std::function<void(size_t)>& run) {
  std::vector<std::thread> threads;
  for (size_t i = 1; i < tasks; ++i) threads.emplace_back(run, i);
  run(0);
  for (std::thread& t : threads) t.join();
}

const char* MetricName(secagg::ServerStage stage) {
  switch (stage) {
    case secagg::ServerStage::kCollectKeys: return "secagg_keys";
    case secagg::ServerStage::kCollectShares: return "secagg_shares";
    case secagg::ServerStage::kCollectMaskedInputs: return "secagg_masked";
    default: return "secagg_unmasked";
  }
}

}  // namespace

absl::Status SecureAggregationOptions::Validate() const {
  SHOAL_RETURN_IF_ERROR(Annotate(encoding.Validate(1), "secure_aggregation"));
  SHOAL_RETURN_IF_ERROR(Annotate(graph.Validate(), "secure_aggregation"));
  if (stage_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("secure_aggregation.stage_timeout_s must be positive");
  }
  return absl::OkStatus();
}

absl::Status CheckSecureAggregationSupported(const Strategy& strategy) {
  if (strategy.AggregatesByMean()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "strategy '", strategy.name(), "' needs each client's update (or more than their "
      "weighted mean), but under secure aggregation the server learns only the sum; use a "
      "mean-based strategy (fedavg, fedprox, fedavgm, fedadagrad, fedadam, fedyogi) or "
      "turn secure_aggregation.enabled off"));
}

SecureRoundResult RunSecureRound(uint32_t round, const Parameters& global,
                                 const std::vector<SecureCohortMember>& cohort,
                                 const SecureAggregationOptions& options, absl::Time fit_deadline,
                                 Clock* clock, const StageObserver& observer) {
  SecureRoundResult result;
  const uint32_t n = static_cast<uint32_t>(cohort.size());
  auto fail_all = [&](absl::Status status) {
    result.status = std::move(status);
    return result;
  };
  if (n < 2) {
    return fail_all(absl::FailedPreconditionError(absl::StrCat(
        "secure aggregation needs at least 2 clients in a round, got ", n)));
  }
  absl::Status usable = options.encoding.Validate(n);
  if (!usable.ok()) return fail_all(Annotate(usable, "secure_aggregation"));
  absl::StatusOr<secagg::GraphParameters> params = secagg::ChooseGraphParameters(n, options.graph);
  if (!params.ok()) return fail_all(params.status());
  if (static_cast<uint64_t>(n) * params->degree > kMaxGraphEdges) {
    return fail_all(absl::InvalidArgumentError(absl::StrCat(
        "secure aggregation of ", n, " clients at dropout_rate ", options.graph.dropout_rate,
        " and adversary_rate ", options.graph.adversary_rate, " needs degree ", params->degree,
        ", too many share pairs for the server; lower the rates or the cohort")));
  }
  absl::StatusOr<std::string> session = secagg::NewSessionId();
  absl::StatusOr<secagg::Bytes> seed = secagg::RandomBytes(secagg::kKeySize);
  if (!session.ok() || !seed.ok()) {
    return fail_all(session.ok() ? seed.status() : session.status());
  }
  absl::StatusOr<std::vector<std::vector<uint32_t>>> graph =
      secagg::MakeNeighbourGraph(n, params->degree, *seed);
  if (!graph.ok()) return fail_all(graph.status());
  secagg::SecAggServerConfig config;
  config.session_id = *session;
  config.neighbours = *std::move(graph);
  config.threshold = params->threshold;
  config.vector_length = secagg::VectorLength(global);
  config.modulus = options.encoding.values.modulus;
  config.encoding = options.encoding.ToProto();
  config.parallel_for = ThreadsFor;
  config.parallelism = std::max(1u, std::thread::hardware_concurrency());
  absl::StatusOr<std::unique_ptr<secagg::SecAggServer>> created =
      secagg::SecAggServer::Create(std::move(config));
  if (!created.ok()) return fail_all(created.status());
  secagg::SecAggServer& server = **created;
  result.metrics["secagg_degree"] = static_cast<int64_t>(params->degree);
  result.metrics["secagg_threshold"] = static_cast<int64_t>(params->threshold);
  spdlog::info("round {}: secure aggregation of {} clients, {} graph of degree {}, threshold {}",
               round, n, params->complete ? "complete" : "random", params->degree,
               params->threshold);

  absl::Mutex server_mu;
  while (!server.finished()) {
    const secagg::ServerStage stage = server.stage();
    const std::string stage_name = secagg::ServerStageName(stage);
    std::vector<uint32_t> asked;
    {
      absl::MutexLock lock(&server_mu);
      asked = server.Expected();
    }
    const bool fit_stage = stage == secagg::ServerStage::kCollectMaskedInputs;
    const absl::Time deadline = fit_stage ? fit_deadline : clock->Now() + options.stage_timeout;
    // The collector's lock orders the answers; server_mu guards the
    // session, which this thread also reads between stages.
    auto collector = std::make_shared<ResultCollector<uint32_t, v1::SecAggClientMessage>>(
        asked,
        ResultCollectorText{
            absl::StrCat("the secure-aggregation stage '", stage_name,
                         "' is closed; the answer came too late"),
            absl::StrCat("no open secure-aggregation question for this client in stage '",
                         stage_name, "'"),
            "no answer before the stage's deadline"},
        [&server, &server_mu](uint32_t u, v1::SecAggClientMessage& answer) {
          absl::MutexLock lock(&server_mu);
          return server.Receive(u, answer);
        },
        clock);
    for (uint32_t u : asked) {
      absl::StatusOr<v1::SecAggServerMessage> message;
      {
        absl::MutexLock lock(&server_mu);
        message = server.MessageFor(u);
      }
      const SecureCohortMember& member = cohort[u - 1];
      if (!message.ok()) {  // cannot happen for an expected client
        collector->Offer(u, message.status()).IgnoreError();
        continue;
      }
      if (fit_stage) {
        FitIns ins = member.fit;
        ins.secagg = std::make_shared<const v1::SecAggServerMessage>(*std::move(message));
        member.proxy->Fit(ins, deadline, [collector, u](absl::StatusOr<FitRes> res) {
          if (!res.ok()) return collector->Offer(u, res.status());
          if (!res->secagg.has_value()) {
            return collector->Offer(u, absl::InvalidArgumentError(
                                           "answered a securely aggregated round without a "
                                           "masked input (is secure aggregation supported?)"));
          }
          return collector->Offer(u, *std::move(res->secagg));
        });
      } else {
        member.proxy->SecAgg(*message, round, deadline,
                             [collector, u](absl::StatusOr<v1::SecAggClientMessage> answer) {
                               return collector->Offer(u, std::move(answer));
                             });
      }
    }
    for (uint32_t late : collector->WaitAndClose(deadline)) cohort[late - 1].proxy->Cancel();
    // In client order, whatever order they failed in.
    std::vector<std::pair<uint32_t, absl::Status>> failures = collector->failures();
    std::sort(failures.begin(), failures.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [u, status] : failures) {
      result.failures.push_back(
          {cohort[u - 1].proxy->id(),
           Annotate(status, absl::StrCat("secure aggregation, stage '", stage_name, "'"))});
    }
    const size_t answered = asked.size() - failures.size();
    result.metrics[MetricName(stage)] = static_cast<int64_t>(answered);
    if (observer) observer(stage_name, answered, asked.size());
    absl::Status advanced;
    {
      absl::MutexLock lock(&server_mu);
      advanced = server.Advance();
    }
    if (!advanced.ok()) return fail_all(advanced);
  }

  const std::vector<uint32_t> summed = server.summed_clients();
  absl::StatusOr<secagg::DecodedAggregate> decoded =
      secagg::DecodeAggregate(server.sum(), summed.size(), global, options.encoding);
  if (!decoded.ok()) return fail_all(decoded.status());
  result.summed = summed.size();
  result.aggregate.update = std::move(decoded->mean_update);
  result.aggregate.num_examples = decoded->total_weight;
  return result;
}

}  // namespace shoal
