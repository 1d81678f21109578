// Transport security: the TLS material of a server or a device, checked
// before gRPC sees it, and the gRPC credentials built from it.
//
// A deployment's PKI (`shoal certs`, common/pki.h) gives the server a
// directory with ca.pem, server.pem and server.key, and every device a
// bundle with ca.pem, client.pem and client.key. The server authenticates
// itself to devices and requires every device to present a certificate from
// the same CA (mutual TLS); the certificate's common name is the device's
// client ID. Plaintext exists only when asked for by name
// (`--insecure-plaintext`).
#ifndef SHOAL_COMMON_TLS_H_
#define SHOAL_COMMON_TLS_H_

#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"

namespace shoal {

// TlsMaterial: PEM text of the CA certificate(s) to trust, this side's
// certificate chain and its private key.
struct TlsMaterial {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  // The certificate's subject common name: the client ID of a device.
  std::string common_name;
};

// LoadServerTls reads DIR/ca.pem, DIR/server.pem and DIR/server.key;
// LoadClientTls reads DIR/ca.pem, DIR/client.pem and DIR/client.key. Both
// check that the files parse, that the key belongs to the certificate, that
// the certificate is within its validity period and was issued by the CA,
// and name the file at fault otherwise; gRPC's own errors on bad material
// surface only as failed handshakes.
absl::StatusOr<TlsMaterial> LoadServerTls(const std::string& dir);
absl::StatusOr<TlsMaterial> LoadClientTls(const std::string& dir);

// ServerCredentials: TLS that requires and verifies a client certificate
// from the CA (mutual TLS). InsecureServerCredentials() when `tls` is null.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsMaterial* tls);
// ChannelCredentials: TLS that verifies the server against the CA and
// presents this device's certificate. Insecure when `tls` is null.
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsMaterial* tls);

// DeviceChannelArguments are a device's channel settings: keepalive pings
// every 30 s (also without calls) that hold NAT mappings open and find dead
// links within 10 s, and gRPC's reconnect backoff kept at 0.2-2 s because
// the agent paces its own retries. The agent and the load bench's clients
// both use them, so the bench measures what devices do.
grpc::ChannelArguments DeviceChannelArguments();

// HasAdminRole tells whether the PEM certificate `cert_pem` (the peer's, as
// gRPC's "x509_pem_cert" property holds it after verifying it against the
// CA) carries the admin role: OU = kAdminUnit (common/pki.h). False for
// anything that does not parse.
bool HasAdminRole(const std::string& cert_pem);
// kPeerCertificateProperty holds the verified peer certificate (PEM).
inline constexpr char kPeerCertificateProperty[] = "x509_pem_cert";

// kAuthNameProperty is the auth-context property holding the peer
// certificate's common name.
inline constexpr char kAuthNameProperty[] = "x509_common_name";

}  // namespace shoal

#endif  // SHOAL_COMMON_TLS_H_
