#include "common/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/openssl_util.h"
#include "common/status.h"

namespace shoal {
namespace {

using openssl::BignumPtr;
using openssl::BioPtr;
using openssl::GeneralNamePtr;
using openssl::GeneralNamesPtr;
using openssl::PkeyPtr;
using openssl::X509ExtensionPtr;
using openssl::X509Ptr;

// Ten years and a leap day or three; a leaf's `days` is at most 3650, so
// with the clamp in BuildCertificate no leaf outlives its CA.
constexpr int kCaDays = 3653;
constexpr int kMaxLeafDays = 3650;
// Certificates start an hour in the past so a device whose clock is a
// little behind the machine that issued them still accepts them.
constexpr long kBackdateSeconds = 3600;
constexpr uint64_t kMaxPemBytes = 1 << 20;
constexpr uint64_t kMaxRevokedBytes = uint64_t{64} << 20;
constexpr absl::string_view kRevocationTrailerPrefix = "# end: ";

// IsRevocationTrailer tells whether `line` is a trailer "# end: N ids"
// (N decimal digits), as RevocationTrailer writes it.
absl::string_view TrailerCount(absl::string_view line) {
  if (!absl::ConsumePrefix(&line, kRevocationTrailerPrefix)) return {};
  if (!absl::ConsumeSuffix(&line, " ids") && !absl::ConsumeSuffix(&line, " id"))
    return {};
  if (line.empty() || line.size() > 18) return {};
  for (const char c : line) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return {};
  }
  return line;
}

bool IsRevocationTrailer(absl::string_view line) {
  return !TrailerCount(line).empty();
}

// FolderLock closes the folder's descriptor, and so lets go of its flock,
// on every path.
struct FolderLock {
  int fd;
  ~FolderLock() {
    if (fd >= 0) ::close(fd);
  }
};

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// --- Files ------------------------------------------------------------------

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// MakeDirectory creates one directory level with `mode`; an existing
// directory is kept as it is.
absl::Status MakeDirectory(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) return absl::OkStatus();
  struct stat st;
  if (errno == EEXIST && ::stat(path.c_str(), &st) == 0 &&
      S_ISDIR(st.st_mode)) {
    return absl::OkStatus();
  }
  return ErrnoError("cannot create directory", path);
}

// RequireAbsent checks every output before anything is written, so a
// refusal leaves the PKI as it was.
absl::Status RequireAbsent(const std::vector<std::string>& paths, bool force) {
  if (force) return absl::OkStatus();
  for (const std::string& path : paths) {
    if (Exists(path)) {
      return absl::AlreadyExistsError(
          absl::StrCat(path, " already exists: pass --force to overwrite it"));
    }
  }
  return absl::OkStatus();
}

// Whether a write is flushed before its rename. Client bundles are written
// in batches and flushed once at the end (SyncFileSystem): an fsync per
// file made 1,000 bundles take 14 s instead of 2.
enum class Flush { kEachFile, kLater };

// WriteFileWithMode replaces `path` with `contents` through a temporary
// file that is created 0600 and given `mode` before the first byte is
// written: a private key is never readable by others, whatever the umask.
// With Flush::kEachFile a crash leaves either the old file or the new one.
absl::Status WriteFileWithMode(const std::string& path,
                               absl::string_view contents, mode_t mode,
                               Flush flush) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  ::unlink(tmp.c_str());  // a leftover of a crashed run
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("cannot create", tmp);
  absl::Status status;
  if (::fchmod(fd, mode) != 0) status = ErrnoError("cannot chmod", tmp);
  for (size_t done = 0; status.ok() && done < contents.size();) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = ErrnoError("cannot write", tmp);
    } else {
      done += static_cast<size_t>(n);
    }
  }
  if (status.ok() && flush == Flush::kEachFile && ::fsync(fd) != 0) {
    status = ErrnoError("cannot flush", tmp);
  }
  if (::close(fd) != 0 && status.ok()) status = ErrnoError("cannot close", tmp);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoError("cannot rename onto", path);
  }
  if (!status.ok()) ::unlink(tmp.c_str());
  return status;
}

