#include "server/run_queue.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/json.h"
#include "common/logging.h"
#include "common/signing.h"
#include "common/status.h"
#include "common/types.h"
#include "server/client_manager.h"

namespace shoal {
namespace {

constexpr size_t kMaxRunFileBytes = size_t{1} << 20;
// Logs are read back from the end; a log is cut to its last 4 MiB.
constexpr size_t kMaxLogReadBytes = size_t{4} << 20;

int64_t UnixMs(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMillis(t); }
absl::Time FromUnixMs(int64_t ms) { return ms == 0 ? absl::InfinitePast() : absl::FromUnixMillis(ms); }

std::string Timestamp() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
}

// RoundLine is one round in the run's log.
std::string RoundLine(const RoundRecord& r) {
  std::string line = r.round == 0 ? std::string("initial model (version 0)")
                                  : absl::StrCat("round ", r.round, ": ", r.answered, " of ",
                                                 r.sampled, " results, model version ",
                                                 r.model_version);
  if (r.server_eval) {
    for (const auto& [key, value] : r.server_eval->metrics) {
      absl::StrAppend(&line, absl::StrFormat(", test_%s %.4f", key, MetricAsDouble(value)));
    }
  }
  if (!r.failures.empty()) absl::StrAppend(&line, ", ", r.failures.size(), " failed");
  if (!r.declined.empty()) absl::StrAppend(&line, ", ", r.declined.size(), " declined");
  if (!r.note.empty()) absl::StrAppend(&line, " (", r.note, ")");
  absl::StrAppend(&line, absl::StrFormat(", %.1f s", r.seconds));
  return line;
}

}  // namespace

const char* RunStateName(RunState state) {
  switch (state) {
    case RunState::kQueued:
      return "queued";
    case RunState::kRunning:
      return "running";
    case RunState::kDone:
      return "done";
    case RunState::kFailed:
      return "failed";
    case RunState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string RunIdFor(const std::string& name, int64_t seq) {
  std::string id = name.substr(0, 64);
  for (char& c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) c = '-';
  }
  if (id.empty() || id[0] == '.') id = "run" + id;
  return absl::StrCat(id, "-", seq);
}

nlohmann::json RunInfoToJson(const RunInfo& info) {
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& [key, value] : info.metrics) {
    const double v = MetricAsDouble(value);
    if (std::isfinite(v)) metrics[key] = v;
  }
  return nlohmann::json{{"format", 1},
                        {"id", info.id},
                        {"name", info.name},
                        {"seq", info.seq},
                        {"state", RunStateName(info.state)},
                        {"submitted_unix_ms", UnixMs(info.submitted)},
                        {"started_unix_ms", UnixMs(info.started)},
                        {"finished_unix_ms", UnixMs(info.finished)},
                        {"rounds_done", info.rounds_done},
                        {"rounds_planned", info.rounds_planned},
                        {"strategy", info.strategy},
                        {"message", info.message},
                        {"cancel_requested", info.cancel_requested},
                        {"final_version", info.final_version},
                        {"metrics", metrics}};
}

absl::StatusOr<RunInfo> RunInfoFromJson(const nlohmann::json& j, const std::string& source) {
  RunInfo info;
  try {
    if (j.at("format").get<int>() != 1) {
      return absl::DataLossError(absl::StrCat(source, ": unknown format"));
    }
    info.id = j.at("id").get<std::string>();
    info.name = j.at("name").get<std::string>();
    info.seq = j.at("seq").get<int64_t>();
    const std::string state = j.at("state").get<std::string>();
    bool known = false;
    for (RunState s : {RunState::kQueued, RunState::kRunning, RunState::kDone, RunState::kFailed,
                       RunState::kCancelled}) {
      if (state == RunStateName(s)) {
        info.state = s;
        known = true;
      }
    }
    if (!known) return absl::DataLossError(absl::StrCat(source, ": unknown state"));
    info.submitted = FromUnixMs(j.at("submitted_unix_ms").get<int64_t>());
    info.started = FromUnixMs(j.at("started_unix_ms").get<int64_t>());
    info.finished = FromUnixMs(j.at("finished_unix_ms").get<int64_t>());
    info.rounds_done = j.at("rounds_done").get<uint32_t>();
    info.rounds_planned = j.at("rounds_planned").get<uint32_t>();
    info.strategy = j.at("strategy").get<std::string>();
    info.message = j.at("message").get<std::string>();
    info.cancel_requested = j.at("cancel_requested").get<bool>();
    info.final_version = j.at("final_version").get<int64_t>();
    for (const auto& [key, value] : j.at("metrics").items()) info.metrics[key] = value.get<double>();
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(source, ": ", e.what()));
  }
  SHOAL_RETURN_IF_ERROR(Annotate(ValidateRunId(info.id), source));
  if (info.seq < 1) return absl::DataLossError(absl::StrCat(source, ": seq below 1"));
  return info;
}

