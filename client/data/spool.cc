#include "client/data/spool.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace shoal::client {
namespace {

// SpoolFile owns the descriptor of a spool file; sources share it.
struct SpoolFile {
  ~SpoolFile() {
    if (fd >= 0) close(fd);
  }
  int fd = -1;
  std::string what;
  int64_t records = 0;
  std::vector<int64_t> shape;
  int64_t record_floats = 0;
};

// SpooledSource reads records of a SpoolFile: example i is record
// records_[i] (records_ undefined: record i).
class SpooledSource : public ExampleSource {
 public:
  SpooledSource(std::shared_ptr<const SpoolFile> file, at::Tensor records, at::Tensor targets)
      : file_(std::move(file)), records_(std::move(records)), targets_(std::move(targets)) {}

  const at::Tensor& targets() const override { return targets_; }
  std::vector<int64_t> input_shape() const override { return file_->shape; }

  absl::StatusOr<at::Tensor> Inputs(const at::Tensor& indices) const override {
    const at::Tensor index = indices.to(at::kLong).contiguous();
    const int64_t batch = index.numel();
    const int64_t n = size();
    std::vector<int64_t> sizes = {batch};
    sizes.insert(sizes.end(), file_->shape.begin(), file_->shape.end());
    at::Tensor out = at::empty(sizes, at::kFloat);
    float* dst = out.data_ptr<float>();
    const int64_t* idx = index.data_ptr<int64_t>();
    const int64_t* map = records_.defined() ? records_.data_ptr<int64_t>() : nullptr;
    // Runs of consecutive records are read with one pread each.
    for (int64_t i = 0; i < batch;) {
      if (idx[i] < 0 || idx[i] >= n) {
        return absl::InvalidArgumentError(
            absl::StrCat("example index ", idx[i], " is out of range [0, ", n, ")"));
      }
      const int64_t first = map != nullptr ? map[idx[i]] : idx[i];
      int64_t run = 1;
      while (i + run < batch && idx[i + run] >= 0 && idx[i + run] < n &&
             (map != nullptr ? map[idx[i + run]] : idx[i + run]) == first + run) {
        ++run;
      }
      SHOAL_RETURN_IF_ERROR(ReadRecords(first, run, reinterpret_cast<char*>(dst)));
      dst += run * file_->record_floats;
      i += run;
    }
    return out;
  }

  std::shared_ptr<const ExampleSource> Subset(const std::vector<int64_t>& indices) const override {
    at::Tensor picked = at::tensor(indices, at::dtype(at::kLong));
    at::Tensor records = records_.defined() ? records_.index_select(0, picked) : picked;
    return std::make_shared<SpooledSource>(file_, std::move(records),
                                           targets_.index_select(0, picked));
  }

 private:
  absl::Status ReadRecords(int64_t first, int64_t count, char* dst) const {
    const int64_t record_bytes = file_->record_floats * static_cast<int64_t>(sizeof(float));
    int64_t want = count * record_bytes;
    off_t offset = static_cast<off_t>(first * record_bytes);
    while (want > 0) {
      const ssize_t got = pread(file_->fd, dst, static_cast<size_t>(want), offset);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        return absl::DataLossError(absl::StrCat(
            "reading back the spooled examples of ", file_->what, ": ",
            got < 0 ? std::strerror(errno) : "the spool file is shorter than written"));
      }
      dst += got;
      offset += got;
      want -= got;
    }
    return absl::OkStatus();
  }

  std::shared_ptr<const SpoolFile> file_;
  at::Tensor records_;
  at::Tensor targets_;
};

absl::Status WriteAll(int fd, const char* data, int64_t bytes, const std::string& dir,
                      const std::string& what) {
  while (bytes > 0) {
    const ssize_t wrote = write(fd, data, static_cast<size_t>(bytes));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) {
      const int error = errno;
      const std::string message =
          absl::StrCat("spooling ", what, " to ", dir, ": ", std::strerror(error));
      if (error == ENOSPC || error == EDQUOT || error == EFBIG) {
        return absl::ResourceExhaustedError(
            absl::StrCat(message, "; set data.spool_dir to a folder with room"));
      }
      return absl::InternalError(message);
    }
    data += wrote;
    bytes -= wrote;
  }
  return absl::OkStatus();
}

}  // namespace

std::string DefaultSpoolDir() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

absl::StatusOr<std::unique_ptr<SpoolWriter>> SpoolWriter::Create(const std::string& dir,
                                                                 std::string what) {
  int fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    // A file system without O_TMPFILE: a named file, unlinked at once.
    std::string name = absl::StrCat(dir, "/shoal-spool-XXXXXX");
    fd = mkostemp(name.data(), O_CLOEXEC);
    if (fd >= 0) unlink(name.c_str());
  }
  if (fd < 0) {
    const int error = errno;
    const std::string message = absl::StrCat("cannot create a spool file for ", what, " in ", dir,
                                             ": ", std::strerror(error));
    if (error == ENOENT || error == ENOTDIR) return absl::NotFoundError(message);
    if (error == EACCES || error == EPERM || error == EROFS) {
      return absl::PermissionDeniedError(message);
    }
    return absl::InternalError(message);
  }
  return std::unique_ptr<SpoolWriter>(new SpoolWriter(fd, dir, std::move(what)));
}

SpoolWriter::~SpoolWriter() {
  if (fd_ >= 0) close(fd_);
}

absl::Status SpoolWriter::Append(const Dataset& chunk) {
  if (fd_ < 0) return absl::FailedPreconditionError("spool already finished");
  const at::Tensor& x = chunk.inputs;
  if (!x.defined() || x.dim() < 2 || x.scalar_type() != at::kFloat || !chunk.targets.defined() ||
      chunk.targets.size(0) != x.size(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what_, ": a chunk must hold float32 inputs [B, ...] and B targets"));
  }
  const std::vector<int64_t> shape(x.sizes().begin() + 1, x.sizes().end());
  if (examples_ == 0 && targets_.empty()) {
    shape_ = shape;
    record_floats_ = 1;
    for (int64_t d : shape_) record_floats_ *= d;
  } else if (shape != shape_ || chunk.targets.scalar_type() != targets_[0].scalar_type() ||
             chunk.targets.sizes().slice(1) != targets_[0].sizes().slice(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what_, ": examples of input shape [", absl::StrJoin(shape, ", "),
                     "] after ones of [", absl::StrJoin(shape_, ", "), "]"));
  }
  const at::Tensor dense = x.contiguous();
  SHOAL_RETURN_IF_ERROR(WriteAll(fd_, static_cast<const char*>(dense.data_ptr()),
                                 dense.numel() * static_cast<int64_t>(sizeof(float)), dir_, what_));
  targets_.push_back(chunk.targets.contiguous());
  examples_ += x.size(0);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const ExampleSource>> SpoolWriter::Finish() {
  if (fd_ < 0) return absl::FailedPreconditionError("spool already finished");
  if (examples_ == 0) {
    return absl::InvalidArgumentError(absl::StrCat(what_, ": no examples"));
  }
  auto file = std::make_shared<SpoolFile>();
  file->fd = fd_;
  fd_ = -1;
  file->what = what_;
  file->records = examples_;
  file->shape = shape_;
  file->record_floats = record_floats_;
  at::Tensor targets = targets_.size() == 1 ? targets_[0] : at::cat(targets_);
  targets_.clear();
  return std::shared_ptr<const ExampleSource>(std::make_shared<SpooledSource>(
      std::move(file), at::Tensor(), std::move(targets)));
}

}  // namespace shoal::client