absl::Status WritePrivate(const std::string& path, absl::string_view pem,
                          Flush flush = Flush::kEachFile) {
  return WriteFileWithMode(path, pem, 0600, flush);
}
absl::Status WritePublic(const std::string& path, absl::string_view pem,
                         Flush flush = Flush::kEachFile) {
  return WriteFileWithMode(path, pem, 0644, flush);
}

// SyncFileSystem flushes the file system holding `dir`: the data and
// renames of every Flush::kLater write before it, in one call.
absl::Status SyncFileSystem(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", dir);
  const int synced = ::syncfs(fd);
  ::close(fd);
  if (synced != 0) return ErrnoError("cannot flush the file system of", dir);
  return absl::OkStatus();
}

std::string InitHint(const std::string& dir) {
  return absl::StrCat("run `shoal certs init --dir ", dir, "` first");
}

// --- Validation -------------------------------------------------------------

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// IsDnsName accepts RFC 1123 host names: labels of 1-63 letters, digits and
// inner hyphens, at most 253 characters, and a last label that is not all
// digits (so a mistyped IPv4 address is not taken for a name).
bool IsDnsName(const std::string& host) {
  if (host.empty() || host.size() > 253) return false;
  std::vector<absl::string_view> labels = absl::StrSplit(host, '.');
  for (absl::string_view label : labels) {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-')
        return false;
    }
  }
  for (char c : labels.back()) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return true;
  }
  return false;
}

absl::Status ValidateDays(int days) {
  if (days < 1 || days > kMaxLeafDays) {
    return absl::InvalidArgumentError(
        absl::StrCat("days must be 1 to ", kMaxLeafDays, ", got ", days));
  }
  return absl::OkStatus();
}

absl::Status ValidateHosts(const std::vector<std::string>& hosts) {
  if (hosts.empty()) {
    return absl::InvalidArgumentError(
        "the server certificate needs at least one host name or IP address");
  }
  for (const std::string& host : hosts) {
    if (!IsIpLiteral(host) && !IsDnsName(host)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "host '", host,
          "' is neither an IP address nor a DNS name "
          "(letters, digits, '-' and '.'; IPv6 without brackets)"));
    }
  }
  return absl::OkStatus();
}

// PrepareDirectory creates `dir` if missing and checks it can take files.
absl::Status PrepareDirectory(const std::string& dir) {
  if (dir.empty())
    return absl::InvalidArgumentError("the PKI directory is empty");
  SHOAL_RETURN_IF_ERROR(MakeDirectories(dir));
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat(dir, " is not writable: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// --- Keys and certificates --------------------------------------------------

absl::StatusOr<PkeyPtr> GenerateEcdsaP256Key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (key == nullptr)
    return openssl::InternalError("generating an ECDSA P-256 key");
  return key;
}

absl::StatusOr<PkeyPtr> GenerateEd25519Key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (key == nullptr) return openssl::InternalError("generating an Ed25519 key");
  return key;
}

// BioContents returns what was written to a memory BIO.
std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return std::string(data, size > 0 ? static_cast<size_t>(size) : 0);
}

// PrivateKeyPem writes PKCS#8 ("PRIVATE KEY"), unencrypted: the files'
// mode and the CA key's being kept offline protect them.
absl::StatusOr<std::string> PrivateKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0,
                                    nullptr, nullptr) != 1) {
    return openssl::InternalError("encoding a private key as PKCS#8 PEM");
  }
  return BioContents(bio.get());
}

absl::StatusOr<std::string> PublicKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
    return openssl::InternalError("encoding a public key as PEM");
  }
  return BioContents(bio.get());
}

absl::StatusOr<std::string> CertificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return openssl::InternalError("encoding a certificate as PEM");
  }
  return BioContents(bio.get());
}

// ReadPem returns a PEM file's contents; a missing file is NotFound with the
// hint to run `shoal certs init`.
absl::StatusOr<std::string> ReadPem(const std::string& path,
                                    const std::string& dir) {
  absl::StatusOr<std::string> pem = ReadFile(path, kMaxPemBytes);
  if (absl::IsNotFound(pem.status())) {
    return absl::NotFoundError(
        absl::StrCat(path, " not found: ", InitHint(dir)));
  }
  return pem;
}

