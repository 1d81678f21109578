// custom_shoal: the standard `shoal` command line plus two strategies of our
// own, which any config file can now name: "scaled_fedavg" (server side only,
// so standard `shoal client`s train for it) and "l2_fedavg" (with a client
// half: its clients are `custom_shoal client`).
#include <cstdio>
#include <string>

#include "cli/main.h"
#include "l2_fedavg.h"
#include "scaled_fedavg.h"

int main(int argc, char** argv) {
  absl::Status s = RegisterScaledFedAvg();
  if (s.ok()) s = RegisterL2FedAvg();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  return shoal::cli::Main(argc, argv);
}
