// ExampleSampler (declared in partition.h): per-client samples drawn on
// demand from (seed, client).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/data/partition.h"
#include "common/random.h"

namespace shoal::client {
namespace {

// Salt of the index stream, so that it never coincides with the count
// stream MixSeed(seed, client) of the same or another client.
constexpr uint64_t kIndexStreamSalt = 0x1d8e4e27c47d124fULL;

// Binomial draws of at most this many trials are summed one by one.
constexpr int64_t kDirectBinomialTrials = 16;

// Multinomial draws of at most this many trials per outcome are made one
// trial at a time: cheaper than per-class binomials for small clients.
constexpr int64_t kDirectMultinomialTrialsPerOutcome = 32;

// Samples of at most this many values check for repeats by a linear scan.
constexpr int64_t kLinearScanSample = 32;

absl::Status InvalidOption(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("ExampleSampler: ", what));
}

// Beta returns X ~ Beta(a, b) as G_a / (G_a + G_b) with G ~ Gamma, in log
// space so that neither Gamma can overflow.
double Beta(Rng& rng, double a, double b) {
  const double log_a = LogGamma(rng, a);
  const double log_b = LogGamma(rng, b);
  return 1.0 / (1.0 + std::exp(log_b - log_a));
}

// Binomial returns the number of successes in n trials of probability p.
// Exact, in O(log n) Beta draws (the order-statistic method): the j-th
// smallest x of n uniforms is Beta(j, n + 1 - j); if it lies above p, the
// successes are among the j - 1 uniforms below it, which are uniform on
// (0, x); otherwise those j are successes and the other n - j are uniform on
// (x, 1).
int64_t Binomial(Rng& rng, int64_t n, double p) {
  int64_t successes = 0;
  while (n > kDirectBinomialTrials) {
    if (p <= 0.0) return successes;
    if (p >= 1.0) return successes + n;
    const int64_t j = n / 2 + 1;
    const double x =
        Beta(rng, static_cast<double>(j), static_cast<double>(n + 1 - j));
    if (p < x) {
      n = j - 1;
      p /= x;
    } else {
      successes += j;
      n -= j;
      p = (p - x) / (1.0 - x);
    }
  }
  for (; n > 0; --n) successes += UniformOpen(rng) < p ? 1 : 0;
  return successes;
}

// Multinomial adds to `counts` a Multinomial(n, weight / sum(weight)) draw.
// Zero weights get nothing; the weights must not all be zero.
void Multinomial(Rng& rng, int64_t n, const std::vector<double>& weight,
                 std::vector<int64_t>& counts) {
  const auto k = static_cast<int64_t>(weight.size());
  int64_t last = k - 1;  // the last outcome that can be drawn
  while (last > 0 && !(weight[last] > 0.0)) --last;
  if (n <= kDirectMultinomialTrialsPerOutcome * k) {
    std::vector<double> cumulative(k);
    std::partial_sum(weight.begin(), weight.end(), cumulative.begin());
    for (int64_t t = 0; t < n; ++t) {
      const double u = UniformOpen(rng) * cumulative.back();
      const auto c = std::upper_bound(cumulative.begin(), cumulative.end(), u) -
                     cumulative.begin();
      ++counts[std::min<int64_t>(c, last)];
    }
    return;
  }
  // Conditional binomials: outcome c takes Binomial(what is left, its share
  // of the weight still unassigned); the last drawable one takes the rest.
  double unassigned = std::accumulate(weight.begin(), weight.end(), 0.0);
  for (int64_t c = 0; c < last && n > 0; ++c) {
    if (!(weight[c] > 0.0)) continue;
    const int64_t drawn =
        Binomial(rng, n, std::min(1.0, weight[c] / unassigned));
    counts[c] += drawn;
    n -= drawn;
    unassigned -= weight[c];
  }
  counts[last] += n;
}

// SampleDistinct appends `k` distinct uniform values from [0, n), k <= n,
// by Floyd's algorithm: exactly k draws. Membership is a linear scan for
// small samples, a bitmap of n (at most 64 k bits) for dense ones and a hash
// set otherwise; all three give the same values.
void SampleDistinct(Rng& rng, int64_t n, int64_t k, std::vector<int64_t>& out) {
  if (k <= kLinearScanSample) {
    const auto begin = static_cast<std::ptrdiff_t>(out.size());
    for (int64_t j = n - k; j < n; ++j) {
      int64_t t = static_cast<int64_t>(UniformIndex(rng, j + 1));
      if (std::find(out.begin() + begin, out.end(), t) != out.end()) t = j;
      out.push_back(t);
    }
    return;
  }
  if (n <= 64 * k) {
    std::vector<bool> taken(n, false);
    for (int64_t j = n - k; j < n; ++j) {
      int64_t t = static_cast<int64_t>(UniformIndex(rng, j + 1));
      if (taken[t]) t = j;
      taken[t] = true;
      out.push_back(t);
    }
    return;
  }
  absl::flat_hash_set<int64_t> taken;
  taken.reserve(k);
  for (int64_t j = n - k; j < n; ++j) {
    int64_t t = static_cast<int64_t>(UniformIndex(rng, j + 1));
    if (!taken.insert(t).second) {
      t = j;
      taken.insert(t);
    }
    out.push_back(t);
  }
}

// CapAndRefill cuts each count to its class size and redraws the excess one
// example at a time, uniformly from the examples of `eligible` classes not
// yet taken (so classes with more room are likelier). No draws when no
// class overflows, the usual case. The eligible classes must have room for
// the excess.
void CapAndRefill(Rng& rng, const std::vector<int64_t>& class_sizes,
                  const std::vector<int>& eligible,
                  std::vector<int64_t>& counts) {
  int64_t excess = 0;
  for (size_t c = 0; c < counts.size(); ++c) {
    if (counts[c] > class_sizes[c]) {
      excess += counts[c] - class_sizes[c];
      counts[c] = class_sizes[c];
    }
  }
  if (excess == 0) return;
  int64_t room = 0;
  for (int c : eligible) room += class_sizes[c] - counts[c];
  for (; excess > 0 && room > 0; --excess, --room) {
    auto u = static_cast<int64_t>(UniformIndex(rng, room));
    for (int c : eligible) {
      const int64_t left = class_sizes[c] - counts[c];
      if (u < left) {
        ++counts[c];
        break;
      }
      u -= left;
    }
  }
}

}  // namespace

