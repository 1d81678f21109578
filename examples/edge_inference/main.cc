// edge_inference: classify images with the newest global model a Shoal
// client keeps on disk, without any server. Built against the installed
// Shoal package (find_package(Shoal)). Tensors in, tensors out: LoadInputs
// reads and normalizes the data as training does, Predict returns the
// model's outputs, ToPredictions reads them for the task.
//
// Usage: edge_inference MODEL_DIR IMAGES   (IDX image file or binary PGM)
//        edge_inference --describe SPEC    (a canonical built-in spec such as
//                                          2nn-1x28x28-10: print its size)
#include <cstdio>
#include <cstring>
#include <string>

#include "shoal/data.h"
#include "shoal/model.h"

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--describe") == 0) {
    auto spec = shoal::client::ParseModelSpec(argv[2]);
    if (!spec.ok()) {
      std::fprintf(stderr, "%s\n", std::string(spec.status().message()).c_str());
      return 2;
    }
    auto model = shoal::client::CreateModel(*spec);
    if (!model.ok()) return 1;
    std::printf("%s: %lld parameters\n", argv[2],
                static_cast<long long>((*model)->GetParameters().NumElements()));
    return 0;
  }
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR IMAGES | --describe MODEL\n", argv[0]);
    return 2;
  }
  shoal::ModelRecord record;
  auto model = shoal::client::LoadStoredModel(argv[1], &record);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  // A classification task on images in [0, 1]; a deployment passes the
  // DataOptions (format, normalization) and TaskOptions it trained with.
  const shoal::client::Task task;
  auto data = shoal::client::LoadInputs(shoal::client::DataOptions(), argv[2], task);
  if (!data.ok()) {
    std::fprintf(stderr, "%s\n", std::string(data.status().message()).c_str());
    return 2;
  }
  auto outputs = shoal::client::Predict(**model, data->inputs);
  if (!outputs.ok()) {
    std::fprintf(stderr, "%s\n", std::string(outputs.status().message()).c_str());
    return 2;
  }
  auto predictions = shoal::client::ToPredictions(task, *outputs);
  if (!predictions.ok()) return 1;
  const int64_t n = outputs->size(0);
  for (int64_t i = 0; i < n && i < 10; ++i) {
    std::printf("%lld: class %lld (%.1f%%)\n", static_cast<long long>(i),
                static_cast<long long>(predictions->classes[i].item<int64_t>()),
                100 * predictions->probabilities[i].item<double>());
  }
  std::printf("model version %lld, %lld image(s)\n", static_cast<long long>(record.version),
              static_cast<long long>(n));
  return 0;
}
