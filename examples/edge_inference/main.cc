// edge_inference: classify images with the newest global model a Shoal
// client keeps on disk, without any server. Built against the installed
// Shoal package (find_package(Shoal)).
//
// Usage: edge_inference MODEL_DIR IMAGES   (IDX image file or 28x28 PGM)
//        edge_inference --describe MODEL   (cnn, 2nn, logreg: print its size)
#include <cstdio>
#include <cstring>
#include <string>

#include "client/data/dataset.h"
#include "client/inference.h"
#include "client/model.h"

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
  auto images = shoal::client::LoadImages(argv[2]);
  if (!images.ok()) {
    std::fprintf(stderr, "%s\n", std::string(images.status().message()).c_str());
    return 2;
  }
  auto predictions = shoal::client::Predict(**model, *images);
  if (!predictions.ok()) return 1;
  for (size_t i = 0; i < predictions->size() && i < 10; ++i) {
    const auto& p = (*predictions)[i];
    std::printf("%zu: class %lld (%.1f%%)\n", i, static_cast<long long>(p.label),
                100 * p.confidence);
  }
  std::printf("model version %lld, %zu image(s)\n", static_cast<long long>(record.version),
              predictions->size());
  return 0;
}
