#include "simulation/client_data.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace shoal::simulation {
namespace {

// NumClasses is 1 + the largest label (labels are checked >= 0 by the
// partitioners).
int NumClasses(const at::Tensor& labels) {
  return labels.numel() == 0 ? 0 : static_cast<int>(labels.max().item<int64_t>()) + 1;
}

}  // namespace

absl::StatusOr<ClientData> ClientData::Split(const at::Tensor& targets,
                                             const client::PartitionOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(const at::Tensor labels,
                         client::LabelsForPartitioning(targets, options.scheme));
  if (labels.numel() > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a split holds at most 2^31 - 1 examples, got ", labels.numel()));
  }
  SHOAL_ASSIGN_OR_RETURN(std::vector<std::vector<int64_t>> parts,
                         client::Partition(labels, options));
  ClientData data;
  data.num_clients_ = parts.size();
  data.num_classes_ = NumClasses(labels);
  if (data.num_classes_ > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most 256 classes are supported, got ", data.num_classes_));
  }
  data.pool_.reserve(static_cast<size_t>(labels.numel()));
  data.offsets_.reserve(parts.size() + 1);
  data.offsets_.push_back(0);
  for (const std::vector<int64_t>& part : parts) {
    for (int64_t i : part) data.pool_.push_back(static_cast<int32_t>(i));
    data.offsets_.push_back(static_cast<uint32_t>(data.pool_.size()));
  }
  const at::Tensor cpu = labels.to(at::kCPU, at::kLong).contiguous();
  const int64_t* label = cpu.data_ptr<int64_t>();
  data.labels_.assign(label, label + cpu.numel());
  return data;
}

absl::StatusOr<ClientData> ClientData::Sampled(const at::Tensor& targets, uint64_t num_clients,
                                               const client::SampledPartitionOptions& options) {
  if (num_clients == 0) {
    return absl::InvalidArgumentError("the population has no clients");
  }
  SHOAL_ASSIGN_OR_RETURN(const at::Tensor labels,
                         client::LabelsForPartitioning(targets, options.scheme));
  SHOAL_ASSIGN_OR_RETURN(client::ExampleSampler sampler,
                         client::ExampleSampler::Create(labels, options));
  ClientData data;
  data.num_clients_ = num_clients;
  data.num_classes_ = sampler.num_classes();
  data.sampler_.emplace(std::move(sampler));
  return data;
}

std::vector<int64_t> ClientData::Indices(uint64_t client) const {
  if (sampler_) return sampler_->Indices(client);
  return std::vector<int64_t>(pool_.begin() + offsets_[client],
                              pool_.begin() + offsets_[client + 1]);
}

std::vector<int64_t> ClientData::ClassCounts(uint64_t client) const {
  if (sampler_) return sampler_->ClassCounts(client);
  std::vector<int64_t> counts(static_cast<size_t>(num_classes_), 0);
  for (uint32_t i = offsets_[client]; i < offsets_[client + 1]; ++i) {
    ++counts[labels_[static_cast<size_t>(pool_[i])]];
  }
  return counts;
}

std::vector<int64_t> ClientData::PooledClassCounts() const {
  if (sampler_) return sampler_->class_sizes();
  std::vector<int64_t> counts(static_cast<size_t>(num_classes_), 0);
  for (uint8_t label : labels_) ++counts[label];
  return counts;
}

size_t ClientData::MemoryBytes() const {
  if (sampler_) return sampler_->MemoryBytes();
  return pool_.capacity() * sizeof(int32_t) + offsets_.capacity() * sizeof(uint32_t) +
         labels_.capacity();
}

}  // namespace shoal::simulation