// Progress keeps the run's info and log up to date as rounds end.
class RunQueue::Progress : public RoundObserver {
 public:
  Progress(RunQueue* queue, std::string id) : queue_(queue), id_(std::move(id)) {}
  void OnRoundStart(uint32_t round, size_t sampled) override {
    queue_->Log(id_, absl::StrCat("round ", round, ": ", sampled, " clients sampled"));
  }
  void OnRoundEnd(const RoundRecord& r) override {
    queue_->Log(id_, RoundLine(r));
    queue_->Update(id_, [&](RunInfo& info) {
      info.rounds_done = r.round;
      info.final_version = r.model_version;
      if (r.server_eval) info.metrics = r.server_eval->metrics;
    });
  }
  void OnRestored(const std::vector<RoundRecord>& history) override {
    if (history.empty()) return;
    const RoundRecord& last = history.back();
    queue_->Update(id_, [&](RunInfo& info) {
      info.rounds_done = last.round;
      info.final_version = last.model_version;
      if (last.server_eval) info.metrics = last.server_eval->metrics;
    });
  }

 private:
  RunQueue* const queue_;
  const std::string id_;
};

namespace {

// ReadKept reads what DIR keeps, one folder per item: FILE in each, parsed
// by `parse` (a RunInfo or ScheduleInfo, whose `id` must name its folder)
// and handed to `take`. A folder whose file cannot be read is skipped with
// an error and left as it is. Creates DIR when missing.
template <typename Info>
absl::Status ReadKept(const std::string& dir, const std::string& file_name, const char* what,
                      absl::StatusOr<Info> (*parse)(const nlohmann::json&, const std::string&),
                      const std::function<void(Info)>& take) {
  SHOAL_RETURN_IF_ERROR(MakeDirectories(dir));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_directory(ec)) continue;
    const std::string file = entry.path().string() + "/" + file_name;
    absl::StatusOr<Info> info = [&]() -> absl::StatusOr<Info> {
      SHOAL_ASSIGN_OR_RETURN(std::string text, ReadFile(file, kMaxRunFileBytes));
      SHOAL_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(text, file));
      return parse(j, file);
    }();
    if (info.ok() && info->id != entry.path().filename().string()) {
      info = absl::DataLossError(absl::StrCat(file, ": names ", what, " '", info->id, "'"));
    }
    if (!info.ok()) {
      spdlog::error("skipping the {} folder {}: {}", what, entry.path().string(),
                    std::string(info.status().message()));
      continue;
    }
    take(*std::move(info));
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RunQueue>> RunQueue::Open(RunQueueOptions options) {
  if (!options.prepare) return absl::InvalidArgumentError("no run preparer");
  std::unique_ptr<RunQueue> self(new RunQueue(std::move(options)));
  RunQueue* q = self.get();
  SHOAL_RETURN_IF_ERROR(ReadKept<RunInfo>(q->options_.dir + "/runs", "run.json", "run",
                                          &RunInfoFromJson, [q](RunInfo info) {
                                            absl::MutexLock lock(&q->mu_);
                                            q->next_seq_ = std::max(q->next_seq_, info.seq + 1);
                                            q->runs_[info.id] = std::move(info);
                                          }));
  SHOAL_RETURN_IF_ERROR(ReadKept<ScheduleInfo>(
      q->options_.dir + "/schedules", "schedule.json", "schedule", &ScheduleFromJson,
      [q](ScheduleInfo info) {
        absl::MutexLock lock(&q->mu_);
        q->next_schedule_seq_ = std::max(q->next_schedule_seq_, info.seq + 1);
        q->schedules_[info.id] = std::move(info);
      }));
  return self;
}

