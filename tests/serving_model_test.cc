// ServingModel: predictions from many threads while new serving versions are
// swapped in (client/serving_model.h).
#include "client/serving_model.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "client/inference.h"

namespace shoal::client {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Model> Make(uint64_t seed) {
  absl::StatusOr<ModelSpec> spec = ParseModelSpec("2nn-1x28x28-10");
  EXPECT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(*spec, seed);
  EXPECT_TRUE(model.ok()) << model.status();
  return *std::move(model);
}

ModelRecord Record(int64_t version) {
  ModelRecord record;
  record.version = version;
  return record;
}

TEST(ServingModelTest, RefusesPredictionsBeforeAModelAndInputsTheModelCannotTake) {
  ServingModel serving;
  absl::StatusOr<Served> none = serving.Predict(at::zeros({1, 1, 28, 28}));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(serving.current().has_value());
  EXPECT_EQ(serving.Install(nullptr, Record(1)).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(serving.Install(Make(1), Record(1)).ok());
  absl::StatusOr<Served> bad = serving.Predict(at::zeros({2, 3, 5}));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("[2, 3, 5]"));
  // A bad request leaves the model serving.
  absl::StatusOr<Served> good = serving.Predict(at::zeros({3, 1, 28, 28}));
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->outputs.sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_EQ(good->version, 1);
}

// The hot swap: four threads predict without pause while versions 2 and 3
// take over. No prediction fails; every answer is exactly what the version
// it names computes (never a mix), each thread sees the versions in order,
// and larger requests than one forward pass are answered whole.
TEST(ServingModelTest, PredictionsDuringHotSwapsNeverFailAndEachVersionAnswersAsItself) {
  const at::Tensor x = at::rand({40, 1, 28, 28}, at::TensorOptions().dtype(at::kFloat));
  std::vector<at::Tensor> expected(4);
  for (int64_t v = 1; v <= 3; ++v) {
    std::unique_ptr<Model> bare = Make(100 + v);
    // Batched as the serving model batches, so the outputs are bit-identical.
    absl::StatusOr<at::Tensor> out = Predict(*bare, x, /*batch_size=*/16);
    ASSERT_TRUE(out.ok()) << out.status();
    expected[v] = *out;
  }
  ASSERT_FALSE(at::equal(expected[1], expected[2]));

  ServingModel serving(/*batch_size=*/16);  // 40 rows: three forward passes
  ASSERT_TRUE(serving.Install(Make(101), Record(1)).ok());
  std::atomic<bool> done{false};
  std::atomic<int64_t> failures{0}, wrong{0}, out_of_order{0};
  std::vector<std::atomic<int64_t>> answered(4);
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      int64_t last = 0;
      while (!done.load()) {
        absl::StatusOr<Served> s = serving.Predict(x);
        if (!s.ok()) {
          ++failures;
          continue;
        }
        if (s->version < 1 || s->version > 3 || !at::equal(s->outputs, expected[s->version])) {
          ++wrong;
        } else {
          ++answered[s->version];
        }
        if (s->version < last) ++out_of_order;
        last = s->version;
      }
    });
  }
  auto wait_for = [&](int64_t version) {
    for (int i = 0; i < 20000 && answered[version].load() < 20; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  wait_for(1);
  ASSERT_TRUE(serving.Install(Make(102), Record(2)).ok());
  wait_for(2);
  ASSERT_TRUE(serving.Install(Make(103), Record(3)).ok());
  wait_for(3);
  done = true;
  for (std::thread& t : callers) t.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(out_of_order.load(), 0);
  for (int64_t v = 1; v <= 3; ++v) EXPECT_GE(answered[v].load(), 20) << "version " << v;
  EXPECT_EQ(serving.current()->version, 3);
  EXPECT_EQ(serving.installs(), 3);
}

}  // namespace
}  // namespace shoal::client
