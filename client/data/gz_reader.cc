#include "client/data/gz_reader.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status.h"

namespace shoal::client {
namespace {

// gzread takes an unsigned count and returns an int, so read in pieces well
// below INT_MAX.
constexpr int64_t kReadChunk = int64_t{1} << 24;

// Deflate cannot compress better than about 1032:1 (RFC 1951: a 258-byte
// match costs at least 2 bits); 1100 leaves room for the gzip framing.
constexpr uint64_t kMaxDeflateRatio = 1100;

}  // namespace

GzReader::~GzReader() {
  if (file_ != nullptr) gzclose(file_);
}

absl::Status GzReader::Open(const std::string& path) {
  path_ = path;
  uint64_t size = 0;
  SHOAL_ASSIGN_OR_RETURN(const int fd, OpenRegularFile(path, &size));
  uint8_t magic[2] = {0, 0};
  const bool gzipped = ::pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  // Saturating: a sparse file may claim an absurd size.
  max_bytes_ = !gzipped                               ? size
               : size > UINT64_MAX / kMaxDeflateRatio ? UINT64_MAX
                                                      : size * kMaxDeflateRatio;
  file_ = gzdopen(fd, "rb");  // owns fd from here on
  if (file_ == nullptr) {
    ::close(fd);
    return absl::ResourceExhaustedError(absl::StrCat(path, ": cannot open: out of memory"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> GzReader::Read(int64_t n, uint8_t* out) {
  int64_t total = 0;
  while (total < n) {
    const int64_t want = std::min(n - total, kReadChunk);
    const int got = gzread(file_, out + total, static_cast<unsigned>(want));
    if (got < 0) {
      int errnum = 0;
      const char* what = gzerror(file_, &errnum);
      if (errnum == Z_ERRNO) what = std::strerror(errno);
      return absl::DataLossError(absl::StrCat(path_, ": read failed: ", what));
    }
    total += got;
    if (got < want) {
      // gzread reports a gzip stream cut short (no trailer) as a short read,
      // leaving Z_BUF_ERROR behind; without this check a truncated .gz file
      // would read as a shorter, valid-looking one.
      int errnum = Z_OK;
      gzerror(file_, &errnum);
      if (errnum == Z_BUF_ERROR) {
        return absl::DataLossError(
            absl::StrCat(path_, ": truncated: the gzip stream ends before its end marker"));
      }
      break;
    }
  }
  return total;
}

absl::StatusOr<std::string> GzReader::ReadAll(uint64_t max_bytes) {
  std::string contents;
  uint8_t buffer[1 << 16];
  while (true) {
    SHOAL_ASSIGN_OR_RETURN(const int64_t got, Read(sizeof(buffer), buffer));
    if (contents.size() + got > max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(path_, ": holds more than the limit of ",
                                                       max_bytes, " bytes (decompressed)"));
    }
    contents.append(reinterpret_cast<const char*>(buffer), got);
    if (got < static_cast<int64_t>(sizeof(buffer))) return contents;
  }
}

}  // namespace shoal::client
