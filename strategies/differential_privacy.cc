#include "strategies/differential_privacy.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/client_algorithms.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/types.h"
#include "strategies/aggregate.h"
#include "strategies/params.h"

namespace shoal {
namespace {

using Clipping = DifferentialPrivacyOptions::Clipping;

// An update a client clipped itself may exceed C by float32 rounding only.
constexpr double kClipSlack = 1e-5;

uint64_t EntropySeed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

}  // namespace

// DpAggregator clips (server-side) or checks (client-side) each update as it
// arrives, folds it with weight 1, and at Finish noises the mean, hands it to
// the wrapped strategy, adapts C and charges the accountant.
class DpAggregator : public FitAggregator {
 public:
  DpAggregator(DifferentialPrivacy* dp, std::shared_ptr<const Parameters> global)
      : dp_(dp),
        sum_(std::move(global),
             [this](const Parameters& g, const FlatLayout& layout, const at::Tensor& mean) {
               return FinishMean(g, layout, mean);
             },
             [](const FitRes&) { return 1.0; }) {}

  absl::Status Accept(const std::string& client_id, const FitRes& res) override {
    const double c = dp_->clip_norm_;
    const double norm = res.update.L2Norm();
    bool below = norm <= c;
    if (dp_->options_.clipping == Clipping::kClient) {
      if (norm > c * (1 + kClipSlack)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "client '%s' sent an update of L2 norm %g, above the clipping norm %g it was "
            "given: it did not clip",
            client_id, norm, c));
      }
      if (dp_->options_.adaptive) {
        auto bit = res.metrics.find(kDpBelowClipMetric);
        if (bit == res.metrics.end() || !std::holds_alternative<int64_t>(bit->second) ||
            (std::get<int64_t>(bit->second) != 0 && std::get<int64_t>(bit->second) != 1)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "adaptive clipping needs the client's metric '", kDpBelowClipMetric,
              "' (0 or 1); client '", client_id, "' sent none"));
        }
        below = std::get<int64_t>(bit->second) == 1;
      }
      SHOAL_RETURN_IF_ERROR(sum_.Accept(client_id, res));
    } else {
      FitRes clipped;
      clipped.num_examples = res.num_examples;
      clipped.update = norm > c ? res.update.Scaled(c / norm) : res.update;
      SHOAL_RETURN_IF_ERROR(sum_.Accept(client_id, clipped));
    }
    below_ += below ? 1 : 0;
    ++accepted_;
    return absl::OkStatus();
  }

  absl::StatusOr<Parameters> Finish(const std::vector<ClientFailure>& failures) override {
    return sum_.Finish(failures);
  }

  Metrics RoundMetrics() const override { return metrics_; }

 private:
  absl::StatusOr<Parameters> FinishMean(const Parameters& global, const FlatLayout& layout,
                                        const at::Tensor& mean) {
    // The noisy sum is divided by the number of clients sampled for the
    // round, fixed before any result arrived (McMahan et al. 2018), not by
    // the number that answered, which depends on the data. Dropouts shrink
    // the step a little.
    const double c = dp_->clip_norm_;
    const double m = static_cast<double>(std::max<size_t>(dp_->cohort_size_, 1));
    const double stddev = dp_->update_noise_ * c / m;
    at::Tensor noisy = mean * (static_cast<double>(accepted_) / m);
    if (stddev > 0) {
      noisy = noisy + at::normal(0.0, stddev, {mean.numel()}, dp_->noise_, mean.options());
    }
    SHOAL_ASSIGN_OR_RETURN(Parameters next, dp_->inner_->ApplyMeanUpdate(global, layout, noisy));

    // The round is released: charge it, then adapt C for the next one.
    metrics_["dp_clip_norm"] = c;
    metrics_["dp_noise_stddev"] = stddev;
    metrics_["dp_sampling_rate"] = dp_->sampling_rate_;
    if (dp_->options_.noise_multiplier > 0) {
      absl::Status charged = dp_->accountant_.AddSubsampledGaussian(
          dp_->options_.noise_multiplier, dp_->sampling_rate_, 1);
      if (!charged.ok()) return charged;
      absl::StatusOr<RdpAccountant::Guarantee> spent =
          dp_->accountant_.GetEpsilon(dp_->options_.delta);
      if (!spent.ok()) return spent.status();
      metrics_["dp_epsilon"] = spent->epsilon;
      metrics_["dp_delta"] = spent->delta;
    }
    if (dp_->options_.adaptive) {
      double count = static_cast<double>(below_);
      if (dp_->count_stddev_ > 0) {
        count += at::normal(0.0, dp_->count_stddev_, {1}, dp_->noise_,
                            at::TensorOptions().dtype(at::kDouble))
                     .item<double>();
      }
      const double fraction = count / m;
      dp_->clip_norm_ = c * std::exp(-dp_->options_.clip_learning_rate *
                                     (fraction - dp_->options_.target_quantile));
      metrics_["dp_below_clip_fraction"] = fraction;  // noised: safe to publish
    }
    return next;
  }

  DifferentialPrivacy* const dp_;
  WeightedSumAggregator sum_;
  int64_t accepted_ = 0;
  int64_t below_ = 0;
  Metrics metrics_;
};

