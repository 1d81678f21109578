// AccessControl: who may call the server, and how much. Every RPC of the
// Federation service is admitted here before it touches any state:
//   - identity: under mutual TLS the caller's certificate names its client
//     ID (common name), and a request naming another ID is refused, so a
//     device cannot act for another;
//   - revocation: IDs listed in the deployment's revoked.txt are refused on
//     every call, re-read whenever the file changes, without a restart. The
//     list only shrinks when the file is replaced by a complete one (the
//     trailer `shoal certs revoke` writes, common/pki.h): a missing, emptied
//     or half-copied file keeps every revocation in force;
//   - limits: each client ID gets a token bucket of calls per second and a
//     cap on calls in flight at once, so one device (faulty or hostile)
//     cannot starve the others.
// Message sizes are capped by the gRPC server (kMaxRequestBytes) and, for
// uploads, by what the client's open task can legitimately hold.
#ifndef SHOAL_SERVER_ACCESS_CONTROL_H_
#define SHOAL_SERVER_ACCESS_CONTROL_H_

#include <grpcpp/security/auth_context.h>

#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace shoal {

struct AccessControlOptions {
  // Mutual TLS: the certificate's common name must equal the client ID a
  // request names. Off only for plaintext runs, which cannot authenticate.
  bool require_certificate = true;
  // One client ID per line ('#' comments); empty: nobody is revoked.
  std::string revoked_file;
  // Called, outside any lock of AccessControl, with the IDs the list gained
  // when it is (re)read, so the service can drop those clients and fail
  // their open tasks at once. May be empty.
  std::function<void(const std::vector<std::string>& newly_revoked)> on_revoked;
  // Per-client call rate: a bucket of `burst` calls refilled at
  // `calls_per_second`. A device's steady state is one long poll at a time
  // plus a few transfers per round, far below the defaults.
  double calls_per_second = 20;
  double burst = 60;
  // Calls one client may have in flight at once (a long poll, an upload, a
  // download, with room for a retry).
  int max_concurrent_calls = 6;
  // Time source for the rate limit and the revocation list's re-reads. Not
  // owned; tests hand in a FakeClock.
  Clock* clock = Clock::Real();
};

// Thread-safe.
class AccessControl {
 public:
  explicit AccessControl(AccessControlOptions options);

  // Ticket holds one of a client's in-flight call slots until destroyed.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(AccessControl* owner, std::string id) : owner_(owner), id_(std::move(id)) {}
    Ticket(Ticket&& other) noexcept : owner_(other.owner_), id_(std::move(other.id_)) {
      other.owner_ = nullptr;
    }
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket();

   private:
    AccessControl* owner_ = nullptr;
    std::string id_;
  };

  // Admit checks a call by `auth` that names `client_id`: Unauthenticated
  // without a certificate, PermissionDenied for a certificate of another
  // client or a revoked one, ResourceExhausted over the rate or the
  // in-flight cap. `client_id` must already be syntactically valid.
  absl::StatusOr<Ticket> Admit(const grpc::AuthContext& auth, const std::string& client_id);
  // Check is Admit for identity and revocation alone (no rate, no slot).
  absl::Status Authenticate(const grpc::AuthContext& auth, const std::string& client_id);

  bool IsRevoked(const std::string& client_id);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time refilled;
    int in_flight = 0;
  };
  void Release(const std::string& id);
  // ReloadRevoked re-reads revoked_file when it changed (inode, size or
  // modification time; looked at most once a second) and appends the IDs
  // the list gained to `*newly_revoked`. A complete file replaces the list;
  // an incomplete one only adds to it; a missing or unreadable one changes
  // nothing. Each such condition is logged once.
  void ReloadRevoked(std::vector<std::string>* newly_revoked)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ReportRevocationProblem logs `problem` unless it was the last one logged.
  void ReportRevocationProblem(const std::string& problem)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AccessControlOptions options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> revoked_ ABSL_GUARDED_BY(mu_);
  absl::Time revoked_checked_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // What the file was when last read: inode, size, mtime (-1: never read).
  std::tuple<int64_t, int64_t, int64_t> revoked_seen_ ABSL_GUARDED_BY(mu_) = {
      -1, -1, -1};
  std::string revoked_error_ ABSL_GUARDED_BY(mu_);
};

// kMaxRequestBytes caps any one message a client sends: a 1 MiB upload
// chunk with its header, or a secure-aggregation message.
inline constexpr int kMaxRequestBytes = 4 << 20;

}  // namespace shoal

#endif  // SHOAL_SERVER_ACCESS_CONTROL_H_
