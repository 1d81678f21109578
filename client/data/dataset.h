// Dataset: labelled images held in memory, and loaders for IDX files
// (the MNIST / Fashion-MNIST format, plain or gzipped).
#ifndef SHOAL_CLIENT_DATA_DATASET_H_
#define SHOAL_CLIENT_DATA_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace shoal::client {

// Dataset holds examples in memory: `inputs` float32 [N, ...] of any shape,
// and `targets`: int64 [N] class indices (classification) or float32 [N] /
// [N, K] values (regression, binary and multi-label). Copying a Dataset
// shares the tensors.
struct Dataset {
  at::Tensor inputs;
  at::Tensor targets;

  int64_t size() const;
  // Subset returns the examples at `indices` (copied), in that order.
  Dataset Subset(const std::vector<int64_t>& indices) const;
};

// The standard file names of the IDX distribution of (Fashion-)MNIST.
enum class Split { kTrain, kTest };

// The directory Debian's dataset-fashion-mnist package installs into.
inline constexpr char kDefaultFashionMnistDir[] =
    "/usr/share/datasets/fashion-mnist";

// Fashion-MNIST's ten class names, indexed by label.
const std::vector<std::string>& FashionMnistClassNames();

// ReadIdxImages reads an IDX3 uint8 image file (gzipped or not: detected by
// content) and returns uint8 [N, H, W]. Errors name the file and what is
// wrong with it (missing, bad magic, truncated).
absl::StatusOr<at::Tensor> ReadIdxImages(const std::string& path);
// ReadIdxLabels reads an IDX1 uint8 label file and returns int64 [N].
absl::StatusOr<at::Tensor> ReadIdxLabels(const std::string& path);

// LoadIdxDataset reads an image and a label file, checks that they hold the
// same number of examples and that labels are in [0, 10), and normalizes.
absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path);

// LoadFashionMnist loads a split from `dir`, which holds
// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, Split split);

// NormalizeImages turns uint8 [N, H, W] into normalized float32 [N, 1, H, W].
at::Tensor NormalizeImages(const at::Tensor& images_u8);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_DATASET_H_