absl::StatusOr<X509Ptr> ParseCertificate(const std::string& pem,
                                         const std::string& path) {
  BioPtr bio = openssl::MemoryBio(pem);
  X509Ptr cert(bio == nullptr
                   ? nullptr
                   : PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return openssl::Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat(path, " is not a PEM certificate"));
  }
  return cert;
}

absl::StatusOr<PkeyPtr> ParsePrivateKey(const std::string& pem,
                                        const std::string& path) {
  BioPtr bio = openssl::MemoryBio(pem);
  PkeyPtr key(bio == nullptr ? nullptr
                             : PEM_read_bio_PrivateKey(bio.get(), nullptr,
                                                       nullptr, nullptr));
  if (key == nullptr) {
    return openssl::Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat(path, " is not a PEM private key"));
  }
  return key;
}

absl::StatusOr<PkeyPtr> ParsePublicKey(const std::string& pem,
                                       const std::string& path) {
  BioPtr bio = openssl::MemoryBio(pem);
  PkeyPtr key(bio == nullptr
                  ? nullptr
                  : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return openssl::Error(absl::StatusCode::kInvalidArgument,
                        absl::StrCat(path, " is not a PEM public key"));
  }
  return key;
}

// SetRandomSerial gives `cert` a positive 128-bit random serial number:
// unique without a serial file, so a PKI folder can be copied or restored.
absl::Status SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  BignumPtr bn;
  do {
    if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
      return openssl::InternalError("drawing a serial number");
    }
    bn.reset(BN_bin2bn(bytes, sizeof(bytes), nullptr));
    if (bn == nullptr) return openssl::InternalError("drawing a serial number");
  } while (BN_is_zero(bn.get()));
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return openssl::InternalError("setting a serial number");
  }
  return absl::OkStatus();
}

// AddExtension adds an extension written in OpenSSL's config syntax, e.g.
// "critical,CA:TRUE". Values here are constants, never user input.
absl::Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid,
                          const char* value) {
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return openssl::InternalError(
        absl::StrCat("adding extension ", OBJ_nid2sn(nid), " = ", value));
  }
  return absl::OkStatus();
}

// AddSubjectAltNames adds the hosts (validated) as DNS and IP names. Built
// directly rather than through a config string, so no host can smuggle in
// another name.
absl::Status AddSubjectAltNames(X509* cert,
                                const std::vector<std::string>& hosts) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (names == nullptr)
    return openssl::InternalError("allocating subjectAltName");
  for (const std::string& host : hosts) {
    GeneralNamePtr name(GENERAL_NAME_new());
    if (name == nullptr)
      return openssl::InternalError("allocating subjectAltName");
    if (IsIpLiteral(host)) {
      ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
      if (ip == nullptr)
        return openssl::InternalError(absl::StrCat("encoding IP ", host));
      GENERAL_NAME_set0_value(name.get(), GEN_IPADD, ip);
    } else {
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      if (dns == nullptr ||
          ASN1_STRING_set(dns, host.data(), static_cast<int>(host.size())) !=
              1) {
        ASN1_IA5STRING_free(dns);
        return openssl::InternalError(absl::StrCat("encoding DNS name ", host));
      }
      GENERAL_NAME_set0_value(name.get(), GEN_DNS, dns);
    }
    if (sk_GENERAL_NAME_push(names.get(), name.get()) == 0) {
      return openssl::InternalError("building subjectAltName");
    }
    name.release();  // owned by `names` now
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0,
                        X509V3_ADD_DEFAULT) != 1) {
    return openssl::InternalError("adding subjectAltName");
  }
  return absl::OkStatus();
}

enum class CertKind { kCa, kServer, kClient, kAdmin };

struct CertSpec {
  CertKind kind;
  std::string common_name;
  int days;
  std::vector<std::string> hosts;  // kServer only
};

