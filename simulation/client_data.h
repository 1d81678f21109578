// ClientData: which training examples each virtual client holds, for a
// population far larger than anyone would store index lists for. Either the
// training set is split among the clients (each example belongs to exactly
// one: a flat permutation plus one offset per client), or, when the
// population outgrows the data, each client draws its own examples from its
// seed whenever it trains (client::ExampleSampler: nothing per client).
#ifndef SHOAL_SIMULATION_CLIENT_DATA_H_
#define SHOAL_SIMULATION_CLIENT_DATA_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "client/data/partition.h"

namespace shoal::simulation {

// Thread-safe (const after creation).
class ClientData {
 public:
  // Split partitions the examples labelled `labels` (int64 [N]) among
  // options.num_partitions clients with client::Partition. Errors as
  // Partition's.
  static absl::StatusOr<ClientData> Split(const at::Tensor& labels,
                                          const client::PartitionOptions& options);
  // Sampled lets `num_clients` clients each draw their own examples.
  static absl::StatusOr<ClientData> Sampled(const at::Tensor& labels, uint64_t num_clients,
                                            const client::SampledPartitionOptions& options);

  uint64_t num_clients() const { return num_clients_; }
  bool disjoint() const { return !sampler_.has_value(); }
  // Indices returns the client's examples, sorted.
  std::vector<int64_t> Indices(uint64_t client) const;
  // ClassCounts returns how many examples of each class the client holds.
  std::vector<int64_t> ClassCounts(uint64_t client) const;
  int num_classes() const { return num_classes_; }
  // PooledClassCounts counts the examples of each class in the whole
  // training set: the reference a client's label mix is compared with.
  std::vector<int64_t> PooledClassCounts() const;
  // MemoryBytes is what the plan holds: O(examples + clients) split,
  // O(examples) sampled.
  size_t MemoryBytes() const;

 private:
  ClientData() = default;

  uint64_t num_clients_ = 0;
  int num_classes_ = 0;
  // Split: client c holds pool_[offsets_[c] .. offsets_[c + 1]).
  std::vector<int32_t> pool_;
  std::vector<uint32_t> offsets_;
  std::vector<uint8_t> labels_;
  std::optional<client::ExampleSampler> sampler_;
};

}  // namespace shoal::simulation

#endif  // SHOAL_SIMULATION_CLIENT_DATA_H_
