// Helpers shared by the fuzz targets: splitting one fuzz input into parts,
// writing seed inputs, and a private scratch directory.
#ifndef SHOAL_FUZZ_FUZZ_SUPPORT_H_
#define SHOAL_FUZZ_FUZZ_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace shoal::fuzz {

// FramedReader splits an input into parts, each a 2-byte little-endian
// length and that many bytes; a short last part takes what is left. Framing
// lets a target take a sequence (chunks, messages) from one input while
// libFuzzer's mutations stay local to one part.
class FramedReader {
 public:
  FramedReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  // Byte returns the next byte (0 when the input is used up).
  uint8_t Byte();
  // Part returns the next framed part (empty when the input is used up).
  std::string Part();
  // Rest returns everything not read yet.
  std::string Rest();

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// ExpandRepeats lets a short input stand for a large one: each "{{N*X}}"
// (N decimal, 1 to 1,000,000; X up to 16 bytes without "}}") becomes X
// repeated N times; the result stops growing at 4 MiB. libFuzzer's inputs
// are kept small (-max_len) so that it explores structure, yet the attacks
// that matter for text parsers are large: 100,000 nested brackets, a
// megabyte-long string. Example: "{{100000*[}}1{{100000*]}}".
std::string ExpandRepeats(absl::string_view input);

// AppendFramed is FramedReader::Part's inverse, for writing seeds.
void AppendFramed(std::string* out, absl::string_view part);

// WriteSeedsIfAsked: when the environment variable SHOAL_FUZZ_WRITE_SEEDS
// names a directory, `make_seeds` is called, every seed it returns is written
// there as seed-NN, and the process exits. scripts/fuzz.sh --write-seeds uses
// it to regenerate fuzz/corpus/<target>/ from valid inputs.
void WriteSeedsIfAsked(const std::function<std::vector<std::string>()>& make_seeds);

// ScratchDir returns a directory private to this process (created once under
// $TMPDIR or /tmp, removed at exit).
const std::string& ScratchDir();

// QuietLogs turns spdlog and protobuf's logging off: a refused input logs a
// warning, and millions of them would slow fuzzing to a crawl.
void QuietLogs();

// Check aborts with `what` when `ok` is false: a property a target asserts
// (libFuzzer reports the abort as a crash and keeps the input).
void Check(bool ok, const char* what);

}  // namespace shoal::fuzz

// SHOAL_FUZZ_INITIALIZE(seeds) defines libFuzzer's LLVMFuzzerInitialize as
// every target needs it: write the seeds `seeds()` returns when asked
// (WriteSeedsIfAsked), then silence the logs (QuietLogs).
#define SHOAL_FUZZ_INITIALIZE(seeds)                   \
  extern "C" int LLVMFuzzerInitialize(int*, char***) { \
    ::shoal::fuzz::WriteSeedsIfAsked(seeds);           \
    ::shoal::fuzz::QuietLogs();                        \
    return 0;                                          \
  }

#endif  // SHOAL_FUZZ_FUZZ_SUPPORT_H_
