// A long-running federation end to end (issue 16): a real `shoal serve`,
// real `shoal client --serve` devices that stay enrolled between runs, and
// the admin verbs (`shoal run ...`, `shoal model ...`) as real processes
// with an admin certificate from the PKI the test makes, all on 127.0.0.1.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/files.h"
#include "common/parameters.h"
#include "common/pki.h"
#include "gtest/gtest.h"
#include "shoal/v1/shoal.grpc.pb.h"
#include "tests/federation_fixture.h"
#include "tests/subprocess.h"

namespace shoal {
namespace {

using nlohmann::json;
using testing::Subprocess;
using testing::WaitForLogLine;

struct AdminResult {
  int exit = -1;
  std::string output;  // stdout and stderr
  json answer;         // stdout parsed, when it is JSON
};

class ServeTest : public testing::FederationTest {
 protected:
  void SetUp() override {
    FederationTest::SetUp();
    const absl::Status issued = IssueAdmin(pki_, "alice", PkiOptions{});
    ASSERT_TRUE(issued.ok()) << issued;
    state_ = dir_.File("federation");
    // Devices read this config (data, model, task); the server's address.
    device_config_ = dir_.File("device.json");
    std::filesystem::rename(WriteConfig(1, 2, 120), device_config_);
  }

  // StartServe runs `shoal serve` (again: same command, same state), with
  // its telemetry on 127.0.0.1:`metrics_port` when that is > 0.
  std::unique_ptr<Subprocess> StartServe(int metrics_port = 0) {
    const std::string federation = dir_.File("federation.json");
    json server = {{"serving", {{"canary_fraction", 0}}}};
    if (metrics_port > 0) {
      server["metrics"] = {{"listen", absl::StrCat("127.0.0.1:", metrics_port)}};
    }
    EXPECT_TRUE(WriteFileAtomically(federation, json{{"server", server}}.dump()).ok());
    return std::make_unique<Subprocess>(
        std::vector<std::string>{SHOAL_BINARY, "serve", "--address", address_, "--pki-dir",
                                 pki_ + "/server", "--state-dir", state_, "--config", federation},
        dir_.File("serve.log"));
  }

  // RunConfig writes a run's config: `rounds` rounds over 2 devices.
  std::string RunConfig(const std::string& name, int rounds,
                        const std::function<void(json&)>& edit = nullptr) {
    const std::string written = WriteConfig(rounds, 2, 120, [&](json& c) {
      c["name"] = name;
      if (edit) edit(c);
    });
    const std::string path = dir_.File(name + ".json");
    std::filesystem::rename(written, path);
    return path;
  }

  // Admin runs `shoal ARGS --server ... --pki-dir BUNDLE --json`.
  AdminResult Admin(std::vector<std::string> args, const std::string& bundle = "") {
    std::vector<std::string> argv{SHOAL_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const std::string& flag :
         {std::string("--server"), address_, std::string("--pki-dir"),
          bundle.empty() ? pki_ + "/admins/alice" : bundle, std::string("--json")}) {
      argv.push_back(flag);
    }
    const std::string log = dir_.File(absl::StrCat("admin-", ++admin_calls_, ".log"));
    Subprocess call(argv, log);
    AdminResult result;
    result.exit = call.Wait(absl::Seconds(120));
    result.output = call.Log();
    result.answer = json::parse(result.output, nullptr, /*allow_exceptions=*/false);
    return result;
  }

  json Run(const std::string& id) {
    AdminResult r = Admin({"run", "status", id});
    EXPECT_EQ(r.exit, 0) << r.output;
    return r.answer;
  }

  // WaitRun polls run `id` until `done` holds (or 3 minutes pass); a call
  // that fails (a server starting again) is tried again.
  json WaitRun(const std::string& id, const std::function<bool(const json&)>& done) {
    const absl::Time deadline = absl::Now() + absl::Minutes(3);
    json run;
    while (absl::Now() < deadline) {
      AdminResult r = Admin({"run", "status", id});
      run = r.exit == 0 ? r.answer : json();
      if (run.is_object() && done(run)) return run;
      absl::SleepFor(absl::Milliseconds(300));
    }
    ADD_FAILURE() << "run " << id << " never got there: " << run.dump();
    return run;
  }

