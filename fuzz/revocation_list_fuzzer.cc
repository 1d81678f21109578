// Revocation lists: ReadRevocationList (common/pki.h) on an arbitrary
// revoked.txt, as the server re-reads it within a second of every change.
// The file decides who may not join, and an operator may edit or copy it by
// hand, so a half-written or garbled copy must never parse into fewer
// revocations than it holds.
//
// Properties: nothing crashes; every ID read is a valid client ID; a list
// read as complete holds exactly the number of IDs its trailer states; the
// IDs read, written back with their trailer, read back as the same complete
// list.
//
// Input: the file's text.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/pki.h"
#include "fuzz/fuzz_support.h"

namespace shoal::fuzz {
namespace {

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

std::vector<std::string> Seeds() {
  return {
      "# revoked client IDs, one per line\nclient-3\nclient-17\n" + RevocationTrailer(2),
      "client-1\nclient-2\n",                       // no trailer: incomplete
      "client-1\nclient-2\n# end: 3 ids\n",         // a trailer that lies
      "client-1\nclient-2\n# end: 2 ids\nclient-9\n",  // IDs after the trailer
      "client-1\nclient-1",                         // cut short in an ID
      "bad id with spaces\n" + RevocationTrailer(1),
      "",
  };
}

}  // namespace
}  // namespace shoal::fuzz

SHOAL_FUZZ_INITIALIZE(shoal::fuzz::Seeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shoal;
  using namespace shoal::fuzz;
  const std::string path = ScratchDir() + "/revoked.txt";
  WriteText(path, std::string(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<RevocationList> list = ReadRevocationList(path);
  if (list.ok()) {
    for (const std::string& id : list->ids) {
      Check(ValidatePkiClientId(id).ok(), "a revocation list yielded an invalid client ID");
    }
    // Written back as `shoal certs revoke` would, the IDs are a complete
    // list of themselves.
    std::string again;
    for (const std::string& id : list->ids) absl::StrAppend(&again, id, "\n");
    again += RevocationTrailer(list->ids.size());
    WriteText(path, again);
    absl::StatusOr<RevocationList> reread = ReadRevocationList(path);
    Check(reread.ok() && reread->complete, "a sealed list of valid IDs does not read as complete");
    Check(reread.ok() && reread->ids == list->ids, "a sealed list reads back other IDs");
  }
  std::remove(path.c_str());
  return 0;
}