absl::StatusOr<ExampleSampler> ExampleSampler::Create(
    const at::Tensor& labels, const SampledPartitionOptions& options) {
  if (!labels.defined() || labels.dim() != 1 ||
      labels.scalar_type() != at::kLong || labels.size(0) == 0) {
    return InvalidOption(absl::StrCat(
        "labels must be a non-empty 1-D int64 tensor, got ",
        labels.defined()
            ? absl::StrCat(std::string(c10::toString(labels.scalar_type())),
                           " with ", labels.dim(), " dims and ", labels.numel(),
                           " elements")
            : std::string("an undefined tensor")));
  }
  const at::Tensor cpu = labels.cpu().contiguous();
  const int64_t n = cpu.size(0);
  if (n > std::numeric_limits<int32_t>::max()) {
    return InvalidOption(absl::StrFormat(
        "labels has %d examples; at most 2^31 - 1 are supported", n));
  }
  const int64_t* label = cpu.data_ptr<int64_t>();
  const int64_t smallest = *std::min_element(label, label + n);
  const int64_t largest = *std::max_element(label, label + n);
  if (smallest < 0) {
    return InvalidOption(
        absl::StrFormat("labels must be >= 0, found %d", smallest));
  }
  if (largest >= std::numeric_limits<int>::max()) {
    return InvalidOption(
        absl::StrFormat("labels too large, found %d", largest));
  }

  // Counting sort by class; indices stay ascending within a class.
  std::vector<int64_t> class_sizes(largest + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++class_sizes[label[i]];
  std::vector<int64_t> next(class_sizes.size(), 0);
  std::partial_sum(class_sizes.begin(), class_sizes.end() - 1,
                   next.begin() + 1);
  std::vector<int32_t> order(n);
  for (int64_t i = 0; i < n; ++i) {
    order[next[label[i]]++] = static_cast<int32_t>(i);
  }

  if (options.examples_per_client < 1 || options.examples_per_client > n) {
    return InvalidOption(absl::StrFormat(
        "examples_per_client=%d must be in [1, %d] (the number of examples)",
        options.examples_per_client, n));
  }
  switch (options.scheme) {
    case PartitionScheme::kIid:
      break;
    case PartitionScheme::kDirichlet:
      if (!(options.alpha > 0.0) || !std::isfinite(options.alpha)) {
        return InvalidOption(absl::StrFormat(
            "alpha=%g must be a finite number > 0", options.alpha));
      }
      break;
    case PartitionScheme::kShards: {
      std::vector<int64_t> nonempty;
      for (int64_t size : class_sizes) {
        if (size > 0) nonempty.push_back(size);
      }
      const auto num_nonempty = static_cast<int64_t>(nonempty.size());
      if (options.classes_per_client < 1 ||
          options.classes_per_client > num_nonempty) {
        return InvalidOption(absl::StrFormat(
            "classes_per_client=%d must be in [1, %d] (the non-empty classes)",
            options.classes_per_client, num_nonempty));
      }
      std::sort(nonempty.begin(), nonempty.end());
      const int64_t smallest_k = std::accumulate(
          nonempty.begin(), nonempty.begin() + options.classes_per_client,
          int64_t{0});
      if (options.examples_per_client > smallest_k) {
        return InvalidOption(absl::StrFormat(
            "examples_per_client=%d exceeds the %d examples of the "
            "classes_per_client=%d smallest classes",
            options.examples_per_client, smallest_k,
            options.classes_per_client));
      }
      break;
    }
    case PartitionScheme::kQuantitySkew:
      if (!(options.power_law_exponent > 1.0) ||
          !std::isfinite(options.power_law_exponent)) {
        return InvalidOption(absl::StrFormat(
            "power_law_exponent=%g must be a finite number > 1 (for a finite "
            "mean client size)",
            options.power_law_exponent));
      }
      if (options.min_examples < 1 ||
          options.min_examples > options.examples_per_client) {
        return InvalidOption(absl::StrFormat(
            "min_examples=%d must be in [1, examples_per_client=%d]",
            options.min_examples, options.examples_per_client));
      }
      break;
    default:
      return InvalidOption("unknown scheme");
  }
  return ExampleSampler(options, std::move(order), std::move(class_sizes));
}

ExampleSampler::ExampleSampler(SampledPartitionOptions options,
                               std::vector<int32_t> order,
                               std::vector<int64_t> class_sizes)
    : options_(options),
      order_(std::move(order)),
      class_sizes_(std::move(class_sizes)),
      class_start_(class_sizes_.size(), 0) {
  std::partial_sum(class_sizes_.begin(), class_sizes_.end() - 1,
                   class_start_.begin() + 1);
  for (size_t c = 0; c < class_sizes_.size(); ++c) {
    if (class_sizes_[c] > 0) nonempty_classes_.push_back(static_cast<int>(c));
    class_weights_.push_back(static_cast<double>(class_sizes_[c]));
  }
}

std::vector<int64_t> ExampleSampler::ClassCounts(uint64_t client) const {
  Rng rng(MixSeed(options_.seed, client));
  const size_t k = class_sizes_.size();
  std::vector<int64_t> counts(k, 0);
  switch (options_.scheme) {
    case PartitionScheme::kIid:
      Multinomial(rng, options_.examples_per_client, class_weights_, counts);
      break;
    case PartitionScheme::kDirichlet: {
      const std::vector<double> p = Dirichlet(
          rng, options_.alpha, static_cast<int>(nonempty_classes_.size()));
      std::vector<double> weights(k, 0.0);
      for (size_t j = 0; j < p.size(); ++j)
        weights[nonempty_classes_[j]] = p[j];
      Multinomial(rng, options_.examples_per_client, weights, counts);
      break;
    }
    case PartitionScheme::kShards: {
      std::vector<int> chosen = nonempty_classes_;
      const auto per_client = static_cast<size_t>(options_.classes_per_client);
      PartialShuffle(chosen, per_client, rng);
      chosen.resize(per_client);
      const int64_t size = options_.examples_per_client;
      const auto classes = static_cast<int64_t>(per_client);
      for (int64_t j = 0; j < classes; ++j) {
        counts[chosen[j]] = size / classes + (j < size % classes ? 1 : 0);
      }
      // Validation guarantees the chosen classes hold `size` examples.
      CapAndRefill(rng, class_sizes_, chosen, counts);
      return counts;
    }
    case PartitionScheme::kQuantitySkew: {
      const double a = options_.power_law_exponent;
      const double scale =
          static_cast<double>(options_.examples_per_client) * (a - 1.0) / a;
      const double drawn = scale * std::exp(-std::log(UniformOpen(rng)) / a);
      const auto n = static_cast<double>(order_.size());
      const int64_t size =
          std::max(options_.min_examples,
                   static_cast<int64_t>(std::llround(std::min(drawn, n))));
      Multinomial(rng, size, class_weights_, counts);
      break;
    }
  }
  // Sizes are at most N, so every class together can hold them.
  CapAndRefill(rng, class_sizes_, nonempty_classes_, counts);
  return counts;
}

int64_t ExampleSampler::Size(uint64_t client) const {
  const std::vector<int64_t> counts = ClassCounts(client);
  return std::accumulate(counts.begin(), counts.end(), int64_t{0});
}

std::vector<int64_t> ExampleSampler::Indices(uint64_t client) const {
  const std::vector<int64_t> counts = ClassCounts(client);
  Rng rng(MixSeed(options_.seed ^ kIndexStreamSalt, client));
  std::vector<int64_t> indices;
  indices.reserve(std::accumulate(counts.begin(), counts.end(), int64_t{0}));
  std::vector<int64_t> offsets;
  for (size_t c = 0; c < counts.size(); ++c) {
    if (counts[c] == 0) continue;
    offsets.clear();
    SampleDistinct(rng, class_sizes_[c], counts[c], offsets);
    for (int64_t offset : offsets) {
      indices.push_back(order_[class_start_[c] + offset]);
    }
  }
  std::sort(indices.begin(), indices.end());
  return indices;
}

size_t ExampleSampler::MemoryBytes() const {
  return sizeof(*this) + order_.capacity() * sizeof(int32_t) +
         class_sizes_.capacity() * sizeof(int64_t) +
         class_start_.capacity() * sizeof(int64_t) +
         nonempty_classes_.capacity() * sizeof(int) +
         class_weights_.capacity() * sizeof(double);
}

}  // namespace shoal::client
