// Crash recovery of the server, in one process: checkpoints on disk, a
// Coordinator resumed from one, and idempotent results in the gRPC mailbox.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "common/files.h"
#include "common/model_dir.h"
#include "common/parameters.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/checkpoint.h"
#include "server/client_manager.h"
#include "server/coordinator.h"
#include "server/grpc_client_proxy.h"
#include "server/model_store.h"
#include "server/round_json.h"
#include "strategies/registry.h"
#include "tests/fake_client_proxy.h"
#include "tests/testing.h"

namespace shoal {
namespace {

using ::nlohmann::json;
using ::testing::HasSubstr;
using testing::FakeClientProxy;

Parameters Tensors(float w, float b) {
  Parameters p;
  p.Add("w", at::full({4}, w));
  p.Add("b", at::full({1}, b));
  return p;
}

bool Equal(const Parameters& a, const Parameters& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a.name(i) != b.name(i) || !at::equal(a.tensor(i), b.tensor(i))) return false;
  }
  return true;
}

RoundRecord SomeRound(uint32_t round) {
  RoundRecord r;
  r.round = round;
  r.sampled = 3;
  r.answered = 2;
  r.failures.push_back({"c", absl::DeadlineExceededError("no result before the deadline")});
  r.model_updated = true;
  r.model_version = round;
  r.train_loss = round == 0 ? std::numeric_limits<double>::quiet_NaN() : 0.25 * round;
  r.train_examples = 1500;
  r.server_eval = EvaluateRes{10000, 0.5, {{"accuracy", 0.8125}}};
  r.seconds = 1.75;
  r.aggregate_seconds = 0.125;
  r.evaluate_seconds = 0.5;
  r.note = "a note";
  r.strategy_metrics = {{"dp_epsilon", 1.5}, {"clients", int64_t{2}}};
  r.secagg = {{"secagg_degree", int64_t{4}}, {"secagg_masked", int64_t{2}}};
  return r;
}

Checkpoint SomeCheckpoint(uint32_t round, float state) {
  Checkpoint c;
  c.run.name = "recovery";
  c.run.run_id = "0123456789abcdef";
  c.run.config = {{"seed", 7}, {"strategy", {{"name", "fedadam"}}}};
  c.run.config_fingerprint = ConfigFingerprint(c.run.config);
  c.round = round;
  c.num_rounds = 4;
  c.model_version = round;
  c.model_sha256_hex = std::string(64, 'a');
  c.strategy_state = Tensors(state, -state);
  c.client_ids = {"client-0", "client-1"};
  c.declared_examples["client-0"] = DeclaredExamples{1500, 150};
  for (uint32_t r = 0; r <= round; ++r) c.history.push_back(SomeRound(r));
  return c;
}

std::string CheckpointJson(const std::string& dir) {
  return *ReadFile(dir + "/" + kCheckpointFile);
}