RunQueue::~RunQueue() { Shutdown(); }

std::string RunQueue::RunDir(const std::string& id) const {
  return absl::StrCat(options_.dir, "/runs/", id);
}

void RunQueue::Start(FederationHost* host) {
  absl::MutexLock lock(&mu_);
  if (worker_.joinable() || shutting_down_ || host == nullptr) return;
  host_ = host;
  worker_ = std::thread([this] { Work(); });
}

void RunQueue::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    if (training_ != nullptr) training_->Stop();
    wake_.SignalAll();
  }
  if (worker_.joinable()) worker_.join();
}

void RunQueue::Save(const RunInfo& info) const {
  absl::Status written =
      WriteFileAtomically(RunDir(info.id) + "/run.json", RunInfoToJson(info).dump(2) + "\n");
  if (!written.ok()) {
    spdlog::error("run '{}': cannot keep its state: {}", info.id, std::string(written.message()));
  }
}

void RunQueue::Log(const std::string& id, const std::string& line) const {
  absl::MutexLock lock(&log_mu_);
  std::ofstream out(RunDir(id) + "/log.txt", std::ios::app);
  out << Timestamp() << " " << line << "\n";
}

void RunQueue::Update(const std::string& id, const std::function<void(RunInfo&)>& change) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(id);
  if (it == runs_.end()) return;
  change(it->second);
  Save(it->second);
}

absl::StatusOr<RunInfo> RunQueue::Check(const std::string& config, const std::string& source) {
  if (config.size() > options_.max_config_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(source, " is ", config.size(),
                                                   " bytes; a config may have at most ",
                                                   options_.max_config_bytes));
  }
  SHOAL_ASSIGN_OR_RETURN(nlohmann::json parsed, ParseJson(config, source));
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  RunInfo info;
  info.name = "shoal";
  if (auto it = parsed.find("name"); it != parsed.end() && it->is_string()) {
    info.name = it->get<std::string>();
  }
  // Built once here, so a bad config is refused now, naming the key,
  // rather than failing when its turn comes.
  SHOAL_ASSIGN_OR_RETURN(PreparedRun prepared,
                         options_.prepare(config, source, RunIdFor(info.name, 0), ""));
  info.rounds_planned = prepared.options.coordinator.num_rounds;
  info.strategy = std::string(prepared.strategy->name());
  return info;
}

absl::StatusOr<RunInfo> RunQueue::Queue(RunInfo info, const std::string& config,
                                        const std::string& source) {
  const size_t queued = std::count_if(runs_.begin(), runs_.end(), [](const auto& entry) {
    return entry.second.state == RunState::kQueued;
  });
  if (queued >= options_.max_queued) {
    return absl::ResourceExhaustedError(absl::StrCat(
        queued, " runs are queued already (the limit is ", options_.max_queued,
        "); wait for some to finish or cancel some"));
  }
  if (shutting_down_) return absl::UnavailableError("the server is shutting down");
  // A folder that exists (a run whose run.json could not be read) is
  // never reused: its number is skipped.
  std::error_code ec;
  while (std::filesystem::exists(RunDir(RunIdFor(info.name, next_seq_)), ec)) ++next_seq_;
  info.seq = next_seq_;
  info.id = RunIdFor(info.name, info.seq);
  info.submitted = absl::Now();
  const std::string dir = RunDir(info.id);
  SHOAL_RETURN_IF_ERROR(MakeDirectories(dir));
  SHOAL_RETURN_IF_ERROR(WriteFileAtomically(dir + "/config.json", config));
  ++next_seq_;
  runs_[info.id] = info;
  Save(info);
  wake_.SignalAll();
  Log(info.id, absl::StrCat("submitted (", source, "): ", info.rounds_planned, " rounds of ",
                            info.strategy));
  spdlog::info("run '{}' queued: {} rounds of {}", info.id, info.rounds_planned, info.strategy);
  return info;
}