// BuildCertificate issues a certificate for `subject_key` signed by
// `issuer_key`; `issuer` is the CA certificate, or nullptr for the
// self-signed CA itself.
absl::StatusOr<X509Ptr> BuildCertificate(const CertSpec& spec,
                                         EVP_PKEY* subject_key, X509* issuer,
                                         EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return openssl::InternalError("allocating a certificate");
  }
  SHOAL_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  // The CN is set as a plain UTF8String: through MBSTRING_* OpenSSL would
  // hold it to RFC 5280's 64-character bound, and client IDs may have 128.
  // Parsers (OpenSSL's verifier, gRPC's peer properties) take any length.
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(
          name, "O", MBSTRING_ASC,
          reinterpret_cast<const unsigned char*>("Shoal"), -1, -1, 0) != 1 ||
      (spec.kind == CertKind::kAdmin &&
       X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC,
                                  reinterpret_cast<const unsigned char*>(kAdminUnit), -1, -1,
                                  0) != 1) ||
      X509_NAME_add_entry_by_NID(
          name, NID_commonName, V_ASN1_UTF8STRING,
          reinterpret_cast<const unsigned char*>(spec.common_name.data()),
          static_cast<int>(spec.common_name.size()), -1, 0) != 1) {
    return openssl::InternalError("setting the subject name");
  }
  X509* signer = issuer == nullptr ? cert.get() : issuer;
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) ==
          nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), spec.days, 0, nullptr) ==
          nullptr ||
      X509_set_pubkey(cert.get(), subject_key) != 1) {
    return openssl::InternalError("setting the issuer, validity and key");
  }
  if (issuer != nullptr &&
      ASN1_TIME_compare(X509_get0_notAfter(cert.get()),
                        X509_get0_notAfter(issuer)) > 0 &&
      X509_set1_notAfter(cert.get(), X509_get0_notAfter(issuer)) != 1) {
    return openssl::InternalError("clamping the validity to the CA's");
  }

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, signer, cert.get(), nullptr, nullptr, 0);
  SHOAL_RETURN_IF_ERROR(
      AddExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  switch (spec.kind) {
    case CertKind::kCa:
      // pathlen:0: the CA signs leaves only, never another CA.
      SHOAL_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx,
                                         NID_basic_constraints,
                                         "critical,CA:TRUE,pathlen:0"));
      SHOAL_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_key_usage,
                                         "critical,keyCertSign,cRLSign"));
      break;
    case CertKind::kServer:
    case CertKind::kClient:
    case CertKind::kAdmin:
      SHOAL_RETURN_IF_ERROR(AddExtension(
          cert.get(), &ctx, NID_authority_key_identifier, "keyid:always"));
      SHOAL_RETURN_IF_ERROR(AddExtension(
          cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
      SHOAL_RETURN_IF_ERROR(AddExtension(cert.get(), &ctx, NID_key_usage,
                                         "critical,digitalSignature"));
      SHOAL_RETURN_IF_ERROR(AddExtension(
          cert.get(), &ctx, NID_ext_key_usage,
          spec.kind == CertKind::kServer ? "serverAuth" : "clientAuth"));
      break;
  }
  if (spec.kind == CertKind::kServer) {
    SHOAL_RETURN_IF_ERROR(AddSubjectAltNames(cert.get(), spec.hosts));
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) {
    return openssl::InternalError("signing a certificate");
  }
  return cert;
}

struct LoadedCa {
  std::string cert_pem;
  X509Ptr cert;
  PkeyPtr key;
};

// LoadCa reads DIR/ca and checks that the key is the certificate's and that
// the certificate is a CA.
absl::StatusOr<LoadedCa> LoadCa(const std::string& dir) {
  const std::string cert_path = dir + "/ca/ca.pem";
  const std::string key_path = dir + "/ca/ca.key";
  LoadedCa ca;
  SHOAL_ASSIGN_OR_RETURN(std::string key_pem, ReadPem(key_path, dir));
  SHOAL_ASSIGN_OR_RETURN(ca.cert_pem, ReadPem(cert_path, dir));
  SHOAL_ASSIGN_OR_RETURN(ca.cert, ParseCertificate(ca.cert_pem, cert_path));
  SHOAL_ASSIGN_OR_RETURN(ca.key, ParsePrivateKey(key_pem, key_path));
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
    openssl::DrainErrors();
    return absl::FailedPreconditionError(
        absl::StrCat(key_path, " is not the key of ", cert_path));
  }
  if (X509_check_ca(ca.cert.get()) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(cert_path, " is not a CA certificate"));
  }
  return ca;
}

}  // namespace

