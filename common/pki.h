// A deployment's public-key infrastructure: the certificate authority, the
// server's TLS identity, one TLS identity per client, the model-signing key
// pair and the list of revoked client IDs. `shoal certs` is the command
// line over these functions; the server reads revoked.txt through
// ReadRevokedClients.
//
// Layout under a PKI folder DIR (keys 0600, everything else 0644):
//   DIR/ca/ca.pem, ca.key                 the CA; ca.key belongs offline
//   DIR/server/ca.pem, server.pem, server.key,
//              model-signing.key, model-signing.pub, revoked.txt
//                                         the server's --pki-dir
//   DIR/clients/ID/ca.pem, client.pem, client.key, model-signing.pub
//                                         one device's --pki-dir
//
// Key formats, which other rooms rely on: TLS keys are PEM PKCS#8
// ("PRIVATE KEY") ECDSA P-256 keys, certificates are PEM X.509 v3 signed
// with SHA-256; model-signing.key is a PEM PKCS#8 Ed25519 key and
// model-signing.pub its PEM SubjectPublicKeyInfo ("PUBLIC KEY").
//
// The functions are not safe to run concurrently on one DIR (two revokes at
// once can lose one); separate DIRs are independent.
#ifndef SHOAL_COMMON_PKI_H_
#define SHOAL_COMMON_PKI_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal {

// PkiOptions configures InitPki and IssueClient.
struct PkiOptions {
  // Subject alternative names of the server certificate: DNS names or IPv4 /
  // IPv6 literals. Clients must reach the server under one of them.
  std::vector<std::string> server_hosts = {"localhost", "127.0.0.1"};
  // Validity of server and client certificates, 1..3650. The CA gets 10
  // years; no leaf outlives it.
  int days = 365;
  // Overwrite existing files instead of refusing.
  bool force = false;
};

// InitPki creates the CA (self-signed, ECDSA P-256, 10 years), the server
// certificate (CN "shoal-server", serverAuth, SANs options.server_hosts)
// and the Ed25519 model-signing key pair, as laid out above, and an empty
// (complete) DIR/server/revoked.txt unless one exists (revocations are never
// dropped).
// Creates DIR if missing.
//
// Errors: InvalidArgument for bad options; AlreadyExists, before writing
// anything, when an output file exists and !options.force; Internal for
// OpenSSL or file-system failures.
absl::Status InitPki(const std::string& dir, const PkiOptions& options);

// IssueClient writes DIR/clients/ID/{ca.pem, client.pem, client.key,
// model-signing.pub}: a self-contained bundle to copy to the device. The
// certificate has CN = ID and extendedKeyUsage clientAuth and is signed by
// DIR/ca. options.server_hosts is ignored.
//
// Errors: InvalidArgument for a malformed ID (1-128 characters of
// [A-Za-z0-9._:-]) or bad days; FailedPrecondition for an ID listed in
// DIR/server/revoked.txt or a CA key that does not match its certificate;
// NotFound when DIR/ca or DIR/server/model-signing.pub is missing (the
// message says to run `shoal certs init`); AlreadyExists when the bundle
// exists and !options.force.
absl::Status IssueClient(const std::string& dir, const std::string& id,
                         const PkiOptions& options);

// kAdminUnit is the organizational unit (OU) of an admin certificate: the
// role a long-running server's admin service admits (docs/lifecycle.md).
// Only the CA's holder can issue one; a device certificate has no OU.
inline constexpr char kAdminUnit[] = "shoal-admin";

// IssueAdmin writes DIR/admins/ID/{ca.pem, client.pem, client.key}: the
// bundle of an administrator of `shoal serve` (the `--pki-dir` of `shoal
// run` and `shoal model`). The certificate has CN = ID, OU = kAdminUnit and
// extendedKeyUsage clientAuth, signed by DIR/ca. Errors as IssueClient's.
absl::Status IssueAdmin(const std::string& dir, const std::string& id,
                        const PkiOptions& options);

// IssueClients issues bundles for many IDs as IssueClient does, loading the
// CA once. Every check (IDs, duplicates, revocations, existing bundles)
// runs before the first bundle is written; `on_issued`, if set, is called
// with the count issued so far after each bundle. Errors as IssueClient's,
// plus InvalidArgument for an empty list or an ID given twice.
absl::Status IssueClients(const std::string& dir,
                          const std::vector<std::string>& ids,
                          const PkiOptions& options,
                          const std::function<void(size_t issued)>& on_issued);

// revoked.txt holds one client ID per line; blank lines and '#' comments
// (whole-line or after an ID) are ignored. `shoal certs revoke` ends it with
// a trailer line "# end: N ids" (N the number of distinct IDs), so a reader
// can tell a complete list from a missing, emptied or half-copied one: the
// server replaces its list only with a complete one, and otherwise keeps
// every revocation it had (server/access_control.h).

// RevokeClient adds ID to DIR/server/revoked.txt and seals it with a new
// trailer, replacing the file atomically (temporary file, fsync, rename);
// other lines and comments are kept. Revoking a revoked ID is OK (it only
// seals an unsealed list). The client's bundle is left where it is. Revokes
// running at once, in this or other processes, take turns on a lock, so
// none is lost.
//
// Errors: InvalidArgument for a malformed ID or a malformed revoked.txt;
// NotFound when DIR/server is missing; FailedPrecondition when revoked.txt
// is missing (the revocations it held would be lost; an empty file starts a
// new list).
absl::Status RevokeClient(const std::string& dir, const std::string& id);

// RevocationList: a revoked.txt as read.
struct RevocationList {
  absl::flat_hash_set<std::string> ids;
  // The file ends with the trailer "# end: N ids", and holds N IDs.
  bool complete = false;
  // Why it is not complete (for messages); empty when it is.
  std::string incomplete_reason;
};

// ReadRevocationList parses a revoked.txt and says whether it is complete.
// Its IDs are returned either way, a last line without its newline
// included (a copy cut short in an ID revokes a shorter ID, never fewer).
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(RevocationList list, ReadRevocationList(path));
//   if (list.complete) revoked = list.ids;  // may lift revocations
//   else revoked.insert(list.ids.begin(), list.ids.end());  // only adds
//
// Errors: NotFound for a missing file; InvalidArgument naming the file and
// line for a malformed ID; others from reading the file.
absl::StatusOr<RevocationList> ReadRevocationList(const std::string& path);

// ReadRevokedClients is ReadRevocationList's IDs, complete or not; a
// missing file is an empty set.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(auto revoked,
//                          ReadRevokedClients(pki_dir + "/revoked.txt"));
//   if (revoked.contains(peer_cn)) return PermissionDenied(...);
//
// Errors: InvalidArgument naming the file and line for a malformed ID.
absl::StatusOr<absl::flat_hash_set<std::string>> ReadRevokedClients(
    const std::string& path);

// RevocationTrailer returns the last line of a complete revoked.txt of
// `num_ids` IDs, with its newline: "# end: 3 ids\n".
std::string RevocationTrailer(size_t num_ids);

// ValidatePkiClientId accepts 1 to 128 characters of [A-Za-z0-9._:-], the
// IDs the server accepts, so every client ID can have a certificate.
absl::Status ValidatePkiClientId(const std::string& id);

}  // namespace shoal

#endif  // SHOAL_COMMON_PKI_H_