absl::StatusOr<RunInfo> RunQueue::Submit(const std::string& config, const std::string& source) {
  SHOAL_ASSIGN_OR_RETURN(RunInfo info, Check(config, source));
  absl::MutexLock lock(&mu_);
  return Queue(std::move(info), config, source);
}

std::string RunQueue::ScheduleDir(const std::string& id) const {
  return absl::StrCat(options_.dir, "/schedules/", id);
}

void RunQueue::SaveSchedule(const ScheduleInfo& info) const {
  absl::Status written = WriteFileAtomically(ScheduleDir(info.id) + "/schedule.json",
                                             ScheduleToJson(info).dump(2) + "\n");
  if (!written.ok()) {
    spdlog::error("schedule '{}': cannot keep its state: {}", info.id,
                  std::string(written.message()));
  }
}

absl::StatusOr<ScheduleInfo> RunQueue::AddSchedule(const std::string& config,
                                                   const std::string& source,
                                                   absl::Duration every, int64_t new_examples) {
  if (every <= absl::ZeroDuration() && new_examples <= 0) {
    return absl::InvalidArgumentError(
        "a schedule needs an interval (every) or a number of new examples, or both");
  }
  if (every > absl::ZeroDuration() && every < absl::Minutes(1)) {
    return absl::InvalidArgumentError(absl::StrCat("every ", absl::FormatDuration(every),
                                                   " is too often: at least 1m"));
  }
  SHOAL_ASSIGN_OR_RETURN(RunInfo checked, Check(config, source));
  absl::MutexLock lock(&mu_);
  ScheduleInfo info;
  info.name = checked.name;
  std::error_code ec;
  while (std::filesystem::exists(
      ScheduleDir(absl::StrCat("schedule-", RunIdFor(info.name, next_schedule_seq_))), ec)) {
    ++next_schedule_seq_;
  }
  info.seq = next_schedule_seq_;
  info.id = absl::StrCat("schedule-", RunIdFor(info.name, info.seq));
  info.every = every;
  info.new_examples = new_examples;
  info.created = absl::Now();
  const std::string dir = ScheduleDir(info.id);
  SHOAL_RETURN_IF_ERROR(MakeDirectories(dir));
  SHOAL_RETURN_IF_ERROR(WriteFileAtomically(dir + "/config.json", config));
  ++next_schedule_seq_;
  SaveSchedule(info);
  schedules_[info.id] = info;
  spdlog::info("schedule '{}': {} rounds of {}{}{}", info.id, checked.rounds_planned,
               checked.strategy,
               every > absl::ZeroDuration() ? absl::StrCat(" every ", absl::FormatDuration(every))
                                           : "",
               new_examples > 0 ? absl::StrCat(" when devices hold ", new_examples,
                                               " new training examples")
                                : "");
  wake_.SignalAll();
  return info;
}

absl::StatusOr<ScheduleInfo> RunQueue::CancelSchedule(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = schedules_.find(id);
  if (it == schedules_.end()) return absl::NotFoundError(absl::StrCat("no schedule '", id, "'"));
  ScheduleInfo info = it->second;
  std::error_code ec;
  std::filesystem::remove_all(ScheduleDir(id), ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot remove ", ScheduleDir(id), ": ", ec.message()));
  }
  schedules_.erase(it);
  spdlog::info("schedule '{}' cancelled after {} run(s)", id, info.runs.size());
  return info;
}

namespace {

// BySeq lists a map's items in the order they were made (their seq).
template <typename Info>
std::vector<Info> BySeq(const std::map<std::string, Info>& items) {
  std::vector<Info> out;
  for (const auto& [id, info] : items) out.push_back(info);
  std::sort(out.begin(), out.end(), [](const Info& a, const Info& b) { return a.seq < b.seq; });
  return out;
}

}  // namespace

std::vector<ScheduleInfo> RunQueue::Schedules() const {
  absl::MutexLock lock(&mu_);
  return BySeq(schedules_);
}

