// L2FedAvg: a strategy with a client half, both written outside Shoal.
// The server half is FedAvg that asks every client for the client
// algorithm "l2_fedavg" with param lambda; the client half, registered under
// the same name, adds lambda/2 * ||w||^2 to the local loss (weight decay as
// a loss term). Run the clients with this program's `client` command, which
// knows the client half; a standard `shoal client` refuses the round.
#ifndef SHOAL_EXAMPLES_CUSTOM_STRATEGY_L2_FEDAVG_H_
#define SHOAL_EXAMPLES_CUSTOM_STRATEGY_L2_FEDAVG_H_

#include "shoal/status.h"

// RegisterL2FedAvg makes the strategy "l2_fedavg" available to config files
// (parameter lambda, 0.001, in [0, 10], with FedAvg's) and its client half
// to the clients this program runs.
absl::Status RegisterL2FedAvg();

#endif  // SHOAL_EXAMPLES_CUSTOM_STRATEGY_L2_FEDAVG_H_
