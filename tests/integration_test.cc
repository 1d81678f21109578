// End to end over real processes: a real `shoal server` and real `shoal
// client` processes on 127.0.0.1 train the 2NN on real Fashion-MNIST
// partitions (small ones, to fit the suite's time budget).
#include <signal.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/model_dir.h"
#include "common/parameters.h"
#include "common/sha256.h"
#include "client/data/source.h"
#include "client/task.h"
#include "experiment/experiment_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "strategies/privacy_accountant.h"
#include "tests/federation_fixture.h"
#include "shoal/v1/shoal.grpc.pb.h"
#include "tests/subprocess.h"

namespace shoal {
namespace {

using nlohmann::json;
using testing::Subprocess;
using testing::WaitForLogLine;

using IntegrationTest = testing::FederationTest;

// Issue 16: `shoal server` with server.serving auto-promotes the run's final
// model (nothing was served before), the two `shoal client --serve` devices
// take it before the run ends, and once the server is gone they still
// answer predictions over their Unix sockets from the version on disk,
// until SIGTERM ends them cleanly. Device 0's own metrics endpoint (opt-in)
// still tells what it did in the run that is over.
TEST_F(IntegrationTest, DevicesServeTheAutoPromotedFinalModelAfterTheServerIsGone) {
  const std::string serving = dir_.File("serving");
  const std::string config = WriteConfig(/*rounds=*/2, /*min_fit=*/2, /*round_s=*/120,
                                         [&](json& c) {
                                           c["server"]["serving"] = {{"dir", serving},
                                                                     {"auto_promote", true},
                                                                     {"canary_fraction", 0}};
                                         });
  auto server = StartServer(config);
  std::vector<std::unique_ptr<Subprocess>> devices;
  std::vector<std::string> sockets;
  const int metrics_port = testing::PickUnusedPort();
  ASSERT_GT(metrics_port, 0);
  for (int i = 0; i < 2; ++i) {
    sockets.push_back("unix:" + dir_.File(absl::StrCat("predict-", i, ".sock")));
    std::vector<std::string> flags = {"--serve", sockets.back()};
    if (i == 0) {
      flags.insert(flags.end(), {"--metrics-listen", absl::StrCat("127.0.0.1:", metrics_port)});
    }
    devices.push_back(StartClient(config, i, flags));
  }
  ASSERT_EQ(server->Wait(absl::Minutes(4)), 0) << server->Log();
  EXPECT_NE(server->Log().find("promoted model version 2 as serving version 1"),
            std::string::npos)
      << server->Log();

  // The server is gone: each device answers from serving version 1.
  const at::Tensor x = at::rand({3, 1, 28, 28});
  for (int i = 0; i < 2; ++i) {
    auto stub = v1::LocalPredict::NewStub(
        grpc::CreateChannel(sockets[i], grpc::InsecureChannelCredentials()));
    v1::PredictResponse response;
    grpc::Status status;
    for (int attempt = 0; attempt < 300; ++attempt) {
      v1::PredictRequest request;
      TensorToProto("inputs", x, request.mutable_inputs());
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      status = stub->Predict(&ctx, request, &response);
      if (status.ok() && response.serving_version() == 1) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ASSERT_TRUE(status.ok()) << status.error_message() << devices[i]->Log();
    EXPECT_EQ(response.serving_version(), 1) << devices[i]->Log();
    absl::StatusOr<at::Tensor> outputs = TensorFromProto(response.outputs());
    ASSERT_TRUE(outputs.ok()) << outputs.status();
    EXPECT_EQ(outputs->sizes(), (std::vector<int64_t>{3, 10}));
  }
  httplib::Client http("127.0.0.1", metrics_port);
  httplib::Result scrape = http.Get("/metrics");
  ASSERT_TRUE(scrape && scrape->status == 200) << devices[0]->Log();
  auto value = [&](const std::string& series) {
    const size_t at = scrape->body.find("\n" + series + " ");
    EXPECT_NE(at, std::string::npos) << series << "\n" << scrape->body;
    return at == std::string::npos ? -1.0 : std::stod(scrape->body.substr(at + series.size() + 2));
  };
  EXPECT_EQ(value("shoal_device_rounds_total"), 2);
  EXPECT_EQ(value("shoal_device_tasks_total{kind=\"fit\"}"), 2);
  EXPECT_EQ(value("shoal_device_task_failures_total{kind=\"fit\"}"), 0);
  EXPECT_GE(value("shoal_device_model_version"), 1);  // trained on versions 0 and 1
  EXPECT_EQ(value("shoal_device_serving_version"), 1);
  EXPECT_GT(value("shoal_device_uploaded_bytes_total"), 199210 * 2);
  for (auto& device : devices) {
    device->Kill(SIGTERM);
    EXPECT_EQ(device->Wait(absl::Seconds(30)), 0) << device->Log();
  }
}

// Serving refuses what it cannot do safely, before anything starts: a
// serving catalog without the signing key (plaintext), and a prediction
// endpoint off the device.
TEST_F(IntegrationTest, ServingWithoutSigningOrOnANetworkAddressIsRefusedByName) {
  const std::string config = WriteConfig(1, 1, 60, [&](json& c) {
    c["server"]["serving"] = {{"dir", dir_.File("serving")}};
  });
  Subprocess server({SHOAL_BINARY, "server", "--config", config, "--insecure-plaintext"},
                    dir_.File("plain.log"));
  EXPECT_EQ(server.Wait(absl::Seconds(60)), 2) << server.Log();
  EXPECT_NE(server.Log().find("'server.serving' needs --pki-dir"), std::string::npos)
      << server.Log();
  auto device = StartClient(config, 0, {"--serve", "0.0.0.0:7001"});
  EXPECT_EQ(device->Wait(absl::Seconds(60)), 2) << device->Log();
  EXPECT_NE(device->Log().find("never on '0.0.0.0'"), std::string::npos) << device->Log();
}

// Issue 14.11: real-process runs are as reproducible as the simulator's.
// The same config run twice, with processes, threads, TLS and the arrival
// order of results all left to the OS, gives bit-identical global models
// in every round (the SHA-256 of each version), as long as the same
// clients answer: the seeds fix the data, the shuffles and the sampling,
// each client trains on one LibTorch thread, and the server's float64 sum
// does not depend on the order results arrive in.
TEST_F(IntegrationTest, TwoRealRunsWithTheSameSeedGiveBitIdenticalModels) {
  const std::string config = WriteConfig(/*rounds=*/2, /*min_fit=*/3, /*round_s=*/120,
                                         [](json& c) { c["data"]["partitioner"] = "dirichlet"; });
  std::vector<std::string> first;
  for (int run = 0; run < 2; ++run) {
    // A fresh start each time: no checkpoint, no client caches.
    std::filesystem::remove_all(dir_.path() + "/run");
    for (int i = 0; i < 3; ++i) std::filesystem::remove_all(dir_.File(absl::StrCat("client-", i)));
    ASSERT_NE(RunFederation(config, 3), nullptr) << "run " << run;
    const json h = History();
    for (int round = 1; round <= 2; ++round) {
      ASSERT_EQ(h["rounds"][round]["answered"], 3) << h.dump(1);
      absl::StatusOr<ModelRecord> m = ReadModelRecord(dir_.path() + "/run/models", round);
      ASSERT_TRUE(m.ok()) << m.status();
      if (run == 0) {
        first.push_back(m->sha256_hex);
      } else {
        EXPECT_EQ(m->sha256_hex, first[round - 1]) << "round " << round;
      }
    }
  }
}

// Issue 15.3: data.stream. Clients that spool their data to disk and read
// it back a batch at a time train the same global models, bit for bit, as
// clients holding it in memory (the sklearn breast-cancer table Debian
// ships, the built-in MLP, per-feature normalization pinned in the config).
TEST_F(IntegrationTest, ClientsStreamingTheirDataFromDiskTrainTheSameModelsAsInMemory) {
  const auto edit = [&](json& c) {
    c["model"] = {{"name", "mlp"}, {"hidden", {16}}};
    c["task"] = {{"kind", "binary"}};
    c["fit"]["batch_size"] = 16;
    c["data"] = {{"format", "csv"},
                 {"train", "/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv"},
                 {"csv", {{"skip_lines", 1}, {"header", false}, {"target", "31"}}},
                 {"test_fraction", 0.2},
                 {"partitioner", "iid"},
                 {"num_partitions", 2},
                 {"holdout_fraction", 0.1}};
  };
  // The normalization "auto" would compute, pinned: streamed data computes
  // its statistics in one pass, which may differ in the last bits.
  absl::StatusOr<ExperimentConfig> parsed = LoadExperimentConfig(WriteConfig(2, 2, 120, edit));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  client::DataOptions data = parsed->data;
  data.normalization.mode = client::Normalization::Mode::kAuto;
  absl::StatusOr<client::Normalization> norm =
      client::TrainingNormalization(data, client::Task(parsed->task));
  ASSERT_TRUE(norm.ok()) << norm.status();
  ASSERT_EQ(norm->mean.size(), 30u);
  std::filesystem::create_directories(dir_.File("spool"));
  std::vector<std::string> models;
  for (bool stream : {false, true}) {
    std::filesystem::remove_all(dir_.path() + "/run");
    for (int i = 0; i < 2; ++i) std::filesystem::remove_all(dir_.File(absl::StrCat("client-", i)));
    const std::string config = WriteConfig(2, 2, 120, [&](json& c) {
      edit(c);
      c["data"]["normalize"] = {{"mean", norm->mean}, {"std", norm->std}};
      if (stream) {
        c["data"]["stream"] = true;
        c["data"]["spool_dir"] = dir_.File("spool");
      }
    });
    ASSERT_NE(RunFederation(config, 2), nullptr) << "stream " << stream;
    for (int round = 1; round <= 2; ++round) {
      absl::StatusOr<ModelRecord> m = ReadModelRecord(dir_.path() + "/run/models", round);
      ASSERT_TRUE(m.ok()) << m.status();
      if (!stream) {
        models.push_back(m->sha256_hex);
      } else {
        EXPECT_EQ(m->sha256_hex, models[round - 1]) << "round " << round;
      }
    }
    if (stream) {
      absl::StatusOr<std::string> log = ReadFile(dir_.File("client-0.log"));
      ASSERT_TRUE(log.ok());
      EXPECT_NE(log->find("spool file"), std::string::npos) << *log;
      // The spool file has no name: nothing is left behind.
      EXPECT_TRUE(std::filesystem::is_empty(dir_.File("spool")));
    }
  }
}

TEST_F(IntegrationTest, ServerAndThreeClientProcessesTrainAndAccuracyRises) {
  const std::string config =
      WriteConfig(/*rounds=*/2, /*min_fit=*/3, /*round_s=*/120, [](json& c) {
        c["strategy"] = {{"name", "fedavg"}, {"fraction_evaluate", 1.0}};
      });
  std::unique_ptr<Subprocess> server = RunFederation(config, 3);
  ASSERT_NE(server, nullptr);

  json h = History();
  ASSERT_EQ(h["rounds"].size(), 3u) << h.dump(2);  // round 0 = initial model
  const double acc0 = h["rounds"][0]["test_accuracy"];
  const double acc1 = h["rounds"][1]["test_accuracy"];
  const double acc2 = h["rounds"][2]["test_accuracy"];
  EXPECT_EQ(h["rounds"][1]["answered"], 3);
  EXPECT_EQ(h["rounds"][2]["answered"], 3);
  EXPECT_GT(acc1, acc0 + 0.3) << "initial " << acc0 << ", round 1 " << acc1;
  EXPECT_GT(acc2, acc1) << "round 1 " << acc1 << ", round 2 " << acc2;
  EXPECT_GT(acc2, 0.7);
  // Federated evaluation: every client evaluated the new model on its own
  // held-out data, and the clients agree roughly with the server's test set.
  const double fed2 = h["rounds"][2]["federated_accuracy"];
  EXPECT_NEAR(fed2, acc2, 0.1) << h["rounds"][2].dump(2);

  // The server's last words say where the model is and how to use it.
  const std::string log = server->Log();
  EXPECT_NE(log.find("Final test accuracy"), std::string::npos) << log;
  EXPECT_NE(log.find("shoal infer --model-key"), std::string::npos) << log;

  // Every client kept the final global model for offline inference, with the
  // same checksum as the server's.
  ModelRecord server_model = *ReadModelRecord(dir_.path() + "/run/models");
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<ModelRecord> mine = ReadModelRecord(dir_.File(absl::StrCat("client-", i)));
    ASSERT_TRUE(mine.ok()) << mine.status();
    EXPECT_EQ(mine->version, 2);
    EXPECT_EQ(mine->sha256_hex, server_model.sha256_hex);
  }

  // Inference with the server down, from a client's copy.
  // Verified with the public key of the device's bundle.
  Subprocess infer({SHOAL_BINARY, "infer", "--model-key", Bundle("client-0") + "/model-signing.pub",
                    "--model-dir",
                    dir_.File("client-0"), "--input",
                    "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "--labels",
                    "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"},
                   dir_.File("infer.log"));
  ASSERT_EQ(infer.Wait(absl::Seconds(60)), 0) << infer.Log();
  EXPECT_NE(infer.Log().find("accuracy: "), std::string::npos) << infer.Log();
}

// Strategies whose clients do more than plain SGD, over the real wire:
// SCAFFOLD sends its control variate with each task (DownloadAux) and gets
// the clients' control changes back with their updates; q-FedAvg needs each
// client's loss before training. Both must train, with every result valid.
class StrategyOverGrpcTest : public IntegrationTest,
                             public ::testing::WithParamInterface<const char*> {};

TEST_P(StrategyOverGrpcTest, TwoClientProcessesTrainTwoRounds) {
  const std::string config =
      WriteConfig(/*rounds=*/2, /*min_fit=*/2, /*round_s=*/120, [](json& c) {
        c["strategy"] = {{"name", GetParam()}};
        c["fit"]["momentum"] = 0.0;
      });
  std::unique_ptr<Subprocess> server = RunFederation(config, 2);
  ASSERT_NE(server, nullptr);

  json h = History();
  ASSERT_EQ(h["rounds"].size(), 3u) << h.dump(2);
  for (int r = 1; r <= 2; ++r) {
    EXPECT_EQ(h["rounds"][r]["answered"], 2) << h["rounds"][r].dump(2);
    EXPECT_TRUE(h["rounds"][r]["model_updated"]) << h["rounds"][r].dump(2);
  }
  const double acc0 = h["rounds"][0]["test_accuracy"];
  const double acc2 = h["rounds"][2]["test_accuracy"];
  EXPECT_GT(acc2, acc0 + 0.3) << h.dump(2);
}

INSTANTIATE_TEST_SUITE_P(ClientSideStrategies, StrategyOverGrpcTest,
                         ::testing::Values("scaffold", "qfedavg"));

// Issue 17: compressed uploads over the real wire. Each client process
// compresses its update as the server's fit tasks say, the server decodes
// it against the task's model and counts the bytes it received, and the
// model still learns. Top-k keeps its residual in the device's state dir.
// With download "delta" (the top-k run) devices fetch each new version as
// the change from the one they hold, and still hold the server's bytes.
class CompressionOverGrpcTest : public IntegrationTest,
                                public ::testing::WithParamInterface<const char*> {};

TEST_P(CompressionOverGrpcTest, ClientsUploadAFractionOfTheBytesAndTheModelLearns) {
  const std::string kind = GetParam();
  const std::string config =
      WriteConfig(/*rounds=*/2, /*min_fit=*/2, /*round_s=*/120, [&](json& c) {
        c["compression"] = {{"upload", kind}, {"topk_fraction", 0.02},
                            {"download", kind == "topk" ? "delta" : "full"}};
      });
  std::unique_ptr<Subprocess> server = RunFederation(config, 2);
  ASSERT_NE(server, nullptr);
  const json h = History();
  ASSERT_EQ(h["rounds"].size(), 3u) << h.dump(2);
  // The 2NN: 199,210 float32 parameters.
  const double full = 199210.0 * 4;
  for (int r = 1; r <= 2; ++r) {
    ASSERT_EQ(h["rounds"][r]["answered"], 2) << h["rounds"][r].dump(2);
    const double per_client = h["rounds"][r]["upload_bytes"].get<double>() / 2;
    EXPECT_GT(per_client, 0);
    EXPECT_LT(per_client / full, kind == "q8" ? 0.27 : 0.05) << "round " << r;
  }
  const double acc0 = h["rounds"][0]["test_accuracy"];
  const double acc2 = h["rounds"][2]["test_accuracy"];
  EXPECT_GT(acc2, acc0 + 0.3) << h.dump(2);
  for (int i = 0; i < 2; ++i) {
    const bool kept = std::filesystem::exists(dir_.File(absl::StrCat("client-", i)) +
                                              "/client_state.pb");
    EXPECT_EQ(kept, kind == "topk") << "client " << i;
    const std::string log = *ReadFile(dir_.File(absl::StrCat("client-", i, ".log")));
    EXPECT_EQ(log.find("as a delta from version 1") != std::string::npos, kind == "topk") << log;
    absl::StatusOr<ModelRecord> mine = ReadModelRecord(dir_.File(absl::StrCat("client-", i)));
    ASSERT_TRUE(mine.ok()) << mine.status();
    EXPECT_EQ(mine->sha256_hex, ReadModelRecord(dir_.path() + "/run/models")->sha256_hex);
  }
  EXPECT_NE(server->Log().find("upload"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Schemes, CompressionOverGrpcTest, ::testing::Values("q8", "topk"));

// Issue 17.2: training only the 2NN's output layer (fc3, 2,010 of 199,210
// parameters) over the real wire. Clients upload only fc3; the server's
// global fc1 and fc2 stay bit-identical to the initial model's, and the
// output layer alone still learns.
TEST_F(IntegrationTest, TrainingOnlyTheHeadUploadsOnlyTheHeadAndKeepsTheRestBitIdentical) {
  const std::string config = WriteConfig(/*rounds=*/2, /*min_fit=*/2, /*round_s=*/120,
                                         [](json& c) { c["fit"]["train_only"] = {"fc3.*"}; });
  std::unique_ptr<Subprocess> server = RunFederation(config, 2);
  ASSERT_NE(server, nullptr);
  const json h = History();
  ASSERT_EQ(h["rounds"].size(), 3u) << h.dump(2);
  for (int r = 1; r <= 2; ++r) {
    ASSERT_EQ(h["rounds"][r]["answered"], 2) << h["rounds"][r].dump(2);
    // fc3 in full (2,010 float32) and its names: well under 2 % of the model.
    EXPECT_LT(h["rounds"][r]["upload_bytes"].get<double>() / 2, 199210.0 * 4 * 0.02);
  }
  absl::StatusOr<Parameters> first = LoadModelParameters(dir_.path() + "/run/models", nullptr, 0);
  absl::StatusOr<Parameters> last = LoadModelParameters(dir_.path() + "/run/models", nullptr, 2);
  ASSERT_TRUE(first.ok() && last.ok());
  for (size_t i = 0; i < first->size(); ++i) {
    const bool head = first->name(i).rfind("fc3.", 0) == 0;
    EXPECT_EQ(at::equal(first->tensor(i), last->tensor(i)), !head) << first->name(i);
  }
  EXPECT_GT(h["rounds"][2]["test_accuracy"].get<double>(),
            h["rounds"][0]["test_accuracy"].get<double>() + 0.2)
      << h.dump(2);
}

// Issue 17.3: personal layers over the real wire. Each device trains the
// 2NN's output layer (fc3) as its own and keeps it in its state dir; the
// server never gets it: the global fc3 stays the initial one bit for bit,
// the uploads are the model without fc3, and every device's fc3 differs
// from the global one and from the other device's.
TEST_F(IntegrationTest, PersonalLayersStayOnTheirDevices) {
  const std::string config = WriteConfig(/*rounds=*/2, /*min_fit=*/2, /*round_s=*/120,
                                         [](json& c) { c["fit"]["personal"] = {"fc3.*"}; });
  std::unique_ptr<Subprocess> server = RunFederation(config, 2);
  ASSERT_NE(server, nullptr);
  const json h = History();
  ASSERT_EQ(h["rounds"].size(), 3u) << h.dump(2);
  const double without_fc3 = (199210.0 - 2010) * 4;
  for (int r = 1; r <= 2; ++r) {
    ASSERT_EQ(h["rounds"][r]["answered"], 2) << h["rounds"][r].dump(2);
    const double per_client = h["rounds"][r]["upload_bytes"].get<double>() / 2;
    EXPECT_LT(per_client, without_fc3 + 1024) << "round " << r;
    EXPECT_GT(per_client, without_fc3) << "round " << r;
  }
  absl::StatusOr<Parameters> first = LoadModelParameters(dir_.path() + "/run/models", nullptr, 0);
  absl::StatusOr<Parameters> last = LoadModelParameters(dir_.path() + "/run/models", nullptr, 2);
  ASSERT_TRUE(first.ok() && last.ok());
  std::vector<at::Tensor> device_fc3;
  for (size_t i = 0; i < first->size(); ++i) {
    const bool head = first->name(i).rfind("fc3.", 0) == 0;
    EXPECT_EQ(at::equal(first->tensor(i), last->tensor(i)), head) << first->name(i);
  }
  for (int c = 0; c < 2; ++c) {
    absl::StatusOr<std::string> bytes =
        ReadFile(dir_.File(absl::StrCat("client-", c)) + "/client_state.pb");
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    v1::ClientStateProto state;
    ASSERT_TRUE(state.ParseFromString(*bytes));
    ASSERT_EQ(state.states().count("personal"), 1u);
    absl::StatusOr<Parameters> mine = ParametersFromProto(state.states().at("personal"));
    ASSERT_TRUE(mine.ok()) << mine.status();
    ASSERT_EQ(mine->size(), 2u);  // fc3.weight, fc3.bias
    EXPECT_EQ(mine->name(0), "fc3.weight");
    EXPECT_FALSE(at::equal(mine->tensor(0), last->tensor(4)));
    device_fc3.push_back(mine->tensor(0));
  }
  EXPECT_FALSE(at::equal(device_fc3[0], device_fc3[1]));
  // Offline inference on a device's copy uses its own fc3.
  Subprocess infer({SHOAL_BINARY, "infer", "--model-key", Bundle("client-0") + "/model-signing.pub",
                    "--model-dir", dir_.File("client-0"), "--input",
                    "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "--limit", "3"},
                   dir_.File("infer.log"));
  ASSERT_EQ(infer.Wait(absl::Seconds(60)), 0) << infer.Log();
  EXPECT_NE(infer.Log().find("with this device's 2 personal tensor(s)"), std::string::npos)
      << infer.Log();
}

// Issue 17.4 over real processes: client-0's pause file says it may not
// train now, so it declines every round with the file's reason, and the
// server records a decline, not a failure, and goes on with the others;
// client-1 may train (its may-train command exits 0) but only for a
// millisecond a round, so it stops early and reports the steps it took.
TEST_F(IntegrationTest, ADeviceThatMayNotTrainNowDeclinesAndOneOutOfTimeStopsEarly) {
  const std::string config = WriteConfig(/*rounds=*/2, /*min_fit=*/2, /*round_s=*/120,
                                         [](json& c) {
                                           c["fit"]["local_epochs"] = 5;
                                           c["sampling"]["min_fit_clients"] = 1;
                                         });
  const std::string pause = dir_.File("pause");
  ASSERT_TRUE(WriteFileAtomically(pause, "on battery\n").ok());
  auto server = StartServer(config);
  auto paused = StartClient(config, 0, {"--pause-file", pause});
  auto hurried = StartClient(config, 1, {"--time-budget", "0.001", "--may-train-command", "exit 0"});
  ASSERT_EQ(server->Wait(absl::Minutes(4)), 0) << server->Log();
  ASSERT_EQ(paused->Wait(absl::Seconds(60)), 0) << paused->Log();
  ASSERT_EQ(hurried->Wait(absl::Seconds(60)), 0) << hurried->Log();
  const json h = History();
  ASSERT_EQ(h["rounds"].size(), 3u) << h.dump(2);
  for (int r = 1; r <= 2; ++r) {
    const json& round = h["rounds"][r];
    EXPECT_EQ(round["answered"], 1) << round.dump(2);
    EXPECT_EQ(round["failed"], 0) << round.dump(2);
    ASSERT_EQ(round["declined"].size(), 1u) << round.dump(2);
    EXPECT_EQ(round["declined"][0]["client"], "client-0");
    EXPECT_EQ(round["declined"][0]["reason"], "'on battery'");
    EXPECT_TRUE(round["model_updated"].get<bool>());
  }
  EXPECT_NE(server->Log().find("client 'client-0' declined: 'on battery'"), std::string::npos)
      << server->Log();
  EXPECT_NE(paused->Log().find("round 1: declined to train: on battery"), std::string::npos)
      << paused->Log();
  EXPECT_NE(hurried->Log().find("(stopped by the time budget after"), std::string::npos)
      << hurried->Log();
  absl::StatusOr<std::string> csv = ReadFile(dir_.path() + "/run/metrics.csv");
  ASSERT_TRUE(csv.ok());
  EXPECT_NE(csv->find(",declined\n"), std::string::npos) << *csv;
}

// Issue 18.4: with --log-format json (which may follow the subcommand) every
// line a command writes is one JSON object with its time, level, process
// and message: a simulation's progress and summary, and a refused config's
// error.
TEST_F(IntegrationTest, LogFormatJsonMakesEveryLineOneJsonObject) {
  auto lines = [](const std::string& log) {
    std::vector<json> out;
    for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
      json parsed = json::parse(line, nullptr, /*allow_exceptions=*/false);
      EXPECT_TRUE(parsed.is_object()) << "not one JSON object: " << line;
      if (!parsed.is_object()) continue;
      for (const char* key : {"time", "level", "process", "message"}) {
        EXPECT_TRUE(parsed.contains(key)) << key << " missing in " << line;
      }
      out.push_back(parsed);
    }
    return out;
  };
  Subprocess sim({SHOAL_BINARY, "sim", "--config",
                  std::string(SHOAL_SOURCE_DIR) + "/examples/simulation/config.json", "--rounds",
                  "1", "--clients", "100", "--output-dir", dir_.File("sim"), "--log-format",
                  "json"},
                 dir_.File("sim.log"));
  ASSERT_EQ(sim.Wait(absl::Seconds(120)), 0) << sim.Log();
  const std::vector<json> logged = lines(sim.Log());
  ASSERT_GT(logged.size(), 3u) << sim.Log();
  bool summary = false;
  for (const json& line : logged) {
    EXPECT_EQ(line["process"], "sim");
    summary = summary || line["message"].get<std::string>().rfind("Final test accuracy", 0) == 0;
  }
  EXPECT_TRUE(summary) << sim.Log();

  ASSERT_TRUE(WriteFileAtomically(dir_.File("bad.json"), R"({"rounds": -1})").ok());
  Subprocess bad({SHOAL_BINARY, "--log-format", "json", "server", "--config",
                  dir_.File("bad.json"), "--insecure-plaintext"},
                 dir_.File("bad.log"));
  EXPECT_EQ(bad.Wait(absl::Seconds(60)), 2) << bad.Log();
  const std::vector<json> refused = lines(bad.Log());
  ASSERT_FALSE(refused.empty()) << bad.Log();
  EXPECT_EQ(refused.back()["level"], "error");
  EXPECT_NE(refused.back()["message"].get<std::string>().find("shoal server: "), std::string::npos)
      << bad.Log();
  EXPECT_NE(refused.back()["message"].get<std::string>().find("rounds"), std::string::npos)
      << bad.Log();
}

// Issue 18.1: a real Prometheus (Debian's `prometheus`) scrapes a real
// `shoal server` every second during a real run, and the series are read
// back through Prometheus's own HTTP query API: the rounds, the clients
// answered, and the Poll latency histogram.
TEST_F(IntegrationTest, PrometheusScrapesTheServersMetricsDuringARun) {
  const int metrics_port = testing::PickUnusedPort();
  const int prometheus_port = testing::PickUnusedPort();
  const int device_port = testing::PickUnusedPort();
  ASSERT_GT(metrics_port, 0);
  ASSERT_GT(prometheus_port, 0);
  ASSERT_GT(device_port, 0);
  const std::string target = absl::StrCat("127.0.0.1:", metrics_port);
  // Client 0 opts in to its own endpoint (shoal client --metrics-listen).
  const std::string device_target = absl::StrCat("127.0.0.1:", device_port);
  const std::string config = WriteConfig(/*rounds=*/4, /*min_fit=*/2, /*round_s=*/60,
                                         [&](json& c) {
                                           c["server"]["metrics"] = {{"listen", target}};
                                           c["fit"]["local_epochs"] = 2;
                                         });
  ASSERT_TRUE(WriteFileAtomically(dir_.File("prometheus.yml"),
                                  absl::StrCat("global:\n  scrape_interval: 1s\n"
                                               "scrape_configs:\n  - job_name: shoal\n"
                                               "    scrape_interval: 1s\n"
                                               "    static_configs:\n      - targets: ['",
                                               target, "']\n  - job_name: device\n"
                                               "    scrape_interval: 1s\n"
                                               "    static_configs:\n      - targets: ['",
                                               device_target, "']\n"))
                  .ok());
  Subprocess prometheus({"/usr/bin/prometheus", "--config.file=" + dir_.File("prometheus.yml"),
                         "--storage.tsdb.path=" + dir_.File("tsdb"),
                         absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port),
                         "--log.level=warn"},
                        dir_.File("prometheus.log"));
  httplib::Client api("127.0.0.1", prometheus_port);
  api.set_read_timeout(10, 0);
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    httplib::Result r = api.Get("/-/ready");
    ready = r && r->status == 200;
    if (!ready) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(ready) << prometheus.Log();

  // The newest value each series had while the server was up.
  auto query = [&](const std::string& promql) -> double {
    httplib::Result r = api.Get("/api/v1/query", {{"query", promql}}, httplib::Headers{});
    if (!r || r->status != 200) {
      ADD_FAILURE() << promql << ": " << (r ? r->body : httplib::to_string(r.error()));
      return -1;
    }
    const json answer = json::parse(r->body);
    const json& result = answer["data"]["result"];
    if (result.empty()) {
      ADD_FAILURE() << promql << ": no series\n" << r->body << "\n" << prometheus.Log();
      return -1;
    }
    return std::stod(result[0]["value"][1].get<std::string>());
  };
  // The clients start once Prometheus has scraped the waiting server.
  auto server = StartServer(config);
  ASSERT_TRUE(WaitForLogLine(*server, "metrics on http://" + target + "/metrics",
                             absl::Seconds(60)))
      << server->Log();
  bool scraped = false;
  for (int i = 0; i < 300 && !scraped; ++i) {
    httplib::Result r = api.Get("/api/v1/query", {{"query", "up{job=\"shoal\"} == 1"}},
                                httplib::Headers{});
    scraped = r && r->status == 200 && !json::parse(r->body)["data"]["result"].empty();
    if (!scraped) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(scraped) << prometheus.Log();
  EXPECT_EQ(query("shoal_rounds_total"), 0);
  std::vector<std::unique_ptr<Subprocess>> clients;
  clients.push_back(StartClient(config, 0, {"--metrics-listen", device_target}));
  clients.push_back(StartClient(config, 1));
  ASSERT_EQ(server->Wait(absl::Minutes(4)), 0) << server->Log();
  for (auto& c : clients) EXPECT_EQ(c->Wait(absl::Seconds(60)), 0) << c->Log();
  EXPECT_EQ(query("max_over_time(shoal_rounds_total[10m])"), 4);
  // The device's own series, scraped from the device while it trained.
  EXPECT_GE(query("max_over_time(shoal_device_rounds_total[10m])"), 1);
  EXPECT_GE(query("max_over_time(shoal_device_tasks_total{kind=\"fit\"}[10m])"), 1);
  EXPECT_GE(query("max_over_time(shoal_device_model_version[10m])"), 1);
  EXPECT_GT(query("max_over_time(shoal_device_downloaded_bytes_total[10m])"), 199210 * 4);
  EXPECT_GT(query("max_over_time(shoal_device_train_seconds_total[10m])"), 0);
  EXPECT_GT(query("max_over_time(shoal_process_resident_memory_bytes{job=\"device\"}[10m])"),
            1e6);
  EXPECT_EQ(query("max_over_time(shoal_clients_answered_total[10m])"), 8);
  EXPECT_EQ(query("max_over_time(shoal_model_version[10m])"), 4);
  EXPECT_GT(query("max_over_time(shoal_test_accuracy[10m])"), 0.5);
  EXPECT_GT(query("max_over_time(shoal_rpc_duration_seconds_count{method=\"/shoal.v1.Federation/Poll\","
                  "code=\"ok\"}[10m])"),
            0);
  EXPECT_GT(query("max_over_time(shoal_round_duration_seconds_count[10m])"), 0);
  EXPECT_EQ(query("max_over_time(shoal_aggregation_duration_seconds_count[10m])"), 4);
  EXPECT_EQ(query("max_over_time(shoal_evaluation_duration_seconds_count[10m])"), 4);
  EXPECT_GT(query("max_over_time(shoal_evaluation_duration_seconds_sum[10m])"), 0);
  EXPECT_GT(query("max_over_time(shoal_process_resident_memory_bytes[10m])"), 1e6);
  EXPECT_GT(query("max_over_time(shoal_sent_bytes_total{method=\"/shoal.v1.Federation/DownloadModel\"}[10m])"),
            4 * 199210 * 4);
  prometheus.Kill(SIGTERM);
  prometheus.Wait(absl::Seconds(30));
}

// A device's endpoint off loopback needs TLS and a bearer token, as the
// server's does; each missing piece is named by its flag (exit 2).
TEST_F(IntegrationTest, ADevicesMetricsOffLoopbackNeedTlsAndAToken) {
  const std::string config = WriteConfig(/*rounds=*/1, /*min_fit=*/1, /*round_s=*/60);
  const std::string listen = absl::StrCat("0.0.0.0:", testing::PickUnusedPort());
  auto bare = StartClient(config, 0, {"--metrics-listen", listen});
  EXPECT_EQ(bare->Wait(absl::Seconds(120)), 2) << bare->Log();
  EXPECT_THAT(bare->Log(), ::testing::HasSubstr("--metrics-listen " + listen +
                                     " is off loopback: give --metrics-cert and --metrics-key"));
  const std::string server_pki = pki_ + "/server";
  auto no_token = StartClient(config, 0, {"--metrics-listen", listen, "--metrics-cert",
                                          server_pki + "/server.pem", "--metrics-key",
                                          server_pki + "/server.key"});
  EXPECT_EQ(no_token->Wait(absl::Seconds(120)), 2) << no_token->Log();
  EXPECT_THAT(no_token->Log(), ::testing::HasSubstr("set --metrics-token-file to a bearer token"));
}

// Issue 18.2: the live dashboard of a real run, opened in real headless
// Chromium (Debian's `chromium`) while round 3 waits (the clients are
// stopped with SIGSTOP): the page renders the run's rounds and their
// accuracy as api/state gives them, draws without a console error, and
// never asks for anything off loopback (every other host is unresolvable
// for this Chromium, which would log an error). A screenshot is saved.
TEST_F(IntegrationTest, TheDashboardShowsTheRunInHeadlessChromiumWithNothingOffLoopback) {
  const int metrics_port = testing::PickUnusedPort();
  ASSERT_GT(metrics_port, 0);
  const std::string target = absl::StrCat("127.0.0.1:", metrics_port);
  // More rounds than the test lets run: it ends the run with SIGTERM.
  const std::string config = WriteConfig(/*rounds=*/40, /*min_fit=*/2, /*round_s=*/120,
                                         [&](json& c) {
                                           c["server"]["metrics"] = {{"listen", target}};
                                         });
  auto server = StartServer(config);
  std::vector<std::unique_ptr<Subprocess>> clients;
  for (int i = 0; i < 2; ++i) clients.push_back(StartClient(config, i));
  ASSERT_TRUE(WaitForLogLine(*server, "round 2/40 |", absl::Seconds(120))) << server->Log();
  for (auto& c : clients) c->Kill(SIGSTOP);

  httplib::Client http("127.0.0.1", metrics_port);
  // The dashboard hears of round 2 just after the progress line.
  for (int i = 0; i < 100; ++i) {
    httplib::Result r = http.Get("/api/state");
    if (r && r->status == 200 && json::parse(r->body)["rounds"].size() >= 3) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  httplib::Result page = http.Get("/");
  ASSERT_TRUE(page && page->status == 200);
  EXPECT_EQ(page->body.find("http://"), std::string::npos);
  EXPECT_EQ(page->body.find("https://"), std::string::npos);
  httplib::Result chart = http.Get("/chart.js");
  ASSERT_TRUE(chart && chart->status == 200);
  EXPECT_NE(chart->body.find("Chart.js v3"), std::string::npos);
  httplib::Result state_text = http.Get("/api/state");
  ASSERT_TRUE(state_text && state_text->status == 200);
  const json state = json::parse(state_text->body);
  ASSERT_GE(state["rounds"].size(), 3u) << state.dump(2) << server->Log();
  EXPECT_EQ(state["run"]["name"], "integration");
  EXPECT_EQ(state["devices_total"], 2);
  auto percent = [](double v) { return absl::StrFormat("%.2f %%", 100 * v); };
  const std::string round2 = percent(state["rounds"][2]["test_accuracy"].get<double>());

  const std::string url = absl::StrCat("http://", target, "/");
  const std::vector<std::string> chromium = testing::HeadlessChromium(dir_.File("chromium-profile"));
  std::vector<std::string> dump = chromium;
  dump.insert(dump.end(), {"--dump-dom", url});
  Subprocess dom(dump, dir_.File("dom.html"));
  ASSERT_EQ(dom.Wait(absl::Seconds(120)), 0) << dom.Log();
  const std::string rendered = dom.Log();
  EXPECT_NE(rendered.find("Shoal — integration"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("<td>2</td><td>2/2</td>"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("<td>" + round2 + "</td>"), std::string::npos)
      << round2 << "\n" << rendered;
  EXPECT_NE(rendered.find("<td>client-0</td>"), std::string::npos) << rendered;

  std::vector<std::string> shot = chromium;
  shot.insert(shot.end(), {"--enable-logging=stderr", "--v=0", "--window-size=1400,1100",
                           "--screenshot=" + dir_.File("dashboard.png"), url});
  Subprocess screenshot(shot, dir_.File("chromium.log"));
  ASSERT_EQ(screenshot.Wait(absl::Seconds(120)), 0) << screenshot.Log();
  absl::StatusOr<std::string> png = ReadFile(dir_.File("dashboard.png"));
  ASSERT_TRUE(png.ok()) << png.status() << screenshot.Log();
  EXPECT_GT(png->size(), 20000u);
  EXPECT_EQ(png->substr(1, 3), "PNG");
  EXPECT_EQ(screenshot.Log().find("CONSOLE"), std::string::npos) << screenshot.Log();
  EXPECT_EQ(screenshot.Log().find("ERR_NAME_NOT_RESOLVED"), std::string::npos)
      << screenshot.Log();
  if (const char* keep = std::getenv("SHOAL_KEEP_SCREENSHOT")) {
    std::filesystem::copy_file(dir_.File("dashboard.png"), keep,
                               std::filesystem::copy_options::overwrite_existing);
  }

  for (auto& c : clients) c->Kill(SIGCONT);
  server->Kill(SIGTERM);  // ends the run after the round in progress
  ASSERT_EQ(server->Wait(absl::Minutes(4)), 0) << server->Log();
  for (auto& c : clients) EXPECT_EQ(c->Wait(absl::Seconds(60)), 0) << c->Log();
}

// Differential privacy end to end: clients clip their own updates, the
// server noises the mean and reports the running epsilon every round, and the
// run ends before the round that would spend more than the budget.
TEST_F(IntegrationTest, DifferentialPrivacyReportsEpsilonAndStopsAtTheBudget) {
  // z = 2, q = 1: epsilon after 2 and 3 rounds, from the accountant itself
  // (its own tests check it against independent values).
  RdpAccountant accountant;
  ASSERT_TRUE(accountant.AddSubsampledGaussian(2.0, 1.0, 2).ok());
  const double eps2 = accountant.GetEpsilon(1e-5)->epsilon;
  const double eps3 = accountant.EpsilonAfter(2.0, 1.0, 1, 1e-5)->epsilon;
  const std::string config =
      WriteConfig(/*rounds=*/5, /*min_fit=*/2, /*round_s=*/120, [&](json& c) {
        c["strategy"] = {{"name", "fedavg"}};
        // Two clients cannot hide each other: with a useful C the noise
        // would swamp the model. A tiny C keeps it trainable; this test is
        // about the accounting, not the accuracy.
        c["privacy"] = {{"clipping", "client"}, {"noise_multiplier", 2.0},
                        {"clip_norm", 1e-3}, {"delta", 1e-5},
                        {"target_epsilon", (eps2 + eps3) / 2}};
      });
  std::unique_ptr<Subprocess> server = RunFederation(config, 2);
  ASSERT_NE(server, nullptr);

  json h = History();
  ASSERT_EQ(h["rounds"].size(), 3u) << h.dump(2);  // rounds 0, 1, 2; then the stop
  EXPECT_NEAR(h["rounds"][2]["strategy_metrics"]["dp_epsilon"].get<double>(), eps2, 1e-9);
  EXPECT_LT(h["rounds"][1]["strategy_metrics"]["dp_epsilon"].get<double>(), eps2);
  EXPECT_EQ(h["rounds"][2]["answered"], 2) << h.dump(2);  // both clipped to C
  const std::string log = server->Log();
  EXPECT_NE(log.find("dp_epsilon"), std::string::npos) << log;
  EXPECT_NE(log.find("Stopped early: privacy budget"), std::string::npos) << log;
}

TEST_F(IntegrationTest, ClientKilledMidRoundDoesNotStallTheRoundPastItsDeadline) {
  constexpr double kRoundSeconds = 15;
  // Round 1 starts once all three have joined, and succeeds with two.
  const std::string config =
      WriteConfig(/*rounds=*/1, /*min_fit=*/2, kRoundSeconds,
                  [](json& c) { c["sampling"]["min_available_clients"] = 3; });
  std::vector<std::unique_ptr<Subprocess>> clients;
  for (int i = 0; i < 2; ++i) clients.push_back(StartClient(config, i));
  // The client to kill trains on all 54,000 training images (seconds, not
  // the fraction of a second a 1,500-example partition takes), so the kill
  // lands while it trains.
  clients.push_back(std::make_unique<Subprocess>(
      std::vector<std::string>{SHOAL_BINARY, "client", "--config", config, "--id", "client-2",
                               "--data-dir", "/usr/share/datasets/fashion-mnist", "--state-dir",
                               dir_.File("client-2"), "--pki-dir", Bundle("client-2")},
      dir_.File("client-2.log")));
  auto server = StartServer(config);
  ASSERT_TRUE(WaitForLogLine(*server, "round 1/1: asked 3", absl::Seconds(90))) << server->Log();
  clients[2]->Kill(SIGKILL);

  ASSERT_EQ(server->Wait(absl::Minutes(3)), 0) << server->Log();
  json h = History();
  ASSERT_EQ(h["rounds"].size(), 2u) << h.dump(2);
  const json& r1 = h["rounds"][1];
  EXPECT_EQ(r1["answered"], 2) << r1.dump(2);
  ASSERT_EQ(r1["failures"].size(), 1u) << r1.dump(2);
  EXPECT_EQ(r1["failures"][0]["client"], "client-2");
  EXPECT_TRUE(r1["model_updated"].get<bool>());
  // The round ended at its deadline (plus evaluation), not later.
  EXPECT_LT(r1["seconds"].get<double>(), kRoundSeconds + 30) << r1.dump(2);
}

// SIGTERM used to kill the server outright (the signal landed on a thread
// OpenBLAS had started before the mask was set). It must finish the round in
// progress, write the metrics, tell the clients, and exit 0.
TEST_F(IntegrationTest, SigtermMidRoundFinishesTheRoundAndExitsCleanly) {
  const std::string config =
      WriteConfig(/*rounds=*/5, /*min_fit=*/2, /*round_s=*/120);
  std::vector<std::unique_ptr<Subprocess>> clients;
  clients.push_back(StartClient(config, 0));
  // Trains on all 54,000 training images, so a round lasts seconds and the
  // signal lands while one is in progress.
  clients.push_back(std::make_unique<Subprocess>(
      std::vector<std::string>{
          SHOAL_BINARY, "client", "--config", config, "--id", "client-1",
          "--data-dir", "/usr/share/datasets/fashion-mnist", "--state-dir",
          dir_.File("client-1"), "--pki-dir", Bundle("client-1")},
      dir_.File("client-1.log")));
  auto server = StartServer(config);
  ASSERT_TRUE(WaitForLogLine(*server, "round 1/5: asked 2", absl::Seconds(90)))
      << server->Log();
  server->Kill(SIGTERM);

  ASSERT_EQ(server->Wait(absl::Minutes(3)), 0) << server->Log();
  const std::string log = server->Log();
  EXPECT_NE(log.find("Stopped by signal 15"), std::string::npos) << log;
  json h = History();
  // Round 0 (the initial model), the round the signal landed in, and at
  // most the next one if that had started already; never all five.
  ASSERT_GE(h["rounds"].size(), 2u) << h.dump(2);
  EXPECT_LE(h["rounds"].size(), 3u) << h.dump(2);
  const json& last = h["rounds"].back();
  EXPECT_EQ(last["answered"], 2)
      << "the round in progress was not finished: " << last.dump(2);
  EXPECT_TRUE(last["model_updated"].get<bool>()) << last.dump(2);
  // The clients heard the run ended and left.
  for (auto& c : clients) EXPECT_EQ(c->Wait(absl::Seconds(60)), 0) << c->Log();
}

// Secure aggregation over real gRPC and real client processes: four clients
// share their keys, then one is killed while the others train, before it
// could send its masked input. The round still yields the mean of the three
// survivors (the server rebuilds the dead client's mask key from its
// neighbours' shares), and the next round runs without it.
// A device that may not train declines a securely aggregated round at the
// session's setup, before sharing a key: the others' round goes on with no
// unmasking for it, and the server counts a decline, not a failure.
TEST_F(IntegrationTest, ASecureRoundsDeclineComesAtSetupAndCostsTheOthersNothing) {
  const std::string config = WriteConfig(/*rounds=*/1, /*min_fit=*/2, /*round_s=*/60, [](json& c) {
    c["sampling"]["min_available_clients"] = 4;
    c["secure_aggregation"] = {{"enabled", true}, {"stage_timeout_s", 10}};
  });
  const std::string pause = dir_.File("pause");
  ASSERT_TRUE(WriteFileAtomically(pause, "metered link\n").ok());
  std::vector<std::unique_ptr<Subprocess>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(StartClient(config, i));
  clients.push_back(StartClient(config, 3, {"--pause-file", pause}));
  auto server = StartServer(config);
  ASSERT_EQ(server->Wait(absl::Minutes(4)), 0) << server->Log();
  for (auto& c : clients) EXPECT_EQ(c->Wait(absl::Seconds(60)), 0) << c->Log();
  const json h = History();
  ASSERT_EQ(h["rounds"].size(), 2u) << h.dump(2);
  const json& r1 = h["rounds"][1];
  EXPECT_TRUE(r1["model_updated"].get<bool>()) << r1.dump(2);
  EXPECT_EQ(r1["answered"], 3) << r1.dump(2);
  EXPECT_EQ(r1["failed"], 0) << r1.dump(2);
  ASSERT_EQ(r1["declined"].size(), 1u) << r1.dump(2);
  EXPECT_EQ(r1["declined"][0]["client"], "client-3");
  EXPECT_EQ(r1["declined"][0]["reason"], "'metered link'");
  EXPECT_EQ(r1["secure_aggregation"]["secagg_masked"], 3) << r1.dump(2);
}

TEST_F(IntegrationTest, SecureAggregationSurvivesAClientKilledAfterSharingKeys) {
  constexpr double kRoundSeconds = 30;
  const std::string config =
      WriteConfig(/*rounds=*/2, /*min_fit=*/2, kRoundSeconds, [](json& c) {
        c["sampling"]["min_available_clients"] = 4;
        c["secure_aggregation"] = {{"enabled", true}, {"stage_timeout_s", 10}};
      });
  std::vector<std::unique_ptr<Subprocess>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(StartClient(config, i));
  // The client to kill trains on all 54,000 training images, so the kill
  // lands while it trains, after it shared its keys.
  clients.push_back(std::make_unique<Subprocess>(
      std::vector<std::string>{SHOAL_BINARY, "client", "--config", config, "--id", "client-3",
                               "--data-dir", "/usr/share/datasets/fashion-mnist", "--state-dir",
                               dir_.File("client-3"), "--pki-dir", Bundle("client-3")},
      dir_.File("client-3.log")));
  auto server = StartServer(config);
  ASSERT_TRUE(WaitForLogLine(*server, "secure aggregation 'share keys': 4/4",
                             absl::Seconds(120)))
      << server->Log();
  clients[3]->Kill(SIGKILL);

  ASSERT_EQ(server->Wait(absl::Minutes(4)), 0) << server->Log();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(clients[i]->Wait(absl::Seconds(60)), 0) << clients[i]->Log();
  json h = History();
  ASSERT_EQ(h["rounds"].size(), 3u) << h.dump(2);
  const json& r1 = h["rounds"][1];
  EXPECT_TRUE(r1["model_updated"].get<bool>()) << r1.dump(2);
  EXPECT_EQ(r1["answered"], 3) << r1.dump(2);
  EXPECT_EQ(r1["secure_aggregation"]["secagg_shares"], 4) << r1.dump(2);
  EXPECT_EQ(r1["secure_aggregation"]["secagg_masked"], 3) << r1.dump(2);
  ASSERT_EQ(r1["failures"].size(), 1u) << r1.dump(2);
  EXPECT_EQ(r1["failures"][0]["client"], "client-3");
  EXPECT_NE(r1["failures"][0]["error"].get<std::string>().find("stage 'masked input'"),
            std::string::npos)
      << r1.dump(2);
  const json& r2 = h["rounds"][2];
  EXPECT_TRUE(r2["model_updated"].get<bool>()) << r2.dump(2);
  EXPECT_EQ(r2["answered"], 3) << r2.dump(2);
  // Training under secure aggregation still learns.
  EXPECT_GT(r2["test_accuracy"].get<double>(), h["rounds"][0]["test_accuracy"].get<double>() + 0.3)
      << h.dump(2);
  EXPECT_NE(server->Log().find("secagg k 3 t 2"), std::string::npos) << server->Log();
}

TEST_F(IntegrationTest, ClientStartedBeforeTheServerJoinsWhenItComesUp) {
  const std::string config = WriteConfig(/*rounds=*/1, /*min_fit=*/1, /*round_s=*/60);
  auto client = StartClient(config, 0);
  ASSERT_TRUE(WaitForLogLine(*client, "not reachable yet", absl::Seconds(60))) << client->Log();
  absl::SleepFor(absl::Seconds(2));  // a few backoff rounds with no server
  auto server = StartServer(config);
  ASSERT_EQ(server->Wait(absl::Minutes(2)), 0) << server->Log();
  ASSERT_EQ(client->Wait(absl::Seconds(60)), 0) << client->Log();
  EXPECT_NE(client->Log().find("joined " + address_), std::string::npos) << client->Log();
  json h = History();
  EXPECT_EQ(h["rounds"][1]["answered"], 1) << h.dump(2);
}

TEST_F(IntegrationTest, TorchScriptModelTrainsOnPartitionAndOnOwnDataFolder) {
  // A model scripted in Python, trained on-device through its parameters;
  // one client trains on a partition, the other on a data folder of its own.
  const std::string config =
      WriteConfig(/*rounds=*/1, /*min_fit=*/2, /*round_s=*/120, [](json& c) {
        c["model"] = SHOAL_TINY_TORCHSCRIPT;
      });
  auto server = StartServer(config);
  auto by_partition = StartClient(config, 0);
  Subprocess own_data({SHOAL_BINARY, "client", "--config", config, "--id", "own-data",
                       "--data-dir", "/usr/share/datasets/fashion-mnist", "--state-dir",
                       dir_.File("own-data"), "--pki-dir", Bundle("own-data")},
                      dir_.File("own-data.log"));
  ASSERT_EQ(server->Wait(absl::Minutes(3)), 0) << server->Log();
  EXPECT_EQ(by_partition->Wait(absl::Seconds(60)), 0) << by_partition->Log();
  EXPECT_EQ(own_data.Wait(absl::Seconds(60)), 0) << own_data.Log();
  EXPECT_NE(own_data.Log().find("54000 training"), std::string::npos) << own_data.Log();
  json h = History();
  EXPECT_EQ(h["rounds"][1]["answered"], 2) << h.dump(2);
  EXPECT_GT(h["rounds"][1]["test_accuracy"].get<double>(),
            h["rounds"][0]["test_accuracy"].get<double>() + 0.3)
      << h.dump(2);
  // The device keeps the server's code with the model, named by its hash,
  // never the path the configs gave.
  ModelRecord record = *ReadModelRecord(dir_.File("own-data"));
  EXPECT_EQ(record.model_spec, kTorchScriptModelSpec);
  EXPECT_EQ(record.code_sha256_hex, Sha256Hex(*ReadFile(SHOAL_TINY_TORCHSCRIPT)));
  EXPECT_TRUE(ReadModelCodeFile(dir_.File("own-data"), record.code_sha256_hex).ok());
}

}  // namespace
}  // namespace shoal