std::vector<std::string> RunQueue::SubmitDue(absl::Time now,
                                             const std::map<std::string, int64_t>& declared) {
  struct Due {
    std::string id;
    std::string why;
  };
  std::vector<Due> due;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, schedule] : schedules_) {
      if (!schedule.has_baseline) {
        schedule.examples_at_last = declared;
        schedule.has_baseline = true;
        SaveSchedule(schedule);
      }
      // Never two of its runs waiting or training at once.
      if (!schedule.runs.empty()) {
        auto last = runs_.find(schedule.runs.back());
        if (last != runs_.end() && !last->second.over()) continue;
      }
      const bool by_time = schedule.every > absl::ZeroDuration() &&
                           (schedule.last_submitted == absl::InfinitePast() ||
                            now >= schedule.last_submitted + schedule.every);
      const int64_t fresh = NewExamples(declared, schedule.examples_at_last);
      const bool by_data = schedule.new_examples > 0 && fresh >= schedule.new_examples;
      if (by_time) {
        due.push_back({id, absl::StrCat("every ", absl::FormatDuration(schedule.every))});
      } else if (by_data) {
        due.push_back({id, absl::StrCat(fresh, " new training examples on the devices")});
      }
    }
  }
  std::vector<std::string> submitted;
  for (const Due& d : due) {
    // Checked again, outside the lock: the data or the model may have
    // changed since the schedule was made.
    absl::StatusOr<std::string> config =
        ReadFile(ScheduleDir(d.id) + "/config.json", options_.max_config_bytes);
    absl::StatusOr<RunInfo> checked =
        config.ok() ? Check(*config, d.id) : absl::StatusOr<RunInfo>(config.status());
    absl::MutexLock lock(&mu_);
    auto it = schedules_.find(d.id);
    if (it == schedules_.end()) continue;  // cancelled meanwhile
    ScheduleInfo& schedule = it->second;
    absl::StatusOr<RunInfo> run =
        checked.ok() ? Queue(*checked, *config, d.id) : absl::StatusOr<RunInfo>(checked.status());
    // Due again only after another interval (or more new data), also when
    // the submission failed: a broken config does not retry every second.
    schedule.last_submitted = now;
    schedule.examples_at_last = declared;
    if (!run.ok()) {
      spdlog::warn("schedule '{}' could not submit a run: {}", d.id,
                   std::string(run.status().message()));
    } else {
      Log(run->id, absl::StrCat("scheduled by ", d.id, " (", d.why, ")"));
      schedule.runs.push_back(run->id);
      submitted.push_back(run->id);
    }
    SaveSchedule(schedule);
  }
  return submitted;
}

int64_t NewExamples(const std::map<std::string, int64_t>& declared,
                    const std::map<std::string, int64_t>& at_last) {
  int64_t fresh = 0;
  for (const auto& [id, count] : declared) {
    auto before = at_last.find(id);
    const int64_t grew = before == at_last.end() ? count : count - before->second;
    if (grew > 0) fresh = AddExampleCounts(fresh, grew);
  }
  return fresh;
}

nlohmann::json ScheduleToJson(const ScheduleInfo& info) {
  return nlohmann::json{{"format", 1},
                        {"id", info.id},
                        {"name", info.name},
                        {"seq", info.seq},
                        {"every_s", absl::ToInt64Seconds(info.every)},
                        {"new_examples", info.new_examples},
                        {"created_unix_ms", UnixMs(info.created)},
                        {"last_submitted_unix_ms", UnixMs(info.last_submitted)},
                        {"examples_at_last", info.examples_at_last},
                        {"has_baseline", info.has_baseline},
                        {"runs", info.runs}};
}

