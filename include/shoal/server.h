// shoal/server.h: an embeddable federation server.
//
// FederationServer::Create(FederationServerOptions, Strategy*, initial
// Parameters) resumes from (or refuses) the checkpoint in the output folder,
// opens the model store, starts the gRPC service and creates the round
// engine; Run() runs the rounds and drains the clients; Stop() (any thread)
// ends the run after the round in progress; port() is the port bound. Every
// option, ownership rule and failure code is documented on the class
// (server/federation_server.h). CoordinatorOptions (rounds, sampling,
// deadlines, target accuracy) and RoundRecord (one round's outcome) come
// with it.
//
// PrepareServerSide(config) (shoal/config.h) builds the strategy, initial
// model and test-set evaluator an experiment config describes.
//
// Example:
//   shoal::FederationServerOptions options;
//   options.address = "127.0.0.1:0";
//   options.output_dir = dir;
//   options.model_spec = shoal::ModelSpecToString(side.model);
//   options.coordinator = config.coordinator;
//   SHOAL_ASSIGN_OR_RETURN(auto server, shoal::FederationServer::Create(
//       options, side.strategy.get(), std::move(side.initial)));
//   ... clients connect to server->port() ...
//   SHOAL_ASSIGN_OR_RETURN(shoal::FederationRun run, server->Run());
#ifndef SHOAL_SERVER_H_
#define SHOAL_SERVER_H_

#include "server/coordinator.h"
#include "server/federation_server.h"
#include "shoal/strategy.h"

#endif  // SHOAL_SERVER_H_