absl::Status ValidatePkiClientId(const std::string& id) {
  if (id.empty() || id.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("client ID must be 1 to 128 characters, got ", id.size()));
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    const bool ok = absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-' || c == ':';
    if (!ok) {
      // The ID may come from the network: name the byte, do not echo it.
      return absl::InvalidArgumentError(absl::StrFormat(
          "client ID may hold only letters, digits and . _ - : (byte 0x%02x at position %d)",
          c, i));
    }
  }
  return absl::OkStatus();
}

absl::Status InitPki(const std::string& dir, const PkiOptions& options) {
  SHOAL_RETURN_IF_ERROR(ValidateHosts(options.server_hosts));
  SHOAL_RETURN_IF_ERROR(ValidateDays(options.days));
  SHOAL_RETURN_IF_ERROR(PrepareDirectory(dir));
  const std::string ca_dir = dir + "/ca";
  const std::string server_dir = dir + "/server";
  const std::string ca_pem = ca_dir + "/ca.pem", ca_key = ca_dir + "/ca.key";
  const std::string server_ca = server_dir + "/ca.pem";
  const std::string server_pem = server_dir + "/server.pem";
  const std::string server_key = server_dir + "/server.key";
  const std::string signing_key = server_dir + "/model-signing.key";
  const std::string signing_pub = server_dir + "/model-signing.pub";
  const std::string revoked = server_dir + "/revoked.txt";
  SHOAL_RETURN_IF_ERROR(RequireAbsent({ca_pem, ca_key, server_ca, server_pem,
                                       server_key, signing_key, signing_pub},
                                      options.force));

  // Everything is generated and encoded before the first file is written.
  SHOAL_ASSIGN_OR_RETURN(PkeyPtr ca_pkey, GenerateEcdsaP256Key());
  char tag[4];
  if (RAND_bytes(reinterpret_cast<unsigned char*>(tag), sizeof(tag)) != 1) {
    return openssl::InternalError("drawing a CA name");
  }
  // A random suffix tells one deployment's CA from another's in error messages.
  const CertSpec ca_spec{
      CertKind::kCa,
      absl::StrCat("Shoal CA ",
                   absl::BytesToHexString(absl::string_view(tag, sizeof(tag)))),
      kCaDays,
      {}};
  SHOAL_ASSIGN_OR_RETURN(
      X509Ptr ca_cert,
      BuildCertificate(ca_spec, ca_pkey.get(), nullptr, ca_pkey.get()));
  SHOAL_ASSIGN_OR_RETURN(PkeyPtr server_pkey, GenerateEcdsaP256Key());
  CertSpec server_spec{CertKind::kServer, "shoal-server", options.days,
                       options.server_hosts};
  SHOAL_ASSIGN_OR_RETURN(X509Ptr server_cert,
                         BuildCertificate(server_spec, server_pkey.get(),
                                          ca_cert.get(), ca_pkey.get()));
  SHOAL_ASSIGN_OR_RETURN(PkeyPtr signing_pkey, GenerateEd25519Key());

  SHOAL_ASSIGN_OR_RETURN(std::string ca_cert_text,
                         CertificatePem(ca_cert.get()));
  SHOAL_ASSIGN_OR_RETURN(std::string ca_key_text, PrivateKeyPem(ca_pkey.get()));
  SHOAL_ASSIGN_OR_RETURN(std::string server_cert_text,
                         CertificatePem(server_cert.get()));
  SHOAL_ASSIGN_OR_RETURN(std::string server_key_text,
                         PrivateKeyPem(server_pkey.get()));
  SHOAL_ASSIGN_OR_RETURN(std::string signing_key_text,
                         PrivateKeyPem(signing_pkey.get()));
  SHOAL_ASSIGN_OR_RETURN(std::string signing_pub_text,
                         PublicKeyPem(signing_pkey.get()));

  // The CA directory holds the one key that can mint identities: 0700.
  SHOAL_RETURN_IF_ERROR(MakeDirectory(ca_dir, 0700));
  SHOAL_RETURN_IF_ERROR(MakeDirectory(server_dir, 0755));
  SHOAL_RETURN_IF_ERROR(WritePrivate(ca_key, ca_key_text));
  SHOAL_RETURN_IF_ERROR(WritePublic(ca_pem, ca_cert_text));
  SHOAL_RETURN_IF_ERROR(WritePrivate(server_key, server_key_text));
  SHOAL_RETURN_IF_ERROR(WritePublic(server_pem, server_cert_text));
  SHOAL_RETURN_IF_ERROR(WritePublic(server_ca, ca_cert_text));
  SHOAL_RETURN_IF_ERROR(WritePrivate(signing_key, signing_key_text));
  SHOAL_RETURN_IF_ERROR(WritePublic(signing_pub, signing_pub_text));
  OPENSSL_cleanse(ca_key_text.data(), ca_key_text.size());
  OPENSSL_cleanse(server_key_text.data(), server_key_text.size());
  OPENSSL_cleanse(signing_key_text.data(), signing_key_text.size());
  // An existing revocation list survives even --force: forgetting a
  // revocation would quietly let a revoked ID be issued again.
  if (!Exists(revoked)) {
    SHOAL_RETURN_IF_ERROR(WritePublic(revoked, RevocationTrailer(0)));
  }
  // Durability of the renames: the files themselves are complete either way.
  SyncDirectory(ca_dir).IgnoreError();
  SyncDirectory(server_dir).IgnoreError();
  return absl::OkStatus();
}