absl::StatusOr<std::unique_ptr<DifferentialPrivacy>> DifferentialPrivacy::Wrap(
    std::unique_ptr<Strategy> inner, DifferentialPrivacyOptions options,
    uint32_t expected_clients) {
  auto* mean_based = dynamic_cast<FedAvg*>(inner.get());
  if (mean_based == nullptr || !mean_based->AggregatesByMean()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "differential privacy wraps strategies that aggregate by the mean update "
        "(fedavg, fedprox, fedavgm, fedadagrad, fedadam, fedyogi); '",
        inner->name(), "' does not"));
  }
  double count_stddev = 0;
  double update_noise = options.noise_multiplier;
  if (options.adaptive) {
    // Without update noise (z = 0) there is no guarantee for the count's
    // noise to be part of, so its default is 0 too: noise there would only
    // slow the clip norm's walk towards the quantile (Flower does the same).
    // A sigma_b set explicitly is still used.
    const double default_stddev =
        options.noise_multiplier > 0
            ? std::max<double>(expected_clients, 1) / 20.0
            : 0.0;
    count_stddev = options.clipped_count_stddev > 0
                       ? options.clipped_count_stddev
                       : default_stddev;
    if (options.noise_multiplier > 0) {
      // Andrew et al. 2021, Theorem 1: the pair of releases is as private as
      // one Gaussian mechanism with multiplier z when the updates get
      // z_update = (z^-2 - (2 sigma_b)^-2)^-1/2.
      const double z = options.noise_multiplier;
      const double rest = 1 / (z * z) - 1 / (4 * count_stddev * count_stddev);
      if (!(rest > 0)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "adaptive clipping with privacy.noise_multiplier = %g needs "
            "privacy.clipped_count_stddev > z / 2 = %g (it is %g; the default is the "
            "cohort size / 20): raise it, sample more clients per round, or use a "
            "fixed clip_norm",
            z, z / 2, count_stddev));
      }
      update_noise = 1 / std::sqrt(rest);
    }
  }
  inner.release();
  std::unique_ptr<DifferentialPrivacy> dp(new DifferentialPrivacy(
      std::unique_ptr<FedAvg>(mean_based), std::move(options), count_stddev, update_noise));
  // Until a round is sampled, the stop check assumes the smallest cohort.
  if (dp->options_.population > 0) {
    dp->sampling_rate_ = std::min(
        1.0, static_cast<double>(std::max<uint32_t>(expected_clients, 1)) /
                 dp->options_.population);
  }
  return dp;
}

DifferentialPrivacy::DifferentialPrivacy(std::unique_ptr<FedAvg> inner,
                                         DifferentialPrivacyOptions options,
                                         double count_stddev, double update_noise)
    : inner_(std::move(inner)), options_(std::move(options)),
      name_(absl::StrCat("dp-", options_.clipping == Clipping::kServer ? "server" : "client",
                         options_.adaptive ? "-adaptive" : "", "(", inner_->name(), ")")),
      count_stddev_(count_stddev), update_noise_(update_noise),
      clip_norm_(options_.clip_norm),
      noise_(at::make_generator<at::CPUGeneratorImpl>(
          options_.noise_seed ? *options_.noise_seed : EntropySeed())) {
  if (options_.noise_multiplier == 0) {
    spdlog::warn("privacy.noise_multiplier = 0: updates are clipped but not noised; "
                 "this run has no differential-privacy guarantee");
  }
  if (options_.noise_seed) {
    spdlog::warn("privacy.noise_seed is set: the noise is reproducible, so it protects "
                 "nothing; use it for experiments only");
  }
}

namespace {
constexpr char kInnerPrefix[] = "inner/";
}  // namespace

Parameters DifferentialPrivacy::SaveState() const {
  Parameters state;
  state.Add("dp/clip_norm", at::tensor(std::vector<double>{clip_norm_}, at::kDouble));
  state.Add("dp/rdp", at::tensor(accountant_.rdp(), at::kDouble));
  const Parameters inner = inner_->SaveState();
  for (size_t i = 0; i < inner.size(); ++i) {
    state.Add(kInnerPrefix + inner.name(i), inner.tensor(i));
  }
  return state;
}

absl::Status DifferentialPrivacy::LoadState(const Parameters& state) {
  if (state.size() < 2 || state.name(0) != "dp/clip_norm" || state.name(1) != "dp/rdp" ||
      state.tensor(0).numel() != 1 || state.tensor(0).scalar_type() != at::kDouble ||
      state.tensor(1).dim() != 1 || state.tensor(1).scalar_type() != at::kDouble) {
    return absl::InvalidArgumentError(absl::StrCat(
        name_, ": the checkpoint's state does not start with dp/clip_norm [1] and dp/rdp "
        "(float64)"));
  }
  const double clip = state.tensor(0).item<double>();
  if (!(clip > 0) || !std::isfinite(clip)) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": checkpointed clip norm ", clip));
  }
  const at::Tensor rdp_tensor = state.tensor(1).contiguous();
  std::vector<double> rdp(rdp_tensor.data_ptr<double>(),
                          rdp_tensor.data_ptr<double>() + rdp_tensor.numel());
  RdpAccountant restored = accountant_;
  SHOAL_RETURN_IF_ERROR(Annotate(restored.Restore(std::move(rdp)), name_));
  Parameters inner;
  for (size_t i = 2; i < state.size(); ++i) {
    if (state.name(i).rfind(kInnerPrefix, 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          name_, ": unexpected state tensor '", state.name(i), "'"));
    }
    inner.Add(state.name(i).substr(sizeof(kInnerPrefix) - 1), state.tensor(i));
  }
  SHOAL_RETURN_IF_ERROR(inner_->LoadState(inner));
  clip_norm_ = clip;
  accountant_ = std::move(restored);
  return absl::OkStatus();
}

