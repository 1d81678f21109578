#include "client/client_algorithm_registry.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/algorithms/builtin.h"
#include "common/client_algorithms.h"
#include "common/named_registry.h"
#include "common/quote.h"
#include "common/status.h"

namespace shoal::client {
namespace {

NamedRegistry<ClientAlgorithmFactory>& GetRegistry() {
  // The client halves of the built-in strategies, one per file.
  static auto* const registry = new NamedRegistry<ClientAlgorithmFactory>(
      "client algorithm", {
                              {kDifferentialPrivacyAlgorithm, MakeDifferentialPrivacyClient},
                              {kFedProxAlgorithm, MakeFedProxClient},
                              {kQFedAvgAlgorithm, MakeQFedAvgClient},
                              {kScaffoldAlgorithm, MakeScaffoldClient},
                          });
  return *registry;
}

}  // namespace

bool ClientAlgorithmParams::Has(absl::string_view key) const {
  return config_.params().count(std::string(key)) > 0;
}

absl::Status ClientAlgorithmParams::Number(absl::string_view key, double lo, double hi,
                                           double* out, bool lo_open) {
  const std::string name(key);
  read_.insert(name);
  auto it = config_.params().find(name);
  if (it == config_.params().end()) return absl::OkStatus();
  const v1::ConfigValue& v = it->second;
  double d = 0;
  if (v.kind_case() == v1::ConfigValue::kDoubleValue) {
    d = v.double_value();
  } else if (v.kind_case() == v1::ConfigValue::kIntValue) {
    d = static_cast<double>(v.int_value());
  } else {
    return absl::InvalidArgumentError(absl::StrCat("client algorithm '", algorithm(),
                                                   "': param '", name, "' must be a number"));
  }
  // Written so that NaN fails.
  if (!std::isfinite(d) || !(lo_open ? d > lo : d >= lo) || !(d <= hi)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client algorithm '", algorithm(), "': param '", name, "' = ", d,
        " is out of range ", lo_open ? "(" : "[", lo, ", ", hi, "]"));
  }
  *out = d;
  return absl::OkStatus();
}

absl::Status ClientAlgorithmParams::Finish() const {
  for (const auto& [key, value] : config_.params()) {
    if (read_.count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "client algorithm '", algorithm(), "' has no param ", QuoteForMessage(key, 80),
          " (known: ", read_.empty() ? "none" : absl::StrJoin(read_, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status RegisterClientAlgorithm(const std::string& name, ClientAlgorithmFactory factory) {
  return GetRegistry().Register(name, std::move(factory));
}

absl::StatusOr<std::unique_ptr<ClientAlgorithm>> CreateClientAlgorithm(
    const v1::ClientAlgorithmConfig& config) {
  absl::StatusOr<ClientAlgorithmFactory> factory = GetRegistry().Find(config.name());
  if (!factory.ok()) {
    return Annotate(factory.status(),
                    "the server asked for a client half this client was not built with");
  }
  ClientAlgorithmParams params(config);
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<ClientAlgorithm> algorithm, (*factory)(params));
  SHOAL_RETURN_IF_ERROR(params.Finish());
  return algorithm;
}

std::vector<std::string> RegisteredClientAlgorithms() { return GetRegistry().Names(); }

}  // namespace shoal::client