absl::Status IssueClients(const std::string& dir,
                          const std::vector<std::string>& ids,
                          const PkiOptions& options,
                          const std::function<void(size_t issued)>& on_issued) {
  if (ids.empty()) return absl::InvalidArgumentError("no client IDs to issue");
  absl::flat_hash_set<std::string> unique;
  for (const std::string& id : ids) {
    SHOAL_RETURN_IF_ERROR(ValidatePkiClientId(id));
    if (!unique.insert(id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("client ID '", id, "' is given twice"));
    }
  }
  SHOAL_RETURN_IF_ERROR(ValidateDays(options.days));
  SHOAL_ASSIGN_OR_RETURN(LoadedCa ca, LoadCa(dir));
  const std::string signing_pub_path = dir + "/server/model-signing.pub";
  SHOAL_ASSIGN_OR_RETURN(std::string signing_pub,
                         ReadPem(signing_pub_path, dir));
  SHOAL_ASSIGN_OR_RETURN(PkeyPtr signing_key,
                         ParsePublicKey(signing_pub, signing_pub_path));
  if (EVP_PKEY_get_id(signing_key.get()) != EVP_PKEY_ED25519) {
    return absl::FailedPreconditionError(
        absl::StrCat(signing_pub_path, " is not an Ed25519 public key"));
  }
  const std::string revoked_path = dir + "/server/revoked.txt";
  SHOAL_ASSIGN_OR_RETURN(auto revoked, ReadRevokedClients(revoked_path));
  for (const std::string& id : ids) {
    if (revoked.contains(id)) {
      return absl::FailedPreconditionError(
          absl::StrCat("client '", id, "' is revoked in ", revoked_path,
                       ": a revoked ID is never issued again, choose another"));
    }
  }
  SHOAL_RETURN_IF_ERROR(PrepareDirectory(dir));
  const std::string clients_dir = dir + "/clients";
  std::vector<std::string> outputs;
  for (const std::string& id : ids) {
    for (const char* file :
         {"/ca.pem", "/client.pem", "/client.key", "/model-signing.pub"}) {
      outputs.push_back(absl::StrCat(clients_dir, "/", id, file));
    }
  }
  SHOAL_RETURN_IF_ERROR(RequireAbsent(outputs, options.force));
  SHOAL_RETURN_IF_ERROR(MakeDirectory(clients_dir, 0755));

  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string bundle = absl::StrCat(clients_dir, "/", ids[i]);
    SHOAL_ASSIGN_OR_RETURN(PkeyPtr key, GenerateEcdsaP256Key());
    CertSpec spec{CertKind::kClient, ids[i], options.days, {}};
    SHOAL_ASSIGN_OR_RETURN(
        X509Ptr cert,
        BuildCertificate(spec, key.get(), ca.cert.get(), ca.key.get()));
    SHOAL_ASSIGN_OR_RETURN(std::string cert_text, CertificatePem(cert.get()));
    SHOAL_ASSIGN_OR_RETURN(std::string key_text, PrivateKeyPem(key.get()));
    // 0700: the bundle holds the device's private key until it is copied.
    SHOAL_RETURN_IF_ERROR(MakeDirectory(bundle, 0700));
    absl::Status written =
        WritePrivate(bundle + "/client.key", key_text, Flush::kLater);
    OPENSSL_cleanse(key_text.data(), key_text.size());
    SHOAL_RETURN_IF_ERROR(written);
    SHOAL_RETURN_IF_ERROR(
        WritePublic(bundle + "/client.pem", cert_text, Flush::kLater));
    SHOAL_RETURN_IF_ERROR(
        WritePublic(bundle + "/ca.pem", ca.cert_pem, Flush::kLater));
    SHOAL_RETURN_IF_ERROR(
        WritePublic(bundle + "/model-signing.pub", signing_pub, Flush::kLater));
    if (on_issued) on_issued(i + 1);
  }
  return SyncFileSystem(clients_dir);
}

