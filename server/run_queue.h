// RunQueue: the runs of a long-running federation (`shoal serve`,
// docs/lifecycle.md). Runs are submitted as config text, kept on disk, and
// trained one at a time, in submission order, over one FederationHost, so
// the same enrolled devices take part in each. A run keeps its own folder
// (config, models, checkpoint, metrics, log), survives a restart of the
// server (a run that was training resumes from its checkpoint before the
// queued ones start), and is cancelled without touching the others.
//
// What a config means (model, strategy, data) is the caller's business: the
// queue gets a RunPreparer that turns config text into a strategy, an
// initial model and FederationServer options, so this room stays free of
// the client room.
//
// On disk, under RunQueueOptions::dir:
//   runs/<id>/config.json   the submitted config, as submitted
//   runs/<id>/run.json      the run's state (RunInfo), rewritten at each change
//   runs/<id>/log.txt       one line per event and round
//   runs/<id>/models/, checkpoint/, metrics.*   as `shoal server` writes them
//   schedules/<id>/config.json, schedule.json   a config submitted again and again
#ifndef SHOAL_SERVER_RUN_QUEUE_H_
#define SHOAL_SERVER_RUN_QUEUE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics.h"
#include "common/parameters.h"
#include "server/federation_server.h"
#include "strategies/strategy.h"

namespace shoal {

enum class RunState { kQueued, kRunning, kDone, kFailed, kCancelled };
const char* RunStateName(RunState state);

// RunInfo: what the queue knows of one run.
struct RunInfo {
  std::string id;    // "<name>-<seq>"
  std::string name;  // the config's name
  int64_t seq = 0;   // submission number, from 1
  RunState state = RunState::kQueued;
  absl::Time submitted = absl::InfinitePast();
  absl::Time started = absl::InfinitePast();   // InfinitePast: not yet
  absl::Time finished = absl::InfinitePast();  // InfinitePast: not yet
  uint32_t rounds_done = 0;
  uint32_t rounds_planned = 0;
  std::string strategy;
  // Why it failed, was cancelled or stopped early; empty otherwise.
  std::string message;
  bool cancel_requested = false;
  int64_t final_version = -1;  // the newest training version (-1: none)
  Metrics metrics;             // the last round's server evaluation
  bool over() const {
    return state == RunState::kDone || state == RunState::kFailed ||
           state == RunState::kCancelled;
  }
};

// ScheduleInfo: a config that is submitted again and again: every `every`,
// and/or when the enrolled devices declare at least `new_examples` more
// training examples than when it last submitted (a device declares its
// count each time it joins, so new data on the devices is seen at their
// next join). A schedule never has two of its runs waiting or training at
// once.
struct ScheduleInfo {
  std::string id;    // "schedule-<name>-<seq>"
  std::string name;  // the config's name
  int64_t seq = 0;
  absl::Duration every = absl::ZeroDuration();  // zero: not by time
  int64_t new_examples = 0;                     // 0: not by data
  absl::Time created = absl::InfinitePast();
  absl::Time last_submitted = absl::InfinitePast();
  // Each device's declared training examples when it last submitted (or,
  // before its first run, when the queue first saw it: only data that
  // arrives after a schedule is made counts).
  std::map<std::string, int64_t> examples_at_last;
  bool has_baseline = false;
  std::vector<std::string> runs;  // the runs it submitted, oldest first
};

// NewExamples counts the training examples `declared` (by device) holds
// beyond `at_last`: a device's growth, a new device's whole count; a device
// that shrank or left counts 0.
int64_t NewExamples(const std::map<std::string, int64_t>& declared,
                    const std::map<std::string, int64_t>& at_last);

// PreparedRun: a run ready to train.
struct PreparedRun {
  std::unique_ptr<Strategy> strategy;
  Parameters initial;
  // name, model_spec, coordinator, signer and fingerprint_config; the queue
  // sets host, output_dir and fresh (false: a restarted run resumes).
  FederationServerOptions options;
  // Owned observers (progress, metrics files, auto-promotion), told about
  // every round after the queue's own.
  std::vector<std::unique_ptr<RoundObserver>> observers;
  // Called after the run, whatever its end (e.g. write the metrics files).
  std::function<absl::Status()> finish;
  // Anything the observers refer to (e.g. the parsed config), kept alive
  // until the run is over.
  std::shared_ptr<const void> context;
};

// RunPreparer builds the run `id` from `config` in folder `dir`. It is
// called at Submit (to refuse a bad config before queueing it: the run is
// then dropped) and again when the run starts. Errors are the user's:
// InvalidArgument naming the key.
using RunPreparer = std::function<absl::StatusOr<PreparedRun>(
    const std::string& config, const std::string& source, const std::string& id,
    const std::string& dir)>;

struct RunQueueOptions {
  std::string dir;                  // runs/ goes under it; created if missing
  RunPreparer prepare;
  size_t max_config_bytes = size_t{1} << 20;
  size_t max_queued = 100;          // queued runs at once
};

// RunQueue is thread-safe.
class RunQueue {
 public:
  // Open reads the runs kept in options.dir. A run recorded as running was
  // interrupted (the server was killed or stopped): it trains first again,
  // resuming from its checkpoint. A run folder whose run.json cannot be
  // read is skipped with a warning and left as it is.
  static absl::StatusOr<std::unique_ptr<RunQueue>> Open(RunQueueOptions options);
  ~RunQueue();  // Shutdown()

