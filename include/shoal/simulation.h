// shoal/simulation.h: an experiment run with virtual clients in this
// process, by the same round engine and strategies as a real server, writing
// the same outputs (models/, metrics.json, metrics.csv, clients.csv).
//
// Simulation::Create(config) loads the data and builds the population, data
// plan, strategy and model (InvalidArgument for a config the data cannot
// satisfy); Run() runs the rounds (call once); Stop() from any thread ends
// the run after the round in progress. RunSimulation(config) is Create and
// Run. Runs are bit-identical for any number of workers.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(shoal::ExperimentConfig config,
//                          shoal::LoadExperimentConfig("sim.json"));
//   SHOAL_ASSIGN_OR_RETURN(shoal::SimulationResult result,
//                          shoal::RunSimulation(config));
#ifndef SHOAL_SIMULATION_H_
#define SHOAL_SIMULATION_H_

#include "experiment/simulation_run.h"
#include "shoal/config.h"

#endif  // SHOAL_SIMULATION_H_
