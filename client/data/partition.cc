#include "client/data/partition.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "common/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/random.h"

namespace shoal::client {
namespace {

// Dirichlet: how many full redraws before giving up on min_partition_size.
constexpr int kMaxDirichletAttempts = 100;

using Parts = std::vector<std::vector<int64_t>>;

// SplitEvenly cuts `v` into `k` consecutive parts whose sizes differ by at
// most one (the first v.size() % k parts get the extra element).
Parts SplitEvenly(const std::vector<int64_t>& v, int64_t k) {
  Parts parts(k);
  const int64_t n = static_cast<int64_t>(v.size());
  int64_t start = 0;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t size = n / k + (i < n % k ? 1 : 0);
    parts[i].assign(v.begin() + start, v.begin() + start + size);
    start += size;
  }
  return parts;
}

Parts PartitionIid(int64_t n, int k, Rng& rng) {
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  Shuffle(all, rng);
  return SplitEvenly(all, k);
}

absl::StatusOr<Parts> PartitionDirichlet(
    const std::map<int64_t, std::vector<int64_t>>& by_class,
    const PartitionOptions& options, Rng& rng) {
  const int k = options.num_partitions;
  for (int attempt = 0; attempt < kMaxDirichletAttempts; ++attempt) {
    Parts parts(k);
    for (const auto& [label, members] : by_class) {
      std::vector<int64_t> idx = members;
      Shuffle(idx, rng);
      const std::vector<double> p = Dirichlet(rng, options.alpha, k);
      // Client j takes [cut(j), cut(j+1)) with cut from the running sum of
      // p, floored; the last client takes the rounding remainder.
      const auto n = static_cast<double>(idx.size());
      double cumulative = 0.0;
      size_t start = 0;
      for (int j = 0; j < k; ++j) {
        cumulative += p[j];
        size_t end =
            j == k - 1 ? idx.size() : static_cast<size_t>(cumulative * n);
        end = std::clamp(end, start, idx.size());
        parts[j].insert(parts[j].end(), idx.begin() + start, idx.begin() + end);
        start = end;
      }
    }
    const bool big_enough =
        std::all_of(parts.begin(), parts.end(), [&](const auto& part) {
          return static_cast<int64_t>(part.size()) >=
                 options.min_partition_size;
        });
    if (big_enough) return parts;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "no Dirichlet draw in %d attempts gave every one of num_partitions=%d "
      "partitions at least min_partition_size=%d examples (alpha=%g); lower "
      "min_partition_size or num_partitions, or raise alpha",
      kMaxDirichletAttempts, k, options.min_partition_size, options.alpha));
}

// PartitionShards sorts examples by label (ties by index), cuts the order into
// num_partitions * classes_per_client near-equal contiguous shards, and deals
// each client classes_per_client random shards. A shard spans several labels
// only where it straddles a class border.
Parts PartitionShards(const std::map<int64_t, std::vector<int64_t>>& by_class,
                      const PartitionOptions& options, Rng& rng) {
  std::vector<int64_t> sorted;
  for (const auto& [label, members] : by_class) {
    sorted.insert(sorted.end(), members.begin(), members.end());
  }
  const int64_t per_client = options.classes_per_client;
  const Parts shards =
      SplitEvenly(sorted, int64_t{options.num_partitions} * per_client);
  std::vector<int64_t> order(shards.size());
  std::iota(order.begin(), order.end(), 0);
  Shuffle(order, rng);
  Parts parts(options.num_partitions);
  for (size_t s = 0; s < order.size(); ++s) {
    const auto& shard = shards[order[s]];
    auto& part = parts[s / per_client];
    part.insert(part.end(), shard.begin(), shard.end());
  }
  return parts;
}

