#include "secagg/encoding.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "secagg/crypto.h"

namespace shoal::secagg {
namespace {

uint64_t Levels(uint32_t bits) { return (uint64_t{1} << bits) - 1; }  // top code

}  // namespace

absl::Status EncodingOptions::Validate() const {
  if (!(clip > 0) || !std::isfinite(clip)) {
    return absl::InvalidArgumentError(absl::StrCat("clip must be finite and > 0, got ", clip));
  }
  if (bits < 1 || bits > 32) {
    return absl::InvalidArgumentError(absl::StrCat("bits must be in [1, 32], got ", bits));
  }
  if (modulus < 2 || modulus > kMaxMaskModulus) {
    return absl::InvalidArgumentError(
        absl::StrCat("modulus must be in [2, 2^62], got ", modulus));
  }
  if (modulus <= Levels(bits)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "modulus ", modulus, " cannot hold even one client's ", bits, "-bit codes"));
  }
  return absl::OkStatus();
}

double EncodingOptions::Step() const { return 2 * clip / static_cast<double>(Levels(bits)); }

uint64_t EncodingOptions::MaxClients() const { return (modulus - 1) / Levels(bits); }

absl::StatusOr<std::vector<uint64_t>> Encode(const float* values, size_t n,
                                             const EncodingOptions& options,
                                             const std::string& rounding_seed) {
  if (absl::Status ok = options.Validate(); !ok.ok()) return ok;
  // 32 random bits per value: u = r / 2^32 in [0, 1).
  absl::StatusOr<std::vector<uint64_t>> draws =
      ExpandMask(rounding_seed, "stochastic-rounding", n, uint64_t{1} << 32);
  if (!draws.ok()) return draws.status();
  const double step = options.Step();
  const auto top = static_cast<double>(Levels(options.bits));
  std::vector<uint64_t> codes(n);
  for (size_t i = 0; i < n; ++i) {
    const double x = values[i];
    if (!std::isfinite(x)) {
      return absl::InvalidArgumentError(absl::StrCat("value ", i, " is not finite"));
    }
    const double t = (std::clamp(x, -options.clip, options.clip) + options.clip) / step;
    const double u = static_cast<double>((*draws)[i]) * 0x1.0p-32;
    codes[i] = static_cast<uint64_t>(std::min(std::floor(t + u), top));
  }
  return codes;
}

absl::StatusOr<std::vector<double>> DecodeSum(const std::vector<uint64_t>& sum,
                                              uint64_t num_clients,
                                              const EncodingOptions& options) {
  if (absl::Status ok = options.Validate(); !ok.ok()) return ok;
  if (num_clients == 0 || num_clients > options.MaxClients()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a sum of ", num_clients, " clients' codes cannot be decoded: with ", options.bits,
        "-bit codes the modulus ", options.modulus, " holds at most ", options.MaxClients()));
  }
  const double step = options.Step();
  const double offset = static_cast<double>(num_clients) * options.clip;
  std::vector<double> out(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) {
    if (sum[i] >= options.modulus) {
      return absl::InvalidArgumentError(absl::StrCat("sum element ", i, " is outside the modulus"));
    }
    out[i] = static_cast<double>(sum[i]) * step - offset;
  }
  return out;
}

}  // namespace shoal::secagg
