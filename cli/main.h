// The whole `shoal` command line as a function, so an application can
// register its own strategies (strategies/registry.h) and then run the
// standard subcommands with them.
//
// Example:
//   int main(int argc, char** argv) {
//     if (!RegisterMyStrategy().ok()) return 1;
//     return shoal::cli::Main(argc, argv);
//   }
#ifndef SHOAL_CLI_MAIN_H_
#define SHOAL_CLI_MAIN_H_

namespace shoal::cli {

// Main parses argv (server | client | sim | infer | export | certs | strategies) and runs the
// subcommand; returns the process exit code.
int Main(int argc, char** argv);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_MAIN_H_