std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(CheckpointTest, RoundTripKeepsEveryField) {
  testing::TempDir dir;
  const Checkpoint want = SomeCheckpoint(2, 0.5f);
  ASSERT_TRUE(WriteCheckpoint(dir.path(), want).ok());
  absl::StatusOr<Checkpoint> got = ReadCheckpoint(dir.path());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->run.name, "recovery");
  EXPECT_EQ(got->run.run_id, want.run.run_id);
  EXPECT_EQ(got->run.config, want.run.config);
  EXPECT_EQ(got->run.config_fingerprint, want.run.config_fingerprint);
  EXPECT_EQ(got->round, 2u);
  EXPECT_EQ(got->num_rounds, 4u);
  EXPECT_EQ(got->model_version, 2);
  EXPECT_EQ(got->model_sha256_hex, want.model_sha256_hex);
  EXPECT_TRUE(Equal(got->strategy_state, want.strategy_state));
  EXPECT_EQ(got->client_ids, want.client_ids);
  // Issue 14.6: what a device declared at Join bounds its results; a restart
  // must not lift the bound until the device joins again.
  ASSERT_EQ(got->declared_examples.size(), 1u);
  EXPECT_EQ(got->declared_examples.at("client-0").train, 1500);
  EXPECT_EQ(got->declared_examples.at("client-0").evaluate, 150);
  EXPECT_FALSE(got->created_at.empty());
  ASSERT_EQ(got->history.size(), 3u);
  EXPECT_TRUE(std::isnan(got->history[0].train_loss));
  const RoundRecord& r = got->history[2];
  EXPECT_EQ(r.round, 2u);
  EXPECT_EQ(r.sampled, 3u);
  EXPECT_EQ(r.answered, 2u);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].client_id, "c");
  EXPECT_EQ(r.failures[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(r.failures[0].status.message(), "no result before the deadline");
  EXPECT_TRUE(r.model_updated);
  EXPECT_EQ(r.model_version, 2);
  EXPECT_EQ(r.train_loss, 0.5);
  EXPECT_EQ(r.train_examples, 1500);
  ASSERT_TRUE(r.server_eval.has_value());
  EXPECT_EQ(r.server_eval->num_examples, 10000);
  EXPECT_EQ(MetricAsDouble(r.server_eval->metrics.at("accuracy")), 0.8125);
  EXPECT_FALSE(r.federated_eval.has_value());
  EXPECT_EQ(r.seconds, 1.75);
  EXPECT_EQ(r.aggregate_seconds, 0.125);
  EXPECT_EQ(r.evaluate_seconds, 0.5);
  EXPECT_EQ(r.note, "a note");
  // Integers stay integers, doubles stay doubles.
  EXPECT_TRUE(std::holds_alternative<int64_t>(r.strategy_metrics.at("clients")));
  EXPECT_EQ(std::get<double>(r.strategy_metrics.at("dp_epsilon")), 1.5);
  EXPECT_EQ(r.secagg, want.history[2].secagg);
  EXPECT_FALSE(got->Finished(4));
  EXPECT_TRUE(got->Finished(2));
}

// Format 1 (before the checkpoint and metrics.json shared RoundRecordToJson)
// named a failure's error "message" and kept secure aggregation's figures
// under "secagg"; a server restarted on the new code must resume from it.
TEST(CheckpointTest, CheckpointOfFormatOneIsStillRead) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteCheckpoint(dir.path(), SomeCheckpoint(2, 0.5f)).ok());
  json j = json::parse(CheckpointJson(dir.path()));
  ASSERT_EQ(j["format"], 2);
  j["format"] = 1;
  for (json& round : j["history"]) {
    for (const char* added :
         {"failed", "test_loss", "test_accuracy", "federated_loss", "federated_accuracy"}) {
      ASSERT_EQ(round.erase(added), 1u) << added;
    }
    round["secagg"] = round["secure_aggregation"];
    round.erase("secure_aggregation");
    for (json& f : round["failures"]) {
      f["message"] = f["error"];
      f.erase("error");
    }
  }
  ASSERT_TRUE(WriteFileAtomically(dir.File(kCheckpointFile), j.dump(1)).ok());
  absl::StatusOr<Checkpoint> got = ReadCheckpoint(dir.path());
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->history.size(), 3u);
  const RoundRecord& r = got->history[2];
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].status.message(), "no result before the deadline");
  EXPECT_EQ(r.failures[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(MetricAsDouble(r.secagg.at("secagg_degree")), 4);
  // A format this server does not know is refused by number.
  j["format"] = 3;
  ASSERT_TRUE(WriteFileAtomically(dir.File(kCheckpointFile), j.dump(1)).ok());
  EXPECT_THAT(std::string(ReadCheckpoint(dir.path()).status().message()),
              HasSubstr("field 'format' is 3"));
}

// metrics.json and the checkpoint write rounds with one function: the
// history's failure fields are the checkpoint's.
TEST(RoundRecordJsonTest, HistoryAndCheckpointShareTheFailureFields) {
  const json j = RoundRecordToJson(SomeRound(1));
  EXPECT_EQ(j["failed"], 1);
  ASSERT_EQ(j["failures"].size(), 1u);
  EXPECT_EQ(j["failures"][0]["client"], "c");
  EXPECT_EQ(j["failures"][0]["code"], static_cast<int>(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(j["failures"][0]["error"], "no result before the deadline");
  EXPECT_EQ(j["test_accuracy"], 0.8125);
  EXPECT_TRUE(j["federated_accuracy"].is_null());
  EXPECT_EQ(j["secure_aggregation"]["secagg_masked"], 2);
}

// A declined device (its may-train check said not now) is kept apart from
// the failures, with its reason, through metrics.json and the checkpoint;
// a round written before declines existed reads as having none.
TEST(RoundRecordJsonTest, DeclinesRoundTripWithTheirReasonsApartFromFailures) {
  RoundRecord r = SomeRound(1);
  r.declined.push_back({"d", DeclinedError("'on battery'")});
  json j = RoundRecordToJson(r);
  EXPECT_EQ(j["failed"], 1);
  ASSERT_EQ(j["declined"].size(), 1u);
  EXPECT_EQ(j["declined"][0]["client"], "d");
  EXPECT_EQ(j["declined"][0]["reason"], "'on battery'");
  JsonFields fields(j);
  absl::StatusOr<RoundRecord> back = RoundRecordFromJson(fields);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->declined.size(), 1u);
  EXPECT_EQ(back->declined[0].client_id, "d");
  EXPECT_TRUE(IsDeclined(back->declined[0].status));
  EXPECT_EQ(DeclinedReason(back->declined[0].status), "'on battery'");
  EXPECT_EQ(back->failures.size(), 1u);
  j.erase("declined");
  JsonFields older(j);
  absl::StatusOr<RoundRecord> old = RoundRecordFromJson(older);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_TRUE(old->declined.empty());
  j["declined"] = json::array({{{"client", "d"}}});
  JsonFields bad(j);
  EXPECT_THAT(std::string(RoundRecordFromJson(bad).status().message()), HasSubstr("reason"));
}

TEST(CheckpointTest, StatelessStrategyNeedsNoBlob) {
  testing::TempDir dir;
  Checkpoint c = SomeCheckpoint(1, 0);
  c.strategy_state = Parameters();
  ASSERT_TRUE(WriteCheckpoint(dir.path(), c).ok());
  EXPECT_EQ(Files(dir.path()), std::vector<std::string>{kCheckpointFile});
  absl::StatusOr<Checkpoint> got = ReadCheckpoint(dir.path());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->strategy_state.empty());
}

TEST(CheckpointTest, LeftoverTempFilesAndATornWriteLeaveThePreviousCheckpoint) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteCheckpoint(dir.path(), SomeCheckpoint(1, 1)).ok());
  const std::string before = CheckpointJson(dir.path());

  // A server killed while writing the checkpoint of round 2: its state blob
  // landed, its JSON did not (only a torn temporary file of it).
  const std::string blob = SerializeParameters(Tensors(2, -2));
  ASSERT_TRUE(
      WriteFileAtomically(dir.File("strategy-" + Sha256Hex(blob) + ".state"), blob).ok());
  {
    std::ofstream torn(dir.File(std::string(kCheckpointFile) + ".tmp.4242.0"));
    torn << CheckpointJson(dir.path()).substr(0, 100);
  }
  absl::StatusOr<Checkpoint> got = ReadCheckpoint(dir.path());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->round, 1u);
  EXPECT_TRUE(Equal(got->strategy_state, Tensors(1, -1)));
  EXPECT_EQ(CheckpointJson(dir.path()), before);

  // The next checkpoint clears what the interrupted one left behind.
  ASSERT_TRUE(WriteCheckpoint(dir.path(), SomeCheckpoint(2, 3)).ok());
  std::vector<std::string> files = Files(dir.path());
  ASSERT_EQ(files.size(), 2u) << files[0];
  EXPECT_EQ(files[0], kCheckpointFile);
  EXPECT_TRUE(absl::StartsWith(files[1], "strategy-")) << files[1];
  got = ReadCheckpoint(dir.path());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->round, 2u);
  EXPECT_TRUE(Equal(got->strategy_state, Tensors(3, -3)));
}

