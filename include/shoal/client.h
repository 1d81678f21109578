// shoal/client.h: a federated client, in-process or on a device.
//
// Trainer (TrainerOptions: device, seed, task, and the device's caps:
//   time_budget, memory_budget_bytes; Trainer::Create, InvalidArgument for a
//   bad device or cap): local training and evaluation of a Model.
// LocalClient(model, trainer, train, holdout): what a client does in a round
//   (load the global weights, fine-tune, report the update, evaluate on its
//   held-out data), with no transport. Owns its model and data; one round at
//   a time (not thread-safe).
// Agent(AgentOptions, LocalClient*): the device runtime over gRPC: joins the
//   server at options.server_address (TLS or plaintext), polls for tasks,
//   trains through the LocalClient, keeps the newest model in state_dir, and
//   leaves when the run ends. Does not own the LocalClient, which must
//   outlive it. Run() blocks until the run ends; errors: Unavailable when the
//   server cannot be reached for the configured time, FailedPrecondition for
//   a model that does not verify, InvalidArgument for bad options.
// SetComputeThreads(n): LibTorch and OpenBLAS threads of this process.
// MayTrainCommand(cmd) / PauseWhileFileExists(path): a may-train check for
//   AgentOptions::may_train (and DeviceOptions) from a shell command's exit
//   status or a pause file; a "no" declines the round with a reason.
//
// Example (a plaintext client on loopback):
//   shoal::AgentOptions options;
//   options.server_address = "127.0.0.1:" + std::to_string(port);
//   options.client_id = "client-0";
//   options.state_dir = "/tmp/client-0";
//   shoal::Agent agent(options, &local);
//   SHOAL_RETURN_IF_ERROR(agent.Run());
#ifndef SHOAL_CLIENT_H_
#define SHOAL_CLIENT_H_

#include "client/agent.h"
#include "client/local_client.h"
#include "client/may_train.h"
#include "client/trainer.h"
#include "shoal/data.h"
#include "shoal/model.h"

namespace shoal {

using client::Agent;
using client::AgentOptions;
using client::AgentStats;
using client::LocalClient;
using client::MayTrainCommand;
using client::PauseWhileFileExists;
using client::SetComputeThreads;
using client::Trainer;
using client::TrainerOptions;

}  // namespace shoal

#endif  // SHOAL_CLIENT_H_
