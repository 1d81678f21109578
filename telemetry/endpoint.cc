#include "telemetry/endpoint.h"

#include <httplib.h>
#include <openssl/crypto.h>

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

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
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
  if (!IsLoopback(where.host)) {
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
  server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  // Nothing here takes a body: refuse one before reading it.
  server.set_payload_max_length(1024);
  Endpoint* raw = self.get();
  server.set_pre_routing_handler([raw](const httplib::Request& req, httplib::Response& res) {
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
  server.Get("/metrics", [raw](const httplib::Request&, httplib::Response& res) {
    res.set_content(raw->Exposition(), "text/plain; version=0.0.4; charset=utf-8");
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
  // An exact path: escape what a regular expression would read.
  std::string pattern;
  for (char c : path) {
    if (std::string("\\^$.|?*+()[]{}").find(c) != std::string::npos) pattern += '\\';
    pattern += c;
  }
  server_->Get(pattern, [handler = std::move(handler)](const httplib::Request&,
                                                       httplib::Response& res) {
    EndpointResponse answer = handler();
    res.status = answer.status;
    res.set_content(answer.body, answer.content_type.c_str());
  });
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