TEST(CheckpointTest, NoCheckpointIsNotFound) {
  testing::TempDir dir;
  EXPECT_TRUE(absl::IsNotFound(ReadCheckpoint(dir.File("none")).status()));
}

// Rewrites the checkpoint's JSON with `edit` applied.
void EditJson(const std::string& dir, const std::function<void(json&)>& edit) {
  json j = json::parse(CheckpointJson(dir));
  edit(j);
  ASSERT_TRUE(WriteFileAtomically(dir + "/" + kCheckpointFile, j.dump()).ok());
}

TEST(CheckpointTest, CorruptCheckpointsAreRefusedNamingFileAndField) {
  testing::TempDir dir;
  auto fresh = [&] { ASSERT_TRUE(WriteCheckpoint(dir.path(), SomeCheckpoint(2, 1)).ok()); };
  auto error_of = [&] {
    absl::StatusOr<Checkpoint> c = ReadCheckpoint(dir.path());
    EXPECT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss) << c.status();
    const std::string message(c.status().message());
    EXPECT_TRUE(absl::StrContains(message, dir.File(kCheckpointFile))) << message;
    return message;
  };

  fresh();
  ASSERT_TRUE(WriteFileAtomically(dir.File(kCheckpointFile), "{\"format\": 1, \"ro").ok());
  EXPECT_TRUE(absl::StrContains(error_of(), "not valid JSON"));

  fresh();
  EditJson(dir.path(), [](json& j) { j["model"].erase("sha256"); });
  EXPECT_TRUE(absl::StrContains(error_of(), "field 'model.sha256' is missing"));

  fresh();
  EditJson(dir.path(), [](json& j) { j["round"] = "two"; });
  EXPECT_TRUE(absl::StrContains(error_of(), "field 'round' has the wrong type"));

  fresh();
  EditJson(dir.path(), [](json& j) { j["history"].erase(1); });
  EXPECT_TRUE(absl::StrContains(error_of(), "field 'history' holds 2 rounds"));

  fresh();
  EditJson(dir.path(), [](json& j) { j["history"][1]["failures"][0].erase("code"); });
  EXPECT_TRUE(absl::StrContains(error_of(), "field 'history[1].failures[0].code' is missing"));

  fresh();
  EditJson(dir.path(), [](json& j) { j["declared_examples"]["stranger"] = {{"train", 1}, {"evaluate", 0}}; });
  EXPECT_TRUE(absl::StrContains(error_of(), "'stranger'' names no registered client"));

  fresh();
  EditJson(dir.path(), [](json& j) { j["declared_examples"]["client-0"]["train"] = -5; });
  EXPECT_TRUE(absl::StrContains(error_of(), "train' is -5, outside"));

  fresh();
  EditJson(dir.path(), [](json& j) { j["run"]["config"]["seed"] = 8; });
  EXPECT_TRUE(absl::StrContains(error_of(), "run.config_fingerprint"));

  // The state blob: flipped bytes, then gone.
  fresh();
  const std::string blob =
      dir.File(json::parse(CheckpointJson(dir.path()))["strategy_state"]["file"]);
  std::string bytes = *ReadFile(blob);
  bytes[bytes.size() / 2] ^= 0x55;
  ASSERT_TRUE(WriteFileAtomically(blob, bytes).ok());
  EXPECT_TRUE(absl::StrContains(error_of(), "field 'strategy_state.sha256' does not match"));
  std::filesystem::remove(blob);
  EXPECT_TRUE(absl::StrContains(error_of(), "field 'strategy_state.file'"));
}