absl::StatusOr<ScheduleInfo> ScheduleFromJson(const nlohmann::json& j, const std::string& source) {
  ScheduleInfo info;
  try {
    if (j.at("format").get<int>() != 1) {
      return absl::DataLossError(absl::StrCat(source, ": unknown format"));
    }
    info.id = j.at("id").get<std::string>();
    info.name = j.at("name").get<std::string>();
    info.seq = j.at("seq").get<int64_t>();
    info.every = absl::Seconds(j.at("every_s").get<int64_t>());
    info.new_examples = j.at("new_examples").get<int64_t>();
    info.created = FromUnixMs(j.at("created_unix_ms").get<int64_t>());
    info.last_submitted = FromUnixMs(j.at("last_submitted_unix_ms").get<int64_t>());
    info.examples_at_last = j.at("examples_at_last").get<std::map<std::string, int64_t>>();
    info.has_baseline = j.at("has_baseline").get<bool>();
    info.runs = j.at("runs").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(source, ": ", e.what()));
  }
  SHOAL_RETURN_IF_ERROR(Annotate(ValidateRunId(info.id), source));
  if (info.seq < 1 || info.every < absl::ZeroDuration() || info.new_examples < 0) {
    return absl::DataLossError(absl::StrCat(source, ": a value is out of range"));
  }
  return info;
}

absl::StatusOr<RunInfo> RunQueue::Cancel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(id);
  if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("no run '", id, "'"));
  RunInfo& info = it->second;
  if (info.over()) {
    return absl::FailedPreconditionError(
        absl::StrCat("run '", id, "' is ", RunStateName(info.state), " already"));
  }
  info.cancel_requested = true;
  if (info.state == RunState::kQueued) {
    info.state = RunState::kCancelled;
    info.finished = absl::Now();
    info.message = "cancelled before it started";
    Log(id, "cancelled before it started");
  } else {
    Log(id, absl::StrCat("cancel requested during round ", info.rounds_done + 1,
                         "; it stops when the round ends"));
    // training_ is this run: only the running run is in kRunning.
    if (training_ != nullptr) training_->Stop();
  }
  Save(info);
  spdlog::info("run '{}': {}", id, info.message.empty() ? "cancel requested" : info.message);
  return info;
}

std::vector<RunInfo> RunQueue::List() const {
  absl::MutexLock lock(&mu_);
  return BySeq(runs_);
}

absl::StatusOr<RunInfo> RunQueue::Get(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(id);
  if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("no run '", id, "'"));
  return it->second;
}

absl::StatusOr<std::string> RunQueue::ModelsDir(const std::string& id) const {
  SHOAL_RETURN_IF_ERROR(Get(id).status());
  return RunDir(id) + "/models";
}

absl::StatusOr<std::vector<std::string>> RunQueue::Logs(const std::string& id,
                                                        size_t tail) const {
  SHOAL_RETURN_IF_ERROR(Get(id).status());
  std::string text;
  {
    absl::MutexLock lock(&log_mu_);
    std::ifstream in(RunDir(id) + "/log.txt", std::ios::binary | std::ios::ate);
    if (!in) return std::vector<std::string>();
    const std::streamoff size = in.tellg();
    const std::streamoff start =
        std::max<std::streamoff>(0, size - static_cast<std::streamoff>(kMaxLogReadBytes));
    in.seekg(start);
    text.resize(static_cast<size_t>(size - start));
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
  }
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  if (lines.size() > tail) lines.erase(lines.begin(), lines.end() - static_cast<long>(tail));
  return lines;
}

absl::StatusOr<RunInfo> RunQueue::WaitFor(const std::string& id,
                                          const std::function<bool(const RunInfo&)>& done,
                                          absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    SHOAL_ASSIGN_OR_RETURN(RunInfo info, Get(id));
    if (done(info) || absl::Now() >= deadline) return info;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

void RunQueue::Work() {
  while (true) {
    {
      std::map<std::string, int64_t> declared;
      for (const auto& [id, counts] : host_->clients()->RegisteredClients()) {
        declared[id] = counts.train;
      }
      SubmitDue(absl::Now(), declared);
    }
    std::string next;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        if (shutting_down_) return true;
        for (const auto& [id, info] : runs_) {
          if (info.state == RunState::kQueued || info.state == RunState::kRunning) return true;
        }
        return false;
      };
      if (!ready()) wake_.WaitWithTimeout(&mu_, absl::Seconds(1));
      if (!ready()) continue;  // time to look at the schedules again
      if (shutting_down_) return;
      // An interrupted run first, then the queue in submission order.
      const RunInfo* pick = nullptr;
      for (const auto& [id, info] : runs_) {
        const bool candidate = info.state == RunState::kQueued || info.state == RunState::kRunning;
        if (!candidate) continue;
        if (pick == nullptr ||
            (info.state == RunState::kRunning) > (pick->state == RunState::kRunning) ||
            ((info.state == RunState::kRunning) == (pick->state == RunState::kRunning) &&
             info.seq < pick->seq)) {
          pick = &info;
        }
      }
      next = pick->id;
    }
    Train(next);
  }
}