// PowerLawSizes returns k sizes summing to n, each >= m (k * m <= n),
// proportional to Pareto(a) weights above the minimum; see Partition.
std::vector<int64_t> PowerLawSizes(int64_t n, int k, int64_t m, double a,
                                   Rng& rng) {
  // Pareto(a, x_m = 1) is U^(-1/a); in log space, then scaled so the largest
  // weight is 1, so that small exponents cannot overflow.
  std::vector<double> weight(k);
  for (double& w : weight) w = -std::log(UniformOpen(rng)) / a;
  const double top = *std::max_element(weight.begin(), weight.end());
  for (double& w : weight) w = std::exp(w - top);

  // Water-filling: going up from the lightest, a client whose proportional
  // share of what is left falls below m is set to m. Raising one only
  // raises the others' shares, so one pass suffices, and the heaviest
  // client always keeps a share >= m because k * m <= n.
  std::vector<int> order(k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int i, int j) { return weight[i] < weight[j]; });
  std::vector<double> suffix_weight(k + 1, 0.0);
  for (int r = k - 1; r >= 0; --r) {
    suffix_weight[r] = suffix_weight[r + 1] + weight[order[r]];
  }
  int clamped = 0;
  while (clamped < k - 1 &&
         static_cast<double>(n - m * clamped) * weight[order[clamped]] <
             static_cast<double>(m) * suffix_weight[clamped]) {
    ++clamped;
  }
  std::vector<int64_t> sizes(k, m);
  const auto rest = static_cast<double>(n - m * clamped);
  std::vector<double> fraction(k, 0.0);
  int64_t assigned = m * clamped;
  for (int r = clamped; r < k; ++r) {
    const int j = order[r];
    const double share = rest * weight[j] / suffix_weight[clamped];
    sizes[j] = std::max(m, static_cast<int64_t>(std::floor(share)));
    fraction[j] = share - std::floor(share);
    assigned += sizes[j];
  }
  // Largest remainder: the floors leave fewer than k - clamped examples,
  // which go one each to the largest fractional parts (ties to the lower
  // index). Rounding error can only make `left` off by a little; the loops
  // absorb it either way without breaking the minimum.
  std::vector<int> by_fraction(order.begin() + clamped, order.end());
  std::sort(by_fraction.begin(), by_fraction.end(), [&](int i, int j) {
    return fraction[i] != fraction[j] ? fraction[i] > fraction[j] : i < j;
  });
  int64_t left = n - assigned;
  for (size_t r = 0; left > 0; r = (r + 1) % by_fraction.size(), --left) {
    ++sizes[by_fraction[r]];
  }
  for (size_t r = by_fraction.size(); left < 0;) {
    r = (r + by_fraction.size() - 1) % by_fraction.size();
    if (sizes[by_fraction[r]] > m) {
      --sizes[by_fraction[r]];
      ++left;
    }
  }
  return sizes;
}

Parts PartitionQuantitySkew(int64_t n, const PartitionOptions& options,
                            Rng& rng) {
  const std::vector<int64_t> sizes =
      PowerLawSizes(n, options.num_partitions, options.min_partition_size,
                    options.power_law_exponent, rng);
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  Shuffle(all, rng);
  Parts parts(options.num_partitions);
  auto start = all.begin();
  for (size_t j = 0; j < parts.size(); ++j) {
    parts[j].assign(start, start + sizes[j]);
    start += sizes[j];
  }
  return parts;
}

absl::Status InvalidOption(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("Partition: ", what));
}

}  // namespace

absl::StatusOr<PartitionScheme> ParsePartitionScheme(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "iid") return PartitionScheme::kIid;
  if (lower == "dirichlet") return PartitionScheme::kDirichlet;
  if (lower == "shards") return PartitionScheme::kShards;
  if (lower == "quantity_skew") return PartitionScheme::kQuantitySkew;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown partition scheme \"", name,
      "\"; expected \"iid\", \"dirichlet\", \"shards\" or \"quantity_skew\""));
}

std::string PartitionSchemeName(PartitionScheme scheme) {
  switch (scheme) {
    case PartitionScheme::kIid:
      return "iid";
    case PartitionScheme::kDirichlet:
      return "dirichlet";
    case PartitionScheme::kShards:
      return "shards";
    case PartitionScheme::kQuantitySkew:
      return "quantity_skew";
  }
  return "unknown";
}

absl::StatusOr<at::Tensor> LabelsForPartitioning(const at::Tensor& targets,
                                                 PartitionScheme scheme) {
  if (!targets.defined() || targets.dim() < 1) {
    return InvalidOption("targets must be a tensor [N] or [N, K]");
  }
  if (targets.dim() == 1 && targets.scalar_type() == at::kLong) return targets;
  // Binary targets (0/1 floats [N]) are class labels too.
  if (targets.dim() == 1 && at::isFloatingType(targets.scalar_type()) && targets.numel() > 0 &&
      targets.eq(0).logical_or(targets.eq(1)).all().item<bool>()) {
    return targets.to(at::kLong);
  }
  if (scheme == PartitionScheme::kDirichlet || scheme == PartitionScheme::kShards) {
    return InvalidOption(absl::StrCat(
        "the ", PartitionSchemeName(scheme),
        " partitioner splits by class and needs class labels (int64 [N]); these targets are ",
        std::string(c10::toString(targets.scalar_type())), " with ", targets.dim(),
        " dims (regression or multi-label): use iid or quantity_skew"));
  }
  // iid and quantity_skew do not look at labels: one class for all.
  return at::zeros({targets.size(0)}, at::kLong);
}