// Issue 14: a checkpoint whose run.config nested 100,000 levels crashed the
// server at start (the fingerprint's dump() recursed); round 4294967295
// made `round + 1` wrap to 0, so an empty history passed the check.
TEST(CheckpointTest, DeepNestingAndWrappingRoundsAreRefusedNotACrash) {
  testing::TempDir dir;
  auto error_of = [&](const std::string& text) {
    EXPECT_TRUE(WriteFileAtomically(dir.File(kCheckpointFile), text).ok());
    absl::StatusOr<Checkpoint> c = ReadCheckpoint(dir.path());
    EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss) << c.status();
    return std::string(c.status().message());
  };
  ASSERT_TRUE(WriteCheckpoint(dir.path(), SomeCheckpoint(2, 1)).ok());
  const std::string good = CheckpointJson(dir.path());
  const std::string seed = R"("seed": 7)";
  ASSERT_NE(good.find(seed), std::string::npos);

  std::string deep = good;
  deep.replace(deep.find(seed), seed.size(),
               R"("seed": )" + std::string(100000, '[') + std::string(100000, ']'));
  const std::string message = error_of(deep);
  EXPECT_THAT(message, HasSubstr("nests deeper than"));
  EXPECT_THAT(message, HasSubstr(dir.File(kCheckpointFile)));

  json wrapped = json::parse(good);
  wrapped["round"] = 4294967295u;
  wrapped["num_rounds"] = 4294967295u;
  wrapped["history"] = json::array();
  EXPECT_THAT(error_of(wrapped.dump()), HasSubstr("field 'round'"));
}

TEST(CheckpointTest, AModelVersionMissingOrChangedInTheStoreIsRefused) {
  testing::TempDir dir;
  std::unique_ptr<ModelStore> store = *ModelStore::Open(dir.File("models"), "test");
  absl::StatusOr<ModelRecord> saved = store->Save(1, Tensors(1, 1), {});
  ASSERT_TRUE(saved.ok()) << saved.status();

  Checkpoint c = SomeCheckpoint(1, 0);
  c.model_version = 1;
  c.model_sha256_hex = saved->sha256_hex;
  absl::StatusOr<Parameters> loaded = LoadCheckpointedModel(c, dir.File("models"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(Equal(*loaded, Tensors(1, 1)));

  c.model_sha256_hex = std::string(64, 'b');
  loaded = LoadCheckpointedModel(c, dir.File("models"));
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(loaded.status().message(), "has SHA-256")) << loaded.status();

  c = SomeCheckpoint(2, 0);
  loaded = LoadCheckpointedModel(c, dir.File("models"));
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(loaded.status().message(), "version 2, which is missing"))
      << loaded.status();
}

TEST(CheckpointTest, ConfigDifferencesNameTheKeys) {
  const json a = {{"seed", 7}, {"fit", {{"learning_rate", 0.05}, {"batch_size", 32}}},
                  {"model", "2nn"}};
  json b = a;
  EXPECT_TRUE(ConfigDifferences(a, b).empty());
  EXPECT_EQ(ConfigFingerprint(a), ConfigFingerprint(b));
  b["fit"]["learning_rate"] = 0.1;
  b.erase("model");
  b["strategy"] = {{"name", "fedadam"}};
  EXPECT_EQ(ConfigDifferences(a, b),
            (std::vector<std::string>{"fit.learning_rate", "model", "strategy"}));
  EXPECT_NE(ConfigFingerprint(a), ConfigFingerprint(b));
}

