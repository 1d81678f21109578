// The `shoal` subcommands. Each returns the process exit code: 0 on success,
// 1 on a runtime failure, 2 on bad input (flags, config, files).
#ifndef SHOAL_CLI_COMMANDS_H_
#define SHOAL_CLI_COMMANDS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/signing.h"

namespace shoal::cli {

// PrintCommandError reports why `shoal COMMAND` failed: "shoal COMMAND:
// MESSAGE" on stderr, or, with --log-format json, as a JSON log line.
void PrintCommandError(absl::string_view command, absl::string_view message);

// Say prints a command's own report (a run's summary) on stdout, printf
// style; with --log-format json each of its lines is a JSON log line
// instead, so that stdout stays parseable.
void Say(const char* format, ...) __attribute__((format(printf, 1, 2)));

struct ServerFlags {
  std::string config;      // experiment config (JSON); empty: defaults
  std::string address;     // overrides server.address
  std::string output_dir;  // overrides server.output_dir
  int rounds = 0;          // overrides rounds when > 0
  std::string log_level = "info";
  // Transport security: one of the two is required.
  std::string pki_dir;           // ca.pem, server.pem, server.key, ...
  bool insecure_plaintext = false;
  // Discard OUTPUT_DIR's checkpoint and start over instead of resuming.
  bool fresh = false;
};
int RunServerCommand(const ServerFlags& flags);

// `shoal serve`: a long-running federation (docs/lifecycle.md).
struct ServeFlags {
  std::string config;   // optional: server.address and server.serving (the rollout)
  std::string address;  // overrides server.address
  std::string state_dir = "runs/federation";  // runs/ and serving/
  std::string pki_dir;  // required: ca.pem, server.pem, server.key, model-signing.*
  std::string log_level = "info";
};
int RunServeCommand(const ServeFlags& flags);

// `shoal run ...` and `shoal model ...`: the admin verbs of `shoal serve`.
enum class AdminAction {
  kSubmit, kList, kStatus, kCancel, kLogs, kSchedules, kUnschedule, kPromote, kRollback, kServing
};
struct AdminFlags {
  AdminAction action = AdminAction::kList;
  std::string verb;  // "run submit", ... for messages
  std::string server = "127.0.0.1:50051";
  std::string pki_dir;  // an admin bundle (shoal certs admin)
  std::string config;   // submit
  std::string run;      // status, cancel, logs, promote
  int64_t version = -1;  // promote: -1 = the run's newest
  uint32_t tail = 100;   // logs
  bool json = false;
  bool wait = false;  // submit: follow the run to its end
  // submit: make a schedule instead (either or both set).
  std::string every;            // a duration: "6h", "30m"
  int64_t when_new_examples = 0;
};
int RunAdminCommand(const AdminFlags& flags);

struct ClientFlags {
  std::string config;
  int partition = -1;      // which partition of data.num_partitions
  std::string data_dir;    // a folder of the client's own IDX data instead
  std::string server;      // overrides server.address
  std::string id;          // default: client-<partition>
  std::string state_dir;   // default: <output_dir>/clients/<id>
  std::string device = "cpu";
  int threads = 1;         // LibTorch intra-op threads
  // The device's caps (0 / empty: none): seconds of training a round,
  // megabytes a round of training may add, and whether it may train now.
  double time_budget_s = 0;
  double memory_budget_mb = 0;
  std::string may_train_command;
  std::string pause_file;
  std::string log_level = "info";
  // Transport security: one of the two is required.
  std::string pki_dir;           // ca.pem, client.pem, client.key, ...
  bool insecure_plaintext = false;
  // Serve predictions on this local address (unix:PATH or loopback) with
  // the serving versions the server offers, and stay up between runs.
  std::string serve;
  // Opt-in: this device's Prometheus metrics on HOST:PORT/metrics
  // (loopback; elsewhere with TLS from metrics_cert/metrics_key and a
  // bearer token from metrics_token_file).
  std::string metrics_listen;
  std::string metrics_token_file;
  std::string metrics_cert, metrics_key;
};
int RunClientCommand(const ClientFlags& flags);

struct SimFlags {
  std::string config;      // experiment config (JSON); empty: defaults
  std::string output_dir;  // overrides server.output_dir
  int rounds = 0;          // overrides rounds when > 0
  int64_t clients = 0;     // overrides simulation.clients when > 0
  int workers = -1;        // overrides simulation.workers when >= 0
  std::string log_level = "info";
};
int RunSimCommand(const SimFlags& flags);

struct InferFlags {
  std::string model_dir;
  std::string input;       // read in the config's data format
  std::string config;      // experiment config: data format, normalization, task
  std::string labels;      // optional IDX labels for IDX images: report metrics
  std::string model;       // overrides the recorded model spec
  std::string output = "table";  // table, csv or jsonl
  // Predictions printed; unset: 10 for the table, all for csv and jsonl.
  std::optional<int64_t> limit;
  // The model-signing public key (model-signing.pub): the stored model's
  // signature must verify with it. Required unless insecure_unverified.
  std::string model_key;
  bool insecure_unverified = false;  // load without checking the signature
};
int RunInferCommand(const InferFlags& flags);

struct ExportFlags {
  std::string model_dir;
  int64_t version = -1;  // kLatestVersion: the newest
  std::string output;    // the file PyTorch reads
  // Built-ins: where the Python module with the model's class goes;
  // empty: `output` with its extension replaced by ".py".
  std::string python_module;
  std::string model_key;             // as InferFlags
  bool insecure_unverified = false;  // as InferFlags
};
int RunExportCommand(const ExportFlags& flags);

// `shoal report`: one HTML page comparing finished runs (experiment/report.h).
struct ReportFlags {
  std::vector<std::string> runs;  // run output directories or metrics.json files
  std::string output = "report.html";
  std::string title = "Shoal runs";
  int max_clients = 50;  // clients in each run's label-distribution chart
};
int RunReportCommand(const ReportFlags& flags);

// CheckWritableTarget refuses an output path (given as `flag`) that is
// empty, names a folder, or whose folder is missing (InvalidArgument), so
// a command can say so before it reads anything.
absl::Status CheckWritableTarget(const std::string& path, absl::string_view flag);

// VerifierForStoredModel is the rule of the commands that read a stored
// model (infer, export): with `model_key` (a model-signing.pub file) the
// model's signature must verify with that key; with `insecure_unverified`
// nothing is checked (null, after a warning on stderr naming `command`);
// with neither, InvalidArgument saying how to choose.
absl::StatusOr<std::shared_ptr<const ModelVerifier>> VerifierForStoredModel(
    const std::string& model_key, bool insecure_unverified, absl::string_view command);

// --- shoal certs: the deployment's PKI (common/pki.h) ---
enum class CertsAction { kInit, kClient, kRevoke, kAdmin };
struct CertsFlags {
  CertsAction action = CertsAction::kInit;
  std::string dir;                 // the PKI folder
  std::vector<std::string> hosts;  // init: server SANs; empty = localhost, 127.0.0.1
  std::vector<std::string> ids;    // client / revoke
  int days = 365;                  // leaf validity
  bool force = false;              // overwrite existing files
};
int RunCertsCommand(const CertsFlags& flags);
// --- end shoal certs ---

}  // namespace shoal::cli

#endif  // SHOAL_CLI_COMMANDS_H_
