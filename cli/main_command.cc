// shoal::cli::Main: the command-line entry point. CLI11 (Debian's
// libcli11-dev) parses flags: it gives subcommands with their own --help,
// which absl::flags' single global flag namespace does not.
#include "cli/main.h"

#include <CLI/CLI.hpp>

#include <cstdarg>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
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

// CommandName is the parsed subcommand's path ("server", "run submit").
std::string CommandName(const CLI::App& app) {
  std::string name;
  const CLI::App* at = &app;
  for (;;) {
    const std::vector<CLI::App*> next = at->get_subcommands();
    if (next.empty()) break;
    at = next.front();
    absl::StrAppend(&name, name.empty() ? "" : " ", at->get_name());
  }
  return name.empty() ? std::string("shoal") : name;
}

}  // namespace

void PrintCommandError(absl::string_view command, absl::string_view message) {
  if (JsonLogs()) {
    std::fputs(JsonLogLine("error", absl::StrCat("shoal ", command, ": ", message)).c_str(),
               stderr);
    return;
  }
  std::fprintf(stderr, "shoal %s: %s\n", std::string(command).c_str(),
               std::string(message).c_str());
}

void Say(const char* format, ...) {
  va_list args;
  va_start(args, format);
  if (!JsonLogs()) {
    std::vprintf(format, args);
    va_end(args);
    return;
  }
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string text(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(text.data(), text.size() + 1, format, args);
  va_end(args);
  // Whatever the log level: the summary is the command's output.
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    std::fputs(JsonLogLine("info", line).c_str(), stdout);
  }
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  CLI::App app{"Shoal: federated learning with LibTorch over gRPC"};
  app.require_subcommand(1);
  // Options of the command itself may follow any subcommand (CLI11 passes
  // what a subcommand does not know up to its parent).
  app.fallthrough();
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text, or json: one JSON object a line (time, level, process, message), on "
                 "every command")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();

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
  c->add_option("--time-budget", client.time_budget_s,
                "Train at most this many seconds a round: stop early and report the steps and "
                "examples trained (default: no cap)")
      ->check(CLI::Range(0.001, 1e6));
  c->add_option("--memory-budget", client.memory_budget_mb,
                "Memory (MB) a round of training may add: the batch size is lowered until the "
                "round fits (default: no cap; CPU only)")
      ->check(CLI::Range(0.001, 1e9));
  c->add_option("--may-train-command", client.may_train_command,
                "Before each round, run this shell command: exit status 0 trains, any other "
                "declines the round with its first line of output as the reason (10 s limit)");
  c->add_option("--pause-file", client.pause_file,
                "Decline rounds while this file exists, with its first line as the reason");
  c->add_option("--log-level", client.log_level, "debug, info, warn or error")->capture_default_str();
  auto* c_metrics = c->add_option(
      "--metrics-listen", client.metrics_listen,
      "Opt-in: serve this device's Prometheus metrics on HOST:PORT/metrics (e.g. "
      "127.0.0.1:9465; off loopback it needs --metrics-cert, --metrics-key and "
      "--metrics-token-file)");
  c->add_option("--metrics-token-file", client.metrics_token_file,
                "A bearer token (16+ characters) every metrics request must carry")
      ->needs(c_metrics)
      ->check(CLI::ExistingFile);
  auto* c_cert = c->add_option("--metrics-cert", client.metrics_cert,
                               "Off loopback: the TLS certificate (PEM) the metrics are served "
                               "with, for the name scrapers dial")
                     ->needs(c_metrics)
                     ->check(CLI::ExistingFile);
  c->add_option("--metrics-key", client.metrics_key, "Off loopback: its private key (PEM)")
      ->needs(c_cert)
      ->check(CLI::ExistingFile);
  c_cert->needs(c->get_option("--metrics-key"));

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

  shoal::cli::ReportFlags report;
  CLI::App* rep = app.add_subcommand(
      "report", "Write one HTML page comparing finished runs: accuracy, loss, time, bytes, DP, "
                "label distribution (works offline)");
  rep->add_option("runs", report.runs,
                  "Run output directories (or their metrics.json), e.g. runs/fedavg runs/fedprox")
      ->required();
  rep->add_option("--output,-o", report.output, "The HTML file to write")
      ->capture_default_str();
  rep->add_option("--title", report.title, "The page's title")->capture_default_str();
  rep->add_option("--max-clients", report.max_clients,
                  "Clients drawn in each simulated run's label-distribution chart")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));

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
  CLI::App* pki_admin = pki->add_subcommand(
      "admin", "Issue administrator bundles for `shoal serve`'s admin verbs (PKI/admins/ID)");
  pki_admin->add_option("--dir", certs.dir, "PKI folder made by `shoal certs init`")->required();
  pki_admin->add_option("--id", certs.ids, "Administrator ID, repeatable")->required();
  pki_admin->add_option("--days", certs.days, "Certificate validity in days (1-3650)")
      ->capture_default_str();
  pki_admin->add_flag("--force", certs.force, "Overwrite existing bundles");
  CLI::App* pki_revoke = pki->add_subcommand("revoke", "Revoke client IDs (server/revoked.txt)");
  pki_revoke->add_option("--dir", certs.dir, "PKI folder made by `shoal certs init`")->required();
  pki_revoke->add_option("--id", certs.ids, "Client ID, repeatable")->required();
  // --- end shoal certs ---

  // --- shoal serve and its admin verbs (docs/lifecycle.md) ---
  shoal::cli::ServeFlags serve;
  CLI::App* sv = app.add_subcommand(
      "serve", "Run a long-running federation: devices stay enrolled, runs are submitted to it");
  sv->add_option("--config,-c", serve.config,
                 "Optional config: its server.address and server.serving (rollout) settings")
      ->check(CLI::ExistingFile);
  sv->add_option("--address", serve.address,
                 "host:port for devices and admins (default 127.0.0.1:50051)");
  sv->add_option("--state-dir", serve.state_dir,
                 "Where runs (runs/ID) and serving versions (serving/) are kept")
      ->capture_default_str();
  sv->add_option("--pki-dir", serve.pki_dir,
                 "The server's folder from `shoal certs init`: TLS, model-signing key, revoked.txt")
      ->required()
      ->check(CLI::ExistingDirectory);
  sv->add_option("--log-level", serve.log_level, "debug, info, warn or error")
      ->capture_default_str();

  shoal::cli::AdminFlags admin;
  auto add_admin_flags = [&admin](CLI::App* verb) {
    verb->add_option("--server", admin.server, "The `shoal serve` host:port")
        ->capture_default_str();
    verb->add_option("--pki-dir", admin.pki_dir,
                     "An admin bundle from `shoal certs admin` (PKI/admins/NAME)")
        ->required()
        ->check(CLI::ExistingDirectory);
    verb->add_flag("--json", admin.json, "Print the answer as JSON");
  };
  CLI::App* run_cmd = app.add_subcommand("run", "Submit and follow runs of a `shoal serve`");
  run_cmd->require_subcommand(1);
  CLI::App* run_submit = run_cmd->add_subcommand("submit", "Queue a run (an experiment config)");
  run_submit->add_option("config", admin.config, "Experiment config (JSON)")
      ->required()
      ->check(CLI::ExistingFile);
  auto* wait_flag = run_submit->add_flag(
      "--wait", admin.wait, "Follow the run to its end (exit 0 when it is done, 1 otherwise)");
  auto* every_flag = run_submit->add_option(
      "--every", admin.every,
      "Make a schedule: submit the config again every DURATION (e.g. 24h, 90m; at least 1m), "
      "the first at once");
  auto* data_flag = run_submit
                        ->add_option("--when-new-examples", admin.when_new_examples,
                                     "Make a schedule: submit it again whenever the enrolled "
                                     "devices declare N more training examples")
                        ->check(CLI::PositiveNumber);
  wait_flag->excludes(every_flag)->excludes(data_flag);
  CLI::App* run_list = run_cmd->add_subcommand("list", "List the runs, in submission order");
  CLI::App* run_status = run_cmd->add_subcommand("status", "Show one run");
  CLI::App* run_cancel = run_cmd->add_subcommand(
      "cancel", "Cancel a run (a running one stops after the round in progress)");
  CLI::App* run_logs = run_cmd->add_subcommand("logs", "Print a run's log");
  CLI::App* run_schedules = run_cmd->add_subcommand(
      "schedules", "List the schedules (`run submit --every` / `--when-new-examples`)");
  CLI::App* run_unschedule = run_cmd->add_subcommand(
      "unschedule", "End a schedule (the runs it submitted are left as they are)");
  run_unschedule->add_option("schedule", admin.run, "Schedule ID (from `shoal run schedules`)")
      ->required();
  run_logs->add_option("--tail", admin.tail, "The last N lines (at most 10000)")
      ->capture_default_str();
  for (CLI::App* verb : {run_status, run_cancel, run_logs}) {
    verb->add_option("run", admin.run, "Run ID (from `shoal run list`)")->required();
  }
  for (CLI::App* verb :
       {run_submit, run_list, run_status, run_cancel, run_logs, run_schedules, run_unschedule}) {
    add_admin_flags(verb);
  }
  CLI::App* model_cmd =
      app.add_subcommand("model", "Promote and roll back the fleet's serving version");
  model_cmd->require_subcommand(1);
  CLI::App* model_promote = model_cmd->add_subcommand(
      "promote", "Make a run's model the next serving version (a canary first)");
  model_promote->add_option("run", admin.run, "Run ID")->required();
  model_promote->add_option("version", admin.version,
                            "The run's training version (default: its newest)")
      ->check(CLI::NonNegativeNumber);
  CLI::App* model_rollback = model_cmd->add_subcommand(
      "rollback", "Serve the previous serving version again, on every device at once");
  CLI::App* model_status = model_cmd->add_subcommand(
      "status", "Show the serving version, its rollout and what each device serves");
  for (CLI::App* verb : {model_promote, model_rollback, model_status}) add_admin_flags(verb);
  // --- end shoal serve ---

  app.add_subcommand("strategies", "List the strategies a config file can name");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other parse error is bad input,
    // exit 2 as documented (CLI11's own codes are 100+).
    const int printed = app.exit(e);
    return printed == 0 ? 0 : 2;
  }
  // Checked by CLI11 already; the commands' own lines follow it from here.
  SetLogFormat(log_format, CommandName(app)).IgnoreError();
  if (s->parsed()) return shoal::cli::RunServerCommand(server);
  if (sv->parsed()) return shoal::cli::RunServeCommand(serve);
  const std::pair<CLI::App*, std::pair<AdminAction, const char*>> verbs[] = {
      {run_submit, {AdminAction::kSubmit, "run submit"}},
      {run_list, {AdminAction::kList, "run list"}},
      {run_status, {AdminAction::kStatus, "run status"}},
      {run_cancel, {AdminAction::kCancel, "run cancel"}},
      {run_logs, {AdminAction::kLogs, "run logs"}},
      {run_schedules, {AdminAction::kSchedules, "run schedules"}},
      {run_unschedule, {AdminAction::kUnschedule, "run unschedule"}},
      {model_promote, {AdminAction::kPromote, "model promote"}},
      {model_rollback, {AdminAction::kRollback, "model rollback"}},
      {model_status, {AdminAction::kServing, "model status"}}};
  for (const auto& [verb, what] : verbs) {
    if (!verb->parsed()) continue;
    admin.action = what.first;
    admin.verb = what.second;
    return shoal::cli::RunAdminCommand(admin);
  }
  if (c->parsed()) {
    if (client.partition < 0 && client.data_dir.empty()) {
      PrintCommandError("client", "give --partition P or --data-dir DIR");
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
  if (rep->parsed()) return shoal::cli::RunReportCommand(report);
  if (pki->parsed()) {
    certs.action = pki_init->parsed()     ? CertsAction::kInit
                   : pki_client->parsed() ? CertsAction::kClient
                   : pki_admin->parsed()  ? CertsAction::kAdmin
                                          : CertsAction::kRevoke;
    return shoal::cli::RunCertsCommand(certs);
  }
  std::printf("%s\n", absl::StrJoin(RegisteredStrategies(), "\n").c_str());
  return 0;
}

}  // namespace shoal::cli
