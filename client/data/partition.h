// Partitioners: split a labelled dataset among clients, seeded and
// deterministic (the same labels, options and seed give the same split on
// every platform: only std::mt19937_64 and hand-written sampling are used).
//
// Two families:
//  - Partition: disjoint splits, each example owned by exactly one client;
//    the index lists are materialized (memory O(examples)).
//  - ExampleSampler: for populations whose clients together want more
//    examples than there are (e.g. 1,000,000 virtual clients on 60,000
//    examples); each client's examples are drawn on demand from the seed, so
//    nothing is stored per client. Examples repeat between clients.
// PartitionSummaryBuilder and FormatLabelTable describe either kind.
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

// LabelsForPartitioning returns the class labels a partitioner works on:
// `targets` itself when they are class indices (int64 [N]), binary 0/1
// targets [N] as classes 0 and 1; for other
// targets (regression, multi-label) one class for all under kIid and
// kQuantitySkew, and InvalidArgument under kDirichlet and kShards, which
// split by class.
absl::StatusOr<at::Tensor> LabelsForPartitioning(const at::Tensor& targets,
                                                 PartitionScheme scheme);

// Partition returns, for each of `options.num_partitions` clients, the sorted
// indices into `targets` of its examples (see LabelsForPartitioning). Every
// index appears in exactly one partition. InvalidArgument for bad options
// (naming the option), or when the data cannot satisfy them.
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

// SampledPartitionOptions configures an ExampleSampler. Fields apply only to
// the scheme named next to them and are validated only for it.
struct SampledPartitionOptions {
  PartitionScheme scheme = PartitionScheme::kIid;
  // Client size (iid, dirichlet, shards) or mean client size
  // (quantity_skew); in [1, N].
  int64_t examples_per_client = 60;
  // Dirichlet: concentration of each client's class proportions; > 0.
  double alpha = 0.5;
  // Shards: distinct classes per client, in [1, non-empty classes]; the k
  // smallest classes together must hold examples_per_client examples.
  int classes_per_client = 2;
  // Quantity skew: Pareto shape a; > 1 so that the mean is finite.
  double power_law_exponent = 1.5;
  // Quantity skew: the smallest client, in [1, examples_per_client].
  int64_t min_examples = 1;
  uint64_t seed = 0;
};

// ExampleSampler gives each of an unbounded number of virtual clients a
// sample of a labelled dataset, computed on demand from (seed, client):
// nothing is stored per client, so memory is O(examples) whatever the number
// of clients. A client's examples are distinct; different clients may share
// examples.
//
// Per scheme, with N examples and class frequencies f:
//  - iid: size examples_per_client, class counts ~ Multinomial(size, f).
//  - dirichlet: p ~ Dir(alpha) over the non-empty classes, counts ~
//    Multinomial(examples_per_client, p).
//  - shards: classes_per_client distinct non-empty classes chosen uniformly;
//    examples_per_client split among them as evenly as possible (the first
//    classes drawn get the extra examples).
//  - quantity_skew: size = round(x_m U^(-1/a)) with x_m = examples_per_client
//    (a - 1) / a (so the mean is examples_per_client), clamped to
//    [min_examples, N]; counts ~ Multinomial(size, f). The clamp moves the
//    mean slightly (the cap at N lowers it by about x_m^a N^(1-a) / (a-1)).
// A class never gives more examples than it holds: a count above the class
// size is cut to it and the excess is redrawn uniformly from the examples
// not yet taken (for shards, only from the chosen classes), so the size is
// exactly as above.
//
// Class counts and example indices come from separate streams, so
// ClassCounts and Size never draw indices. Thread-safe: immutable after
// Create. Copies are independent and cheap to move.
//
// Example:
//   SampledPartitionOptions options;
//   options.scheme = PartitionScheme::kDirichlet;
//   SHOAL_ASSIGN_OR_RETURN(ExampleSampler sampler,
//                          ExampleSampler::Create(labels, options));
//   std::vector<int64_t> mine = sampler.Indices(/*client=*/123456);
class ExampleSampler {
 public:
  // Create indexes `labels` (int64 [N], values >= 0, N < 2^31). A label
  // value is a class; num_classes() is the largest label + 1. InvalidArgument
  // for bad labels or options, naming the field.
  static absl::StatusOr<ExampleSampler> Create(
      const at::Tensor& labels, const SampledPartitionOptions& options);

  // ClassCounts returns how many examples of each class (indexed by label)
  // client `client` has. Cost O(classes + min(size, 32 classes)) draws plus
  // seeding an mt19937_64, which dominates: about 5 us for 60 examples of 10
  // classes, so 1,000,000 clients take about 5 s.
  std::vector<int64_t> ClassCounts(uint64_t client) const;
  // Size is the sum of ClassCounts(client).
  int64_t Size(uint64_t client) const;
  // Indices returns the client's examples: sorted, distinct indices into the
  // labels, the same on every call, with ClassCounts(client) of each class.
  // O(size log size) time and O(size) memory, whatever the class sizes.
  std::vector<int64_t> Indices(uint64_t client) const;

  int num_classes() const { return static_cast<int>(class_sizes_.size()); }
  int64_t num_examples() const { return static_cast<int64_t>(order_.size()); }
  // class_sizes: examples of each class in the whole dataset (the pooled
  // reference for PartitionSummaryBuilder).
  const std::vector<int64_t>& class_sizes() const { return class_sizes_; }
  const SampledPartitionOptions& options() const { return options_; }
  // MemoryBytes: the heap and object memory the sampler holds.
  size_t MemoryBytes() const;

 private:
  ExampleSampler(SampledPartitionOptions options, std::vector<int32_t> order,
                 std::vector<int64_t> class_sizes);

  SampledPartitionOptions options_;
  // Example indices grouped by class, ascending within each class.
  std::vector<int32_t> order_;
  std::vector<int64_t> class_sizes_;
  std::vector<int64_t> class_start_;   // class c is order_[start[c], +size)
  std::vector<double> class_weights_;  // class_sizes_ as doubles
  std::vector<int> nonempty_classes_;
};

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
// (ExampleSampler::class_sizes(), or LabelHistogram over every index) or the
// sum of the histograms (what Summarize uses). Not thread-safe.
//
// Example:
//   PartitionSummaryBuilder builder(sampler.class_sizes());
//   for (uint64_t c = 0; c < clients; ++c) builder.Add(sampler.ClassCounts(c));
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
