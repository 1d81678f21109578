// The `shoal` subcommands. Each returns the process exit code: 0 on success,
// 1 on a runtime failure, 2 on bad input (flags, config, files).
#ifndef SHOAL_CLI_COMMANDS_H_
#define SHOAL_CLI_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shoal::cli {

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

struct ClientFlags {
  std::string config;
  int partition = -1;      // which partition of data.num_partitions
  std::string data_dir;    // a folder of the client's own IDX data instead
  std::string server;      // overrides server.address
  std::string id;          // default: client-<partition>
  std::string state_dir;   // default: <output_dir>/clients/<id>
  std::string device = "cpu";
  int threads = 1;         // LibTorch intra-op threads
  std::string log_level = "info";
  // Transport security: one of the two is required.
  std::string pki_dir;           // ca.pem, client.pem, client.key, ...
  bool insecure_plaintext = false;
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
  std::string input;
  std::string labels;      // optional IDX labels: report accuracy
  std::string model;       // overrides the recorded model spec
  int limit = 10;          // predictions printed
  // The model-signing public key (model-signing.pub): the stored model's
  // signature must verify with it. Required unless insecure_unverified.
  std::string model_key;
  bool insecure_unverified = false;  // load without checking the signature
};
int RunInferCommand(const InferFlags& flags);

// --- shoal certs: the deployment's PKI (common/pki.h) ---
enum class CertsAction { kInit, kClient, kRevoke };
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
