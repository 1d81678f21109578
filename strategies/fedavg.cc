#include "strategies/fedavg.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <random>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/random.h"
#include "common/status.h"
#include "strategies/params.h"

namespace shoal {

absl::Status ReadFedAvgOptions(StrategyParams& params, const StrategyContext& context,
                               FedAvgOptions* options) {
  options->fit_config = context.fit_config;
  SHOAL_RETURN_IF_ERROR(
      params.Number("fraction_evaluate", 0, 1, &options->fraction_evaluate));
  return params.Integer("min_evaluate_clients", 0, int64_t{1} << 31,
                        &options->min_evaluate_clients);
}

size_t EvaluateSampleSize(const FedAvgOptions& options, size_t live) {
  if (options.fraction_evaluate <= 0) return 0;
  const auto share = static_cast<size_t>(
      std::floor(options.fraction_evaluate * static_cast<double>(live)));
  const auto minimum = static_cast<size_t>(options.min_evaluate_clients);
  return std::min(live, std::max(share, minimum));
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeFedAvg(const nlohmann::json& params,
                                                     const StrategyContext& context) {
  FedAvgOptions options;
  StrategyParams p("fedavg", params);
  SHOAL_RETURN_IF_ERROR(ReadFedAvgOptions(p, context, &options));
  SHOAL_RETURN_IF_ERROR(p.Finish());
  return std::make_unique<FedAvg>(options);
}

std::vector<FitInstruction> FedAvg::ConfigureFit(
    uint32_t round, const Parameters& global,
    const std::vector<std::string>& sampled_clients) {
  std::vector<FitInstruction> out;
  out.reserve(sampled_clients.size());
  for (const std::string& id : sampled_clients) {
    out.push_back({id, options_.fit_config, nullptr});
  }
  return out;
}

std::vector<EvaluateInstruction> FedAvg::ConfigureEvaluate(
    uint32_t round, const Parameters& global,
    const std::vector<std::string>& live_clients) {
  const size_t want = EvaluateSampleSize(options_, live_clients.size());
  std::vector<std::string> chosen = live_clients;
  // Seeded by the round: a partial Fisher-Yates over the sorted IDs.
  std::mt19937_64 rng(SplitMix64(round));
  for (size_t i = 0; i < want && i < chosen.size(); ++i) {
    std::swap(chosen[i], chosen[i + rng() % (chosen.size() - i)]);
  }
  chosen.resize(std::min(want, chosen.size()));
  std::vector<EvaluateInstruction> out;
  for (const std::string& id : chosen) {
    EvaluateInstruction ins;
    ins.client_id = id;
    ins.config.set_batch_size(options_.evaluate_batch_size);
    out.push_back(std::move(ins));
  }
  return out;
}

std::unique_ptr<FitAggregator> FedAvg::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  return std::make_unique<WeightedSumAggregator>(
      std::move(global),
      [this](const Parameters& g, const FlatLayout& layout, const at::Tensor& mean_update) {
        return ApplyMeanUpdate(g, layout, mean_update);
      });
}

absl::StatusOr<Parameters> FedAvg::ApplyMeanUpdate(const Parameters& global,
                                                   const FlatLayout& layout,
                                                   const at::Tensor& mean_update) {
  return layout.Apply(global, mean_update);
}

}  // namespace shoal