// ---------------------------------------------------------------------------
// A Coordinator resumed from a checkpoint.

// Each client pulls the model towards its own target; the update depends on
// the global model, so the trajectory matters. Records who was asked when.
class Federation {
 public:
  explicit Federation(int clients) {
    for (int i = 0; i < clients; ++i) {
      const std::string id = "client-" + std::to_string(i);
      const float target = 1.0f + static_cast<float>(i);
      auto proxy = std::make_shared<FakeClientProxy>(
          id, [this, id, target](const FitIns& ins) -> std::optional<absl::StatusOr<FitRes>> {
            {
              std::lock_guard<std::mutex> lock(mu_);
              asked_.insert({ins.round, id});
            }
            FitRes res;
            for (size_t t = 0; t < ins.parameters->size(); ++t) {
              res.update.Add(ins.parameters->name(t),
                             (target - ins.parameters->tensor(t)) * 0.5f);
            }
            res.num_examples = 10 + static_cast<int64_t>(target);
            return res;
          });
      proxies_.push_back(proxy);
      manager_.Register(proxy);
    }
  }
  ClientManager& manager() { return manager_; }
  std::set<std::pair<uint32_t, std::string>> asked() {
    std::lock_guard<std::mutex> lock(mu_);
    return asked_;
  }

 private:
  ClientManager manager_;
  std::vector<std::shared_ptr<FakeClientProxy>> proxies_;
  std::mutex mu_;
  std::set<std::pair<uint32_t, std::string>> asked_;
};

CoordinatorOptions ResumeOptions(uint32_t rounds) {
  CoordinatorOptions o;
  o.num_rounds = rounds;
  o.sampling.fraction = 0.5;  // 2 of 4: who is asked depends on the round's seed
  o.sampling.min_clients = 2;
  o.min_fit_clients = 2;
  o.min_available_clients = 4;
  o.round_timeout = absl::Seconds(20);
  o.wait_for_clients_timeout = absl::Seconds(5);
  o.seed = 11;
  return o;
}

std::unique_ptr<Strategy> FedAdam() {
  absl::StatusOr<std::unique_ptr<Strategy>> s =
      CreateStrategy("fedadam", json{{"server_learning_rate", 0.1}}, StrategyContext{});
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

TEST(CoordinatorResumeTest, FedAdamResumedAfterTwoRoundsEndsLikeFourRoundsInOneGo) {
  // Uninterrupted: 4 rounds.
  testing::TempDir straight_dir;
  Federation straight(4);
  std::unique_ptr<ModelStore> straight_store =
      *ModelStore::Open(straight_dir.File("models"), "test");
  std::unique_ptr<Strategy> straight_strategy = FedAdam();
  auto uninterrupted = *Coordinator::Create(ResumeOptions(4), &straight.manager(),
                                            straight_strategy.get(), straight_store.get(),
                                            Tensors(0, 0));
  absl::StatusOr<std::vector<RoundRecord>> straight_history = uninterrupted->Run();
  ASSERT_TRUE(straight_history.ok()) << straight_history.status();

  // Interrupted: 2 rounds with checkpoints, then a new process (new store,
  // strategy, coordinator, clients) resumes from the checkpoint to round 4.
  testing::TempDir dir;
  Federation first(4);
  RunIdentity run;
  run.name = "resume";
  run.run_id = "feedfeedfeedfeed";
  run.config = {{"strategy", "fedadam"}};
  run.config_fingerprint = ConfigFingerprint(run.config);
  {
    std::unique_ptr<ModelStore> store = *ModelStore::Open(dir.File("models"), "test");
    std::unique_ptr<Strategy> strategy = FedAdam();
    auto coordinator = *Coordinator::Create(ResumeOptions(2), &first.manager(), strategy.get(),
                                            store.get(), Tensors(0, 0));
    CheckpointWriter writer(dir.File("checkpoint"), run,
                            [&first] { return first.manager().RegisteredClients(); });
    coordinator->SetCheckpointWriter(&writer);
    ASSERT_TRUE(coordinator->Run().ok());
    // The crash came after round 3 had stored its model but before its
    // checkpoint: that version is a leftover.
    ASSERT_TRUE(store->Save(3, Tensors(9, 9), {}).ok());
  }
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(dir.File("checkpoint"));
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->round, 2u);
  EXPECT_EQ(checkpoint->model_version, 2);
  EXPECT_EQ(checkpoint->run.run_id, "feedfeedfeedfeed");
  EXPECT_EQ(checkpoint->client_ids.size(), 4u);
  EXPECT_FALSE(checkpoint->strategy_state.empty());  // Adam's moments

  Federation second(4);
  std::unique_ptr<ModelStore> store = *ModelStore::Open(dir.File("models"), "test");
  std::unique_ptr<Strategy> strategy = FedAdam();
  absl::StatusOr<std::unique_ptr<Coordinator>> resumed = Coordinator::Resume(
      ResumeOptions(4), &second.manager(), strategy.get(), store.get(), *checkpoint);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->resumed_after(), 2u);
  CheckpointWriter writer(dir.File("checkpoint"), run);
  (*resumed)->SetCheckpointWriter(&writer);
  absl::StatusOr<std::vector<RoundRecord>> history = (*resumed)->Run();
  ASSERT_TRUE(history.ok()) << history.status();

  EXPECT_TRUE(Equal(*(*resumed)->global(), *uninterrupted->global()))
      << (*resumed)->global()->tensor(0) << " vs " << uninterrupted->global()->tensor(0);
  EXPECT_EQ((*resumed)->global_version(), 4);
  // Rounds 0..4, each once.
  ASSERT_EQ(history->size(), 5u);
  for (uint32_t r = 0; r < 5; ++r) EXPECT_EQ((*history)[r].round, r);
  // Each round asked the clients the uninterrupted run asked.
  std::set<std::pair<uint32_t, std::string>> asked = first.asked();
  for (const auto& a : second.asked()) asked.insert(a);
  EXPECT_EQ(asked, straight.asked());
  // Version 3 was written again by the resumed round 3.
  EXPECT_EQ(ReadModelRecord(dir.File("models"), 3)->sha256_hex,
            ReadModelRecord(straight_dir.File("models"), 3)->sha256_hex);
  checkpoint = ReadCheckpoint(dir.File("checkpoint"));
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->round, 4u);
  EXPECT_TRUE(checkpoint->Finished(4));
}

