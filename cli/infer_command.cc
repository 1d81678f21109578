#include <torch/torch.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "client/data/dataset.h"
#include "client/inference.h"
#include "client/trainer.h"
#include "common/signing.h"
#include "common/status.h"

namespace shoal::cli {
namespace {

absl::Status RunInfer(const InferFlags& flags) {
  std::shared_ptr<const ModelVerifier> verifier;
  if (!flags.model_key.empty()) {
    SHOAL_ASSIGN_OR_RETURN(verifier, ModelVerifier::Load(flags.model_key));
  } else if (flags.insecure_unverified) {
    std::fprintf(stderr,
                 "shoal infer: warning: --insecure-unverified: the model's signature is not "
                 "checked, so its origin is not either; it may have been altered\n");
  } else {
    return absl::InvalidArgumentError(
        "refusing to run a model whose origin is not checked: give --model-key FILE (the "
        "server's model-signing.pub), or --insecure-unverified to skip the check");
  }
  ModelRecord record;
  SHOAL_ASSIGN_OR_RETURN(
      std::unique_ptr<client::Model> model,
      client::LoadStoredModel(flags.model_dir, &record, flags.model, verifier.get()));
  SHOAL_ASSIGN_OR_RETURN(at::Tensor images, client::LoadImages(flags.input));
  SHOAL_ASSIGN_OR_RETURN(std::vector<client::Prediction> predictions,
                         client::Predict(*model, images));
  // The signature covers the weights, the spec and the code's SHA-256
  // (common/signing.h), so "verified" speaks for the code that just ran.
  // Unverified, --model replaces the recorded code; verified, it can only
  // name the same code.
  const std::string code = !flags.model.empty() && verifier == nullptr ? flags.model
                           : record.code_sha256_hex.empty()
                               ? record.model_spec
                               : absl::StrCat(record.model_spec, ", code SHA-256 ",
                                              record.code_sha256_hex.substr(0, 16));
  std::printf("model version %lld (%s) from %s, %s, %zu image(s)\n",
              static_cast<long long>(record.version), code.c_str(), flags.model_dir.c_str(),
              verifier != nullptr
                  ? absl::StrCat("signature verified over weights, spec and code (key ",
                                 verifier->key_id(), ")")
                        .c_str()
                  : "signature NOT checked",
              predictions.size());
  at::Tensor labels;
  if (!flags.labels.empty()) {
    SHOAL_ASSIGN_OR_RETURN(labels, client::ReadIdxLabels(flags.labels));
    if (labels.size(0) != static_cast<int64_t>(predictions.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          flags.labels, " holds ", labels.size(0), " labels for ", predictions.size(), " images"));
    }
  }
  int64_t correct = 0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    const client::Prediction& p = predictions[i];
    const bool has_label = labels.defined();
    const int64_t truth = has_label ? labels[i].item<int64_t>() : -1;
    if (has_label && truth == p.label) ++correct;
    if (static_cast<int>(i) < flags.limit) {
      std::printf("  [%zu] class %lld %5.1f%%%s\n", i, static_cast<long long>(p.label),
                  100 * p.confidence,
                  has_label ? absl::StrCat("  (label: ", truth, ")").c_str() : "");
    }
  }
  if (labels.defined()) {
    std::printf("accuracy: %.2f%% (%lld of %zu)\n", 100.0 * correct / predictions.size(),
                static_cast<long long>(correct), predictions.size());
  }
  return absl::OkStatus();
}

}  // namespace

int RunInferCommand(const InferFlags& flags) {
  client::SetComputeThreads(static_cast<int>(std::thread::hardware_concurrency()));
  absl::Status status = RunInfer(flags);
  if (!status.ok()) {
    std::fprintf(stderr, "shoal infer: %s\n", std::string(status.message()).c_str());
    return absl::IsInvalidArgument(status) || absl::IsNotFound(status) ? 2 : 1;
  }
  return 0;
}

}  // namespace shoal::cli
