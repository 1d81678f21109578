// Inference with a stored global model: works offline, from a server's model
// store or a client's state directory (both use common/model_dir.h), on
// inputs read and normalized exactly as training reads them.
#ifndef SHOAL_CLIENT_INFERENCE_H_
#define SHOAL_CLIENT_INFERENCE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/data/dataset.h"
#include "client/data/source.h"
#include "client/model.h"
#include "client/task.h"
#include "common/metrics.h"
#include "common/model_dir.h"
#include "common/signing.h"

namespace shoal::client {

// LoadStoredModel builds the model `dir`'s newest version (or `version`)
// records (its built-in spec, or the TorchScript code stored with it, never
// a path from the manifest) and loads its weights, after checking weights
// and code against the manifest's SHA-256s. With a `verifier` (the
// model-signing public key), the manifest's signature must also verify over
// the version, the weights' SHA-256, the spec and the code's SHA-256: an
// unsigned, altered or foreign model, or one whose spec or code was
// swapped, is refused with PermissionDenied before it is parsed.
// `spec_override` (a built-in name or a TorchScript file) replaces the
// recorded code; with a `verifier` it must be the very code the signature
// covers (PermissionDenied otherwise). Without an override, a manifest
// written before the code was stored (naming a TorchScript path) is refused
// with FailedPrecondition: the path is not followed. NotFound when `dir`
// holds no such version.
absl::StatusOr<std::unique_ptr<Model>> LoadStoredModel(const std::string& dir,
                                                       ModelRecord* record = nullptr,
                                                       const std::string& spec_override = "",
                                                       const ModelVerifier* verifier = nullptr,
                                                       int64_t version = kLatestVersion);

// LoadInputs reads examples to run a model on from `path`, in
// `options.format` (options.dir is ignored), shaped for `task` and
// normalized as `options.normalization` says: what training does with data
// of that format, so a model sees its inputs as it saw them in training.
//  - IDX: `path` is an IDX3 image file (gzipped or not) or a binary PGM
//    image (P5, maxval 255, any size), read as float32 [N, 1, H, W] in
//    [0, 1] before normalization, with the targets of the IDX1 label file
//    `labels_path` when given; or a folder holding the IDX distribution's
//    files, whose test split (t10k-*) is read with its labels.
//  - any other format: `path` in place of options.dir, read by LoadData's
//    test split.
// `targets` is undefined when the input carries none. Normalization kAuto
// computes its statistics from these inputs (as the server's evaluation
// does from its test split). Errors name the file: InvalidArgument for a
// malformed file, no examples, labels for a format that carries its own,
// or labels that do not match the inputs; NotFound when missing.
absl::StatusOr<Dataset> LoadInputs(const DataOptions& options, const std::string& path,
                                   const Task& task, const std::string& labels_path = "");

// Predict runs `model` on `inputs` [N, ...] in eval mode without gradients,
// in batches of `batch_size`, and returns its raw outputs on the CPU:
// [N, K] (logits or values) or [N]. InvalidArgument, with the inputs' shape
// and LibTorch's one-line reason, when the model does not take them.
//
// Example:
//   SHOAL_ASSIGN_OR_RETURN(Dataset data, LoadInputs(options, "x.idx3.gz", task));
//   SHOAL_ASSIGN_OR_RETURN(at::Tensor outputs, Predict(*model, data.inputs));
//   SHOAL_ASSIGN_OR_RETURN(Predictions p, ToPredictions(task, outputs));
absl::StatusOr<at::Tensor> Predict(Model& model, const at::Tensor& inputs,
                                   int64_t batch_size = 128);

// ForwardInBatches is Predict for a model that is in eval mode already: it
// only runs forward passes, so several threads may call it on one model at
// once (ServingModel does).
absl::StatusOr<at::Tensor> ForwardInBatches(Model& model, const at::Tensor& inputs,
                                            int64_t batch_size = 128);

// Predictions: a model's outputs read for its task, on the CPU. Which
// fields are set depends on the task; the others are undefined.
struct Predictions {
  // Classification: the most probable class, int64 [N], and its softmax
  // probability, float32 [N].
  at::Tensor classes;
  // Classification: as above. Multi-label: the sigmoid probability of every
  // label, float32 [N, K].
  at::Tensor probabilities;
  // Regression: the predicted values, float32 [N, K].
  at::Tensor values;
};

// ToPredictions reads `outputs` (Predict's) for `task`: softmax and argmax
// over [N, C] logits (classification), sigmoid of [N] or [N, K] logits
// (multi-label), [N] or [N, K] values (regression; [N] becomes [N, 1]).
// InvalidArgument when the outputs' shape does not suit the task.
absl::StatusOr<Predictions> ToPredictions(const Task& task, const at::Tensor& outputs);

// ScoreOutputs returns the task's metrics of `outputs` against `targets`
// (accuracy; or MAE, RMSE and R²), computed as evaluation computes them.
// InvalidArgument (Task::CheckTargets's) when the targets do not suit the
// task and the outputs.
absl::StatusOr<Metrics> ScoreOutputs(const Task& task, const at::Tensor& outputs,
                                     const at::Tensor& targets);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_INFERENCE_H_