TEST(CoordinatorResumeTest, AStrategyStateThatDoesNotFitIsRefused) {
  testing::TempDir dir;
  std::unique_ptr<ModelStore> store = *ModelStore::Open(dir.File("models"), "test");
  Checkpoint c = SomeCheckpoint(1, 1);
  c.history.resize(2);
  c.model_version = 1;
  c.model_sha256_hex = store->Save(1, Tensors(1, 1), {})->sha256_hex;
  Federation clients(4);
  absl::StatusOr<std::unique_ptr<Strategy>> fedavg =
      CreateStrategy("fedavg", json::object(), StrategyContext{});
  absl::StatusOr<std::unique_ptr<Coordinator>> resumed = Coordinator::Resume(
      ResumeOptions(4), &clients.manager(), fedavg->get(), store.get(), c);
  EXPECT_EQ(resumed.status().code(), absl::StatusCode::kInvalidArgument) << resumed.status();
  EXPECT_TRUE(absl::StrContains(resumed.status().message(), "strategy state"));
}

// ---------------------------------------------------------------------------
// Idempotent results in the gRPC mailbox.

FitIns FitOf(uint32_t round) {
  FitIns ins;
  ins.round = round;
  ins.parameters = std::make_shared<const Parameters>(Tensors(0, 0));
  return ins;
}

absl::StatusOr<FitRes> Result() {
  FitRes res;
  res.update = Tensors(1, 1);
  res.num_examples = 5;
  return res;
}

TEST(GrpcClientProxyTest, ARetriedFitResultIsCountedOnce) {
  GrpcClientProxy proxy("dev", std::make_shared<ServerEpoch>("epoch1"));
  int counted = 0;
  proxy.Fit(FitOf(1), absl::InfiniteFuture(), [&](absl::StatusOr<FitRes>) {
    ++counted;
    return absl::OkStatus();
  });
  const v1::Task task = proxy.NextTask(absl::ZeroDuration());
  ASSERT_TRUE(task.has_fit());
  EXPECT_TRUE(absl::StrContains(task.task_id(), "-epoch1-")) << task.task_id();
  EXPECT_FALSE(proxy.Answered(task.task_id()).has_value());
  EXPECT_TRUE(proxy.CompleteFit(task.task_id(), Result()).ok());
  // The answer to the first upload was lost; the device sends it again.
  EXPECT_TRUE(proxy.CompleteFit(task.task_id(), Result()).ok());
  std::optional<absl::Status> again = proxy.Answered(task.task_id());
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->ok());
  EXPECT_EQ(counted, 1);
}

// A poll waiting without a thread (the callback Poll): the proxy fires it
// once there is something to answer with, and it answers with NextTask(0),
// as the service does.
class AnsweringWaiter : public PollWaiter {
 public:
  explicit AnsweringWaiter(GrpcClientProxy* proxy) : proxy_(proxy) {}
  void Fire() override {
    ++fired;
    answer = proxy_->NextTask(absl::ZeroDuration());
  }
  int fired = 0;
  v1::Task answer;

 private:
  GrpcClientProxy* proxy_;
};

