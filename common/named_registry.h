// NamedRegistry: factories chosen by name from a config, the one mechanism
// behind the strategy registry and the client-algorithm registry.
#ifndef SHOAL_COMMON_NAMED_REGISTRY_H_
#define SHOAL_COMMON_NAMED_REGISTRY_H_

#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/quote.h"

namespace shoal {

// NamedRegistry maps names to factories of one kind. Thread-safe; meant to
// live for the whole program (a function-local static, never destroyed).
//
// Example:
//   static auto* const registry =
//       new NamedRegistry<StrategyFactory>("strategy", {{"fedavg", MakeFedAvg}});
//   SHOAL_ASSIGN_OR_RETURN(StrategyFactory make, registry->Find(name));
template <typename Factory>
class NamedRegistry {
 public:
  // `kind` names what is registered in messages ("strategy"); `builtins`
  // are registered at once.
  NamedRegistry(std::string kind,
                std::initializer_list<std::pair<const char*, Factory>> builtins)
      : kind_(std::move(kind)) {
    for (const auto& [name, factory] : builtins) factories_[name] = factory;
  }

  // Register adds `factory` under `name`; AlreadyExists if taken.
  absl::Status Register(const std::string& name, Factory factory) {
    absl::MutexLock lock(&mu_);
    if (!factories_.emplace(name, std::move(factory)).second) {
      return absl::AlreadyExistsError(
          absl::StrCat("a ", kind_, " named '", name, "' is already registered"));
    }
    return absl::OkStatus();
  }

  // Find returns the factory registered as `name`; InvalidArgument naming
  // it (quoted, bounded) and listing the registered names otherwise.
  absl::StatusOr<Factory> Find(absl::string_view name) const {
    absl::MutexLock lock(&mu_);
    auto it = factories_.find(std::string(name));
    if (it != factories_.end()) return it->second;
    std::vector<std::string> names;
    for (const auto& entry : factories_) names.push_back(entry.first);
    return absl::InvalidArgumentError(absl::StrCat("unknown ", kind_, " ",
                                                   QuoteForMessage(name, 80), "; registered: ",
                                                   absl::StrJoin(names, ", ")));
  }

  // Names lists the registered names, sorted.
  std::vector<std::string> Names() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> names;
    for (const auto& entry : factories_) names.push_back(entry.first);
    return names;
  }

 private:
  const std::string kind_;
  mutable absl::Mutex mu_;
  std::map<std::string, Factory> factories_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal

#endif  // SHOAL_COMMON_NAMED_REGISTRY_H_