absl::Status IssueAdmin(const std::string& dir, const std::string& id,
                        const PkiOptions& options) {
  SHOAL_RETURN_IF_ERROR(ValidatePkiClientId(id));
  SHOAL_RETURN_IF_ERROR(ValidateDays(options.days));
  SHOAL_ASSIGN_OR_RETURN(LoadedCa ca, LoadCa(dir));
  const std::string revoked_path = dir + "/server/revoked.txt";
  SHOAL_ASSIGN_OR_RETURN(auto revoked, ReadRevokedClients(revoked_path));
  if (revoked.contains(id)) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", id, "' is revoked in ", revoked_path,
                     ": a revoked ID is never issued again, choose another"));
  }
  SHOAL_RETURN_IF_ERROR(PrepareDirectory(dir));
  const std::string admins_dir = dir + "/admins";
  const std::string bundle = absl::StrCat(admins_dir, "/", id);
  SHOAL_RETURN_IF_ERROR(RequireAbsent(
      {bundle + "/ca.pem", bundle + "/client.pem", bundle + "/client.key"}, options.force));
  SHOAL_RETURN_IF_ERROR(MakeDirectory(admins_dir, 0700));
  SHOAL_ASSIGN_OR_RETURN(PkeyPtr key, GenerateEcdsaP256Key());
  CertSpec spec{CertKind::kAdmin, id, options.days, {}};
  SHOAL_ASSIGN_OR_RETURN(X509Ptr cert,
                         BuildCertificate(spec, key.get(), ca.cert.get(), ca.key.get()));
  SHOAL_ASSIGN_OR_RETURN(std::string cert_text, CertificatePem(cert.get()));
  SHOAL_ASSIGN_OR_RETURN(std::string key_text, PrivateKeyPem(key.get()));
  SHOAL_RETURN_IF_ERROR(MakeDirectory(bundle, 0700));
  absl::Status written = WritePrivate(bundle + "/client.key", key_text, Flush::kLater);
  OPENSSL_cleanse(key_text.data(), key_text.size());
  SHOAL_RETURN_IF_ERROR(written);
  SHOAL_RETURN_IF_ERROR(WritePublic(bundle + "/client.pem", cert_text, Flush::kLater));
  SHOAL_RETURN_IF_ERROR(WritePublic(bundle + "/ca.pem", ca.cert_pem, Flush::kLater));
  return SyncFileSystem(admins_dir);
}

absl::Status IssueClient(const std::string& dir, const std::string& id,
                         const PkiOptions& options) {
  return IssueClients(dir, {id}, options, nullptr);
}

