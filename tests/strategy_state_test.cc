// Strategy state checkpoints: a strategy restored from SaveState after round
// 1 finishes round 2 exactly as the one that never stopped.
#include <ATen/ATen.h>

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "strategies/differential_privacy.h"
#include "strategies/registry.h"
#include "tests/strategy_testing.h"

namespace shoal {
namespace {

using ::nlohmann::json;

std::unique_ptr<Strategy> Make(const std::string& name) {
  if (name == "dp(fedadam)") {
    DifferentialPrivacyOptions o;
    o.noise_multiplier = 0.5;
    o.adaptive = true;
    o.clipped_count_stddev = 1;
    o.noise_seed = 3;
    auto dp = DifferentialPrivacy::Wrap(*CreateStrategy("fedadam", json::object(), {}), o, 2);
    EXPECT_TRUE(dp.ok()) << dp.status();
    return *std::move(dp);
  }
  if (name == "fedadam+bias_correction") {
    // Its state holds the step count besides m and v.
    auto s = CreateStrategy("fedadam", json{{"bias_correction", true}},
                            StrategyContext{});
    EXPECT_TRUE(s.ok()) << s.status();
    return *std::move(s);
  }
  auto s = CreateStrategy(name, json::object(), StrategyContext{});
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

FitRes Result(float a, float b) {
  FitRes res = testing::Update({a, b}, {a - b}, 10);
  res.aux = testing::Update({b, a}, {a}, 10).update;  // SCAFFOLD's delta c
  return res;
}

// Runs one round of `strategy` from `global` with two fixed results.
Parameters Round(Strategy& strategy, uint32_t round, std::shared_ptr<const Parameters> global,
                 float shift) {
  strategy.ConfigureFit(round, *global, {"a", "b"});
  auto agg = strategy.BeginAggregateFit(round, global);
  EXPECT_TRUE(agg->Accept("a", Result(0.1f + shift, -0.2f)).ok());
  EXPECT_TRUE(agg->Accept("b", Result(-0.3f, 0.4f * shift)).ok());
  absl::StatusOr<Parameters> next = agg->Finish({});
  EXPECT_TRUE(next.ok()) << next.status();
  return *std::move(next);
}

class StrategyStateTest : public ::testing::TestWithParam<const char*> {};

TEST_P(StrategyStateTest, RestoredStrategyContinuesExactly) {
  auto global0 = testing::Global({1, 2}, {3});
  std::unique_ptr<Strategy> kept = Make(GetParam());
  auto global1 = std::make_shared<const Parameters>(Round(*kept, 1, global0, 1));
  const Parameters state = kept->SaveState();
  EXPECT_FALSE(state.empty());

  std::unique_ptr<Strategy> restored = Make(GetParam());
  ASSERT_TRUE(restored->LoadState(state).ok());
  const Parameters again = restored->SaveState();
  ASSERT_EQ(again.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(again.name(i), state.name(i));
    EXPECT_TRUE(at::equal(again.tensor(i), state.tensor(i))) << state.name(i);
  }
  // A DP wrapper draws fresh noise after a restart, so its next round
  // differs by design; the others must agree to the bit.
  if (std::string(GetParam()) == "dp(fedadam)") return;
  const Parameters want = Round(*kept, 2, global1, 2);
  const Parameters got = Round(*restored, 2, global1, 2);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_TRUE(at::equal(want.tensor(i), got.tensor(i))) << want.name(i);
  }
}

TEST_P(StrategyStateTest, ForeignStateIsRefusedAndLeavesTheStrategyAsItWas) {
  std::unique_ptr<Strategy> s = Make(GetParam());
  Parameters bogus;
  bogus.Add("bogus", at::zeros({3}, at::kFloat));
  bogus.Add("more", at::zeros({3}, at::kFloat));
  const Parameters before = s->SaveState();
  if (std::string(GetParam()) == "scaffold") {
    // SCAFFOLD's state is laid out like the model, which only the next round
    // can check; a non-finite one is refused at once.
    bogus.mutable_tensor(0)[0] = NAN;
  }
  EXPECT_FALSE(s->LoadState(bogus).ok());
  EXPECT_EQ(s->SaveState().size(), before.size());
}

INSTANTIATE_TEST_SUITE_P(Stateful, StrategyStateTest,
                         ::testing::Values("fedavgm", "fedadam",
                                           "fedadam+bias_correction", "fedyogi",
                                           "scaffold", "dp(fedadam)"));

TEST(StrategyStateTest, FedAdamBiasCorrectionSavesAValidStepCount) {
  std::unique_ptr<Strategy> s = Make("fedadam+bias_correction");
  auto global = testing::Global({1, 2}, {3});
  Round(*s, 1, global, 1);
  Parameters state = s->SaveState();
  ASSERT_EQ(state.size(), 3u);
  EXPECT_EQ(state.name(2), "steps");
  EXPECT_EQ(state.tensor(2).item<double>(), 1.0);
  // A negative count is refused, and the strategy keeps its own.
  Parameters bad;
  for (size_t i = 0; i < 2; ++i) bad.Add(state.name(i), state.tensor(i));
  bad.Add("steps", at::full({1}, -1.0, at::kDouble));
  std::unique_ptr<Strategy> fresh = Make("fedadam+bias_correction");
  absl::Status refused = fresh->LoadState(bad);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("steps"), std::string::npos) << refused;
  EXPECT_TRUE(fresh->SaveState().empty());
  // Without the count, a bias-corrected FedAdam's state is incomplete.
  Parameters short_state;
  for (size_t i = 0; i < 2; ++i)
    short_state.Add(state.name(i), state.tensor(i));
  EXPECT_FALSE(fresh->LoadState(short_state).ok());
}

TEST(StrategyStateTest, StatelessStrategiesSaveNothingAndRefuseState) {
  std::unique_ptr<Strategy> s = Make("fedavg");
  EXPECT_TRUE(s->SaveState().empty());
  EXPECT_TRUE(s->LoadState(Parameters{}).ok());
  Parameters state;
  state.Add("m", at::zeros({2}, at::kDouble));
  absl::Status refused = s->LoadState(state);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("fedavg"), std::string::npos) << refused;
}

}  // namespace
}  // namespace shoal
