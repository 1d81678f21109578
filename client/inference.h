// Inference with a stored global model: works offline, from a server's model
// store or a client's state directory (both use common/model_dir.h).
#ifndef SHOAL_CLIENT_INFERENCE_H_
#define SHOAL_CLIENT_INFERENCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "client/model.h"
#include "common/model_dir.h"
#include "common/signing.h"

namespace shoal::client {

struct Prediction {
  int64_t label = 0;
  double confidence = 0;  // softmax probability of `label`
};

// LoadStoredModel builds the model `dir`'s newest version records (its
// built-in spec, or the TorchScript code stored with it, never a path from
// the manifest) and loads its weights, after checking weights and code
// against the manifest's SHA-256s. With a `verifier` (the model-signing
// public key), the manifest's signature must also verify over the version,
// the weights' SHA-256, the spec and the code's SHA-256: an unsigned,
// altered or foreign model, or one whose spec or code was swapped, is
// refused with PermissionDenied before it is parsed. `spec_override` (a
// built-in name or a TorchScript file) replaces the recorded code; with a
// `verifier` it must be the very code the signature covers
// (PermissionDenied otherwise). Without an override, a manifest written
// before the code was stored (naming a TorchScript path) is refused with
// FailedPrecondition: the path is not followed.
absl::StatusOr<std::unique_ptr<Model>> LoadStoredModel(
    const std::string& dir, ModelRecord* record = nullptr,
    const std::string& spec_override = "", const ModelVerifier* verifier = nullptr);

// LoadImages reads images to classify: an IDX3 image file (gzipped or not)
// or a binary PGM (P5, 28x28, maxval 255). Returns normalized float32
// [N, 1, 28, 28]. Errors name the file and what is wrong.
absl::StatusOr<at::Tensor> LoadImages(const std::string& path);

// Predict classifies `images` in batches.
absl::StatusOr<std::vector<Prediction>> Predict(Model& model, const at::Tensor& images,
                                                int64_t batch_size = 128);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_INFERENCE_H_