absl::Status DifferentialPrivacy::CheckCompression(Compression kind) const {
  if (kind != Compression::kNone && options_.clipping == DifferentialPrivacyOptions::Clipping::kClient) {
    return absl::InvalidArgumentError(absl::StrCat(
        "privacy with client clipping cannot take compressed updates (", CompressionName(kind),
        "): the clipped norm would no longer bound what a client sends; use server clipping"));
  }
  return inner_->CheckCompression(kind);
}

std::optional<std::string> DifferentialPrivacy::StopReason(uint32_t round) {
  if (options_.target_epsilon <= 0 || options_.noise_multiplier <= 0) return std::nullopt;
  absl::StatusOr<RdpAccountant::Guarantee> next = accountant_.EpsilonAfter(
      options_.noise_multiplier, sampling_rate_, 1, options_.delta);
  if (next.ok() && next->epsilon <= options_.target_epsilon) return std::nullopt;
  return absl::StrFormat(
      "privacy budget: round %d would bring epsilon to %s, above "
      "privacy.target_epsilon = %g (delta = %g)",
      round, next.ok() ? absl::StrFormat("%.4g", next->epsilon) : "an unknown value",
      options_.target_epsilon, options_.delta);
}

std::vector<FitInstruction> DifferentialPrivacy::ConfigureFit(
    uint32_t round, const Parameters& global, const std::vector<std::string>& sampled) {
  cohort_size_ = sampled.size();
  sampling_rate_ =
      options_.population > 0
          ? std::min(1.0, static_cast<double>(sampled.size()) / options_.population)
          : 1.0;
  std::vector<FitInstruction> plan = inner_->ConfigureFit(round, global, sampled);
  if (options_.clipping == Clipping::kClient) {
    // First, so that the client clips before any inner algorithm sees the
    // update (SCAFFOLD estimates c_i from the update the server receives).
    for (FitInstruction& ins : plan) {
      (*PrependClientAlgorithm(&ins.config, kDifferentialPrivacyAlgorithm)->mutable_params())
          [kClipNormParam].set_double_value(clip_norm_);
    }
  }
  return plan;
}

std::unique_ptr<FitAggregator> DifferentialPrivacy::BeginAggregateFit(
    uint32_t round, std::shared_ptr<const Parameters> global) {
  return std::make_unique<DpAggregator>(this, std::move(global));
}

absl::StatusOr<DifferentialPrivacyOptions> ParseDifferentialPrivacyOptions(
    const nlohmann::json& privacy) {
  DifferentialPrivacyOptions o;
  StrategyParams p("differential privacy", privacy, "privacy");
  std::string clipping = "server";
  SHOAL_RETURN_IF_ERROR(p.String("clipping", {"server", "client"}, &clipping));
  o.clipping = clipping == "client" ? Clipping::kClient : Clipping::kServer;
  SHOAL_RETURN_IF_ERROR(p.Number("noise_multiplier", 0, 1e3, &o.noise_multiplier));
  SHOAL_RETURN_IF_ERROR(p.Number("clip_norm", 0, 1e6, &o.clip_norm, /*lo_open=*/true));
  SHOAL_RETURN_IF_ERROR(p.Bool("adaptive", &o.adaptive));
  SHOAL_RETURN_IF_ERROR(p.Number("target_quantile", 0, 1, &o.target_quantile, true, true));
  SHOAL_RETURN_IF_ERROR(p.Number("clip_learning_rate", 0, 10, &o.clip_learning_rate, true));
  SHOAL_RETURN_IF_ERROR(p.Number("clipped_count_stddev", 0, 1e9, &o.clipped_count_stddev));
  SHOAL_RETURN_IF_ERROR(p.Integer("population", 0, int64_t{1} << 40, &o.population));
  SHOAL_RETURN_IF_ERROR(p.Number("delta", 0, 1, &o.delta, true, true));
  SHOAL_RETURN_IF_ERROR(p.Number("target_epsilon", 0, 1e6, &o.target_epsilon));
  int64_t seed = -1;
  SHOAL_RETURN_IF_ERROR(p.Integer("noise_seed", 0, std::numeric_limits<int64_t>::max(), &seed));
  if (seed >= 0) o.noise_seed = static_cast<uint64_t>(seed);
  SHOAL_RETURN_IF_ERROR(p.Finish());
  return o;
}

}  // namespace shoal
