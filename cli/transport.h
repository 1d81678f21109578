// The `--pki-dir` / `--insecure-plaintext` choice of `shoal server` and
// `shoal client`: secure by default, plaintext only when asked for by name.
#ifndef SHOAL_CLI_TRANSPORT_H_
#define SHOAL_CLI_TRANSPORT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/tls.h"

namespace shoal::cli {

enum class Side { kServer, kClient };

// LoadTransport returns the TLS material in `pki_dir` (checked, see
// common/tls.h), or null when `insecure_plaintext` is set, after a warning
// that says what is given up. Neither given is InvalidArgument saying how
// to create a PKI.
absl::StatusOr<std::shared_ptr<const TlsMaterial>> LoadTransport(Side side,
                                                                 const std::string& pki_dir,
                                                                 bool insecure_plaintext);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_TRANSPORT_H_
