// Partitioners: split a labelled dataset among clients, seeded and
// deterministic (the same labels, options and seed give the same split on
// every platform: only std::mt19937_64 and hand-written sampling are used).
#ifndef SHOAL_CLIENT_DATA_PARTITION_H_
#define SHOAL_CLIENT_DATA_PARTITION_H_

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal::client {

enum class PartitionScheme {
  kIid,           // uniform random split into near-equal parts
  kDirichlet,     // per-class proportions drawn from Dirichlet(alpha)
  kShards,        // each client gets `classes_per_client` label shards
  kQuantitySkew,  // IID labels, client sizes from a power law (Pareto)
};

// PartitionOptions. Defaults give the main job's non-IID split.
struct PartitionOptions {
  PartitionScheme scheme = PartitionScheme::kDirichlet;
  int num_partitions = 5;
  // Dirichlet concentration; smaller is more skewed. Must be > 0.
  double alpha = 0.5;
  // Shards: label shards per client, in [1, number of classes].
  int classes_per_client = 2;
  // Dirichlet: every partition gets at least this many examples (the draw is
  // repeated until it does, as in Yurochkin et al. 2019 / Flower); >= 0.
  // Quantity skew: the smallest partition; >= 1. For both,
  // min_partition_size * num_partitions must not exceed the examples.
  int min_partition_size = 10;
  // Quantity skew: shape a of the Pareto weights w_i (density ~ w^-(a+1));
  // smaller is more skewed. Must be a finite number > 0.
  double power_law_exponent = 1.5;
  uint64_t seed = 0;
};

// ParsePartitionScheme accepts "iid", "dirichlet", "shards" and
// "quantity_skew" (any case); InvalidArgument naming the choices otherwise.
absl::StatusOr<PartitionScheme> ParsePartitionScheme(const std::string& name);
std::string PartitionSchemeName(PartitionScheme scheme);

// Partition returns, for each of `options.num_partitions` clients, the sorted
// indices into `labels` (int64 [N]) of its examples. Every index appears in
// exactly one partition. InvalidArgument for bad options (naming the
// option), or when the data cannot satisfy them.
//
// kQuantitySkew draws w_i ~ Pareto(power_law_exponent) and gives client i
// max(min_partition_size, share proportional to w_i) examples: clients whose
// share falls short are raised to the minimum and the rest split the
// remaining examples in proportion to w_i. Sizes are rounded by largest
// remainder (ties to the lower client index), so they sum to N exactly; the
// examples are shuffled and cut into consecutive runs of those sizes.
absl::StatusOr<std::vector<std::vector<int64_t>>> Partition(
    const at::Tensor& labels, const PartitionOptions& options);

// LabelHistogram counts, for each partition, the examples of each class.
std::vector<std::vector<int64_t>> LabelHistogram(
    const at::Tensor& labels, const std::vector<std::vector<int64_t>>& parts,
    int num_classes);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_PARTITION_H_
