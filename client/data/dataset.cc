#include "client/data/dataset.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/data/gz_reader.h"
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


uint32_t BigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// IdxFile is an open IDX file of uint8 data whose header has been read and
// checked: `dims` are its sizes, `payload` the bytes that follow.
struct IdxFile {
  GzReader reader;
  std::vector<int64_t> dims;
  int64_t payload = 1;
};

// OpenIdx opens an IDX file of uint8 data with `expected_dims` dimensions
// (`magic` is 0x0000_08_<dims>) whose sizes are at most `max_dims`. The
// header's claim is checked against what the file can hold before anything
// is allocated.
absl::Status OpenIdx(const std::string& path, uint32_t magic, const std::vector<int64_t>& max_dims,
                     IdxFile* file) {
  GzReader& reader = file->reader;
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
  file->dims.clear();
  file->payload = 1;  // at most 1e8 * 4096 * 4096 < 2^63: no overflow
  for (size_t i = 0; i < max_dims.size(); ++i) {
    const int64_t d = BigEndian32(header.data() + 4 * (i + 1));
    if (d > max_dims[i] || (i > 0 && d == 0)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: header claims %d %s; must be in [%d, %d]", path,
                          d, kDimNames[i], i > 0 ? 1 : 0, max_dims[i]));
    }
    file->dims.push_back(d);
    file->payload *= d;
  }

  if (static_cast<uint64_t>(file->payload) > reader.max_bytes()) {
    return absl::DataLossError(absl::StrFormat(
        "%s: header promises %d bytes of data, more than a file of its size can hold "
        "(at most %d); it is truncated or corrupt",
        path, file->payload, reader.max_bytes()));
  }
  return absl::OkStatus();
}

// ReadIdxPayload reads `bytes` more of the payload into `out`; `done` bytes
// were read before.
absl::Status ReadIdxPayload(IdxFile& file, const std::string& path, int64_t done, int64_t bytes,
                            uint8_t* out) {
  SHOAL_ASSIGN_OR_RETURN(const int64_t got, file.reader.Read(bytes, out));
  if (got < bytes) {
    return absl::DataLossError(absl::StrFormat(
        "%s: truncated: header promises %d bytes of data, file holds %d", path,
        file.payload, done + got));
  }
  return absl::OkStatus();
}

// CheckIdxEnd checks that nothing follows the payload: extra bytes mean
// the header does not describe the file (e.g. a wrong count), so the data
// cannot be trusted either.
absl::Status CheckIdxEnd(IdxFile& file, const std::string& path) {
  uint8_t extra = 0;
  SHOAL_ASSIGN_OR_RETURN(const int64_t got, file.reader.Read(1, &extra));
  if (got != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: unexpected data after the %d bytes the header promises", path,
        file.payload));
  }
  return absl::OkStatus();
}

// ReadIdx reads a whole IDX file (OpenIdx) and returns the payload as a
// uint8 tensor of the header's sizes, read straight into the tensor.
absl::StatusOr<at::Tensor> ReadIdx(const std::string& path, uint32_t magic,
                                   const std::vector<int64_t>& max_dims) {
  IdxFile file;
  SHOAL_RETURN_IF_ERROR(OpenIdx(path, magic, max_dims, &file));
  at::Tensor data = at::empty(file.dims, at::dtype(at::kByte));
  SHOAL_RETURN_IF_ERROR(ReadIdxPayload(file, path, 0, file.payload, data.data_ptr<uint8_t>()));
  SHOAL_RETURN_IF_ERROR(CheckIdxEnd(file, path));
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
      " (an IDX data folder holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; "
      "for Fashion-MNIST, install the dataset-fashion-mnist package)"));
}

}  // namespace

int64_t Dataset::size() const { return targets.defined() ? targets.size(0) : 0; }

Dataset Dataset::Subset(const std::vector<int64_t>& indices) const {
  const at::Tensor index = at::tensor(indices, at::dtype(at::kLong));
  return Dataset{at::index_select(inputs, 0, index),
                 at::index_select(targets, 0, index)};
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
  return Dataset{ScaleImages(images), std::move(labels)};
}

absl::Status ReadIdxChunks(const std::string& images_path, const std::string& labels_path,
                          int64_t chunk_examples, const ChunkFn& fn) {
  if (chunk_examples < 1) return absl::InvalidArgumentError("chunk_examples must be >= 1");
  SHOAL_ASSIGN_OR_RETURN(const at::Tensor labels, ReadIdxLabels(labels_path));
  IdxFile file;
  SHOAL_RETURN_IF_ERROR(
      OpenIdx(images_path, kImagesMagic, {kMaxExamples, kMaxSide, kMaxSide}, &file));
  const int64_t n = file.dims[0];
  if (n != labels.size(0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s holds %d images but %s holds %d labels", images_path, n, labels_path,
        labels.size(0)));
  }
  const int64_t image_bytes = file.dims[1] * file.dims[2];
  for (int64_t begin = 0; begin < n; begin += chunk_examples) {
    const int64_t count = std::min(chunk_examples, n - begin);
    at::Tensor images = at::empty({count, file.dims[1], file.dims[2]}, at::dtype(at::kByte));
    SHOAL_RETURN_IF_ERROR(ReadIdxPayload(file, images_path, begin * image_bytes,
                                         count * image_bytes, images.data_ptr<uint8_t>()));
    SHOAL_RETURN_IF_ERROR(fn(Dataset{ScaleImages(images), labels.narrow(0, begin, count)}));
  }
  return CheckIdxEnd(file, images_path);
}

absl::StatusOr<std::pair<std::string, std::string>> FindIdxFiles(const std::string& dir,
                                                                 bool test) {
  const std::string prefix = test ? "t10k" : "train";
  SHOAL_ASSIGN_OR_RETURN(std::string images_path,
                         FindFile(dir, prefix + "-images-idx3-ubyte"));
  SHOAL_ASSIGN_OR_RETURN(std::string labels_path,
                         FindFile(dir, prefix + "-labels-idx1-ubyte"));
  return std::make_pair(images_path, labels_path);
}

absl::StatusOr<Dataset> LoadIdxDir(const std::string& dir, bool test) {
  SHOAL_ASSIGN_OR_RETURN(const auto paths, FindIdxFiles(dir, test));
  return LoadIdxDataset(paths.first, paths.second);
}

at::Tensor ScaleImages(const at::Tensor& images_u8) {
  TORCH_CHECK(images_u8.dim() == 3 && images_u8.scalar_type() == at::kByte,
              "ScaleImages wants uint8 [N, H, W], got ", images_u8.scalar_type(), " ",
              images_u8.sizes());
  return images_u8.to(at::kFloat).div_(255.0).unsqueeze(1);
}

}  // namespace shoal::client
