// Owning handles for OpenSSL objects and the one way Shoal turns OpenSSL's
// error queue into a Status. Every file that calls OpenSSL (the PKI, TLS
// checks, model signing, secure aggregation's crypto) uses these, so each
// object is freed on every path and every error carries OpenSSL's reasons.
#ifndef SHOAL_COMMON_OPENSSL_UTIL_H_
#define SHOAL_COMMON_OPENSSL_UTIL_H_

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace shoal::openssl {

// Deleter calls OpenSSL's free function for T; a unique_ptr with it frees
// the object on every path.
template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};

using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using KdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, Deleter<EVP_KDF_CTX, EVP_KDF_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME, GENERAL_NAME_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

// MemoryBio is a read-only BIO over `text`, which must outlive it.
BioPtr MemoryBio(absl::string_view text);

// DrainErrors empties this thread's OpenSSL error queue and returns the
// texts of its entries ("" when it was empty), so a failure's cause reaches
// the Status and stale entries never reach a later, unrelated one.
std::string DrainErrors();

// Error is a Status with `code` and `what`, followed by the drained
// OpenSSL errors when there are any.
absl::Status Error(absl::StatusCode code, absl::string_view what);

// InternalError is Error with kInternal: OpenSSL failed at something that
// does not depend on the input (allocating, generating, encoding).
absl::Status InternalError(absl::string_view what);

}  // namespace shoal::openssl

#endif  // SHOAL_COMMON_OPENSSL_UTIL_H_
