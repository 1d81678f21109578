// Test helper for tests that run a FederationService over plaintext
// loopback gRPC (the tests of transport security are in tls_test.cc).
#ifndef SHOAL_TESTS_SERVICE_TESTING_H_
#define SHOAL_TESTS_SERVICE_TESTING_H_

#include <string>
#include <utility>

#include "absl/time/time.h"
#include "server/grpc_service.h"

namespace shoal::testing {

// PlaintextServiceOptions: no certificate names the caller, so the service
// admits each request by the client ID it claims, as `shoal server
// --insecure-plaintext` does.
inline FederationServiceOptions PlaintextServiceOptions(absl::Duration max_poll_wait,
                                                        std::string run_id) {
  FederationServiceOptions options;
  options.max_poll_wait = max_poll_wait;
  options.run_id = std::move(run_id);
  options.access.require_certificate = false;
  return options;
}

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_SERVICE_TESTING_H_