absl::Status RevokeClient(const std::string& dir, const std::string& id) {
  SHOAL_RETURN_IF_ERROR(ValidatePkiClientId(id));
  const std::string server_dir = dir + "/server";
  struct stat st;
  if (::stat(server_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(
        absl::StrCat(server_dir, " not found: ", InitHint(dir)));
  }
  // Two revokes at once would each read the list, add their ID and rename
  // over the other's file, losing one. A lock on the folder (flock, so it
  // is let go when the process dies) makes them take turns.
  const FolderLock lock{::open(server_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (lock.fd < 0) return ErrnoError("cannot open", server_dir);
  while (::flock(lock.fd, LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoError("cannot lock", server_dir);
  }
  const std::string path = server_dir + "/revoked.txt";
  // A missing list is not an empty one: writing a complete list of one ID
  // would let a server that trusts complete lists lift every other
  // revocation.
  constexpr char kRestore[] =
      "restore it from a backup; or, once you have checked that it lists every revoked ID, "
      "end it with the line '# end: N ids' (N: how many it lists; '# end: 0 ids' starts a new, "
      "empty list)";
  if (!Exists(path)) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " is missing, so the revocations it held would be lost: ", kRestore));
  }
  SHOAL_ASSIGN_OR_RETURN(RevocationList list, ReadRevocationList(path));
  // Nor is an incomplete list (emptied, cut short by a copy) one to build on:
  // sealing it would make the server trust it and lift what it lost.
  if (!list.complete) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " is not a complete list (", list.incomplete_reason,
        "), so revocations may have been lost from it: ", kRestore));
  }
  if (list.ids.contains(id)) return absl::OkStatus();
  SHOAL_ASSIGN_OR_RETURN(std::string contents,
                         ReadFile(path, kMaxRevokedBytes));
  // Keep the operator's comments and order; drop the old trailer, add the
  // ID, seal the file with a new trailer.
  std::string out;
  for (absl::string_view line :
       absl::StrSplit(contents, '\n', absl::SkipEmpty())) {
    if (IsRevocationTrailer(line)) continue;
    absl::StrAppend(&out, line, "\n");
  }
  if (!list.ids.contains(id)) {
    absl::StrAppend(&out, id, "\n");
    list.ids.insert(id);
  }
  absl::StrAppend(&out, RevocationTrailer(list.ids.size()));
  return WriteFileAtomically(path, out);
}

absl::StatusOr<RevocationList> ReadRevocationList(const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(std::string contents,
                         ReadFile(path, kMaxRevokedBytes));
  RevocationList list;
  std::vector<absl::string_view> lines = absl::StrSplit(contents, '\n');
  // Text after the last newline may be a line cut short: still read (an ID
  // cut short revokes too much, never too little), but the file is not
  // complete.
  const bool ends_with_newline = contents.empty() || contents.back() == '\n';
  std::optional<uint64_t>
      declared;  // the trailer's N, when it is the last line
  int line_number = 0;
  for (absl::string_view raw : lines) {
    ++line_number;
    if (absl::StripAsciiWhitespace(raw).empty()) continue;
    uint64_t n = 0;
    // Only a trailer on the last non-blank line counts.
    declared =
        IsRevocationTrailer(raw) && absl::SimpleAtoi(TrailerCount(raw), &n)
            ? std::optional<uint64_t>(n)
            : std::nullopt;
    if (declared) continue;
    // A client ID cannot hold '#', so everything from one on is a comment.
    absl::string_view line = raw.substr(0, raw.find('#'));
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::string id(line);
    absl::Status valid = ValidatePkiClientId(id);
    if (!valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_number, ": ", valid.message()));
    }
    list.ids.insert(std::move(id));
  }
  if (!ends_with_newline) {
    list.incomplete_reason = "its last line has no newline";
  } else if (!declared) {
    list.incomplete_reason = absl::StrCat(
        "it does not end with the line '",
        absl::StripSuffix(RevocationTrailer(list.ids.size()), "\n"),
        "' that `shoal certs revoke` writes");
  } else if (*declared != list.ids.size()) {
    list.incomplete_reason =
        absl::StrCat("its last line declares ", *declared, " IDs but it holds ",
                     list.ids.size());
  } else {
    list.complete = true;
  }
  return list;
}

absl::StatusOr<absl::flat_hash_set<std::string>> ReadRevokedClients(
    const std::string& path) {
  absl::StatusOr<RevocationList> list = ReadRevocationList(path);
  if (absl::IsNotFound(list.status()))
    return absl::flat_hash_set<std::string>();
  if (!list.ok()) return list.status();
  return std::move(list->ids);
}

std::string RevocationTrailer(size_t num_ids) {
  return absl::StrCat(kRevocationTrailerPrefix, num_ids,
                      num_ids == 1 ? " id\n" : " ids\n");
}

}  // namespace shoal
