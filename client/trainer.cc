#include "client/trainer.h"

#include <dlfcn.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cpu_memory.h"
#include "common/random.h"
#include "common/status.h"
#include "common/types.h"

namespace shoal::client {
namespace {

absl::Status FromTorchError(const c10::Error& e, absl::string_view context) {
  return absl::InternalError(
      absl::StrCat(context, ": ", e.what_without_backtrace()));
}
absl::Status FromStdError(const std::exception& e, absl::string_view context) {
  return absl::InternalError(absl::StrCat(context, ": ", e.what()));
}


uint64_t ShuffleSeed(uint64_t seed, uint32_t round, int64_t epoch) {
  // Distinct (seed, round, epoch) triples give unrelated generator seeds.
  return SplitMix64(SplitMix64(SplitMix64(seed) ^ round) ^ static_cast<uint64_t>(epoch));
}

absl::Status ValidateFitConfig(const v1::FitConfig& config) {
  if (config.local_epochs() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("local_epochs must be >= 1, got ", config.local_epochs()));
  }
  if (config.batch_size() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be >= 1, got ", config.batch_size()));
  }
  // Written so that NaN fails each check.
  const double lr = config.learning_rate();
  if (!(lr > 0) || !std::isfinite(lr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("learning_rate must be finite and > 0, got ", lr));
  }
  const double momentum = config.momentum();
  if (!(momentum >= 0 && momentum < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("momentum must be in [0, 1), got ", momentum));
  }
  const double wd = config.weight_decay();
  if (!(wd >= 0) || !std::isfinite(wd)) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight_decay must be finite and >= 0, got ", wd));
  }
  return absl::OkStatus();
}

// ValidateData checks the shape contract of a Dataset.
// Checked here rather than left to LibTorch so that a caller's mistake is
// InvalidArgument with a plain message, not Internal with a kernel's. The
// targets are checked against the task and the model by Task::CheckTargets
// on the first batch.
absl::Status ValidateData(const Dataset& data) {
  if (!data.inputs.defined() || !data.targets.defined()) {
    return absl::InvalidArgumentError("dataset has no inputs or targets");
  }
  if (data.inputs.dim() < 2 || !at::isFloatingType(data.inputs.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset inputs must be floating-point [N, ...], got ",
        c10::toString(data.inputs.scalar_type()), " [",
        absl::StrJoin(data.inputs.sizes(), ", "), "]"));
  }
  if (data.targets.dim() < 1) {
    return absl::InvalidArgumentError("dataset targets must be [N] or [N, K], got a scalar");
  }
  if (data.targets.size(0) != data.inputs.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset has ", data.inputs.size(0), " inputs but ", data.targets.size(0), " targets"));
  }
  return absl::OkStatus();
}

// ValidateSource checks what a source promises and returns its size.
absl::StatusOr<int64_t> ValidateSource(const ExampleSource& data) {
  const at::Tensor& targets = data.targets();
  if (!targets.defined() || targets.dim() < 1) {
    return absl::InvalidArgumentError("dataset targets must be [N] or [N, K]");
  }
  if (data.input_shape().empty()) {
    return absl::InvalidArgumentError("dataset inputs must be [N, ...] with at least one axis per example");
  }
  const int64_t n = data.size();
  if (n == 0) return absl::InvalidArgumentError("dataset is empty");
  return n;
}

// BatchLoss is the model's own loss when it defines one, else the task's;
// averaged over the batch, or summed when `sum`.
at::Tensor BatchLoss(Model& model, const Task& task, const at::Tensor& outputs,
                     const at::Tensor& targets, bool sum) {
  if (!model.HasLoss()) return task.Loss(outputs, targets, sum);
  at::Tensor loss = model.Loss(outputs, targets);
  return sum ? loss * static_cast<double>(targets.size(0)) : loss;
}

}  // namespace

