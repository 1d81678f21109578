// ExampleSource: a client's examples as training reads them, a batch at a
// time: held in memory (InMemory) or spooled to disk (client/data/spool.h)
// so that a device's data need not fit in memory at once.
#ifndef SHOAL_CLIENT_DATA_EXAMPLE_SOURCE_H_
#define SHOAL_CLIENT_DATA_EXAMPLE_SOURCE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "client/data/dataset.h"
#include "client/data/normalization.h"

namespace shoal::client {

// ExampleSource: examples whose targets are in memory (they are small: one
// label or a few values per example) and whose inputs are read on demand.
// Implementations are immutable once made, so one may be read from several
// threads at once.
class ExampleSource {
 public:
  virtual ~ExampleSource() = default;

  // targets of every example, on the CPU: int64 [N] class indices or
  // float32 [N] / [N, K] values.
  virtual const at::Tensor& targets() const = 0;
  int64_t size() const { return targets().defined() ? targets().size(0) : 0; }

  // input_shape is one example's input shape (the inputs are [N, ...shape]).
  virtual std::vector<int64_t> input_shape() const = 0;

  // Inputs returns the inputs of the examples at `indices` (int64 [B] on the
  // CPU, each in [0, size())), in that order: float32 [B, ...shape] on the
  // CPU, normalized as the source was made. InvalidArgument for an index out
  // of range; DataLoss when stored data cannot be read back whole.
  virtual absl::StatusOr<at::Tensor> Inputs(const at::Tensor& indices) const = 0;

  // Subset is the examples at `indices`, in that order, as a source of its
  // own (which keeps what it needs of this one alive).
  virtual std::shared_ptr<const ExampleSource> Subset(
      const std::vector<int64_t>& indices) const = 0;

  // memory is the Dataset behind an in-memory source, null for others.
  virtual const Dataset* memory() const { return nullptr; }
};

// InMemory makes a source of `data` (sharing its tensors; no copy).
// Subset copies the examples it keeps, as Dataset::Subset does.
std::shared_ptr<const ExampleSource> InMemory(Dataset data);

// Normalized is `source` with its inputs normalized by `normalization` (a
// checked kGiven, or kNone: `source` itself) as they are read.
std::shared_ptr<const ExampleSource> Normalized(std::shared_ptr<const ExampleSource> source,
                                                Normalization normalization);

// ComputeNormalization computes kAuto's per-channel (or per-feature)
// statistics of `source`'s inputs, reading them `chunk` examples at a time.
// InvalidArgument for fewer than 2 examples.
absl::StatusOr<Normalization> ComputeNormalization(const ExampleSource& source,
                                                   int64_t chunk = 4096);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_EXAMPLE_SOURCE_H_
