#include "client/data/dataset.h"

#include <ATen/ATen.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/files.h"
#include "common/status.h"

namespace shoal::client {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // uint8 data, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // uint8 data, 1 dimension

// Caps on what a header may claim, checked before anything is allocated so a
// corrupt or hostile header cannot ask for terabytes. Far above (Fashion-)
// MNIST's 70000 x 28 x 28.
constexpr int64_t kMaxExamples = 100'000'000;
constexpr int64_t kMaxSide = 4096;

constexpr int kNumClasses = 10;
constexpr double kFashionMnistMean = 0.2860;
constexpr double kFashionMnistStd = 0.3530;

// gzread takes an unsigned count and returns an int, so read in pieces well
// below INT_MAX.
constexpr int64_t kReadChunk = int64_t{1} << 24;

// Owns a gzFile. gzdopen/gzread also read files that are not gzipped, as is.
class GzReader {
 public:
  GzReader() = default;
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  ~GzReader() {
    if (file_ != nullptr) gzclose(file_);
  }

  // Open opens a regular file (never blocking on a FIFO: OpenRegularFile)
  // and learns the most data it can hold: its size, or for a gzip stream
  // its size times deflate's largest ratio.
  absl::Status Open(const std::string& path) {
    path_ = path;
    uint64_t size = 0;
    SHOAL_ASSIGN_OR_RETURN(const int fd, OpenRegularFile(path, &size));
    uint8_t magic[2] = {0, 0};
    const bool gzipped = ::pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    // Saturating: a sparse file may claim an absurd size.
    max_bytes_ = !gzipped ? size
                 : size > UINT64_MAX / kMaxDeflateRatio ? UINT64_MAX
                                                        : size * kMaxDeflateRatio;
    file_ = gzdopen(fd, "rb");  // owns fd from here on
    if (file_ == nullptr) {
      ::close(fd);
      return absl::ResourceExhaustedError(absl::StrCat(path, ": cannot open: out of memory"));
    }
    return absl::OkStatus();
  }

  // max_bytes bounds what the file can decompress to.
  uint64_t max_bytes() const { return max_bytes_; }

  // Read reads up to `n` bytes into `out`; returns how many arrived (fewer
  // only at end of file) or DataLoss when zlib reports a damaged stream.
  absl::StatusOr<int64_t> Read(int64_t n, uint8_t* out) {
    int64_t total = 0;
    while (total < n) {
      const int64_t want = std::min(n - total, kReadChunk);
      const int got = gzread(file_, out + total, static_cast<unsigned>(want));
      if (got < 0) {
        int errnum = 0;
        const char* what = gzerror(file_, &errnum);
        if (errnum == Z_ERRNO) what = std::strerror(errno);
        return absl::DataLossError(
            absl::StrCat(path_, ": read failed: ", what));
      }
      total += got;
      if (got < want) break;
    }
    return total;
  }

 private:
  // Deflate cannot compress better than about 1032:1 (RFC 1951: a 258-byte
  // match costs at least 2 bits); 1100 leaves room for the gzip framing.
  static constexpr uint64_t kMaxDeflateRatio = 1100;

  std::string path_;
  gzFile file_ = nullptr;
  uint64_t max_bytes_ = 0;
};

uint32_t BigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// ReadIdx reads an IDX file of uint8 data with `expected_dims` dimensions
// (`magic` is 0x0000_08_<dims>) whose sizes are at most `max_dims`, and
// returns the payload as a uint8 tensor of those sizes. The header's claim
// is checked against what the file can hold before anything is allocated,
// and the data is read straight into the tensor.
absl::StatusOr<at::Tensor> ReadIdx(const std::string& path, uint32_t magic,
                                   const std::vector<int64_t>& max_dims) {
  GzReader reader;
  SHOAL_RETURN_IF_ERROR(reader.Open(path));

  const int64_t header_bytes = 4 * (1 + static_cast<int64_t>(max_dims.size()));
  std::vector<uint8_t> header(header_bytes);
  SHOAL_ASSIGN_OR_RETURN(int64_t got, reader.Read(header_bytes, header.data()));
  if (got < 4) {
    return absl::DataLossError(absl::StrFormat(
        "%s: truncated IDX header: %d of %d bytes", path, got, header_bytes));
  }
  const uint32_t actual_magic = BigEndian32(header.data());
  if (actual_magic != magic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: bad magic 0x%08x, expected 0x%08x (an IDX file of uint8 with %d "
        "dimension(s))",
        path, actual_magic, magic, max_dims.size()));
  }
  if (got < header_bytes) {
    return absl::DataLossError(absl::StrFormat(
        "%s: truncated IDX header: %d of %d bytes", path, got, header_bytes));
  }

