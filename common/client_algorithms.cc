#include "common/client_algorithms.h"

#include <string>

namespace shoal {

v1::ClientAlgorithmConfig* AddClientAlgorithm(v1::FitConfig* config,
                                              absl::string_view name) {
  v1::ClientAlgorithmConfig* entry = config->add_client_algorithms();
  entry->set_name(std::string(name));
  return entry;
}

v1::ClientAlgorithmConfig* PrependClientAlgorithm(v1::FitConfig* config,
                                                  absl::string_view name) {
  AddClientAlgorithm(config, name);
  auto* list = config->mutable_client_algorithms();
  for (int i = list->size() - 1; i > 0; --i) list->SwapElements(i, i - 1);
  return list->Mutable(0);
}

const v1::ClientAlgorithmConfig* FindClientAlgorithm(const v1::FitConfig& config,
                                                     absl::string_view name) {
  for (const v1::ClientAlgorithmConfig& entry : config.client_algorithms()) {
    if (entry.name() == name) return &entry;
  }
  return nullptr;
}

}  // namespace shoal