  // Start starts training queued runs, one at a time, over `host` (not
  // owned; it must outlive the queue's Shutdown), on a thread of its own.
  void Start(FederationHost* host);
  // Shutdown stops the run in progress after its round (it stays
  // "running" on disk and resumes at the next Open) and the worker.
  void Shutdown();

  // Submit checks `config` (bounded, prepared once) and queues it.
  // InvalidArgument, naming the key and `source`, for a bad config;
  // ResourceExhausted when max_queued runs wait already.
  absl::StatusOr<RunInfo> Submit(const std::string& config, const std::string& source);
  // Cancel cancels a queued run at once, a running one after the round in
  // progress (cancel_requested until then). NotFound for an unknown run,
  // FailedPrecondition for one that is over.
  absl::StatusOr<RunInfo> Cancel(const std::string& id);
  std::vector<RunInfo> List() const;  // in submission order
  absl::StatusOr<RunInfo> Get(const std::string& id) const;
  // Logs returns the last `tail` lines of the run's log.
  absl::StatusOr<std::vector<std::string>> Logs(const std::string& id, size_t tail) const;
  // AddSchedule checks `config` as Submit does and keeps a schedule of it
  // (ScheduleInfo). One by time submits its first run at once.
  // InvalidArgument for a bad config or neither trigger set.
  absl::StatusOr<ScheduleInfo> AddSchedule(const std::string& config, const std::string& source,
                                           absl::Duration every, int64_t new_examples);
  // CancelSchedule ends a schedule (its runs are left as they are).
  // NotFound for an unknown schedule.
  absl::StatusOr<ScheduleInfo> CancelSchedule(const std::string& id);
  std::vector<ScheduleInfo> Schedules() const;  // in creation order
  // SubmitDue submits a run of every schedule that is due at `now`, given
  // each enrolled device's declared training examples; returns their IDs.
  // The worker calls it about once a second.
  std::vector<std::string> SubmitDue(absl::Time now,
                                     const std::map<std::string, int64_t>& declared);

  // ModelsDir is the run's model store folder (to promote from). NotFound
  // for an unknown run.
  absl::StatusOr<std::string> ModelsDir(const std::string& id) const;

  // WaitFor blocks until `done(run)` holds for run `id` or `timeout`
  // passes; returns the run's info then. For tests and tools.
  absl::StatusOr<RunInfo> WaitFor(const std::string& id,
                                  const std::function<bool(const RunInfo&)>& done,
                                  absl::Duration timeout) const;

 private:
  class Progress;
  explicit RunQueue(RunQueueOptions options) : options_(std::move(options)) {}
  std::string RunDir(const std::string& id) const;
  std::string ScheduleDir(const std::string& id) const;
  void Work();
  // Train runs `id` to its end; the info is updated as it goes.
  void Train(const std::string& id);
  // Save writes run.json (under mu_, so writes are in order); Log appends
  // a line to log.txt.
  void Save(const RunInfo& info) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SaveSchedule(const ScheduleInfo& info) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Check bounds and prepares `config` once (Submit, AddSchedule); returns
  // the config's name and what the run plans.
  absl::StatusOr<RunInfo> Check(const std::string& config, const std::string& source);
  // Queue queues a checked run.
  absl::StatusOr<RunInfo> Queue(RunInfo info, const std::string& config,
                                const std::string& source) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Log(const std::string& id, const std::string& line) const;
  // Update applies `change` to run `id`'s info and saves it.
  void Update(const std::string& id, const std::function<void(RunInfo&)>& change);

  const RunQueueOptions options_;
  FederationHost* host_ = nullptr;  // set by Start, before the worker runs
  mutable absl::Mutex mu_;
  std::map<std::string, RunInfo> runs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ScheduleInfo> schedules_ ABSL_GUARDED_BY(mu_);
  int64_t next_schedule_seq_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar wake_;  // a run was queued, or shutting down
  FederationServer* training_ ABSL_GUARDED_BY(mu_) = nullptr;
  mutable absl::Mutex log_mu_;
  std::thread worker_;
};

// ScheduleToJson / ScheduleFromJson: schedule.json.
nlohmann::json ScheduleToJson(const ScheduleInfo& info);
absl::StatusOr<ScheduleInfo> ScheduleFromJson(const nlohmann::json& j, const std::string& source);

// RunInfoToJson / RunInfoFromJson: run.json. RunInfoFromJson: DataLoss
// naming `source` for a file that does not hold a run.
nlohmann::json RunInfoToJson(const RunInfo& info);
absl::StatusOr<RunInfo> RunInfoFromJson(const nlohmann::json& j, const std::string& source);

// RunIdFor makes a run ID of a config's name and a submission number:
// characters a run ID does not take become '-', and the name is cut to 64.
std::string RunIdFor(const std::string& name, int64_t seq);

}  // namespace shoal

#endif  // SHOAL_SERVER_RUN_QUEUE_H_
