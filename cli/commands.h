// The `shoal` subcommands. Each returns the process exit code: 0 on success,
// 1 on a runtime failure, 2 on bad input (flags, config, files).
#ifndef SHOAL_CLI_COMMANDS_H_
#define SHOAL_CLI_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <string>

namespace shoal::cli {

struct ServerFlags {
  std::string config;      // experiment config (JSON); empty: defaults
  std::string address;     // overrides server.address
  std::string output_dir;  // overrides server.output_dir
  int rounds = 0;          // overrides rounds when > 0
  std::string log_level = "info";
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
  // Model poisoning for robustness experiments (client/attack.h): "none",
  // "sign_flip" or "noise"; the scale defaults to the mode's.
  std::string attack = "none";
  std::optional<double> attack_scale;
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

}  // namespace shoal::cli

#endif  // SHOAL_CLI_COMMANDS_H_
