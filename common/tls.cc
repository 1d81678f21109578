#include "common/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/security/server_credentials.h>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/openssl_util.h"
#include "common/pki.h"
#include "common/status.h"

namespace shoal {
namespace {

using openssl::MemoryBio;
using openssl::X509Ptr;

// KeyError is why OpenSSL could not read a private key.
std::string KeyError() {
  std::string errors = openssl::DrainErrors();
  return errors.empty() ? "no detail" : errors;
}

absl::StatusOr<std::string> ReadPem(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat(
        "cannot read ", path, ": ", text.status().message(),
        " (create a deployment's certificates with `shoal certs init`)"));
  }
  return text;
}

// ReadCertificates parses every certificate in a PEM file (a chain, or
// several CAs); the first is the leaf.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(const std::string& pem,
                                                       const std::string& path) {
  std::vector<X509Ptr> certs;
  auto bio = MemoryBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(x);
  }
  ERR_clear_error();  // the end of the file reads as an error
  if (certs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " holds no PEM certificate"));
  }
  return certs;
}

std::string CommonName(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return "";
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<size_t>(ASN1_STRING_length(data)));
}

absl::StatusOr<TlsMaterial> LoadTls(const std::string& dir, const std::string& role) {
  const std::string ca_path = dir + "/ca.pem";
  const std::string cert_path = absl::StrCat(dir, "/", role, ".pem");
  const std::string key_path = absl::StrCat(dir, "/", role, ".key");
  TlsMaterial tls;
  SHOAL_ASSIGN_OR_RETURN(tls.ca_pem, ReadPem(ca_path));
  SHOAL_ASSIGN_OR_RETURN(tls.cert_pem, ReadPem(cert_path));
  SHOAL_ASSIGN_OR_RETURN(tls.key_pem, ReadPem(key_path));

  SHOAL_ASSIGN_OR_RETURN(std::vector<X509Ptr> cas, ParseCertificates(tls.ca_pem, ca_path));
  SHOAL_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseCertificates(tls.cert_pem, cert_path));
  auto key_bio = MemoryBio(tls.key_pem);
  openssl::PkeyPtr key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        key_path, " holds no unencrypted PEM private key (", KeyError(), ")"));
  }
  X509* leaf = chain.front().get();
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        key_path, " is not the private key of the certificate in ", cert_path));
  }

  openssl::X509StorePtr store(X509_STORE_new());
  for (const X509Ptr& ca : cas) X509_STORE_add_cert(store.get(), ca.get());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted, chain[i].get());
  openssl::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted);
  const int verified = X509_verify_cert(ctx.get());
  const int error = X509_STORE_CTX_get_error(ctx.get());
  sk_X509_free(untrusted);
  ERR_clear_error();
  if (verified != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the certificate in ", cert_path, " does not verify against ", ca_path, ": ",
        X509_verify_cert_error_string(error)));
  }
  tls.common_name = CommonName(leaf);
  return tls;
}

}  // namespace

bool HasAdminRole(const std::string& cert_pem) {
  auto bio = MemoryBio(cert_pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (cert == nullptr) return false;
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (int i = X509_NAME_get_index_by_NID(name, NID_organizationalUnitName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(name, NID_organizationalUnitName, i)) {
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    const std::string unit(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                           static_cast<size_t>(ASN1_STRING_length(data)));
    if (unit == kAdminUnit) return true;
  }
  return false;
}

absl::StatusOr<TlsMaterial> LoadServerTls(const std::string& dir) {
  return LoadTls(dir, "server");
}

absl::StatusOr<TlsMaterial> LoadClientTls(const std::string& dir) {
  return LoadTls(dir, "client");
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsMaterial* tls) {
  if (tls == nullptr) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls->ca_pem;
  options.pem_key_cert_pairs.push_back({tls->key_pem, tls->cert_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsMaterial* tls) {
  if (tls == nullptr) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls->ca_pem;
  options.pem_private_key = tls->key_pem;
  options.pem_cert_chain = tls->cert_pem;
  return grpc::SslCredentials(options);
}

grpc::ChannelArguments DeviceChannelArguments() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return args;
}

}  // namespace shoal
