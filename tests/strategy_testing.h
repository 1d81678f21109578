// Small builders shared by the strategy tests: a two-tensor model ("w", "b"),
// a client result for it, and golden data written by tests/golden/*.py.
#ifndef SHOAL_TESTS_STRATEGY_TESTING_H_
#define SHOAL_TESTS_STRATEGY_TESTING_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/files.h"
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

// ReadGolden parses tests/golden/`file` (aborts the test binary when it is
// missing: the golden data is part of the source tree).
inline nlohmann::json ReadGolden(const std::string& file) {
  return nlohmann::json::parse(
      ReadFile(std::string(SHOAL_SOURCE_DIR) + "/tests/golden/" + file).value());
}

// TensorFromJson builds a float64 tensor from nested JSON arrays of numbers.
inline at::Tensor TensorFromJson(const nlohmann::json& j) {
  std::vector<int64_t> shape;
  for (const nlohmann::json* level = &j; level->is_array(); level = &level->front()) {
    shape.push_back(static_cast<int64_t>(level->size()));
    if (level->empty()) break;
  }
  std::vector<double> values;
  std::vector<const nlohmann::json*> stack = {&j};
  // Depth-first, left to right: row-major order.
  while (!stack.empty()) {
    const nlohmann::json* node = stack.back();
    stack.pop_back();
    if (node->is_array()) {
      for (auto it = node->rbegin(); it != node->rend(); ++it) stack.push_back(&*it);
    } else {
      values.push_back(node->get<double>());
    }
  }
  return at::tensor(values, at::kDouble).view(shape);
}

// ParametersFromJson reads the golden model {"w": ..., "b": ...} as `dtype`.
inline Parameters ParametersFromJson(const nlohmann::json& j,
                                     at::ScalarType dtype = at::kFloat) {
  Parameters p;
  for (const char* name : {"w", "b"}) p.Add(name, TensorFromJson(j.at(name)).to(dtype));
  return p;
}

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_STRATEGY_TESTING_H_