TEST(GrpcClientProxyTest, AWaitingPollIsAnsweredByAWakeATaskOrTheNextPollAndOnlyOnce) {
  GrpcClientProxy proxy("dev", std::make_shared<ServerEpoch>("epoch1"));
  auto first = std::make_shared<AnsweringWaiter>(&proxy);
  EXPECT_FALSE(proxy.AwaitTask(first));  // nothing to answer with: it waits
  proxy.Wake();
  EXPECT_EQ(first->fired, 1);
  EXPECT_TRUE(first->answer.has_wait());

  auto second = std::make_shared<AnsweringWaiter>(&proxy);
  auto third = std::make_shared<AnsweringWaiter>(&proxy);
  EXPECT_FALSE(proxy.AwaitTask(second));
  EXPECT_FALSE(proxy.AwaitTask(third));  // the device polled again
  EXPECT_EQ(second->fired, 1);
  EXPECT_TRUE(second->answer.has_wait());
  EXPECT_EQ(third->fired, 0);

  proxy.Fit(FitOf(1), absl::InfiniteFuture(), [](absl::StatusOr<FitRes>) {
    return absl::OkStatus();
  });
  EXPECT_EQ(third->fired, 1);
  EXPECT_TRUE(third->answer.has_fit());
  // The task stays open: the next poll gets it at once, without waiting.
  auto fourth = std::make_shared<AnsweringWaiter>(&proxy);
  EXPECT_TRUE(proxy.AwaitTask(fourth));
  EXPECT_EQ(fourth->fired, 0);

  // A waiter answered by its deadline is dropped, not fired later.
  GrpcClientProxy idle("idle", std::make_shared<ServerEpoch>("epoch1"));
  auto timed_out = std::make_shared<AnsweringWaiter>(&idle);
  EXPECT_FALSE(idle.AwaitTask(timed_out));
  idle.DropWaiter(timed_out.get());
  idle.Shutdown("over", 0);
  EXPECT_EQ(timed_out->fired, 0);
  auto last = std::make_shared<AnsweringWaiter>(&idle);
  EXPECT_TRUE(idle.AwaitTask(last));  // the shutdown is there
}

TEST(GrpcClientProxyTest, ARetryWhileTheFirstIsBeingCountedWaitsForItsVerdict) {
  GrpcClientProxy proxy("dev", std::make_shared<ServerEpoch>("e"));
  absl::Notification counting, release;
  int counted = 0;
  proxy.Fit(FitOf(1), absl::InfiniteFuture(), [&](absl::StatusOr<FitRes>) {
    ++counted;
    counting.Notify();
    release.WaitForNotification();
    return absl::OkStatus();
  });
  const std::string id = proxy.NextTask(absl::ZeroDuration()).task_id();
  std::thread first([&] { EXPECT_TRUE(proxy.CompleteFit(id, Result()).ok()); });
  counting.WaitForNotification();
  std::thread retry([&] { EXPECT_TRUE(proxy.CompleteFit(id, Result()).ok()); });
  absl::SleepFor(absl::Milliseconds(50));
  release.Notify();
  first.join();
  retry.join();
  EXPECT_EQ(counted, 1);
}

TEST(GrpcClientProxyTest, ARefusedResultSentAgainIsRefusedAgain) {
  GrpcClientProxy proxy("dev", std::make_shared<ServerEpoch>("e"));
  int counted = 0;
  proxy.Fit(FitOf(1), absl::InfiniteFuture(), [&](absl::StatusOr<FitRes>) {
    ++counted;
    return absl::InvalidArgumentError("non-finite values");
  });
  const std::string id = proxy.NextTask(absl::ZeroDuration()).task_id();
  EXPECT_EQ(proxy.CompleteFit(id, Result()).code(), absl::StatusCode::kInvalidArgument);
  absl::Status again = proxy.CompleteFit(id, Result());
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(again.message(), "non-finite values")) << again;
  EXPECT_EQ(counted, 1);
}

TEST(GrpcClientProxyTest, AResultForAnEarlierRoundIsRefusedNamingTheRounds) {
  auto epoch = std::make_shared<ServerEpoch>("e");
  GrpcClientProxy late("late", epoch);
  GrpcClientProxy other("other", epoch);
  bool counted = false;
  late.Fit(FitOf(2), absl::InfiniteFuture(), [&](absl::StatusOr<FitRes>) {
    counted = true;
    return absl::OkStatus();
  });
  const std::string id = late.NextTask(absl::ZeroDuration()).task_id();
  late.Cancel();  // round 2 closed without it
  other.Fit(FitOf(3), absl::InfiniteFuture(), [](absl::StatusOr<FitRes>) {
    return absl::OkStatus();
  });
  absl::Status s = late.CompleteFit(id, Result());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(s.message(), "round 2 is over; the server is in round 3")) << s;
  EXPECT_FALSE(counted);
}