absl::StatusOr<Trainer> Trainer::Create(const TrainerOptions& options) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(options.device);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid device '", options.device,
        "' (expected cpu, cuda or cuda:N): ", e.what_without_backtrace()));
  }
  if (!device.is_cpu() && !device.is_cuda()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported device '", options.device,
                     "': expected cpu, cuda or cuda:N"));
  }
  if (device.is_cuda()) {
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "device '", options.device,
          "' requested but CUDA is not available (LibTorch built without "
          "CUDA, or no GPU visible); use device 'cpu'"));
    }
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (device.has_index() && device.index() >= count) {
      return absl::InvalidArgumentError(
          absl::StrCat("device '", options.device, "' does not exist: ", count,
                       " CUDA device(s) visible"));
    }
  }
  if (!(options.time_budget > absl::ZeroDuration())) {
    return absl::InvalidArgumentError("the time budget must be positive");
  }
  if (options.memory_budget_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the memory budget must be >= 0 bytes, got ", options.memory_budget_bytes));
  }
  if (options.memory_budget_bytes > 0) {
    if (!device.is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a memory budget is measured on the CPU only; device '", options.device,
          "' has its own allocator"));
    }
    InstallCpuMemoryMeter();
    if (!CpuMemoryMeterInstalled()) {
      return absl::FailedPreconditionError(
          "a memory budget needs LibTorch's CPU allocator to be measurable, and this one is not");
    }
  }
  if (options.clock == nullptr) return absl::InvalidArgumentError("no clock");
  return Trainer(options, device);
}

absl::StatusOr<int64_t> Trainer::BatchSizeWithinBudget(Model& model, const ExampleSource& data,
                                                       const at::Tensor& targets, int64_t wanted,
                                                       const std::vector<at::Tensor>& trainable,
                                                       bool momentum, int64_t held_before,
                                                       absl::Span<ClientAlgorithm* const> algorithms) {
  const int64_t n = data.size();
  const int64_t budget = options_.memory_budget_bytes;
  // What the whole round holds besides a step: the momentum buffers and the
  // epoch's permutation. The update is made after the last step, when the
  // step's own memory is free again.
  int64_t trainable_bytes = 0;
  for (const at::Tensor& p : trainable) trainable_bytes += static_cast<int64_t>(p.nbytes());
  const int64_t model_bytes = model.GetParameters().ByteSize();
  const int64_t extra = (momentum ? trainable_bytes : 0) + n * 8;
  // The probe must not change the round: the model's buffers (a
  // normalization layer's running statistics) are put back by the caller,
  // the gradients are dropped, and the global generator (dropout) is
  // restored.
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  at::Tensor rng_state;
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    rng_state = generator.get_state();
  }
  // A step's peak: the batch's activations and the fresh gradients, which
  // from the second step on are summed into the ones held (so both live at
  // once): measured with the gradients already there.
  auto step = [&](int64_t b) -> absl::StatusOr<int64_t> {
    ResetCpuPeakBytes();
    {
      SHOAL_ASSIGN_OR_RETURN(const at::Tensor batch, data.Inputs(at::arange(0, b, at::kLong)));
      const at::Tensor x = batch.to(device_);
      const at::Tensor y = targets.narrow(0, 0, b);
      const at::Tensor outputs = model.Forward(x);
      SHOAL_RETURN_IF_ERROR(task_.CheckTargets(targets, outputs));
      at::Tensor objective = BatchLoss(model, task_, outputs, y, /*sum=*/false);
      const TrainingStep probe_step{0, x, y, outputs, trainable};
      for (ClientAlgorithm* a : algorithms) {
        if (at::Tensor term = a->LossTerm(probe_step); term.defined()) objective = objective + term;
      }
      objective.backward();
    }
    return CpuPeakBytes() - held_before;
  };
  struct DropGradients {
    const std::vector<at::Tensor>& trainable;
    ~DropGradients() {
      for (const at::Tensor& p : trainable) {
        at::Tensor param = p;
        param.mutable_grad() = at::Tensor();
      }
    }
  } drop_gradients{trainable};
  const int64_t lo = std::min<int64_t>({2, wanted, n});
  const int64_t hi = std::min<int64_t>({4, wanted, n});
  SHOAL_RETURN_IF_ERROR(step(lo).status());  // the gradients, as after a first step
  // Between steps (and when the update is made, after the last one): the
  // starting weights and the gradients.
  const int64_t between_steps = CpuBytesInUse() - held_before;
  // The counts are the process's: another thread (a device serving
  // predictions) may allocate or free meanwhile. Each size is measured
  // twice and the larger kept, so a free elsewhere does not shrink it.
  int64_t at_lo = 0, at_hi = 0;
  for (int repeat = 0; repeat < 2; ++repeat) {
    SHOAL_ASSIGN_OR_RETURN(const int64_t lo_bytes, step(lo));
    at_lo = std::max(at_lo, lo_bytes);
    if (hi > lo) {
      SHOAL_ASSIGN_OR_RETURN(const int64_t hi_bytes, step(hi));
      at_hi = std::max(at_hi, hi_bytes);
    }
  }
  int64_t per_example = 0;
  if (hi > lo) per_example = std::max<int64_t>(0, (at_hi - at_lo + (hi - lo) - 1) / (hi - lo));
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng_state);
  }
  // The round's peak at batch size b is
  //   extra + max(at_lo + per_example * (b - lo), between_steps + model_bytes),
  // kept under the budget with a 5 % margin for what two small steps do not
  // show (allocator scratch that grows with the batch in steps).
  const int64_t usable = budget - budget / 20 - extra;
  const int64_t step_fixed = at_lo - per_example * lo;
  const int64_t fits =
      between_steps + model_bytes > usable ? 0
      : per_example == 0                  ? (step_fixed <= usable ? wanted : 0)
                                          : (usable - step_fixed) / per_example;
  if (fits < 1) {
    const int64_t one = extra + std::max(step_fixed + per_example, between_steps + model_bytes);
    return absl::ResourceExhaustedError(absl::StrFormat(
        "training this model needs about %.1f MB at batch size 1 (measured), more than the "
        "memory budget of %.1f MB",
        static_cast<double>(one) / 1e6, static_cast<double>(budget) / 1e6));
  }
  return std::min(wanted, fits);
}

