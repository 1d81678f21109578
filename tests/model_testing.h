// Test helper: a client model for the tests that train one.
#ifndef SHOAL_TESTS_MODEL_TESTING_H_
#define SHOAL_TESTS_MODEL_TESTING_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/model.h"
#include "gtest/gtest.h"

namespace shoal::client {

// MustCreate builds built-in `name` shaped for Fashion-MNIST (1 x 28 x 28
// images, 10 classes), or the TorchScript file `name`; null (after failing
// the test) when it cannot.
inline std::unique_ptr<Model> MustCreate(const std::string& name, uint64_t seed = 0) {
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(name);
  if (spec.ok() && IsBuiltinModel(*spec)) spec = ResolveModelShape(*spec, {1, 28, 28}, 10);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(*spec, seed);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

}  // namespace shoal::client

#endif  // SHOAL_TESTS_MODEL_TESTING_H_
