// shoal/config.h: an experiment as one JSON file, the user's main interface.
//
// ExperimentConfig: every key of docs/configuration.md as typed options
//   (model, task, strategy, fit, rounds and sampling, data and partitions,
//   server, simulation); a value type.
// LoadExperimentConfig(path) / ParseExperimentConfig(text, source): unknown
//   keys, wrong types and out-of-range values are InvalidArgument naming the
//   key ("config.json: unknown key 'fit.lr' (known: ...)"); absent keys keep
//   their defaults.
// PrepareServerSide(config): the server half: the strategy (with
//   differential privacy and the test-set evaluation when configured), the
//   initial model and the canonical model spec. Reads the test split for
//   shapes and evaluation; errors name the key or the data file.
// ResolveModel(config, data): the config's model spec shaped by `data`.
// ProgressReporter(config, output_dir): a RoundObserver that prints one line
//   per round and keeps metrics.json and metrics.csv (Write()); add it to
//   FederationServerOptions::observers. Not owned by the server.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(shoal::ExperimentConfig config,
//                          shoal::LoadExperimentConfig("run.json"));
//   SHOAL_ASSIGN_OR_RETURN(shoal::ServerSide side,
//                          shoal::PrepareServerSide(config));
#ifndef SHOAL_CONFIG_H_
#define SHOAL_CONFIG_H_

#include "experiment/experiment_config.h"
#include "experiment/progress_reporter.h"
#include "shoal/data.h"
#include "shoal/model.h"
#include "shoal/status.h"

#endif  // SHOAL_CONFIG_H_
