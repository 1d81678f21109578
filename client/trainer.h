// Trainer: local fine-tuning and evaluation of a Model on a Dataset. This is
// the transport-free heart of a client; the gRPC agent and the simulator both
// call it.
#ifndef SHOAL_CLIENT_TRAINER_H_
#define SHOAL_CLIENT_TRAINER_H_

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/client_algorithm.h"
#include "client/data/dataset.h"
#include "client/data/example_source.h"
#include "client/model.h"
#include "client/task.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/parameters.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal::client {

// TrainerOptions. `device` is the only place device placement is decided:
// "cpu" (default) or, with a CUDA build of LibTorch, "cuda" / "cuda:N".
struct TrainerOptions {
  std::string device = "cpu";
  // Seeds batch shuffling; combined with the round so rounds differ.
  uint64_t seed = 0;
  // What the model learns: its loss and metrics (default classification).
  TaskOptions task;

  // The device's caps on one round of training (issue 17's resource caps).
  // time_budget: once this much time has passed since training began, no
  // further step starts (the first always runs), and the outcome reports
  // the steps and examples actually trained, so that FedNova's
  // normalization and FedAvg's weights stay right. Infinite: no cap.
  absl::Duration time_budget = absl::InfiniteDuration();
  // The budget counts from the first step; what comes before it (the
  // memory probe, the client algorithms' preparation) is not charged.
  // memory_budget_bytes: what one round of training may add to the CPU
  // memory held before it (gradients, optimizer state, one batch's
  // activations, what the client algorithms hold, the update). The Trainer
  // measures forward and backward passes on 2 and 4 examples
  // (client/cpu_memory.h) before training and lowers the batch size until
  // the round fits, rather than fail; ResourceExhausted when not even one
  // example fits. 0: no cap. CPU only. The counts are the process's, so
  // other threads' allocations during the measurement count against it.
  int64_t memory_budget_bytes = 0;
  // Where the time budget reads the time (a test hands in its own).
  Clock* clock = Clock::Real();
};

struct FitOutcome {
  // update = local weights after training - `global`, same order and names.
  Parameters update;
  // Distinct training examples trained on: all of them, unless the time
  // budget ended the first epoch early.
  int64_t num_examples = 0;
  int64_t steps = 0;         // optimizer steps taken
  int64_t batch_size = 0;    // trained with: the config's, or lower under a memory budget
  bool stopped_early = false;  // the time budget ended the round before its epochs did
  double train_loss = 0;     // mean loss over the last epoch (its examples trained)
  // The task's metrics over the last epoch (Task::MetricNames), measured on
  // each batch as it was trained.
  Metrics train_metrics;
};

struct EvalOutcome {
  int64_t num_examples = 0;
  double loss = 0;  // mean loss: the task's, or the model's own
  Metrics metrics;  // the task's (Task::MetricNames)
  Metrics pooled;   // per-example means for exact federated metrics (Task::MetricSums::Pooled)
};

// Trainer is stateless between calls apart from its options; one Trainer may
// serve many models but is not thread-safe.
class Trainer {
 public:
  static absl::StatusOr<Trainer> Create(const TrainerOptions& options);

  const Task& task() const { return task_; }
  uint64_t seed() const { return options_.seed; }

  // Fit loads `global` into `model`, trains it with SGD for
  // `config.local_epochs` epochs at `config.batch_size` and
  // `config.learning_rate` (momentum and weight decay from `config`) on
  // `data`, and returns the update. `round` seeds the shuffle.
  // `algorithms` (not owned) add to plain SGD through their training hooks
  // (BeforeFirstStep, LossTerm, AfterBackward; client/client_algorithm.h),
  // called in order; LocalClient calls the others.
  // InvalidArgument for a bad config or incompatible global weights; a
  // hook's error as it is; Internal when LibTorch fails (with its message).
  // Each batch's inputs are read from `data` as it is trained on (so data
  // spooled to disk is read a batch at a time); a read error stops the
  // round with that error.
  absl::StatusOr<FitOutcome> Fit(Model& model, const Parameters& global,
                                 const ExampleSource& data,
                                 const v1::FitConfig& config, uint32_t round,
                                 absl::Span<ClientAlgorithm* const> algorithms = {});
  // Fit on examples in memory (shared, not copied).
  absl::StatusOr<FitOutcome> Fit(Model& model, const Parameters& global,
                                 const Dataset& data,
                                 const v1::FitConfig& config, uint32_t round,
                                 absl::Span<ClientAlgorithm* const> algorithms = {});

  // Evaluate computes the loss and the task's metrics of `model` as it is on
  // `data`, read `batch_size` examples at a time in order.
  absl::StatusOr<EvalOutcome> Evaluate(Model& model, const ExampleSource& data,
                                       int64_t batch_size = 128);
  absl::StatusOr<EvalOutcome> Evaluate(Model& model, const Dataset& data,
                                       int64_t batch_size = 128);

 private:
  Trainer(const TrainerOptions& options, c10::Device device)
      : options_(options), device_(device) {}
  // BatchSizeWithinBudget measures a training step (model loaded, `trainable`
  // requiring grad) and returns the largest batch size up to `wanted` whose
  // round fits options_.memory_budget_bytes over `held_before`.
  absl::StatusOr<int64_t> BatchSizeWithinBudget(Model& model, const ExampleSource& data,
                                                const at::Tensor& targets, int64_t wanted,
                                                const std::vector<at::Tensor>& trainable,
                                                bool momentum, int64_t held_before,
                                                absl::Span<ClientAlgorithm* const> algorithms);
  TrainerOptions options_;
  Task task_{options_.task};
  c10::Device device_;
};

// SetComputeThreads sets LibTorch's intra-op threads and, when LibTorch's BLAS
// is OpenBLAS (Debian's libopenblas0-pthread), OpenBLAS's own thread pool,
// which torch::set_num_threads does not reach. Several client processes on
// one machine should each take a share of the cores, not all of them.
void SetComputeThreads(int threads);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_TRAINER_H_
