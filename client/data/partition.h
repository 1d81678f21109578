// Partitioners: split a labelled dataset among clients, seeded and
// deterministic (the same labels, options and seed give the same split on
// every platform: only std::mt19937_64 and hand-written sampling are used).
// PartitionSummaryBuilder and FormatLabelTable describe a split's label
// distribution.
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

// PartitionSummary: statistics of per-client label histograms.
struct PartitionSummary {
  int64_t clients = 0;
  int64_t min_size = 0;
  int64_t max_size = 0;
  double mean_size = 0;
  double stddev_size = 0;  // population standard deviation
  // Classes with at least one example, averaged over clients.
  double mean_classes = 0;
  // Total-variation distance between a client's label distribution and the
  // reference (pooled) one, averaged over the clients that have examples: 0
  // when every client matches the reference, up to 1.
  double mean_tv_distance = 0;
};

// PartitionSummaryBuilder accumulates a PartitionSummary one client histogram
// at a time, in O(classes) memory, so that a million sampled clients need not
// be held at once. The TV distance needs the pooled distribution before the
// first client, so it is given up front as class counts: the dataset's
// (LabelHistogram over every index) or the sum of the histograms (what
// Summarize uses). Not thread-safe.
//
// Example:
//   PartitionSummaryBuilder builder(dataset_counts);
//   for (const auto& histogram : histograms) builder.Add(histogram);
//   PartitionSummary summary = builder.Finish();
class PartitionSummaryBuilder {
 public:
  // Classes missing from either vector count as 0. If the reference holds no
  // examples, mean_tv_distance stays 0.
  explicit PartitionSummaryBuilder(
      const std::vector<int64_t>& reference_counts);

  // Add counts one client with `histogram[c]` examples of class c.
  void Add(const std::vector<int64_t>& histogram);
  PartitionSummary Finish() const;

 private:
  std::vector<double> reference_;  // proportions, empty if no examples
  int64_t clients_ = 0;
  int64_t nonempty_clients_ = 0;
  int64_t min_size_ = 0;
  int64_t max_size_ = 0;
  double mean_size_ = 0;  // Welford's running mean and sum of squares
  double m2_size_ = 0;
  int64_t classes_total_ = 0;
  double tv_total_ = 0;
};

// Summarize summarizes `histograms` against their own pooled distribution.
// Example: {{2, 0}, {0, 2}} gives mean_tv_distance 0.5, mean_classes 1.
PartitionSummary Summarize(const std::vector<std::vector<int64_t>>& histograms);

// FormatLabelTable renders the first `max_rows` histograms as a fixed-width,
// right-aligned table (columns: client index, size, count of each class),
// followed by "... N more\n" if any are left out. Every line ends in '\n'.
// Example, for {{2, 0}, {0, 12}}:
//   client size  0  1
//        0    2  2  0
//        1   12  0 12
std::string FormatLabelTable(
    const std::vector<std::vector<int64_t>>& histograms, size_t max_rows);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_PARTITION_H_
