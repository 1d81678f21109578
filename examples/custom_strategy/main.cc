// custom_shoal: the standard `shoal` command line plus one strategy of our
// own, "scaled_fedavg", which any config file can now name.
#include <cstdio>
#include <string>

#include "cli/main.h"
#include "scaled_fedavg.h"

int main(int argc, char** argv) {
  if (absl::Status s = RegisterScaledFedAvg(); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  return shoal::cli::Main(argc, argv);
}
