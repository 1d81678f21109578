// shoal::cli::Main: the command-line entry point. CLI11 (Debian's
// libcli11-dev) parses flags: it gives subcommands with their own --help,
// which absl::flags' single global flag namespace does not.
#include "cli/main.h"

#include <CLI/CLI.hpp>

#include <cstdio>

#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "strategies/registry.h"

namespace shoal::cli {

int Main(int argc, char** argv) {
  CLI::App app{"Shoal: federated learning with LibTorch over gRPC"};
  app.require_subcommand(1);

  shoal::cli::ServerFlags server;
  CLI::App* s = app.add_subcommand("server", "Coordinate a federated training run");
  s->add_option("--config,-c", server.config, "Experiment config (JSON)")->check(CLI::ExistingFile);
  s->add_option("--address", server.address, "host:port to listen on (overrides server.address)");
  s->add_option("--output-dir", server.output_dir, "Where models and metrics go (overrides server.output_dir)");
  s->add_option("--rounds", server.rounds, "Number of rounds (overrides rounds)")->check(CLI::PositiveNumber);
  s->add_option("--log-level", server.log_level, "debug, info, warn or error")->capture_default_str();

  shoal::cli::ClientFlags client;
  CLI::App* c = app.add_subcommand("client", "Join a run as an edge client and train on local data");
  c->add_option("--config,-c", client.config, "Experiment config (JSON)")->check(CLI::ExistingFile);
  auto* part = c->add_option("--partition,-p", client.partition,
                             "Train on partition P of data.num_partitions")->check(CLI::NonNegativeNumber);
  c->add_option("--data-dir", client.data_dir,
                "Train on this folder's own IDX files (train-images-idx3-ubyte[.gz], "
                "train-labels-idx1-ubyte[.gz]) instead of a partition")
      ->check(CLI::ExistingDirectory)->excludes(part);
  c->add_option("--server", client.server, "Server host:port (overrides server.address)");
  c->add_option("--id", client.id, "Stable client ID (default: client-<partition>)");
  c->add_option("--state-dir", client.state_dir,
                "Where the newest global model is kept (default: <output_dir>/clients/<id>)");
  c->add_option("--device", client.device, "cpu, or cuda[:N] with a CUDA build of LibTorch")->capture_default_str();
  c->add_option("--threads", client.threads, "LibTorch intra-op threads")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--log-level", client.log_level, "debug, info, warn or error")->capture_default_str();
  c->add_option("--attack", client.attack,
                "Poison every update, for robustness experiments only: none, sign_flip "
                "(send -scale x the update) or noise (send Gaussian noise of stddev scale)")
      ->capture_default_str();
  double attack_scale = 0;
  auto* scale = c->add_option("--attack-scale", attack_scale,
                              "Scale of --attack (default: 10 for sign_flip, 1 for noise)");

  shoal::cli::SimFlags sim;
  CLI::App* m = app.add_subcommand(
      "sim", "Simulate a federation of virtual clients in this process (same rounds, same strategies)");
  m->add_option("--config,-c", sim.config, "Experiment config (JSON) with an optional \"simulation\" section")
      ->check(CLI::ExistingFile);
  m->add_option("--output-dir", sim.output_dir, "Where models and metrics go (overrides server.output_dir)");
  m->add_option("--rounds", sim.rounds, "Number of rounds (overrides rounds)")->check(CLI::PositiveNumber);
  m->add_option("--clients", sim.clients, "Registered virtual clients (overrides simulation.clients)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 32));
  m->add_option("--workers", sim.workers,
                "Worker threads training clients in parallel, 0 = one per core (overrides simulation.workers)")
      ->check(CLI::Range(0, 1024));
  m->add_option("--log-level", sim.log_level, "debug, info, warn or error")->capture_default_str();

  shoal::cli::InferFlags infer;
  CLI::App* i = app.add_subcommand("infer", "Classify images with a stored global model (works offline)");
  i->add_option("--model-dir,-m", infer.model_dir,
                "A server model store or a client state directory")->required()->check(CLI::ExistingDirectory);
  i->add_option("--input,-i", infer.input, "IDX image file (.gz or not) or a 28x28 binary PGM")
      ->required()->check(CLI::ExistingFile);
  i->add_option("--labels", infer.labels, "IDX label file: also report accuracy")->check(CLI::ExistingFile);
  i->add_option("--model", infer.model, "Model spec overriding the stored one (cnn, 2nn, logreg, FILE.pt)");
  i->add_option("--limit", infer.limit, "Predictions to print")->check(CLI::NonNegativeNumber)->capture_default_str();
  CLI::Option* model_key =
      i->add_option("--model-key", infer.model_key,
                    "The server's model-signing public key (model-signing.pub): refuse a model "
                    "it did not sign")->check(CLI::ExistingFile);
  i->add_flag("--insecure-unverified", infer.insecure_unverified,
              "Load the model without checking its signature (its origin is not checked)")
      ->excludes(model_key);

  app.add_subcommand("strategies", "List the strategies a config file can name");

  CLI11_PARSE(app, argc, argv);
  if (s->parsed()) return shoal::cli::RunServerCommand(server);
  if (c->parsed()) {
    if (client.partition < 0 && client.data_dir.empty()) {
      std::fprintf(stderr, "shoal client: give --partition P or --data-dir DIR\n");
      return 2;
    }
    if (scale->count() > 0) client.attack_scale = attack_scale;
    return shoal::cli::RunClientCommand(client);
  }
  if (i->parsed()) return shoal::cli::RunInferCommand(infer);
  if (m->parsed()) return shoal::cli::RunSimCommand(sim);
  std::printf("%s\n", absl::StrJoin(RegisteredStrategies(), "\n").c_str());
  return 0;
}

}  // namespace shoal::cli
