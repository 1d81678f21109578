// Normalization: what is done to a data source's inputs after reading, and
// the one place it is computed and applied, for data in memory and data
// spooled to disk alike (so the two give bit-identical inputs).
#ifndef SHOAL_CLIENT_DATA_NORMALIZATION_H_
#define SHOAL_CLIENT_DATA_NORMALIZATION_H_

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal::client {

// Normalization: kNone leaves the inputs as read (IDX images scaled to
// [0, 1]) for models that normalize themselves; kGiven subtracts `mean` and
// divides by `std`, each one value for all inputs or one per channel
// (inputs [N, C, ...]) or per feature (inputs [N, F]); kAuto computes them
// per channel or feature from the training split as the process loads it
// (a client's own data, or the simulator's whole training set), applies
// them to either split, and logs them so a run can pin them in its config.
struct Normalization {
  enum class Mode { kNone, kGiven, kAuto };
  Mode mode = Mode::kNone;
  std::vector<double> mean;
  std::vector<double> std;
};

// CheckNormalization checks a kGiven normalization against inputs whose
// channel/feature axis (axis 1) has `width` entries. InvalidArgument when
// mean and std are not 1 value each or one per channel/feature, or a value
// is not finite (or a std not > 0).
absl::Status CheckNormalization(const Normalization& normalization, int64_t width);

// ApplyNormalization normalizes float inputs `x` [B, C, ...] in place with
// a checked kGiven (or kNone: nothing) normalization.
void ApplyNormalization(const Normalization& normalization, at::Tensor& x);

// NormalizationStats accumulates per-channel (or per-feature) mean and
// standard deviation (population, in double) over inputs seen a chunk at a
// time, merged with Chan et al.'s parallel update.
class NormalizationStats {
 public:
  // Add takes float inputs [B, C, ...].
  void Add(const at::Tensor& x);
  int64_t examples() const { return examples_; }
  // Result is kGiven with the statistics; a constant channel gets std 1.
  Normalization Result() const;

 private:
  int64_t examples_ = 0;
  double count_ = 0;  // values per channel so far
  at::Tensor mean_;   // double [C]
  at::Tensor m2_;     // double [C]: sum of squared deviations
};

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_NORMALIZATION_H_
