#include "server/access_control.h"

#include <sys/stat.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/pki.h"
#include "common/tls.h"

namespace shoal {
namespace {

// Buckets of clients idle this long are forgotten once the table is large;
// a returning client starts with a full bucket, which is what it would have.
constexpr absl::Duration kIdleBucket = absl::Minutes(5);
constexpr size_t kBucketsBeforeSweep = 100000;

}  // namespace

AccessControl::AccessControl(AccessControlOptions options) : options_(std::move(options)) {}

AccessControl::Ticket& AccessControl::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr) owner_->Release(id_);
    owner_ = other.owner_;
    id_ = std::move(other.id_);
    other.owner_ = nullptr;
  }
  return *this;
}

AccessControl::Ticket::~Ticket() {
  if (owner_ != nullptr) owner_->Release(id_);
}

void AccessControl::ReloadRevoked() {
  if (options_.revoked_file.empty()) return;
  const absl::Time now = options_.now();
  if (now - revoked_checked_ < absl::Seconds(1)) return;
  revoked_checked_ = now;
  struct stat st {};
  const int64_t mtime_ns =
      ::stat(options_.revoked_file.c_str(), &st) == 0
          ? int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec
          : 0;  // absent: nobody revoked
  if (mtime_ns == revoked_mtime_ns_) return;
  absl::StatusOr<absl::flat_hash_set<std::string>> revoked =
      ReadRevokedClients(options_.revoked_file);
  if (!revoked.ok()) {
    // Keep refusing whom we refused: a half-edited file must not let a
    // revoked device back in.
    const std::string error(revoked.status().message());
    if (error != revoked_error_) {
      spdlog::error("revocation list not reloaded, the previous one stays in force: {}", error);
      revoked_error_ = error;
    }
    return;
  }
  revoked_mtime_ns_ = mtime_ns;
  revoked_error_.clear();
  if (*revoked != revoked_) {
    spdlog::info("revocation list {}: {} client(s) revoked", options_.revoked_file,
                 revoked->size());
  }
  revoked_ = *std::move(revoked);
}

bool AccessControl::IsRevoked(const std::string& client_id) {
  absl::MutexLock lock(&mu_);
  ReloadRevoked();
  return revoked_.contains(client_id);
}

absl::Status AccessControl::Authenticate(const grpc::AuthContext& auth,
                                         const std::string& client_id) {
  if (options_.require_certificate) {
    const std::vector<grpc::string_ref> names = auth.FindPropertyValues(kAuthNameProperty);
    if (!auth.IsPeerAuthenticated() || names.empty()) {
      return absl::UnauthenticatedError(
          "no client certificate: this server admits devices by their certificate "
          "(mutual TLS); issue one with `shoal certs client`");
    }
    const std::string name(names.front().data(), names.front().size());
    if (name != client_id) {
      return absl::PermissionDeniedError(absl::StrCat(
          "the client certificate is for '", name, "', but the request names client '",
          client_id, "'"));
    }
  }
  if (IsRevoked(client_id)) {
    return absl::PermissionDeniedError(
        absl::StrCat("client '", client_id, "' is revoked"));
  }
  return absl::OkStatus();
}

absl::StatusOr<AccessControl::Ticket> AccessControl::Admit(const grpc::AuthContext& auth,
                                                           const std::string& client_id) {
  absl::Status authenticated = Authenticate(auth, client_id);
  if (!authenticated.ok()) return authenticated;
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.now();
  if (buckets_.size() > kBucketsBeforeSweep) {
    absl::erase_if(buckets_, [&](const auto& entry) {
      return entry.second.in_flight == 0 && now - entry.second.refilled > kIdleBucket;
    });
  }
  auto [it, inserted] = buckets_.try_emplace(client_id);
  Bucket& b = it->second;
  if (inserted) {
    b.tokens = options_.burst;
    b.refilled = now;
  }
  b.tokens = std::min(options_.burst,
                      b.tokens + options_.calls_per_second * absl::ToDoubleSeconds(now - b.refilled));
  b.refilled = now;
  if (b.in_flight >= options_.max_concurrent_calls) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "client '", client_id, "' already has ", b.in_flight,
        " calls in flight (the limit is ", options_.max_concurrent_calls, ")"));
  }
  if (b.tokens < 1) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "client '", client_id, "' exceeds ", options_.calls_per_second,
        " calls per second; slow down"));
  }
  b.tokens -= 1;
  ++b.in_flight;
  return Ticket(this, client_id);
}

void AccessControl::Release(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = buckets_.find(id);
  if (it != buckets_.end() && it->second.in_flight > 0) --it->second.in_flight;
}

}  // namespace shoal
