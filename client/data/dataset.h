// Dataset: labelled images held in memory, and loaders for IDX files
// (the MNIST / Fashion-MNIST format, plain or gzipped).
#ifndef SHOAL_CLIENT_DATA_DATASET_H_
#define SHOAL_CLIENT_DATA_DATASET_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
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

// ChunkFn receives a reader's examples a chunk at a time, in file order;
// an error it returns stops the reading and is returned. Readers that take
// one check the whole file as they go, so the caller must not use what it
// was given until the reader returns OK.
using ChunkFn = std::function<absl::Status(Dataset chunk)>;

// ReadIdxImages reads an IDX3 uint8 image file (gzipped or not: detected by
// content) and returns uint8 [N, H, W]. Errors name the file and what is
// wrong with it (missing, bad magic, truncated).
absl::StatusOr<at::Tensor> ReadIdxImages(const std::string& path);
// ReadIdxLabels reads an IDX1 uint8 label file and returns int64 [N].
absl::StatusOr<at::Tensor> ReadIdxLabels(const std::string& path);

// LoadIdxDataset reads an image and a label file, checks that they hold the
// same number of examples, and returns the images as float32 [N, 1, H, W]
// scaled to [0, 1] (not normalized: see Normalize in client/data/source.h).
absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path);

// LoadIdxDir loads the training (`test` false) or test split from `dir`,
// which holds the IDX distribution's files
// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz], as MNIST and
// Fashion-MNIST do.
absl::StatusOr<Dataset> LoadIdxDir(const std::string& dir, bool test);

// FindIdxFiles returns the image and label files LoadIdxDir reads.
absl::StatusOr<std::pair<std::string, std::string>> FindIdxFiles(const std::string& dir,
                                                                 bool test);

// ReadIdxChunks reads what LoadIdxDataset does, `chunk_examples` images at
// a time (the labels whole), so that the images need not fit in memory.
absl::Status ReadIdxChunks(const std::string& images_path, const std::string& labels_path,
                          int64_t chunk_examples, const ChunkFn& fn);

// ScaleImages turns uint8 [N, H, W] into float32 [N, 1, H, W] in [0, 1].
at::Tensor ScaleImages(const at::Tensor& images_u8);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_DATASET_H_
