// Spool: examples read a chunk at a time into an unnamed file on disk and
// read back a batch at a time, so that a device trains on data that need
// not fit in its memory (data.stream). Only the targets and an index stay
// in memory.
#ifndef SHOAL_CLIENT_DATA_SPOOL_H_
#define SHOAL_CLIENT_DATA_SPOOL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "client/data/dataset.h"
#include "client/data/example_source.h"

namespace shoal::client {

// DefaultSpoolDir is $TMPDIR when set, else /tmp.
std::string DefaultSpoolDir();

// SpoolWriter writes the inputs of the chunks it is given, as float32
// records, to a file in `dir` that has no name (O_TMPFILE: it is gone when
// the last source reading it is destroyed, or the process dies) and keeps
// their targets. The file is as large as the inputs as float32; `dir`
// should be on a disk, not a tmpfs (which is memory). Not thread-safe.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(auto spool, SpoolWriter::Create("/var/tmp", "train.csv"));
//   SHOAL_RETURN_IF_ERROR(ReadCsvChunks(path, csv, 4096, [&](Dataset chunk) {
//     return spool->Append(chunk);
//   }));
//   SHOAL_ASSIGN_OR_RETURN(auto source, spool->Finish());
class SpoolWriter {
 public:
  // Create opens the file. `what` names the data in errors. NotFound or
  // PermissionDenied when `dir` cannot hold a file (naming it).
  static absl::StatusOr<std::unique_ptr<SpoolWriter>> Create(const std::string& dir,
                                                             std::string what);
  ~SpoolWriter();
  SpoolWriter(const SpoolWriter&) = delete;
  SpoolWriter& operator=(const SpoolWriter&) = delete;

  // Append writes `chunk`: inputs float32 [B, ...shape] (the same shape every
  // time) and targets [B, ...] (the same dtype and shape every time).
  // InvalidArgument for a chunk unlike the first; ResourceExhausted when
  // the disk is full (naming `dir`).
  absl::Status Append(const Dataset& chunk);
  int64_t size() const { return examples_; }

  // Finish returns the spooled examples, read back as they were appended
  // (Normalized() scales them). InvalidArgument when nothing was appended.
  // The writer may not be used afterwards.
  absl::StatusOr<std::shared_ptr<const ExampleSource>> Finish();

 private:
  SpoolWriter(int fd, std::string dir, std::string what)
      : fd_(fd), dir_(std::move(dir)), what_(std::move(what)) {}

  int fd_ = -1;
  std::string dir_;
  std::string what_;
  int64_t examples_ = 0;
  std::vector<int64_t> shape_;  // one example's input shape
  int64_t record_floats_ = 0;
  std::vector<at::Tensor> targets_;
};

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_SPOOL_H_
