#include "telemetry/endpoint.h"

#include <httplib.h>
#include <openssl/crypto.h>

#include <chrono>
#include <mutex>
#include <sstream>
#include <utility>

#include <prometheus/text_serializer.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net_address.h"
#include "common/status.h"

namespace shoal::telemetry {
namespace {

// LoopbackHost: a Host header naming this machine ("127.0.0.1:9464",
// "localhost", "[::1]:9464").
bool LoopbackHost(const std::string& host_header) {
  std::string host = host_header;
  if (absl::StartsWith(host, "[")) {
    host = host.substr(1, host.find(']') == std::string::npos ? 0 : host.find(']') - 1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  return IsLoopbackHost(host);
}

// TokenMatches compares in constant time for a given length.
bool TokenMatches(const std::string& header, const std::string& token) {
  const std::string want = "Bearer " + token;
  return header.size() == want.size() &&
         CRYPTO_memcmp(header.data(), want.data(), want.size()) == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Endpoint>> Endpoint::Start(
    const EndpointOptions& options,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  SHOAL_ASSIGN_OR_RETURN(HostPort where, ParseListenAddress(options.address));
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (!IsLoopbackHost(where.host)) {
    if (!tls || options.bearer_token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the metrics endpoint listens on ", where.host,
          ", off loopback: it needs TLS (a certificate and key) and a bearer token, or a "
          "loopback address"));
    }
  }
  if (tls && (options.tls_cert_file.empty() || options.tls_key_file.empty())) {
    return absl::InvalidArgumentError("TLS for the metrics endpoint needs both a certificate and a key");
  }
  std::unique_ptr<Endpoint> self(new Endpoint());
  self->collectables_ = std::move(collectables);
  self->token_ = options.bearer_token;
  self->host_ = where.host;
  self->tls_ = tls;
  if (tls) {
    self->server_ = std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(),
                                                         options.tls_key_file.c_str());
  } else {
    self->server_ = std::make_unique<httplib::Server>();
  }
  if (!self->server_->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the metrics endpoint cannot use the certificate ", options.tls_cert_file, " and key ",
        options.tls_key_file, " (unreadable, or not a matching PEM pair)"));
  }
  httplib::Server& server = *self->server_;
  // A connection serves one request and must send it within 2 s, so slow
  // or idle peers cannot hold the few workers a scrape and a dashboard need.
  server.new_task_queue = [] { return new httplib::ThreadPool(8); };
  server.set_keep_alive_max_count(1);
  server.set_read_timeout(2, 0);
  server.set_write_timeout(5, 0);
  // Nothing here takes a body: refuse one before reading it.
  server.set_payload_max_length(1024);
  server.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                              {"Content-Security-Policy",
                               "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"},
                              {"Cache-Control", "no-store"}});
  Endpoint* raw = self.get();
  server.set_pre_routing_handler([raw](const httplib::Request& req, httplib::Response& res) {
    if (raw->token_.empty() && !LoopbackHost(req.get_header_value("Host"))) {
      res.status = 403;
      res.set_content("this endpoint answers requests for a loopback host only\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!raw->token_.empty() && !TokenMatches(req.get_header_value("Authorization"), raw->token_)) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer");
      res.set_content("a bearer token is required\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != "GET" && req.method != "HEAD") {
      res.status = 405;
      res.set_header("Allow", "GET, HEAD");
      res.set_content("read-only: GET and HEAD only\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // One route for every GET: the table it reads may grow while serving.
  server.Get(".*", [raw](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/metrics") {
      res.set_content(raw->Exposition(), "text/plain; version=0.0.4; charset=utf-8");
      return;
    }
    std::function<EndpointResponse()> handler = raw->Route(req.path);
    if (handler == nullptr) {
      res.status = 404;
      res.set_content("not found\n", "text/plain");
      return;
    }
    EndpointResponse answer = handler();
    res.status = answer.status;
    res.set_content(answer.body, answer.content_type.c_str());
  });
  if (where.port == 0) {
    self->port_ = server.bind_to_any_port(where.host);
  } else if (server.bind_to_port(where.host, where.port)) {
    self->port_ = where.port;
  }
  if (self->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.address, " for the metrics endpoint"));
  }
  self->thread_ = std::thread([raw] { raw->server_->listen_after_bind(); });
  // httplib 0.11's stop() does nothing until the server runs: wait for it,
  // so that an endpoint stopped at once still stops.
  for (int i = 0; i < 5000 && !server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return self;
}

Endpoint::~Endpoint() { Stop(); }

void Endpoint::Stop() {
  if (server_ == nullptr) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string Endpoint::url() const {
  const std::string host = absl::StrContains(host_, ':') ? absl::StrCat("[", host_, "]") : host_;
  return absl::StrCat(tls_ ? "https://" : "http://", host, ":", port_);
}

void Endpoint::Handle(const std::string& path, std::function<EndpointResponse()> handler) {
  std::lock_guard<std::mutex> lock(routes_mu_);
  routes_[path] = std::move(handler);
}

std::function<EndpointResponse()> Endpoint::Route(const std::string& path) const {
  std::lock_guard<std::mutex> lock(routes_mu_);
  auto it = routes_.find(path);
  return it == routes_.end() ? nullptr : it->second;
}

std::string Endpoint::Exposition() const {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& c : collectables_) {
    std::vector<prometheus::MetricFamily> more = c->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace shoal::telemetry
