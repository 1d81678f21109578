// GzReader: bounded reading of a plain or gzipped file, shared by the IDX
// and CSV readers. Private to client/data (not installed).
#ifndef SHOAL_CLIENT_DATA_GZ_READER_H_
#define SHOAL_CLIENT_DATA_GZ_READER_H_

#include <zlib.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal::client {

// GzReader owns a gzFile opened on a regular file. zlib reads files that are
// not gzipped as they are, so callers need not tell the two apart. Not
// thread-safe; one reader per file.
class GzReader {
 public:
  GzReader() = default;
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  ~GzReader();

  // Open opens a regular file (never blocking on a FIFO: OpenRegularFile)
  // and learns the most data it can hold: its size, or for a gzip stream
  // its size times deflate's largest ratio.
  // Errors: those of OpenRegularFile; ResourceExhausted when zlib cannot
  // allocate its state.
  absl::Status Open(const std::string& path);

  // max_bytes bounds what the file can decompress to.
  uint64_t max_bytes() const { return max_bytes_; }

  // Read reads up to `n` bytes into `out`; returns how many arrived (fewer
  // only at the end of the data).
  // Errors: DataLoss when zlib reports a damaged stream or the gzip stream
  // ends before its trailer (a truncated .gz file), naming the file.
  absl::StatusOr<int64_t> Read(int64_t n, uint8_t* out);

  // ReadAll returns the whole (decompressed) contents.
  // Errors: those of Read; ResourceExhausted when there are more than
  // `max_bytes` bytes.
  absl::StatusOr<std::string> ReadAll(uint64_t max_bytes);

 private:
  std::string path_;
  gzFile file_ = nullptr;
  uint64_t max_bytes_ = 0;
};

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_GZ_READER_H_
