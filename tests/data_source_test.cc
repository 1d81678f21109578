// Data sources: normalization from the config or the data, the number of
// outputs a task needs, and the holdout split shared by real and simulated
// clients.
#include "client/data/source.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>

namespace shoal::client {
namespace {

using ::testing::HasSubstr;

Normalization Given(std::vector<double> mean, std::vector<double> std) {
  Normalization n;
  n.mode = Normalization::Mode::kGiven;
  n.mean = std::move(mean);
  n.std = std::move(std);
  return n;
}

TEST(NormalizeTest, OneValueIsExactlyTheScalarFormula) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor raw = at::rand({5, 1, 4, 4}, gen);
  Dataset data{raw.clone(), at::zeros({5}, at::kLong)};
  ASSERT_TRUE(Normalize(Given({0.2860}, {0.3530}), data).ok());
  // Bit for bit what Shoal did before normalization became configurable,
  // so the Fashion-MNIST runs keep their numbers.
  EXPECT_TRUE(at::equal(data.inputs, raw.clone().sub_(0.2860).div_(0.3530)));
}

TEST(NormalizeTest, PerChannelAndPerFeatureValues) {
  Dataset images{at::ones({2, 3, 2, 2}), at::zeros({2}, at::kLong)};
  ASSERT_TRUE(Normalize(Given({0, 1, 2}, {1, 2, 4}), images).ok());
  EXPECT_FLOAT_EQ(images.inputs[1][0][1][1].item<float>(), 1);
  EXPECT_FLOAT_EQ(images.inputs[1][1][1][1].item<float>(), 0);
  EXPECT_FLOAT_EQ(images.inputs[1][2][1][1].item<float>(), -0.25);

  Dataset rows{at::tensor({1.0, 10.0, 3.0, 30.0}, at::kFloat).view({2, 2}), at::zeros({2})};
  ASSERT_TRUE(Normalize(Given({2, 20}, {1, 10}), rows).ok());
  EXPECT_TRUE(at::allclose(rows.inputs, at::tensor({-1.0f, -1.0f, 1.0f, 1.0f}).view({2, 2})));
}

TEST(NormalizeTest, AutoComputesPerFeatureStatisticsAndReportsThem) {
  Dataset rows{at::tensor({1.0, 5.0, 3.0, 5.0}, at::kFloat).view({2, 2}), at::zeros({2})};
  Normalization autonorm;
  autonorm.mode = Normalization::Mode::kAuto;
  absl::StatusOr<Normalization> used = Normalize(autonorm, rows);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_THAT(used->mean, ::testing::ElementsAre(2, 5));
  // The constant feature keeps its scale: std 1, not 0.
  EXPECT_THAT(used->std, ::testing::ElementsAre(1, 1));
  EXPECT_TRUE(at::allclose(rows.inputs, at::tensor({-1.0f, 0.0f, 1.0f, 0.0f}).view({2, 2})));
}

TEST(NormalizeTest, RefusesValuesThatDoNotFitTheInputs) {
  Dataset rows{at::ones({2, 3}), at::zeros({2})};
  EXPECT_THAT(std::string(Normalize(Given({0, 1}, {1, 1}), rows).status().message()),
              HasSubstr("one per channel/feature (3)"));
  EXPECT_THAT(std::string(Normalize(Given({0}, {0}), rows).status().message()),
              HasSubstr("> 0"));
  EXPECT_TRUE(at::equal(rows.inputs, at::ones({2, 3})));  // untouched
}

TEST(OutputsForTest, ClassesFromTheLabelsOrTheConfig) {
  Dataset data{at::zeros({3, 2}), at::tensor({0, 4, 2}, at::kLong)};
  const Task classification;
  EXPECT_EQ(*OutputsFor(classification, data, 0), 5);
  EXPECT_EQ(*OutputsFor(classification, data, 10), 10);
  EXPECT_THAT(std::string(OutputsFor(classification, data, 3).status().message()),
              HasSubstr("label 4 is not below task.num_classes (3)"));
  const Task regression(TaskOptions{TaskKind::kRegression});
  EXPECT_EQ(*OutputsFor(regression, Dataset{at::zeros({3, 2}), at::zeros({3})}, 0), 1);
  EXPECT_EQ(*OutputsFor(regression, Dataset{at::zeros({3, 2}), at::zeros({3, 4})}, 0), 4);
}

TEST(SplitHoldoutTest, HoldsOutTheFractionDeterministicallyAndLosesNothing) {
  std::vector<int64_t> examples(50);
  std::iota(examples.begin(), examples.end(), 100);
  auto [train, held] = SplitHoldout(examples, 0.1, 7);
  EXPECT_EQ(held.size(), 5u);
  EXPECT_EQ(train.size(), 45u);
  std::vector<int64_t> all = train;
  all.insert(all.end(), held.begin(), held.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, examples);
  auto again = SplitHoldout(examples, 0.1, 7);
  EXPECT_EQ(again.first, train);
  EXPECT_EQ(again.second, held);
  EXPECT_NE(SplitHoldout(examples, 0.1, 8).second, held);
  EXPECT_TRUE(SplitHoldout(examples, 0, 7).second.empty());
}

TEST(SplitHoldoutTest, ClientSeedsDifferPerClientAndMatchTheRealClientsFormula) {
  EXPECT_NE(ClientSeed(42, 0), ClientSeed(42, 1));
  EXPECT_EQ(ClientSeed(42, 3), 42ULL ^ (0x5eedULL + 4));
  // A client with its own data (no partition, index -1).
  EXPECT_EQ(ClientSeed(42, static_cast<uint64_t>(-1)), 42ULL ^ 0x5eedULL);
}

}  // namespace
}  // namespace shoal::client
