// ServingModel: the model a device answers predictions with, and its hot
// swap. Applications and the device's local endpoint call Predict from any
// number of threads while training and rollouts go on beside them; when a
// new serving version takes over, Install swaps it in atomically.
//
// How the swap stays safe: the serving model is held by a shared pointer.
// Predict copies the pointer under a short lock and runs the forward pass
// without it, so a prediction that started on the old model finishes on the
// old model (which lives until its last prediction returns), the next one
// starts on the new model, and none fails or waits for the other. Each
// answer says which version gave it.
//
// Install takes ownership of the model and puts it in eval mode once; the
// forward passes then only read it (built-in modules and TorchScript are
// safe to run from several threads in inference).
#ifndef SHOAL_CLIENT_SERVING_MODEL_H_
#define SHOAL_CLIENT_SERVING_MODEL_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client/model.h"
#include "common/model_dir.h"

namespace shoal::client {

// Served: the answer of one Predict call.
struct Served {
  at::Tensor outputs;  // the model's raw outputs, on the CPU: [N, K] or [N]
  int64_t version = 0;  // the serving version that computed them
};

// ServingModel is thread-safe; every method may be called from any thread.
class ServingModel {
 public:
  // `batch_size` bounds the rows of one forward pass (a larger request runs
  // in several), so one caller's request cannot take all the device's
  // memory.
  explicit ServingModel(int64_t batch_size = 128);

  // Install makes `model` (built and loaded for `record`) the serving
  // model. Predictions running on the model it replaces finish on it.
  // InvalidArgument for a null model.
  absl::Status Install(std::unique_ptr<Model> model, ModelRecord record);

  // Predict runs the serving model on `inputs` [N, ...] without gradients.
  // Unavailable before the first Install; InvalidArgument, with the inputs'
  // shape and LibTorch's one-line reason, for inputs the model cannot take.
  absl::StatusOr<Served> Predict(const at::Tensor& inputs) const;

  // current is the record of the serving model, if one is installed.
  std::optional<ModelRecord> current() const;

  // installs counts Install calls that succeeded.
  int64_t installs() const;

 private:
  struct Version {
    std::unique_ptr<Model> model;
    ModelRecord record;
  };

  const int64_t batch_size_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Version> serving_ ABSL_GUARDED_BY(mu_);
  int64_t installs_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_SERVING_MODEL_H_
