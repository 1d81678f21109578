// `shoal certs init | client | revoke`: the command line over common/pki.h.
// It says, after each step, which folder goes where, since a PKI is only as
// safe as where its pieces are copied.
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "common/pki.h"
#include "common/status.h"

namespace shoal::cli {
namespace {

// Above this many IDs, `certs client` prints progress and a summary instead
// of one line per bundle.
constexpr size_t kQuietIssueCount = 50;

PkiOptions OptionsOf(const CertsFlags& flags) {
  PkiOptions options;
  if (!flags.hosts.empty()) options.server_hosts = flags.hosts;
  options.days = flags.days;
  options.force = flags.force;
  return options;
}

absl::Status RunInit(const CertsFlags& flags) {
  const PkiOptions options = OptionsOf(flags);
  SHOAL_RETURN_IF_ERROR(InitPki(flags.dir, options));
  const std::string& d = flags.dir;
  std::printf("wrote %s/ca/ca.pem, %s/ca/ca.key (ECDSA P-256 CA, 10 years)\n",
              d.c_str(), d.c_str());
  std::printf(
      "wrote %s/server/server.pem, server.key, ca.pem (CN shoal-server, %d "
      "days, hosts: %s)\n",
      d.c_str(), options.days,
      absl::StrJoin(options.server_hosts, ", ").c_str());
  std::printf(
      "wrote %s/server/model-signing.key, model-signing.pub (Ed25519), "
      "revoked.txt\n",
      d.c_str());
  std::printf("\n%s/server/ -> the server's `--pki-dir`\n", d.c_str());
  std::printf(
      "%s/ca/ca.key: keep it offline; it is needed only to issue clients "
      "(`shoal certs client --dir %s --id ID`)\n",
      d.c_str(), d.c_str());
  return absl::OkStatus();
}

absl::Status RunClient(const CertsFlags& flags) {
  const size_t n = flags.ids.size();
  const bool quiet = n > kQuietIssueCount;
  const absl::Time start = absl::Now();
  size_t next_report = n / 10;
  auto progress = [&](size_t issued) {
    if (!quiet || issued < next_report || issued == n) return;
    std::fprintf(stderr, "issued %zu of %zu client bundles\n", issued, n);
    next_report += n / 10;
  };
  SHOAL_RETURN_IF_ERROR(
      IssueClients(flags.dir, flags.ids, OptionsOf(flags), progress));
  const std::string clients = flags.dir + "/clients";
  if (!quiet) {
    for (const std::string& id : flags.ids) {
      std::printf(
          "%s/%s/ -> copy to the device; run `shoal client --pki-dir %s/%s`\n",
          clients.c_str(), id.c_str(), clients.c_str(), id.c_str());
    }
  } else {
    std::printf("issued %zu client bundles in %.1f s: %s/%s/ ... %s/%s/\n", n,
                absl::ToDoubleSeconds(absl::Now() - start), clients.c_str(),
                flags.ids.front().c_str(), clients.c_str(),
                flags.ids.back().c_str());
    std::printf(
        "%s/ID/ -> copy to device ID; run `shoal client --pki-dir %s/ID` "
        "there\n",
        clients.c_str(), clients.c_str());
  }
  std::printf(
      "each bundle holds the device's private key (client.key, 0600): copy it "
      "over "
      "a trusted channel and delete the local copy\n");
  return absl::OkStatus();
}

absl::Status RunAdmin(const CertsFlags& flags) {
  for (const std::string& id : flags.ids) {
    SHOAL_RETURN_IF_ERROR(IssueAdmin(flags.dir, id, OptionsOf(flags)));
    std::printf(
        "%s/admins/%s/ -> the administrator's `--pki-dir` for `shoal run` and `shoal model` "
        "(it holds the private key, client.key: keep it with the administrator only)\n",
        flags.dir.c_str(), id.c_str());
  }
  return absl::OkStatus();
}

absl::Status RunRevoke(const CertsFlags& flags) {
  const std::string path = flags.dir + "/server/revoked.txt";
  for (const std::string& id : flags.ids) {
    SHOAL_ASSIGN_OR_RETURN(auto before, ReadRevokedClients(path));
    SHOAL_RETURN_IF_ERROR(RevokeClient(flags.dir, id));
    if (before.contains(id)) {
      std::printf("%s was already revoked in %s\n", id.c_str(), path.c_str());
    } else {
      std::printf("revoked %s in %s\n", id.c_str(), path.c_str());
    }
  }
  std::printf(
      "a server whose --pki-dir is a copy of %s/server/ needs the new "
      "revoked.txt\n",
      flags.dir.c_str());
  return absl::OkStatus();
}

}  // namespace

int RunCertsCommand(const CertsFlags& flags) {
  absl::Status status;
  switch (flags.action) {
    case CertsAction::kInit:
      status = RunInit(flags);
      break;
    case CertsAction::kClient:
      status = RunClient(flags);
      break;
    case CertsAction::kRevoke:
      status = RunRevoke(flags);
      break;
    case CertsAction::kAdmin:
      status = RunAdmin(flags);
      break;
  }
  if (!status.ok()) {
    PrintCommandError("certs", status.message());
    const bool bad_input =
        absl::IsInvalidArgument(status) || absl::IsNotFound(status) ||
        absl::IsAlreadyExists(status) || absl::IsFailedPrecondition(status) ||
        absl::IsPermissionDenied(status);
    return bad_input ? 2 : 1;
  }
  return 0;
}

}  // namespace shoal::cli
