// embedded_federation: a server and three clients in one process, on
// 127.0.0.1 with a port the server picks, for two rounds of FedAvg on
// Fashion-MNIST partitions; prints the test accuracy of every round.
// Plaintext, because it never leaves loopback; a deployment passes TLS
// material (FederationServerOptions::tls, AgentOptions::tls).
//
// Usage: embedded_federation OUTPUT_DIR
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "shoal/client.h"
#include "shoal/config.h"
#include "shoal/server.h"
#include "shoal/status.h"

namespace {

constexpr int kClients = 3;

absl::Status Main(const std::string& output_dir) {
  shoal::SetComputeThreads(1);
  // The same typed config a JSON file would give, set in code.
  shoal::ExperimentConfig config;
  config.name = "embedded";
  config.model = *shoal::ParseModelSpec("logreg");
  config.coordinator.num_rounds = 2;
  config.coordinator.min_fit_clients = kClients;
  config.coordinator.min_available_clients = kClients;
  config.partition.scheme = shoal::PartitionScheme::kIid;
  config.partition.num_partitions = 20;  // each client holds 1/20 of the data
  config.output_dir = output_dir;
  config.fit.set_local_epochs(1);
  config.fit.set_batch_size(32);
  config.fit.set_learning_rate(0.05f);

  // The server: strategy, initial model and test-set evaluation from the
  // config; the port is chosen by the system.
  SHOAL_ASSIGN_OR_RETURN(shoal::ServerSide side, shoal::PrepareServerSide(config));
  shoal::FederationServerOptions options;
  options.name = config.name;
  options.address = "127.0.0.1:0";
  options.output_dir = output_dir;
  options.model_spec = shoal::ModelSpecToString(side.model);
  options.coordinator = config.coordinator;
  options.fresh = true;
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<shoal::FederationServer> server,
                         shoal::FederationServer::Create(options, side.strategy.get(),
                                                         std::move(side.initial)));

  // The clients: each trains on its partition, holding a tenth out.
  SHOAL_ASSIGN_OR_RETURN(shoal::Dataset all,
                         shoal::LoadData(config.data, shoal::Split::kTrain,
                                         shoal::Task(config.task), config.num_classes));
  SHOAL_ASSIGN_OR_RETURN(auto parts, shoal::Partition(all.targets, config.partition));
  std::vector<std::unique_ptr<shoal::LocalClient>> locals;
  for (int i = 0; i < kClients; ++i) {
    const uint64_t seed = shoal::ClientSeed(config.seed, i);
    auto [train, holdout] = shoal::SplitClientData(all.Subset(parts[i]), 0.1, seed);
    SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<shoal::Model> model,
                           shoal::CreateModel(side.model, config.seed));
    shoal::TrainerOptions trainer_options;
    trainer_options.seed = seed;
    SHOAL_ASSIGN_OR_RETURN(shoal::Trainer trainer, shoal::Trainer::Create(trainer_options));
    locals.push_back(std::make_unique<shoal::LocalClient>(
        std::move(model), std::move(trainer), std::move(train), std::move(holdout)));
  }
  // The code the clients' models run: here a built-in, named by its spec.
  SHOAL_ASSIGN_OR_RETURN(shoal::ModelCode code,
                         shoal::ReadModelCode(shoal::ModelSpecToString(side.model)));
  std::vector<absl::Status> results(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      shoal::AgentOptions agent_options;
      agent_options.server_address = "127.0.0.1:" + std::to_string(server->port());
      agent_options.client_id = "client-" + std::to_string(i);
      agent_options.state_dir = output_dir + "/clients/" + agent_options.client_id;
      agent_options.seed = shoal::ClientSeed(config.seed, i);
      agent_options.model_code = code;
      shoal::Agent agent(agent_options, locals[i].get());
      results[i] = agent.Run();
    });
  }
  absl::StatusOr<shoal::FederationRun> run = server->Run();
  for (std::thread& t : threads) t.join();
  SHOAL_RETURN_IF_ERROR(run.status());
  for (const absl::Status& s : results) SHOAL_RETURN_IF_ERROR(s);
  for (const shoal::RoundRecord& r : run->history) {
    if (!r.server_eval) continue;
    const auto accuracy = r.server_eval->metrics.find("accuracy");
    std::printf("round %u: %zu client(s) answered, test accuracy %.4f\n", r.round, r.answered,
                accuracy == r.server_eval->metrics.end()
                    ? -1.0
                    : shoal::MetricAsDouble(accuracy->second));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  absl::Status status = Main(argv[1]);
  if (!status.ok()) {
    std::fprintf(stderr, "embedded_federation: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
