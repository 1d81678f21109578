// The metrics endpoint (telemetry/endpoint.h) over real HTTP on 127.0.0.1:
// what it serves, and what it refuses: writes, unknown paths, a missing or
// wrong token, and an address off loopback without TLS and a token.
#include "telemetry/endpoint.h"

#include <httplib.h>

#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "telemetry/process_metrics.h"

namespace shoal::telemetry {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Endpoint> MustStart(const EndpointOptions& options,
                                    std::shared_ptr<prometheus::Registry> registry) {
  absl::StatusOr<std::unique_ptr<Endpoint>> endpoint =
      Endpoint::Start(options, {registry, ProcessMetrics()});
  EXPECT_TRUE(endpoint.ok()) << endpoint.status();
  return endpoint.ok() ? *std::move(endpoint) : nullptr;
}

TEST(EndpointTest, ServesTheRegistryAndTheProcessInTextFormat) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("shoal_test_events_total").Help("x").Register(*registry).Add({})
      .Increment(3);
  EndpointOptions options;
  options.address = "127.0.0.1:0";
  std::unique_ptr<Endpoint> endpoint = MustStart(options, registry);
  ASSERT_NE(endpoint, nullptr);
  ASSERT_GT(endpoint->port(), 0);
  httplib::Client client("127.0.0.1", endpoint->port());
  httplib::Result res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("version=0.0.4"));
  EXPECT_THAT(res->body, HasSubstr("# TYPE shoal_test_events_total counter\nshoal_test_events_total 3"));
  EXPECT_THAT(res->body, HasSubstr("shoal_process_resident_memory_bytes "));
  EXPECT_THAT(res->body, HasSubstr("shoal_process_cpu_seconds_total "));
  endpoint->Handle("/hello.txt", [] { return EndpointResponse{200, "text/plain", "hi"}; });
  httplib::Result hello = client.Get("/hello.txt");
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->body, "hi");
}

TEST(EndpointTest, WritesUnknownPathsAndBadTokensAreRefused) {
  EndpointOptions options;
  options.address = "127.0.0.1:0";
  options.bearer_token = "0123456789abcdef0123";
  std::unique_ptr<Endpoint> endpoint =
      MustStart(options, std::make_shared<prometheus::Registry>());
  ASSERT_NE(endpoint, nullptr);
  httplib::Client client("127.0.0.1", endpoint->port());
  httplib::Result none = client.Get("/metrics");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer");
  httplib::Result wrong = client.Get("/metrics", {{"Authorization", "Bearer 0123456789abcdef0124"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  const httplib::Headers good = {{"Authorization", "Bearer 0123456789abcdef0123"}};
  httplib::Result ok = client.Get("/metrics", good);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  // Without a token, only a loopback Host is answered (DNS rebinding).
  EndpointOptions open_options;
  open_options.address = "127.0.0.1:0";
  std::unique_ptr<Endpoint> open =
      MustStart(open_options, std::make_shared<prometheus::Registry>());
  ASSERT_NE(open, nullptr);
  httplib::Client local("127.0.0.1", open->port());
  httplib::Result rebound = local.Get("/metrics", {{"Host", "attacker.example:80"}});
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 403);
  httplib::Result named = local.Get("/metrics", {{"Host", "localhost:9464"}});
  ASSERT_TRUE(named);
  EXPECT_EQ(named->status, 200);
  EXPECT_EQ(named->get_header_value("X-Content-Type-Options"), "nosniff");
  httplib::Result unknown = client.Get("/admin", good);
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  for (const char* method : {"POST", "PUT", "DELETE"}) {
    httplib::Request req;
    req.method = method;
    req.path = "/metrics";
    req.headers = good;
    req.body = "x";
    httplib::Response res;
    httplib::Error error = httplib::Error::Success;
    ASSERT_TRUE(client.send(req, res, error)) << method << ": " << httplib::to_string(error);
    EXPECT_EQ(res.status, 405) << method;
    EXPECT_EQ(res.get_header_value("Allow"), "GET, HEAD") << method;
  }
}

TEST(EndpointTest, AnEndpointStoppedAtOnceStops) {
  EndpointOptions options;
  options.address = "127.0.0.1:0";
  for (int i = 0; i < 5; ++i) {
    std::unique_ptr<Endpoint> endpoint =
        MustStart(options, std::make_shared<prometheus::Registry>());
    ASSERT_NE(endpoint, nullptr);
    endpoint->Stop();  // returns: the test would hang otherwise
  }
}

TEST(EndpointTest, OffLoopbackNeedsTlsAndATokenAndBadAddressesAreRefused) {
  EndpointOptions options;
  options.address = "0.0.0.0:0";
  absl::StatusOr<std::unique_ptr<Endpoint>> open = Endpoint::Start(options, {});
  ASSERT_FALSE(open.ok());
  EXPECT_THAT(std::string(open.status().message()), HasSubstr("TLS"));
  options.bearer_token = "0123456789abcdef0123";
  options.tls_cert_file = "/nonexistent/server.pem";
  options.tls_key_file = "/nonexistent/server.key";
  absl::StatusOr<std::unique_ptr<Endpoint>> missing = Endpoint::Start(options, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/server.pem"));
  options = EndpointOptions{};
  options.address = "127.0.0.1:99999";
  EXPECT_FALSE(Endpoint::Start(options, {}).ok());
}

}  // namespace
}  // namespace shoal::telemetry