  static constexpr std::array<const char*, 3> kDimNames = {"examples", "rows",
                                                           "columns"};
  std::vector<int64_t> dims;
  int64_t payload = 1;  // at most 1e8 * 4096 * 4096 < 2^63: no overflow
  for (size_t i = 0; i < max_dims.size(); ++i) {
    const int64_t d = BigEndian32(header.data() + 4 * (i + 1));
    if (d > max_dims[i] || (i > 0 && d == 0)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: header claims %d %s; must be in [%d, %d]", path,
                          d, kDimNames[i], i > 0 ? 1 : 0, max_dims[i]));
    }
    dims.push_back(d);
    payload *= d;
  }

  if (static_cast<uint64_t>(payload) > reader.max_bytes()) {
    return absl::DataLossError(absl::StrFormat(
        "%s: header promises %d bytes of data, more than a file of its size can hold "
        "(at most %d); it is truncated or corrupt",
        path, payload, reader.max_bytes()));
  }
  at::Tensor data = at::empty(dims, at::dtype(at::kByte));
  SHOAL_ASSIGN_OR_RETURN(got, reader.Read(payload, data.data_ptr<uint8_t>()));
  if (got < payload) {
    return absl::DataLossError(absl::StrFormat(
        "%s: truncated: header promises %d bytes of data, file holds %d", path,
        payload, got));
  }
  // Extra bytes mean the header does not describe the file (e.g. a wrong
  // count), so the data cannot be trusted either.
  uint8_t extra = 0;
  SHOAL_ASSIGN_OR_RETURN(got, reader.Read(1, &extra));
  if (got != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: unexpected data after the %d bytes the header promises", path,
        payload));
  }
  return data;
}

// FindFile returns `dir/name.gz` or `dir/name`, whichever exists.
absl::StatusOr<std::string> FindFile(const std::string& dir,
                                     const std::string& name) {
  std::error_code ec;
  for (const std::string& candidate :
       {absl::StrCat(dir, "/", name, ".gz"), absl::StrCat(dir, "/", name)}) {
    if (std::filesystem::exists(candidate, ec)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(
      "no ", name, "[.gz] in ", dir,
      " (for Fashion-MNIST, install the dataset-fashion-mnist package or "
      "point to a directory holding the IDX files)"));
}

}  // namespace

int64_t Dataset::size() const { return targets.defined() ? targets.size(0) : 0; }

Dataset Dataset::Subset(const std::vector<int64_t>& indices) const {
  const at::Tensor index = at::tensor(indices, at::dtype(at::kLong));
  return Dataset{at::index_select(inputs, 0, index),
                 at::index_select(targets, 0, index)};
}

const std::vector<std::string>& FashionMnistClassNames() {
  static const auto* const kNames = new std::vector<std::string>{
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return *kNames;
}

absl::StatusOr<at::Tensor> ReadIdxImages(const std::string& path) {
  return ReadIdx(path, kImagesMagic, {kMaxExamples, kMaxSide, kMaxSide});
}

absl::StatusOr<at::Tensor> ReadIdxLabels(const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(at::Tensor labels, ReadIdx(path, kLabelsMagic, {kMaxExamples}));
  return labels.to(at::kLong);
}

absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path) {
  SHOAL_ASSIGN_OR_RETURN(at::Tensor images, ReadIdxImages(images_path));
  SHOAL_ASSIGN_OR_RETURN(at::Tensor labels, ReadIdxLabels(labels_path));
  if (images.size(0) != labels.size(0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s holds %d images but %s holds %d labels", images_path,
        images.size(0), labels_path, labels.size(0)));
  }
  const int64_t* label = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < labels.size(0); ++i) {
    if (label[i] < 0 || label[i] >= kNumClasses) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: label %d of example %d is not in [0, %d)",
                          labels_path, label[i], i, kNumClasses));
    }
  }
  return Dataset{NormalizeImages(images), std::move(labels)};
}

absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, Split split) {
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  SHOAL_ASSIGN_OR_RETURN(std::string images_path,
                         FindFile(dir, prefix + "-images-idx3-ubyte"));
  SHOAL_ASSIGN_OR_RETURN(std::string labels_path,
                         FindFile(dir, prefix + "-labels-idx1-ubyte"));
  return LoadIdxDataset(images_path, labels_path);
}

at::Tensor NormalizeImages(const at::Tensor& images_u8) {
  TORCH_CHECK(images_u8.dim() == 3 && images_u8.scalar_type() == at::kByte,
              "NormalizeImages wants uint8 [N, H, W], got ",
              images_u8.scalar_type(), " ", images_u8.sizes());
  at::Tensor x = images_u8.to(at::kFloat).div_(255.0);
  x.sub_(kFashionMnistMean).div_(kFashionMnistStd);
  return x.unsqueeze(1);
}

}  // namespace shoal::client