absl::StatusOr<std::vector<std::vector<int64_t>>> Partition(
    const at::Tensor& targets, const PartitionOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(const at::Tensor labels, LabelsForPartitioning(targets, options.scheme));
  const at::Tensor cpu = labels.cpu().contiguous();
  const int64_t n = cpu.size(0);
  const int64_t* label = cpu.data_ptr<int64_t>();

  if (options.num_partitions < 1 || options.num_partitions > n) {
    return InvalidOption(absl::StrFormat(
        "num_partitions=%d must be in [1, %d] (the number of examples)",
        options.num_partitions, n));
  }
  // Examples of each class, by ascending label and then index, so that the
  // split depends only on the labels' values and order.
  std::map<int64_t, std::vector<int64_t>> by_class;
  for (int64_t i = 0; i < n; ++i) by_class[label[i]].push_back(i);
  if (by_class.begin()->first < 0) {
    return InvalidOption(absl::StrFormat("labels must be >= 0, found %d",
                                         by_class.begin()->first));
  }

  Rng rng(options.seed);
  Parts parts;
  switch (options.scheme) {
    case PartitionScheme::kIid:
      parts = PartitionIid(n, options.num_partitions, rng);
      break;
    case PartitionScheme::kDirichlet: {
      if (!(options.alpha > 0.0) || !std::isfinite(options.alpha)) {
        return InvalidOption(absl::StrFormat(
            "alpha=%g must be a finite number > 0", options.alpha));
      }
      if (options.min_partition_size < 0 ||
          int64_t{options.min_partition_size} * options.num_partitions > n) {
        return InvalidOption(absl::StrFormat(
            "min_partition_size=%d must be >= 0 and at most %d examples / "
            "num_partitions=%d",
            options.min_partition_size, n, options.num_partitions));
      }
      auto drawn = PartitionDirichlet(by_class, options, rng);
      if (!drawn.ok()) return drawn.status();
      parts = *std::move(drawn);
      break;
    }
    case PartitionScheme::kShards: {
      const auto num_classes = static_cast<int64_t>(by_class.size());
      if (options.classes_per_client < 1 ||
          options.classes_per_client > num_classes) {
        return InvalidOption(absl::StrFormat(
            "classes_per_client=%d must be in [1, %d] (the number of classes)",
            options.classes_per_client, num_classes));
      }
      if (int64_t{options.num_partitions} * options.classes_per_client > n) {
        return InvalidOption(absl::StrFormat(
            "num_partitions=%d * classes_per_client=%d shards exceed the %d "
            "examples",
            options.num_partitions, options.classes_per_client, n));
      }
      parts = PartitionShards(by_class, options, rng);
      break;
    }
    case PartitionScheme::kQuantitySkew: {
      const double a = options.power_law_exponent;
      if (!(a > 0.0) || !std::isfinite(a)) {
        return InvalidOption(absl::StrFormat(
            "power_law_exponent=%g must be a finite number > 0", a));
      }
      if (options.min_partition_size < 1 ||
          int64_t{options.min_partition_size} * options.num_partitions > n) {
        return InvalidOption(absl::StrFormat(
            "min_partition_size=%d must be >= 1 for quantity_skew and at most "
            "%d examples / num_partitions=%d",
            options.min_partition_size, n, options.num_partitions));
      }
      parts = PartitionQuantitySkew(n, options, rng);
      break;
    }
    default:
      return InvalidOption("unknown scheme");
  }
  for (auto& part : parts) std::sort(part.begin(), part.end());
  return parts;
}

std::vector<std::vector<int64_t>> LabelHistogram(
    const at::Tensor& labels, const std::vector<std::vector<int64_t>>& parts,
    int num_classes) {
  const at::Tensor cpu = labels.to(at::kCPU, at::kLong).contiguous();
  const int64_t n = cpu.numel();
  const int64_t* label = cpu.data_ptr<int64_t>();
  std::vector<std::vector<int64_t>> histogram(
      parts.size(), std::vector<int64_t>(std::max(num_classes, 0), 0));
  for (size_t p = 0; p < parts.size(); ++p) {
    for (int64_t i : parts[p]) {
      // Out-of-range indices and labels are not counted, by design: this is
      // a diagnostic and must not crash on a caller's mistake.
      if (i < 0 || i >= n || label[i] < 0 || label[i] >= num_classes) continue;
      ++histogram[p][label[i]];
    }
  }
  return histogram;
}

}  // namespace shoal::client
