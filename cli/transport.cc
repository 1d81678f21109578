#include "cli/transport.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"

namespace shoal::cli {

absl::StatusOr<std::shared_ptr<const TlsMaterial>> LoadTransport(Side side,
                                                                 const std::string& pki_dir,
                                                                 bool insecure_plaintext) {
  const bool server = side == Side::kServer;
  if (insecure_plaintext) {
    spdlog::warn(server ? "PLAINTEXT: no TLS, no client authentication, models unsigned; "
                          "anyone who reaches this port can join (--insecure-plaintext)"
                        : "PLAINTEXT: no TLS, the server is not authenticated and models are "
                          "not verified (--insecure-plaintext)");
    return std::shared_ptr<const TlsMaterial>();
  }
  if (pki_dir.empty()) {
    return absl::InvalidArgumentError(
        server ? "no TLS material: pass --pki-dir DIR (create it with `shoal certs init --dir "
                 "PKI`, then use PKI/server), or --insecure-plaintext for an unencrypted, "
                 "unauthenticated run"
               : "no TLS material: pass --pki-dir DIR, this device's bundle from `shoal certs "
                 "client --dir PKI --id ID` (PKI/clients/ID), or --insecure-plaintext to talk "
                 "to a plaintext server");
  }
  absl::StatusOr<TlsMaterial> tls = server ? LoadServerTls(pki_dir) : LoadClientTls(pki_dir);
  if (!tls.ok()) return Annotate(tls.status(), "--pki-dir");
  return std::make_shared<const TlsMaterial>(*std::move(tls));
}

}  // namespace shoal::cli
