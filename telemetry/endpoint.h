// Endpoint: the HTTP side of a server, simulator or device: Prometheus
// metrics on /metrics (text exposition format 0.0.4) and whatever read-only
// pages the process adds (Handle). Served by cpp-httplib (Debian's
// libcpp-httplib-dev) on a small thread pool of its own.
//
// Read-only by construction: GET and HEAD only (405 otherwise, with no body
// read), unknown paths 404, one request per connection, 2 s to send one.
// On loopback it may run in plaintext without a token, and then answers
// only requests whose Host is a loopback name (403 otherwise: a web page
// that rebinds its own name to 127.0.0.1 cannot read it); anywhere else it
// requires TLS and a bearer token, and refuses to start without them. With
// a token, every request must carry "Authorization: Bearer TOKEN" (401
// otherwise; compared in constant time), the dashboard's page included, so
// a browser reaches a token-protected endpoint through an SSH tunnel or a
// proxy that adds the header.
#ifndef SHOAL_TELEMETRY_ENDPOINT_H_
#define SHOAL_TELEMETRY_ENDPOINT_H_

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/collectable.h>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

namespace shoal::telemetry {

struct EndpointOptions {
  // "host:port"; port 0 picks a free port (see Endpoint::port()).
  std::string address = "127.0.0.1:9464";
  // Required off loopback. Empty on loopback: no token asked.
  std::string bearer_token;
  // PEM files of the endpoint's certificate and key (a deployment's server
  // certificate serves); required off loopback.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// EndpointResponse: what a page handler answers.
struct EndpointResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Endpoint is thread-safe. Handlers run on the endpoint's threads.
class Endpoint {
 public:
  // Start binds `options.address` and serves /metrics from `collectables`
  // (each scraped in order; not owned beyond the shared pointers).
  // InvalidArgument for a bad address, or off loopback without TLS files or
  // a token; Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Endpoint>> Start(
      const EndpointOptions& options,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  ~Endpoint();  // Stop()
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  int port() const { return port_; }
  // The scheme and address to reach it: "http://127.0.0.1:9464".
  std::string url() const;

  // Handle serves GET `path` (exact match) with `handler`'s answer, from
  // now on (thread-safe: the routes are looked up under a lock).
  void Handle(const std::string& path, std::function<EndpointResponse()> handler);

  // Exposition is what /metrics answers now.
  std::string Exposition() const;

  void Stop();

 private:
  Endpoint() = default;
  // Route returns the handler of `path`, or null.
  std::function<EndpointResponse()> Route(const std::string& path) const;

  std::unique_ptr<httplib::Server> server_;
  mutable std::mutex routes_mu_;
  std::map<std::string, std::function<EndpointResponse()>> routes_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::string token_;
  std::string host_;
  bool tls_ = false;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace shoal::telemetry

#endif  // SHOAL_TELEMETRY_ENDPOINT_H_
