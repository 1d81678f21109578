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

void AccessControl::ReportRevocationProblem(const std::string& problem) {
  if (problem == revoked_error_) return;
  spdlog::warn("{}", problem);
  revoked_error_ = problem;
}

void AccessControl::ReloadRevoked(std::vector<std::string>* newly_revoked) {
  if (options_.revoked_file.empty()) return;
  const absl::Time now = options_.clock->Now();
  if (now - revoked_checked_ < absl::Seconds(1)) return;
  revoked_checked_ = now;
  const std::string& path = options_.revoked_file;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    // Deleted, or moved away for an edit: not "nobody is revoked".
    revoked_seen_ = {0, 0, 0};
    ReportRevocationProblem(absl::StrCat(
        "revocation list ", path, " is missing: the ", revoked_.size(),
        " revocation(s) in force stay in force; restore the file (`shoal certs "
        "revoke` "
        "writes it)"));
    return;
  }
  // The inode changes with every atomic replacement; size and mtime catch
  // an edit in place, even two within the file system's clock tick.
  const std::tuple<int64_t, int64_t, int64_t> seen = {
      static_cast<int64_t>(st.st_ino), static_cast<int64_t>(st.st_size),
      int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
  if (seen == revoked_seen_) return;
  absl::StatusOr<RevocationList> list = ReadRevocationList(path);
  if (!list.ok()) {
    // Keep refusing whom we refused: a half-edited file must not let a
    // revoked device back in.
    ReportRevocationProblem(absl::StrCat(
        "revocation list not reloaded, the previous one stays in force: ",
        list.status().message()));
    return;
  }
  revoked_seen_ = seen;
  for (const std::string& id : list->ids) {
    if (!revoked_.contains(id)) newly_revoked->push_back(id);
  }
  if (list->complete) {
    revoked_error_.clear();
    if (list->ids != revoked_) {
      spdlog::info("revocation list {}: {} client(s) revoked", path,
                   list->ids.size());
    }
    revoked_ = std::move(list->ids);
    return;
  }
  // Incomplete (emptied, copied half-way, hand-edited without the
  // trailer): what it adds is applied at once, nothing is lifted.
  revoked_.insert(list->ids.begin(), list->ids.end());
  ReportRevocationProblem(
      absl::StrCat("revocation list ", path, " is not complete (",
                   list->incomplete_reason, "): its ", newly_revoked->size(),
                   " new ID(s) are revoked, but no revocation is lifted "
                   "until a complete list replaces it; ",
                   revoked_.size(), " client(s) revoked"));
}

bool AccessControl::IsRevoked(const std::string& client_id) {
  std::vector<std::string> newly_revoked;
  bool revoked = false;
  {
    absl::MutexLock lock(&mu_);
    ReloadRevoked(&newly_revoked);
    revoked = revoked_.contains(client_id);
  }
  if (!newly_revoked.empty() && options_.on_revoked)
    options_.on_revoked(newly_revoked);
  return revoked;
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
  const absl::Time now = options_.clock->Now();
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
