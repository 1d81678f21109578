// shoal/model.h: models, stored models, predictions and export.
//
// ModelSpec: a built-in ("cnn", "2nn", "logreg", "mlp" with hidden widths)
//   or a TorchScript file; canonical form with shapes, e.g.
//   "2nn-1x28x28-10" (ParseModelSpec / ModelSpecToString).
// ResolveModelShape(spec, input_shape, outputs): fills the shapes the data
//   implies; InvalidArgument when they contradict the spec.
// CreateModel(spec, seed): a new model with seeded weights; the caller owns
//   it. A Model is not thread-safe: one thread trains or predicts at a time.
// LoadStoredModel(dir, &record[, verifier, version]): the newest (or a
//   given) version a server or device stored; NotFound without one,
//   FailedPrecondition when its signature does not verify.
// LoadInputs(options, path, task): inputs read and normalized as training
//   reads them. Predict(model, inputs): outputs, on the CPU.
// ToPredictions(task, outputs): class and probability, or values.
// Model::Export / BuiltinPythonModule: the weights where PyTorch reads them.
//
// Example:
//   shoal::ModelRecord record;
//   SHOAL_ASSIGN_OR_RETURN(auto model, shoal::LoadStoredModel(dir, &record));
//   SHOAL_ASSIGN_OR_RETURN(at::Tensor out, shoal::Predict(*model, inputs));
#ifndef SHOAL_MODEL_H_
#define SHOAL_MODEL_H_

#include "client/inference.h"
#include "client/model.h"
#include "common/model_dir.h"
#include "common/signing.h"
#include "shoal/data.h"
#include "shoal/task.h"

namespace shoal {

using client::BuiltinPythonModule;
using client::CreateModel;
using client::LoadInputs;
using client::LoadStoredModel;
using client::Model;
using client::ModelSpec;
using client::ModelSpecToString;
using client::ParseModelSpec;
using client::Predict;
using client::Predictions;
using client::ResolveModelShape;
using client::ToPredictions;

}  // namespace shoal

#endif  // SHOAL_MODEL_H_