TEST(GrpcClientProxyTest, ATaskOfAnEarlierServerProcessIsRefused) {
  // Before the restart.
  GrpcClientProxy before("dev", std::make_shared<ServerEpoch>());
  before.Fit(FitOf(2), absl::InfiniteFuture(), [](absl::StatusOr<FitRes>) {
    return absl::OkStatus();
  });
  const std::string old_id = before.NextTask(absl::ZeroDuration()).task_id();
  // After it: the same client, round 2 again, a new task.
  GrpcClientProxy after("dev", std::make_shared<ServerEpoch>());
  bool counted = false;
  after.Fit(FitOf(2), absl::InfiniteFuture(), [&](absl::StatusOr<FitRes>) {
    counted = true;
    return absl::OkStatus();
  });
  const std::string new_id = after.NextTask(absl::ZeroDuration()).task_id();
  EXPECT_NE(old_id, new_id);
  absl::Status s = after.CompleteFit(old_id, Result());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(s.message(), "not handed out by this server process")) << s;
  EXPECT_FALSE(counted);
  EXPECT_TRUE(after.CompleteFit(new_id, Result()).ok());
  EXPECT_TRUE(counted);
}

TEST(GrpcClientProxyTest, ACoordinatorCountsARetriedResultOnceAndRefusesALateOne) {
  testing::TempDir dir;
  std::unique_ptr<ModelStore> store = *ModelStore::Open(dir.File("models"), "test");
  ClientManager clients;
  auto epoch = std::make_shared<ServerEpoch>("e");
  std::map<std::string, std::shared_ptr<GrpcClientProxy>> proxy;
  for (const char* id : {"a", "b", "late"}) {
    proxy[id] = std::make_shared<GrpcClientProxy>(id, epoch);
    clients.Register(proxy[id]);
  }
  CoordinatorOptions o;
  o.num_rounds = 2;
  o.min_fit_clients = 2;
  o.min_available_clients = 3;
  o.round_timeout = absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<Strategy>> fedavg =
      CreateStrategy("fedavg", json::object(), StrategyContext{});
  auto coordinator = *Coordinator::Create(o, &clients, fedavg->get(), store.get(), Tensors(0, 0));
  absl::StatusOr<std::vector<RoundRecord>> history;
  std::thread run([&] { history = coordinator->Run(); });

  auto fit_task = [&](const std::string& id, uint32_t round) {
    for (int i = 0; i < 50; ++i) {
      v1::Task t = proxy[id]->NextTask(absl::Milliseconds(100));
      if (t.has_fit() && t.fit().round() == round) return t.task_id();
    }
    ADD_FAILURE() << "no round " << round << " task for " << id;
    return std::string();
  };
  // Round 1: 'a' uploads twice, 'b' once, 'late' not before the deadline.
  const std::string a1 = fit_task("a", 1);
  const std::string late1 = fit_task("late", 1);
  EXPECT_TRUE(proxy["a"]->CompleteFit(a1, Result()).ok());
  EXPECT_TRUE(proxy["a"]->CompleteFit(a1, Result()).ok());
  EXPECT_TRUE(proxy["b"]->CompleteFit(fit_task("b", 1), Result()).ok());
  // Round 2 (without 'late', which missed round 1's deadline and has not
  // been heard from since): while it runs, the late round-1 result arrives.
  const std::string a2 = fit_task("a", 2);
  absl::Status s = proxy["late"]->CompleteFit(late1, Result());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(s.message(), "round 1 is over; the server is in round 2")) << s;
  EXPECT_TRUE(proxy["a"]->CompleteFit(a2, Result()).ok());
  EXPECT_TRUE(proxy["b"]->CompleteFit(fit_task("b", 2), Result()).ok());
  run.join();
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[1].answered, 2u);
  EXPECT_EQ((*history)[1].train_examples, 10);  // a and b once each
  EXPECT_EQ((*history)[2].answered, 2u);
  EXPECT_EQ((*history)[2].train_examples, 10);  // the late round-1 result not among them
}

TEST(ClientManagerRestoreTest, AKnownClientIsNotLiveUntilHeardFrom) {
  ClientManager clients;
  clients.AddKnown(std::make_shared<GrpcClientProxy>("dev"));
  EXPECT_EQ(clients.NumRegistered(), 1u);
  EXPECT_NE(clients.Find("dev"), nullptr);
  EXPECT_TRUE(clients.LiveClientIds().empty());
  EXPECT_TRUE(clients.Heartbeat("dev"));
  EXPECT_EQ(clients.LiveClientIds(), std::vector<std::string>{"dev"});
  EXPECT_EQ(clients.RegisteredIds(), std::vector<std::string>{"dev"});
}

}  // namespace
}  // namespace shoal