absl::StatusOr<FitOutcome> Trainer::Fit(Model& model, const Parameters& global,
                                        const Dataset& data, const v1::FitConfig& config,
                                        uint32_t round,
                                        absl::Span<ClientAlgorithm* const> algorithms) {
  SHOAL_RETURN_IF_ERROR(ValidateData(data));
  return Fit(model, global, *InMemory(data), config, round, algorithms);
}

absl::StatusOr<EvalOutcome> Trainer::Evaluate(Model& model, const Dataset& data,
                                              int64_t batch_size) {
  SHOAL_RETURN_IF_ERROR(ValidateData(data));
  return Evaluate(model, *InMemory(data), batch_size);
}

absl::StatusOr<FitOutcome> Trainer::Fit(Model& model, const Parameters& global,
                                        const ExampleSource& data,
                                        const v1::FitConfig& config,
                                        uint32_t round,
                                        absl::Span<ClientAlgorithm* const> algorithms) {
  SHOAL_RETURN_IF_ERROR(ValidateFitConfig(config));
  SHOAL_ASSIGN_OR_RETURN(const int64_t n, ValidateSource(data));
  const int64_t held_before = options_.memory_budget_bytes > 0 ? CpuBytesInUse() : 0;
  try {
    // The caller may be inside a no-grad scope; training needs autograd.
    torch::AutoGradMode enable_grad(true);
    model.To(device_);
    SHOAL_RETURN_IF_ERROR(
        Annotate(model.SetParameters(global), "global weights"));
    // The starting point is snapshotted from the model rather than read from
    // `global` later, because `global` may share storage with the model
    // (e.g. a caller passing model.GetParameters() without Clone()) and
    // training would then change it under us. After SetParameters the two
    // are bitwise equal, so the update is still exactly after - global.
    const Parameters start = model.GetParameters().Clone();

    const at::TensorOptions float_options = at::dtype(at::kFloat).device(device_);
    const at::Tensor targets = data.targets().to(device_);
    int64_t batch_size = config.batch_size();
    const int64_t epochs = config.local_epochs();

    // Partial fine-tuning: the frozen tensors (config.frozen) get no
    // gradient and no optimizer step, and what training would still change
    // in them (a normalization layer's running statistics) is put back
    // after, so they end bit-identical and their update is exactly zero.
    // Parameters of the model alias its tensors: a frozen one is found by
    // its storage.
    std::vector<const void*> frozen_storage;
    Parameters frozen_start;
    for (size_t i = 0; i < start.size(); ++i) {
      const std::string& name = start.name(i);
      if (std::find(config.frozen().begin(), config.frozen().end(), name) ==
          config.frozen().end()) {
        continue;
      }
      frozen_start.Add(name, start.tensor(i));
    }
    if (static_cast<int>(frozen_start.size()) != config.frozen_size()) {
      return absl::InvalidArgumentError(
          "the fit config freezes a tensor this model does not have (or one twice)");
    }
    {
      const Parameters live = model.GetParameters();
      for (size_t i = 0; i < live.size(); ++i) {
        for (const std::string& name : frozen_start.names()) {
          if (name == live.name(i)) frozen_storage.push_back(live.tensor(i).data_ptr());
        }
      }
    }
    std::vector<at::Tensor> trainable;
    std::vector<at::Tensor> held;  // frozen parameters, requires_grad off while training
    for (at::Tensor& p : model.TrainableParameters()) {
      if (std::find(frozen_storage.begin(), frozen_storage.end(), p.data_ptr()) !=
          frozen_storage.end()) {
        held.push_back(p);
      } else {
        trainable.push_back(p);
      }
    }
    struct GradRestorer {
      std::vector<at::Tensor>& held;
      ~GradRestorer() {
        for (at::Tensor& p : held) p.requires_grad_(true);
      }
    } restore_grads{held};
    for (at::Tensor& p : held) p.requires_grad_(false);
    if (trainable.empty()) {
      return absl::InvalidArgumentError(
          "model has no trainable parameters (none requires grad)");
    }
    {
      const Parameters parameters = model.GetParameters();
      const TrainingStart training_start{round, config, model, data, parameters, trainable, *this};
      for (ClientAlgorithm* a : algorithms) {
        SHOAL_RETURN_IF_ERROR(a->BeforeFirstStep(training_start));
      }
    }
    if (options_.memory_budget_bytes > 0) {
      // Measured as it will train: in training mode (dropout, batch
      // statistics), with what the algorithms hold (FedProx's anchor) and
      // add to the loss.
      model.SetTraining(true);
      SHOAL_ASSIGN_OR_RETURN(batch_size,
                             BatchSizeWithinBudget(model, data, targets, batch_size, trainable,
                                                   config.momentum() > 0, held_before, algorithms));
      // The probe's forward passes moved running statistics; start again.
      SHOAL_RETURN_IF_ERROR(Annotate(model.SetParameters(start), "global weights"));
    }
    torch::optim::SGD optimizer(trainable,
                                torch::optim::SGDOptions(config.learning_rate())
                                    .momentum(config.momentum())
                                    .weight_decay(config.weight_decay()));
    model.SetTraining(true);

    FitOutcome outcome;
    outcome.batch_size = batch_size;
    // The time budget: no step starts after it (the first always does).
    const bool timed = options_.time_budget < absl::InfiniteDuration();
    const absl::Time began = timed ? options_.clock->Now() : absl::InfinitePast();
    auto out_of_time = [&] {
      return timed && outcome.steps > 0 && options_.clock->Now() - began >= options_.time_budget;
    };
    for (int64_t epoch = 0; epoch < epochs && !outcome.stopped_early; ++epoch) {
      if (out_of_time()) {
        outcome.stopped_early = true;
        break;
      }
      // The permutation is drawn on the CPU from a private generator so it
      // is the same on every device and independent of global RNG state.
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
          ShuffleSeed(options_.seed, round, epoch));
      const at::Tensor perm = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
      const at::Tensor device_perm = perm.to(device_);
      // Summed on the device and read once per epoch: a per-step .item()
      // would synchronize a GPU on every batch.
      at::Tensor loss_sum = at::zeros({}, float_options.dtype(at::kDouble));
      Task::MetricSums metrics(task_, float_options);
      int64_t seen = 0;  // examples trained on in this epoch
      for (int64_t begin = 0; begin < n; begin += batch_size) {
        if (out_of_time()) {
          outcome.stopped_early = true;
          break;
        }
        const int64_t end = std::min(n, begin + batch_size);
        SHOAL_ASSIGN_OR_RETURN(const at::Tensor batch, data.Inputs(perm.slice(0, begin, end)));
        const at::Tensor x = batch.to(device_);
        const at::Tensor y = targets.index_select(0, device_perm.slice(0, begin, end));
        optimizer.zero_grad();
        const at::Tensor outputs = model.Forward(x);
        if (epoch == 0 && begin == 0) {
          SHOAL_RETURN_IF_ERROR(task_.CheckTargets(targets, outputs));
        }
        const at::Tensor loss = BatchLoss(model, task_, outputs, y, /*sum=*/false);
        at::Tensor objective = loss;
        const TrainingStep step{epoch, x, y, outputs, trainable};
        for (ClientAlgorithm* a : algorithms) {
          if (at::Tensor term = a->LossTerm(step); term.defined()) objective = objective + term;
        }
        objective.backward();
        for (ClientAlgorithm* a : algorithms) a->AfterBackward(step);
        optimizer.step();
        ++outcome.steps;
        seen = end;
        {
          torch::NoGradGuard no_grad;
          // In place: two small ops per step instead of six.
          loss_sum.add_(loss.detach(), static_cast<double>(end - begin));
          metrics.Add(outputs.detach(), y);
        }
      }
      if (seen == 0) break;  // the time ran out at this epoch's start
      outcome.num_examples = std::max(outcome.num_examples, seen);
      outcome.train_loss = loss_sum.item<double>() / static_cast<double>(seen);
      outcome.train_metrics = metrics.Result(seen);
      // Stop at the first bad epoch: more steps from NaN weights are wasted
      // time, and a NaN update would poison the global model.
      if (!std::isfinite(outcome.train_loss)) {
        return absl::InvalidArgumentError(
            "training diverged: loss is NaN/Inf; lower the learning rate");
      }
    }

    const Parameters after = model.GetParameters();
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < after.size(); ++i) {
        for (size_t j = 0; j < frozen_start.size(); ++j) {
          if (frozen_start.name(j) == after.name(i)) {
            at::Tensor alias = after.tensor(i);  // shares the model's storage
            alias.copy_(frozen_start.tensor(j));
          }
        }
      }
    }
    for (size_t i = 0; i < after.size(); ++i) {
      // On the CPU: the update's next stop is the wire.
      outcome.update.Add(after.name(i),
                         (after.tensor(i) - start.tensor(i)).to(at::kCPU));
    }
    if (absl::Status finite = outcome.update.CheckFinite(); !finite.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("training diverged: ", finite.message(),
                       "; lower the learning rate"));
    }
    return outcome;
  } catch (const c10::Error& e) {
    return FromTorchError(e, "training");
  } catch (const std::exception& e) {
    return FromStdError(e, "training");
  }
}