  std::string Submit(const std::string& config) {
    AdminResult r = Admin({"run", "submit", config});
    EXPECT_EQ(r.exit, 0) << r.output;
    return r.answer.value("run_id", std::string());
  }

  // StartDevices starts two devices serving on Unix sockets.
  void StartDevices() {
    for (int i = 0; i < 2; ++i) {
      sockets_.push_back("unix:" + dir_.File(absl::StrCat("predict-", i, ".sock")));
      devices_.push_back(StartClient(device_config_, i, {"--serve", sockets_.back()}));
    }
  }

  // FleetServes waits until every device reports serving `version`.
  bool FleetServes(int64_t version, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      AdminResult r = Admin({"model", "status"});
      int serving = 0;
      if (r.exit == 0 && r.answer.contains("devices")) {
        for (const json& d : r.answer["devices"]) {
          serving += std::stoll(d.value("serving_version", std::string("0"))) == version ? 1 : 0;
        }
      }
      if (serving == 2) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  void TearDown() override {
    for (auto& device : devices_) {
      device->Kill(SIGTERM);
      EXPECT_EQ(device->Wait(absl::Seconds(30)), 0) << device->Log();
    }
  }

  std::string state_;
  std::string device_config_;
  std::vector<std::string> sockets_;
  std::vector<std::unique_ptr<Subprocess>> devices_;
  int admin_calls_ = 0;
};

int64_t Ms(const json& run, const char* key) {
  // int64 fields are strings in protobuf's JSON.
  return std::stoll(run.value(key, std::string("0")));
}

// Predictor asks a device's endpoint for predictions in a loop on its own
// thread, counting failures and the serving versions that answered.
class Predictor {
 public:
  explicit Predictor(const std::string& socket)
      : stub_(v1::LocalPredict::NewStub(
            grpc::CreateChannel(socket, grpc::InsecureChannelCredentials()))),
        thread_([this] { Loop(); }) {}
  ~Predictor() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t answered() const { return answered_.load(); }
  int64_t failed() const { return failed_.load(); }
  std::string first_error() const {
    absl::MutexLock lock(&mu_);
    return first_error_;
  }
  // The serving versions that answered, in order, each once per change.
  std::vector<int64_t> versions() const {
    absl::MutexLock lock(&mu_);
    return versions_;
  }

