// AgentStats: what a device's agent has done (client/agent.h), kept apart
// so that the device façade (experiment/device.h) can give it without
// gRPC's headers.
#ifndef SHOAL_CLIENT_AGENT_STATS_H_
#define SHOAL_CLIENT_AGENT_STATS_H_

#include <cstdint>
#include <limits>

namespace shoal::client {

// AgentStats: what an agent has done, for logs, benchmarks and the
// device's metrics endpoint.
struct AgentStats {
  int64_t rounds = 0;  // training results uploaded
  int64_t bytes_downloaded = 0;
  int64_t bytes_uploaded = 0;
  int64_t reconnects = 0;
  // Tasks served, by kind, and those that failed; declined: training tasks
  // this device said no to (AgentOptions::may_train), not failures.
  int64_t fit_tasks = 0, fit_failed = 0, declined = 0;
  int64_t evaluate_tasks = 0, evaluate_failed = 0;
  int64_t secagg_tasks = 0, secagg_failed = 0;
  double train_seconds = 0;    // local training time, summed
  int64_t train_examples = 0;  // examples trained on, summed over rounds
  double last_train_loss = std::numeric_limits<double>::quiet_NaN();  // none yet: NaN
  int64_t model_version = -1;  // the training model held; -1: none yet
};

// Combined is `earlier` followed by `later` (two runs of one device): the
// counts added, the model version and loss the later's where it has them.
inline AgentStats Combined(const AgentStats& earlier, const AgentStats& later) {
  AgentStats s = later;
  s.rounds += earlier.rounds;
  s.bytes_downloaded += earlier.bytes_downloaded;
  s.bytes_uploaded += earlier.bytes_uploaded;
  s.reconnects += earlier.reconnects;
  s.fit_tasks += earlier.fit_tasks;
  s.fit_failed += earlier.fit_failed;
  s.declined += earlier.declined;
  s.evaluate_tasks += earlier.evaluate_tasks;
  s.evaluate_failed += earlier.evaluate_failed;
  s.secagg_tasks += earlier.secagg_tasks;
  s.secagg_failed += earlier.secagg_failed;
  s.train_seconds += earlier.train_seconds;
  s.train_examples += earlier.train_examples;
  if (later.last_train_loss != later.last_train_loss) s.last_train_loss = earlier.last_train_loss;
  if (later.model_version < 0) s.model_version = earlier.model_version;
  return s;
}

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_AGENT_STATS_H_