absl::StatusOr<EvalOutcome> Trainer::Evaluate(Model& model, const ExampleSource& data,
                                              int64_t batch_size) {
  if (batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be >= 1, got ", batch_size));
  }
  SHOAL_ASSIGN_OR_RETURN(const int64_t n, ValidateSource(data));
  try {
    torch::NoGradGuard no_grad;
    model.To(device_);
    model.SetTraining(false);
    const at::TensorOptions float_options = at::dtype(at::kFloat).device(device_);
    const at::Tensor targets = data.targets().to(device_);
    at::Tensor loss_sum = at::zeros({}, float_options.dtype(at::kDouble));
    Task::MetricSums metrics(task_, float_options);
    for (int64_t begin = 0; begin < n; begin += batch_size) {
      const int64_t len = std::min(n - begin, batch_size);
      SHOAL_ASSIGN_OR_RETURN(const at::Tensor batch,
                             data.Inputs(at::arange(begin, begin + len, at::kLong)));
      const at::Tensor x = batch.to(device_);
      const at::Tensor y = targets.narrow(0, begin, len);
      const at::Tensor outputs = model.Forward(x);
      if (begin == 0) {
        SHOAL_RETURN_IF_ERROR(task_.CheckTargets(targets, outputs));
      }
      loss_sum += BatchLoss(model, task_, outputs, y, /*sum=*/true).to(at::kDouble);
      metrics.Add(outputs, y);
    }
    EvalOutcome outcome;
    outcome.num_examples = n;
    outcome.loss = loss_sum.item<double>() / static_cast<double>(n);
    outcome.metrics = metrics.Result(n);
    outcome.pooled = metrics.Pooled();
    return outcome;
  } catch (const c10::Error& e) {
    return FromTorchError(e, "evaluating");
  } catch (const std::exception& e) {
    return FromStdError(e, "evaluating");
  }
}

void SetComputeThreads(int threads) {
  threads = std::max(1, threads);
  torch::set_num_threads(threads);
  using SetThreadsFn = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    fn(threads);
  }
}

}  // namespace shoal::client
