// Small builders shared by the strategy tests: a two-tensor model ("w", "b")
// and a client result for it.
#ifndef SHOAL_TESTS_STRATEGY_TESTING_H_
#define SHOAL_TESTS_STRATEGY_TESTING_H_

#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "common/parameters.h"
#include "common/types.h"

namespace shoal::testing {

inline std::shared_ptr<const Parameters> Global(std::vector<float> w, std::vector<float> b) {
  auto p = std::make_shared<Parameters>();
  p->Add("w", at::tensor(w));
  p->Add("b", at::tensor(b));
  return p;
}

inline FitRes Update(std::vector<float> w, std::vector<float> b, int64_t n) {
  FitRes res;
  res.update.Add("w", at::tensor(w));
  res.update.Add("b", at::tensor(b));
  res.num_examples = n;
  return res;
}

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_STRATEGY_TESTING_H_