 private:
  void Loop() {
    const at::Tensor x = at::rand({4, 1, 28, 28});
    while (!stop_) {
      v1::PredictRequest request;
      TensorToProto("inputs", x, request.mutable_inputs());
      v1::PredictResponse response;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      grpc::Status status = stub_->Predict(&ctx, request, &response);
      if (status.ok()) {
        ++answered_;
        absl::MutexLock lock(&mu_);
        if (versions_.empty() || versions_.back() != response.serving_version()) {
          versions_.push_back(response.serving_version());
        }
      } else {
        ++failed_;
        absl::MutexLock lock(&mu_);
        if (first_error_.empty()) first_error_ = status.error_message();
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  std::unique_ptr<v1::LocalPredict::Stub> stub_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> answered_{0}, failed_{0};
  mutable absl::Mutex mu_;
  std::vector<int64_t> versions_;
  std::string first_error_;
  std::thread thread_;
};

// Runs submitted to one server train in submission order with the same two
// devices, which stay up (enrolled) throughout; a run cancelled mid-round
// stops and the next one still runs. Then the fleet's serving version is
// promoted twice and rolled back with the CLI: every device serves the
// rollback within one poll interval (10 s).
TEST_F(ServeTest, RunsTrainInOrderOverTheSameDevicesAndACancelledOneLeavesTheNextRunning) {
  const int metrics_port = testing::PickUnusedPort();
  ASSERT_GT(metrics_port, 0);
  auto serve = StartServe(metrics_port);
  ASSERT_TRUE(WaitForLogLine(*serve, "listening on", absl::Seconds(60))) << serve->Log();
  StartDevices();
  const std::string a = Submit(RunConfig("a", 2));
  const std::string b = Submit(RunConfig("b", 2));
  const std::string c = Submit(RunConfig("c", 500));
  const std::string d = Submit(RunConfig("d", 2));
  ASSERT_EQ(a, "a-1");
  ASSERT_EQ(d, "d-4");
  // Cancel c once it has trained a round: it stops after the round in
  // progress.
  WaitRun(c, [](const json& r) { return r.value("rounds_done", 0) >= 1; });
  AdminResult cancelled = Admin({"run", "cancel", c});
  ASSERT_EQ(cancelled.exit, 0) << cancelled.output;
  EXPECT_TRUE(cancelled.answer.value("cancel_requested", false)) << cancelled.output;
  const json dr = WaitRun(d, [](const json& r) { return r.value("state", "") == "done"; });
  const json ar = Run(a), br = Run(b), cr = Run(c);
  EXPECT_EQ(ar["state"], "done");
  EXPECT_EQ(br["state"], "done");
  EXPECT_EQ(cr["state"], "cancelled") << cr.dump();
  EXPECT_LT(cr.value("rounds_done", 0), 500);
  EXPECT_EQ(dr.value("rounds_done", 0), 2);
  // In order, one at a time.
  EXPECT_LE(Ms(ar, "finished_unix_ms"), Ms(br, "started_unix_ms"));
  EXPECT_LE(Ms(br, "finished_unix_ms"), Ms(cr, "started_unix_ms"));
  EXPECT_LE(Ms(cr, "finished_unix_ms"), Ms(dr, "started_unix_ms"));
  // The same device processes took part in every run.
  for (auto& device : devices_) EXPECT_EQ(device->Wait(absl::ZeroDuration()), -1) << device->Log();
  AdminResult logs = Admin({"run", "logs", c});
  ASSERT_EQ(logs.exit, 0) << logs.output;
  EXPECT_NE(logs.output.find("cancelled after round"), std::string::npos) << logs.output;
  AdminResult list = Admin({"run", "list"});
  ASSERT_EQ(list.exit, 0) << list.output;
  EXPECT_EQ(list.answer["runs"].size(), 4u);

  // The federation's dashboard lists the runs and shows the last one; its
  // metrics count every run's rounds (2 + 2 + c's + 2).
  httplib::Client http("127.0.0.1", metrics_port);
  httplib::Result state_text = http.Get("/api/state");
  ASSERT_TRUE(state_text && state_text->status == 200) << serve->Log();
  const json state = json::parse(state_text->body);
  ASSERT_EQ(state["runs"].size(), 4u) << state.dump(2);
  EXPECT_EQ(state["runs"][2]["id"], c);
  EXPECT_EQ(state["runs"][2]["state"], "cancelled");
  EXPECT_EQ(state["runs"][3]["state"], "done");
  EXPECT_EQ(state["runs"][3]["rounds_done"], 2);
  EXPECT_EQ(state["run"]["name"], d);
  EXPECT_EQ(state["rounds"].size(), 3u) << state.dump(2);  // d's rounds 0 to 2
  httplib::Result metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics && metrics->status == 200);
  const size_t at = metrics->body.find("\nshoal_rounds_total ");
  ASSERT_NE(at, std::string::npos) << metrics->body;
  EXPECT_EQ(std::stod(metrics->body.substr(at + 20)),
            6 + cr.value("rounds_done", 0));

  // Promote a's first-round model (serving 1), then b's final one (2,
  // better), then roll back: a's round-1 weights again, as serving version
  // 3, on every device within a poll, although their guards prefer b's:
  // a device takes back weights it served before without judging them.
  ASSERT_EQ(Admin({"model", "promote", a, "1"}).exit, 0);
  ASSERT_TRUE(FleetServes(1, absl::Seconds(60)));
  ASSERT_EQ(Admin({"model", "promote", b}).exit, 0);
  ASSERT_TRUE(FleetServes(2, absl::Seconds(60)));
  const absl::Time rollback = absl::Now();
  AdminResult rolled = Admin({"model", "rollback"});
  ASSERT_EQ(rolled.exit, 0) << rolled.output;
  EXPECT_EQ(rolled.answer["current"]["version"], "3") << rolled.output;
  EXPECT_EQ(rolled.answer["current"]["run_id"], a) << rolled.output;
  EXPECT_TRUE(FleetServes(3, absl::Seconds(10)));
  httplib::Result after = http.Get("/metrics");
  ASSERT_TRUE(after && after->status == 200);
  EXPECT_NE(after->body.find("\nshoal_serving_version 3\n"), std::string::npos) << after->body;
  std::printf("rollback to every device serving it: %.2f s\n",
              absl::ToDoubleSeconds(absl::Now() - rollback));
  serve->Kill(SIGTERM);
  EXPECT_EQ(serve->Wait(absl::Seconds(60)), 0) << serve->Log();
}

// The server is killed (SIGKILL) during a run and started again with the
// same command: the run resumes and ends, the serving version is the same,
// and a device answers predictions the whole time, from before the kill to
// after a promotion, without one failing; the version answering changes
// once, at the promotion.
TEST_F(ServeTest, AKilledServerResumesItsRunWhileDevicesKeepServingAndAPromotionSwapsOnce) {
  auto serve = StartServe();
  ASSERT_TRUE(WaitForLogLine(*serve, "listening on", absl::Seconds(60))) << serve->Log();
  StartDevices();
  const std::string first = Submit(RunConfig("first", 2, [](json& c) {
    c["server"]["serving"] = {{"auto_promote", true}};
  }));
  WaitRun(first, [](const json& r) { return r.value("state", "") == "done"; });
  ASSERT_TRUE(FleetServes(1, absl::Seconds(60)));

  Predictor predictor(sockets_[0]);
  const std::string second =
      Submit(RunConfig("second", 40, [](json& c) { c["fit"]["local_epochs"] = 2; }));
  WaitRun(second, [](const json& r) { return r.value("rounds_done", 0) >= 3; });
  serve->Kill(SIGKILL);
  EXPECT_EQ(serve->Wait(absl::Seconds(30)), 128 + SIGKILL);
  absl::SleepFor(absl::Seconds(1));
  serve = StartServe();
  const json done = WaitRun(second, [](const json& r) { return r.value("state", "") == "done"; });
  EXPECT_EQ(done.value("rounds_done", 0), 40) << done.dump();
  AdminResult logs = Admin({"run", "logs", second, "--tail", "10000"});
  EXPECT_NE(logs.output.find("resuming after a server restart"), std::string::npos)
      << logs.output;
  AdminResult status = Admin({"model", "status"});
  ASSERT_EQ(status.exit, 0) << status.output;
  EXPECT_EQ(status.answer["current"]["version"], "1") << status.output;

  ASSERT_EQ(Admin({"model", "promote", second}).exit, 0);
  ASSERT_TRUE(FleetServes(2, absl::Seconds(60)));
  absl::SleepFor(absl::Milliseconds(300));  // predictions on version 2
  predictor.Stop();
  std::printf("predictions: %lld answered, %lld failed\n",
              static_cast<long long>(predictor.answered()),
              static_cast<long long>(predictor.failed()));
  EXPECT_GT(predictor.answered(), 100);
  EXPECT_EQ(predictor.failed(), 0) << predictor.first_error();
  EXPECT_EQ(predictor.versions(), (std::vector<int64_t>{1, 2}));
  serve->Kill(SIGTERM);
  EXPECT_EQ(serve->Wait(absl::Seconds(60)), 0) << serve->Log();
}

// What the admin service refuses, and that a refusal leaves the run in
// progress alone: a config with a bad key (named), a device's certificate,
// a promotion of a version or run that does not exist, a rollback with
// nothing to roll back to. Then a schedule submits its first run at once.
TEST_F(ServeTest, BadSubmissionsAndCallsWithoutAnAdminCertificateAreRefusedByName) {
  auto serve = StartServe();
  ASSERT_TRUE(WaitForLogLine(*serve, "listening on", absl::Seconds(60))) << serve->Log();
  StartDevices();
  const std::string running = Submit(RunConfig("running", 500));
  WaitRun(running, [](const json& r) { return r.value("rounds_done", 0) >= 1; });

  const std::string bad = RunConfig("bad", 2, [](json& c) { c["fit"]["lr"] = 0.1; });
  AdminResult refused = Admin({"run", "submit", bad});
  EXPECT_EQ(refused.exit, 2) << refused.output;
  EXPECT_NE(refused.output.find("'fit.lr'"), std::string::npos) << refused.output;
  const std::string own_catalog = RunConfig("own", 2, [](json& c) {
    c["server"]["serving"] = {{"dir", "/tmp/elsewhere"}};
  });
  refused = Admin({"run", "submit", own_catalog});
  EXPECT_EQ(refused.exit, 2) << refused.output;
  EXPECT_NE(refused.output.find("'server.serving.dir'"), std::string::npos) << refused.output;

  AdminResult device = Admin({"run", "list"}, Bundle("client-0"));
  EXPECT_EQ(device.exit, 2) << device.output;
  EXPECT_NE(device.output.find("is a device's, not an admin's"), std::string::npos)
      << device.output;

  AdminResult missing = Admin({"model", "promote", running, "99999"});
  EXPECT_EQ(missing.exit, 2) << missing.output;
  EXPECT_NE(missing.output.find("no model version 99999"), std::string::npos) << missing.output;
  missing = Admin({"model", "promote", "nope-7"});
  EXPECT_EQ(missing.exit, 2) << missing.output;
  EXPECT_NE(missing.output.find("no run 'nope-7'"), std::string::npos) << missing.output;
  AdminResult rollback = Admin({"model", "rollback"});
  EXPECT_EQ(rollback.exit, 2) << rollback.output;

  // Nothing was queued, and the run went on.
  AdminResult list = Admin({"run", "list"});
  ASSERT_EQ(list.exit, 0) << list.output;
  EXPECT_EQ(list.answer["runs"].size(), 1u) << list.output;
  const int before = Run(running).value("rounds_done", 0);
  const json later =
      WaitRun(running, [&](const json& r) { return r.value("rounds_done", 0) > before; });
  EXPECT_EQ(later["state"], "running");
  ASSERT_EQ(Admin({"run", "cancel", running}).exit, 0);
  WaitRun(running, [](const json& r) { return r.value("state", "") == "cancelled"; });

  // A schedule: its first run goes at once; bad ones are refused by name.
  AdminResult too_often = Admin({"run", "submit", RunConfig("often", 2), "--every", "10s"});
  EXPECT_EQ(too_often.exit, 2) << too_often.output;
  EXPECT_NE(too_often.output.find("at least 1m"), std::string::npos) << too_often.output;
  AdminResult bad_schedule = Admin({"run", "submit", bad, "--every", "1h"});
  EXPECT_EQ(bad_schedule.exit, 2) << bad_schedule.output;
  EXPECT_NE(bad_schedule.output.find("'fit.lr'"), std::string::npos) << bad_schedule.output;
  AdminResult scheduled = Admin({"run", "submit", RunConfig("hourly", 2), "--every", "1h"});
  ASSERT_EQ(scheduled.exit, 0) << scheduled.output;
  const std::string schedule = scheduled.answer.value("schedule_id", std::string());
  EXPECT_EQ(schedule, "schedule-hourly-1");
  std::string first_run;
  for (int i = 0; i < 100 && first_run.empty(); ++i) {
    AdminResult listed = Admin({"run", "schedules"});
    if (listed.exit == 0 && !listed.answer["schedules"][0]["runs"].empty()) {
      first_run = listed.answer["schedules"][0]["runs"][0];
    } else {
      absl::SleepFor(absl::Milliseconds(200));
    }
  }
  ASSERT_EQ(first_run, "hourly-2");
  WaitRun(first_run, [](const json& r) { return r.value("state", "") == "done"; });
  AdminResult ended = Admin({"run", "unschedule", schedule});
  EXPECT_EQ(ended.exit, 0) << ended.output;
  AdminResult none = Admin({"run", "schedules"});
  EXPECT_TRUE(none.answer.value("schedules", json::array()).empty()) << none.output;
  serve->Kill(SIGTERM);
  EXPECT_EQ(serve->Wait(absl::Seconds(60)), 0) << serve->Log();
}

}  // namespace
}  // namespace shoal
