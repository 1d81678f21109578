#include "fuzz/secagg_session.h"

#include <cstdlib>

#include "secagg/wire.h"

namespace shoal::fuzz {

SecAggSession::SecAggSession() {
  secagg::SecAggServerConfig config;
  config.session_id = kSecAggSessionId;
  for (uint32_t u = 1; u <= kSecAggClients; ++u) {
    std::vector<uint32_t> others;
    for (uint32_t v = 1; v <= kSecAggClients; ++v) {
      if (v != u) others.push_back(v);
    }
    config.neighbours.push_back(others);
  }
  config.threshold = kSecAggThreshold;
  config.vector_length = kSecAggLength;
  config.modulus = kSecAggModulus;
  config.encoding.set_clip(1);
  config.encoding.set_bits(16);
  config.encoding.set_max_weight(100);
  absl::StatusOr<std::unique_ptr<secagg::SecAggServer>> server =
      secagg::SecAggServer::Create(std::move(config));
  if (!server.ok()) std::abort();  // a bug in this file, not a finding
  server_ = *std::move(server);
  clients_.resize(kSecAggClients + 1);
  inputs_.resize(kSecAggClients + 1);
  for (uint32_t u = 1; u <= kSecAggClients; ++u) {
    clients_[u] = std::make_unique<secagg::SecAggClient>();
    for (uint64_t i = 0; i < kSecAggLength; ++i) inputs_[u].push_back(u * 1000 + i);
  }
}

absl::Status SecAggSession::Run(const ToClient& to_client, const FromClient& from_client) {
  absl::Status last;
  for (int stage = 0; !server_->finished(); ++stage) {
    for (uint32_t u : server_->Expected()) {
      absl::StatusOr<v1::SecAggServerMessage> message = server_->MessageFor(u);
      if (!message.ok()) std::abort();
      secagg::SecAggClient& client = *clients_[u];
      if (client.NeedsInput() && message->stage_case() == v1::SecAggServerMessage::kShares) {
        (void)client.SetInput(inputs_[u]);
      }
      to_client(u, stage, client, *message);
      absl::StatusOr<v1::SecAggClientMessage> reply = client.Handle(*message);
      if (!reply.ok()) continue;  // the client gave up: it drops out
      if (from_client(u, stage, *reply)) (void)server_->Receive(u, *reply);
    }
    last = server_->Advance();
  }
  return last;
}

std::vector<uint64_t> SecAggSession::PlainSum() const {
  std::vector<uint64_t> sum(kSecAggLength, 0);
  for (uint32_t u : server_->summed_clients()) {
    secagg::AddInto(sum, inputs_[u], kSecAggModulus);
  }
  return sum;
}

}  // namespace shoal::fuzz
