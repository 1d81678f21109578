// FederationTest: a fixture for end-to-end tests over real processes: a real
// `shoal server` and real `shoal client` processes on 127.0.0.1 (a port the
// test picks) train the 2NN on small real Fashion-MNIST partitions, over
// mutual TLS with a PKI the fixture creates (as a deployment would with
// `shoal certs`): the server gets PKI/server, client-P the bundle
// PKI/clients/client-P.
#ifndef SHOAL_TESTS_FEDERATION_FIXTURE_H_
#define SHOAL_TESTS_FEDERATION_FIXTURE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/pki.h"
#include "gtest/gtest.h"
#include "tests/subprocess.h"
#include "tests/testing.h"

namespace shoal::testing {

class FederationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = testing::PickUnusedPort();
    ASSERT_GT(port_, 0);
    address_ = absl::StrCat("127.0.0.1:", port_);
    pki_ = dir_.File("pki");
    const absl::Status pki = InitPki(pki_, PkiOptions{});
    ASSERT_TRUE(pki.ok()) << pki;
  }

  // Bundle issues (once) and returns client `id`'s --pki-dir.
  std::string Bundle(const std::string& id) {
    const std::string bundle = absl::StrCat(pki_, "/clients/", id);
    if (!ReadFile(bundle + "/client.pem").ok()) {
      const absl::Status issued = IssueClient(pki_, id, PkiOptions{});
      EXPECT_TRUE(issued.ok()) << issued;
    }
    return bundle;
  }

  // WriteConfig: 2NN, IID partitions of 1/40 of Fashion-MNIST each (1,500
  // examples), so a round takes seconds. `edit` may change anything.
  std::string WriteConfig(int rounds, int min_fit, double round_s,
                          const std::function<void(nlohmann::json&)>& edit = nullptr) {
    nlohmann::json config = {
        {"name", "integration"},
        {"seed", 7},
        {"rounds", rounds},
        {"model", "2nn"},
        {"fit", {{"local_epochs", 1}, {"batch_size", 32}, {"learning_rate", 0.05},
                 {"momentum", 0.9}}},
        {"sampling", {{"fraction_fit", 1.0}, {"min_fit_clients", min_fit},
                      {"min_available_clients", min_fit}}},
        {"timeouts", {{"round_s", round_s}, {"wait_for_clients_s", 60}}},
        {"data", {{"partitioner", "iid"}, {"num_partitions", 40},
                  {"normalize", {{"mean", 0.2860}, {"std", 0.3530}}}}},
        {"server", {{"address", address_}, {"output_dir", dir_.path() + "/run"},
                    {"threads", 1}}}};
    if (edit) edit(config);
    const std::string path = dir_.File("config.json");
    EXPECT_TRUE(WriteFileAtomically(path, config.dump(2)).ok());
    return path;
  }

  // StartServer runs `shoal server` on `config`, with `flags` added.
  std::unique_ptr<Subprocess> StartServer(const std::string& config,
                                          const std::vector<std::string>& flags = {}) {
    std::vector<std::string> argv{SHOAL_BINARY, "server", "--config", config, "--pki-dir",
                                  pki_ + "/server"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return std::make_unique<Subprocess>(argv, dir_.File("server.log"));
  }

  std::unique_ptr<Subprocess> StartClient(const std::string& config, int partition,
                                          const std::vector<std::string>& flags = {}) {
    std::vector<std::string> argv{SHOAL_BINARY, "client", "--config", config, "--partition",
                                  std::to_string(partition), "--state-dir",
                                  dir_.File(absl::StrCat("client-", partition)), "--pki-dir",
                                  Bundle(absl::StrCat("client-", partition))};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return std::make_unique<Subprocess>(argv,
                                        dir_.File(absl::StrCat("client-", partition, ".log")));
  }

  // RunFederation runs a server and `num_clients` client processes on
  // `config` to the end; null (after failing the test) when one of them did
  // not exit cleanly. The server is returned for its log.
  std::unique_ptr<Subprocess> RunFederation(const std::string& config, int num_clients) {
    auto server = StartServer(config);
    std::vector<std::unique_ptr<Subprocess>> clients;
    for (int i = 0; i < num_clients; ++i) clients.push_back(StartClient(config, i));
    const int server_exit = server->Wait(absl::Minutes(4));
    EXPECT_EQ(server_exit, 0) << server->Log();
    bool clients_ok = true;
    for (auto& c : clients) {
      const int exit = c->Wait(absl::Seconds(60));
      EXPECT_EQ(exit, 0) << c->Log();
      clients_ok = clients_ok && exit == 0;
    }
    return server_exit == 0 && clients_ok ? std::move(server) : nullptr;
  }

  nlohmann::json History() {
    absl::StatusOr<std::string> text = ReadFile(dir_.path() + "/run/metrics.json");
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? nlohmann::json::parse(*text) : nlohmann::json();
  }

  testing::TempDir dir_;
  std::string pki_;  // the deployment's PKI (common/pki.h layout)
  int port_ = 0;
  std::string address_;
};

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_FEDERATION_FIXTURE_H_
