// LocalEndpoint: the device's local prediction endpoint (issue 16). Other
// processes on the device (an app, a camera pipeline) call
// shoal.v1.LocalPredict/Predict and get the answer of the serving model,
// with the version that gave it, while the device trains and takes new
// versions. It listens on a Unix socket ("unix:/run/shoal/predict.sock") or
// on loopback ("127.0.0.1:PORT", "[::1]:PORT", "localhost:PORT"), never on
// another address: it has no authentication of its own, so reaching it is
// left to the socket's file permissions or to the device's own processes.
#ifndef SHOAL_CLIENT_LOCAL_ENDPOINT_H_
#define SHOAL_CLIENT_LOCAL_ENDPOINT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/serving_model.h"

namespace grpc {
class Server;
}

namespace shoal::client {

struct LocalEndpointOptions {
  // "unix:PATH" (an existing socket file there is replaced) or a loopback
  // "HOST:PORT" (PORT 0 picks one; read it with port()).
  std::string address;
  // The largest request accepted, and the most rows one request may ask
  // for; larger ones are refused, never truncated.
  int max_request_bytes = 4 << 20;
  int64_t max_rows = 1024;
};

// ValidateLocalAddress accepts a Unix socket or loopback address and
// refuses anything else, naming it (InvalidArgument).
absl::Status ValidateLocalAddress(const std::string& address);

// LocalEndpoint serves `serving` (not owned; it must outlive the endpoint)
// until it is destroyed. Thread-safe: gRPC's threads call Predict.
class LocalEndpoint {
 public:
  // Start listens and serves. InvalidArgument for a bad address or limits;
  // Unavailable when it cannot listen (a port in use, a folder that does
  // not exist or cannot be written).
  static absl::StatusOr<std::unique_ptr<LocalEndpoint>> Start(LocalEndpointOptions options,
                                                              const ServingModel* serving);
  ~LocalEndpoint();
  LocalEndpoint(const LocalEndpoint&) = delete;
  LocalEndpoint& operator=(const LocalEndpoint&) = delete;

  // port is the TCP port listened on (0 for a Unix socket).
  int port() const { return port_; }
  const std::string& address() const { return options_.address; }

 private:
  class Service;
  LocalEndpoint(LocalEndpointOptions options, std::unique_ptr<Service> service);
  LocalEndpointOptions options_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_LOCAL_ENDPOINT_H_