void RunQueue::Train(const std::string& id) {
  bool resumed = false;
  Update(id, [&](RunInfo& info) {
    resumed = info.state == RunState::kRunning;
    info.state = RunState::kRunning;
    if (info.started == absl::InfinitePast()) info.started = absl::Now();
  });
  const std::string dir = RunDir(id);
  auto fail = [&](const absl::Status& why) {
    Log(id, absl::StrCat("failed: ", why.message()));
    spdlog::error("run '{}' failed: {}", id, std::string(why.message()));
    Update(id, [&](RunInfo& info) {
      info.state = RunState::kFailed;
      info.finished = absl::Now();
      info.message = std::string(why.message());
    });
  };
  Log(id, resumed ? "resuming after a server restart" : "started");
  absl::StatusOr<std::string> config = ReadFile(dir + "/config.json", options_.max_config_bytes);
  if (!config.ok()) return fail(config.status());
  absl::StatusOr<PreparedRun> prepared =
      options_.prepare(*config, absl::StrCat("run ", id, "'s config.json"), id, dir);
  if (!prepared.ok()) return fail(prepared.status());
  Progress progress(this, id);
  FederationServerOptions options = prepared->options;
  options.host = host_;
  options.output_dir = dir;
  options.fresh = false;
  options.observers.insert(options.observers.begin(), &progress);
  for (const auto& observer : prepared->observers) options.observers.push_back(observer.get());
  absl::StatusOr<std::unique_ptr<FederationServer>> server = FederationServer::Create(
      std::move(options), prepared->strategy.get(), std::move(prepared->initial));
  if (!server.ok()) return fail(server.status());
  {
    absl::MutexLock lock(&mu_);
    training_ = server->get();
    if (shutting_down_ || runs_[id].cancel_requested) training_->Stop();
  }
  absl::StatusOr<FederationRun> run = (*server)->Run();
  bool shutting_down = false;
  bool cancelled = false;
  {
    absl::MutexLock lock(&mu_);
    training_ = nullptr;
    shutting_down = shutting_down_;
    cancelled = runs_[id].cancel_requested;
  }
  if (prepared->finish) {
    absl::Status finished = prepared->finish();
    if (!finished.ok()) {
      spdlog::warn("run '{}': {}", id, std::string(finished.message()));
    }
  }
  server->reset();
  if (!run.ok()) return fail(run.status());
  const uint32_t last = run->history.empty() ? 0 : run->history.back().round;
  if (run->stopped && cancelled) {
    Log(id, absl::StrCat("cancelled after round ", last));
    Update(id, [&](RunInfo& info) {
      info.state = RunState::kCancelled;
      info.finished = absl::Now();
      info.message = absl::StrCat("cancelled after round ", last);
    });
    return;
  }
  if (run->stopped && shutting_down) {
    Log(id, absl::StrCat("interrupted after round ", last,
                         " by the server's shutdown; it resumes when the server starts again"));
    return;
  }
  Log(id, run->stop_reason.empty() ? absl::StrCat("done: ", last, " rounds")
                                   : absl::StrCat("done after round ", last, ": ", run->stop_reason));
  Update(id, [&](RunInfo& info) {
    info.state = RunState::kDone;
    info.finished = absl::Now();
    info.message = run->stop_reason;
    info.rounds_done = last;
    if (run->final_model) info.final_version = run->final_model->version;
  });
  spdlog::info("run '{}' done after round {}", id, last);
}

}  // namespace shoal
