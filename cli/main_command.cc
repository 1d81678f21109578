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
namespace {

// AddModelKeyFlags adds the flags of the commands that read a stored model
// (infer, export): the key its signature must verify with, or an explicit
// opt-out (VerifierForStoredModel applies them).
void AddModelKeyFlags(CLI::App* command, std::string* model_key, bool* insecure_unverified) {
  CLI::Option* key = command
                         ->add_option("--model-key", *model_key,
                                      "The server's model-signing public key "
                                      "(model-signing.pub): refuse a model it did not sign")
                         ->check(CLI::ExistingFile);
  command
      ->add_flag("--insecure-unverified", *insecure_unverified,
                 "Use the model without checking its signature (its origin is not checked)")
      ->excludes(key);
}

}  // namespace

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
  // Transport security: mutual TLS unless plaintext is asked for by name.
  auto* s_pki = s->add_option("--pki-dir", server.pki_dir,
                              "The server's TLS material and model-signing key: ca.pem, server.pem, "
                              "server.key, model-signing.key, revoked.txt (from `shoal certs init`)")
                    ->check(CLI::ExistingDirectory);
  s->add_flag("--insecure-plaintext", server.insecure_plaintext,
              "Serve without TLS, client authentication or model signatures (trusted test "
              "networks only)")
      ->excludes(s_pki);
  s->add_flag("--fresh", server.fresh,
              "Start over: discard the checkpoint, models and metrics in the output dir instead of "
              "resuming from them");

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
  c->add_option("--id", client.id,
                "Stable client ID (default: the certificate's name, else client-<partition>)");
  auto* c_pki = c->add_option("--pki-dir", client.pki_dir,
                              "This device's bundle from `shoal certs client`: ca.pem, client.pem, "
                              "client.key, model-signing.pub")
                    ->check(CLI::ExistingDirectory);
  c->add_flag("--insecure-plaintext", client.insecure_plaintext,
              "Talk to the server without TLS and accept unsigned models (trusted test "
              "networks only)")
      ->excludes(c_pki);
  c->add_option("--state-dir", client.state_dir,
                "Where the newest global model is kept (default: <output_dir>/clients/<id>)");
  c->add_option("--serve", client.serve,
                "Serve predictions on this local address (unix:PATH, or 127.0.0.1:PORT) with the "
                "serving versions the server offers (kept in <state-dir>/serving, served from "
                "disk when offline); the device then stays up between runs until SIGTERM")
      ->needs(c_pki);
  c->add_option("--device", client.device, "cpu, or cuda[:N] with a CUDA build of LibTorch")->capture_default_str();
  c->add_option("--threads", client.threads, "LibTorch intra-op threads")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--log-level", client.log_level, "debug, info, warn or error")->capture_default_str();

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
  CLI::App* i = app.add_subcommand(
      "infer", "Run a stored global model on data and print its predictions (works offline)");
  i->add_option("--model-dir,-m", infer.model_dir,
                "A server model store or a client state directory")->required()->check(CLI::ExistingDirectory);
  i->add_option("--input,-i", infer.input,
                "Data in the config's format, read and normalized as in training (without "
                "--config: an IDX image file or a binary PGM image)")
      ->required()
      ->check(CLI::ExistingPath);
  i->add_option("--config,-c", infer.config,
                "Experiment config: its data section (format, normalize) and task")
      ->check(CLI::ExistingFile);
  i->add_option("--labels", infer.labels,
                "IDX label file for IDX images: also report the task's metrics")
      ->check(CLI::ExistingFile);
  i->add_option("--model", infer.model,
                "Model spec overriding the stored one (cnn, 2nn, logreg, mlp, FILE.pt)");
  i->add_option("--output,-o", infer.output, "table, csv or jsonl (predictions on stdout)")
      ->check(CLI::IsMember({"table", "csv", "jsonl"}))
      ->capture_default_str();
  int64_t infer_limit = 0;
  CLI::Option* limit =
      i->add_option("--limit", infer_limit,
                    "Predictions printed (default: 10 for the table, all for csv and jsonl)")
          ->check(CLI::NonNegativeNumber);
  AddModelKeyFlags(i, &infer.model_key, &infer.insecure_unverified);

  shoal::cli::ExportFlags export_flags;
  CLI::App* x = app.add_subcommand(
      "export", "Write a stored global model as a file PyTorch loads (works offline)");
  x->add_option("--model-dir,-m", export_flags.model_dir,
                "A server model store or a client state directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  x->add_option("--version", export_flags.version,
                "The model version to export (default: the newest)")
      ->check(CLI::NonNegativeNumber);
  x->add_option("--output,-o", export_flags.output,
                "The file to write: TorchScript (torch.jit.load) for a TorchScript model, a state "
                "dict (torch.load + load_state_dict) for a built-in")
      ->required();
  x->add_option("--python-module", export_flags.python_module,
                "Built-ins: where the Python module with the model's class goes (default: the "
                "output with .py for its extension)");
  AddModelKeyFlags(x, &export_flags.model_key, &export_flags.insecure_unverified);

  // --- shoal certs (common/pki.h) ---
  shoal::cli::CertsFlags certs;
  CLI::App* pki = app.add_subcommand("certs", "Create a deployment's TLS certificates and keys");
  pki->require_subcommand(1);
  CLI::App* pki_init = pki->add_subcommand(
      "init", "Create the CA, the server's certificate and the model-signing key pair");
  pki_init->add_option("--dir", certs.dir, "PKI folder (created if missing)")->required();
  pki_init->add_option("--host", certs.hosts,
                       "Server DNS name or IP address, repeatable (default: localhost and 127.0.0.1)");
  pki_init->add_option("--days", certs.days, "Server certificate validity in days (1-3650)")
      ->capture_default_str();
  pki_init->add_flag("--force", certs.force, "Overwrite existing files (invalidates issued clients)");
  CLI::App* pki_client = pki->add_subcommand("client", "Issue client certificate bundles");
  pki_client->add_option("--dir", certs.dir, "PKI folder made by `shoal certs init`")->required();
  pki_client->add_option("--id", certs.ids, "Client ID, repeatable")->required();
  pki_client->add_option("--days", certs.days, "Certificate validity in days (1-3650)")
      ->capture_default_str();
  pki_client->add_flag("--force", certs.force, "Overwrite existing bundles");
  CLI::App* pki_revoke = pki->add_subcommand("revoke", "Revoke client IDs (server/revoked.txt)");
  pki_revoke->add_option("--dir", certs.dir, "PKI folder made by `shoal certs init`")->required();
  pki_revoke->add_option("--id", certs.ids, "Client ID, repeatable")->required();
  // --- end shoal certs ---

  app.add_subcommand("strategies", "List the strategies a config file can name");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other parse error is bad input,
    // exit 2 as documented (CLI11's own codes are 100+).
    const int printed = app.exit(e);
    return printed == 0 ? 0 : 2;
  }
  if (s->parsed()) return shoal::cli::RunServerCommand(server);
  if (c->parsed()) {
    if (client.partition < 0 && client.data_dir.empty()) {
      std::fprintf(stderr, "shoal client: give --partition P or --data-dir DIR\n");
      return 2;
    }
    return shoal::cli::RunClientCommand(client);
  }
  if (i->parsed()) {
    if (limit->count() > 0) infer.limit = infer_limit;
    return shoal::cli::RunInferCommand(infer);
  }
  if (x->parsed()) return shoal::cli::RunExportCommand(export_flags);
  if (m->parsed()) return shoal::cli::RunSimCommand(sim);
  if (pki->parsed()) {
    certs.action = pki_init->parsed()     ? CertsAction::kInit
                   : pki_client->parsed() ? CertsAction::kClient
                                          : CertsAction::kRevoke;
    return shoal::cli::RunCertsCommand(certs);
  }
  std::printf("%s\n", absl::StrJoin(RegisteredStrategies(), "\n").c_str());
  return 0;
}

}  // namespace shoal::cli
