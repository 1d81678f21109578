// The extension point: client algorithms registered by name from outside the
// client library, as a user's strategy with a client half would, and the
// refusals that keep a misconfigured round from training silently.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <memory>
#include <string>

#include "client/client_algorithm.h"
#include "client/client_algorithm_registry.h"
#include "client/local_client.h"
#include "common/client_algorithms.h"
#include "common/status.h"
#include "common/types.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::client {
namespace {

using ::testing::HasSubstr;

// L2ToZero: lambda/2 * ||w||^2 over the trainable tensors, a regularizer
// whose gradient lambda * w is what SGD's weight decay adds.
class L2ToZero : public ClientAlgorithm {
 public:
  explicit L2ToZero(double lambda) : lambda_(lambda) {}
  at::Tensor LossTerm(const TrainingStep& step) override {
    at::Tensor sum = at::zeros({}, step.trainable[0].options());
    for (const at::Tensor& w : step.trainable) sum = sum + w.pow(2).sum();
    return (lambda_ / 2) * sum;
  }

 private:
  const double lambda_;
};

// HalveUpdate sends half the trained update and counts the rounds it ran
// on this client in its state, reported as metric "rounds_seen".
class HalveUpdate : public ClientAlgorithm {
 public:
  absl::Status AfterTraining(const ClientRound& /*round*/, const FitOutcome& /*outcome*/,
                             Parameters* state, FitRes* res) override {
    const int64_t seen = state->empty() ? 1 : state->tensor(0).item<int64_t>() + 1;
    Parameters next;
    next.Add("rounds_seen", at::scalar_tensor(seen, at::kLong));
    *state = std::move(next);
    res->metrics["rounds_seen"] = seen;
    res->update = res->update.Scaled(0.5);
    return absl::OkStatus();
  }
};

// Refuses in BeforeTraining, after touching its state.
class Refuses : public ClientAlgorithm {
 public:
  absl::Status BeforeTraining(const ClientRound& /*round*/, Parameters* state) override {
    state->Add("touched", at::ones({1}));
    return absl::FailedPreconditionError("refused on purpose");
  }
};

void RegisterTestAlgorithms() {
  static const bool registered = [] {
    EXPECT_TRUE(RegisterClientAlgorithm(
                    "l2_to_zero",
                    [](ClientAlgorithmParams& p) -> absl::StatusOr<std::unique_ptr<ClientAlgorithm>> {
                      double lambda = 0;
                      SHOAL_RETURN_IF_ERROR(p.Number("lambda", 0, 1e3, &lambda));
                      return std::make_unique<L2ToZero>(lambda);
                    })
                    .ok());
    EXPECT_TRUE(RegisterClientAlgorithm(
                    "halve_update",
                    [](ClientAlgorithmParams&) -> absl::StatusOr<std::unique_ptr<ClientAlgorithm>> {
                      return std::make_unique<HalveUpdate>();
                    })
                    .ok());
    EXPECT_TRUE(RegisterClientAlgorithm(
                    "refuses",
                    [](ClientAlgorithmParams&) -> absl::StatusOr<std::unique_ptr<ClientAlgorithm>> {
                      return std::make_unique<Refuses>();
                    })
                    .ok());
    return true;
  }();
  (void)registered;
}

LocalClient MakeClient(uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  Dataset data{at::randn({48, 1, 28, 28}, gen), at::randint(0, 10, {48}, gen, at::kLong)};
  ModelSpec spec;
  spec.name = "logreg";
  spec.input_shape = {1, 28, 28};
  spec.outputs = 10;
  return LocalClient(*CreateModel(spec, seed), *Trainer::Create(TrainerOptions{}),
                     std::move(data), Dataset{});
}

v1::FitConfig Config() {
  v1::FitConfig config;
  config.set_local_epochs(2);
  config.set_batch_size(16);
  config.set_learning_rate(0.1);
  return config;
}

// The registered regularizer changes training exactly as weight decay of
// the same lambda does (momentum 0: both add lambda * w to every gradient).
TEST(ClientAlgorithmTest, UserRegularizerTrainsLikeWeightDecay) {
  RegisterTestAlgorithms();
  const double lambda = 0.5;
  LocalClient plain_client = MakeClient(21);
  const Parameters global = plain_client.model().GetParameters().Clone();
  absl::StatusOr<FitRes> plain = plain_client.Fit(global, Config(), 1);
  ASSERT_TRUE(plain.ok()) << plain.status();

  v1::FitConfig decay = Config();
  decay.set_weight_decay(lambda);
  absl::StatusOr<FitRes> decayed = MakeClient(21).Fit(global, decay, 1);
  ASSERT_TRUE(decayed.ok()) << decayed.status();

  v1::FitConfig regularized = Config();
  (*AddClientAlgorithm(&regularized, "l2_to_zero")->mutable_params())["lambda"].set_double_value(
      lambda);
  absl::StatusOr<FitRes> res = MakeClient(21).Fit(global, regularized, 1);
  ASSERT_TRUE(res.ok()) << res.status();
  for (size_t i = 0; i < global.size(); ++i) {
    EXPECT_TRUE(at::allclose(res->update.tensor(i), decayed->update.tensor(i), 1e-5, 1e-6))
        << global.name(i);
    EXPECT_FALSE(at::allclose(res->update.tensor(i), plain->update.tensor(i), 1e-3, 1e-4))
        << global.name(i);
  }
  // The reported loss is the task's alone, as with weight decay.
  EXPECT_DOUBLE_EQ(MetricAsDouble(res->metrics.at(kTrainLossMetric)),
                   MetricAsDouble(decayed->metrics.at(kTrainLossMetric)));
}

// An after-training hook changes what is sent, and its state lives in the
// LocalClient between rounds and moves with Assign (as the simulator does).
TEST(ClientAlgorithmTest, AfterTrainingHookChangesTheUpdateAndKeepsItsState) {
  RegisterTestAlgorithms();
  LocalClient client = MakeClient(22);
  const Parameters global = client.model().GetParameters().Clone();
  absl::StatusOr<FitRes> plain = client.Fit(global, Config(), 1);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_TRUE(client.algorithm_state().empty());

  v1::FitConfig config = Config();
  AddClientAlgorithm(&config, "halve_update");
  absl::StatusOr<FitRes> halved = client.Fit(global, config, 1);
  ASSERT_TRUE(halved.ok()) << halved.status();
  for (size_t i = 0; i < global.size(); ++i) {
    EXPECT_TRUE(at::equal(halved->update.tensor(i), plain->update.tensor(i) * 0.5))
        << global.name(i);
  }
  EXPECT_EQ(std::get<int64_t>(halved->metrics.at("rounds_seen")), 1);
  EXPECT_EQ(std::get<int64_t>(client.Fit(global, config, 2)->metrics.at("rounds_seen")), 2);

  const ClientAlgorithmState saved = client.algorithm_state();
  ASSERT_EQ(saved.count("halve_update"), 1u);
  client.Assign(*Trainer::Create(TrainerOptions{}), client.train_source(), InMemory(Dataset{}), {});
  EXPECT_EQ(std::get<int64_t>(client.Fit(global, config, 3)->metrics.at("rounds_seen")), 1);
  client.Assign(*Trainer::Create(TrainerOptions{}), client.train_source(), InMemory(Dataset{}), saved);
  EXPECT_EQ(std::get<int64_t>(client.Fit(global, config, 3)->metrics.at("rounds_seen")), 3);
}

TEST(ClientAlgorithmTest, FailingHookFailsTheRoundAndKeepsTheOldState) {
  RegisterTestAlgorithms();
  LocalClient client = MakeClient(23);
  const Parameters global = client.model().GetParameters().Clone();
  v1::FitConfig config = Config();
  AddClientAlgorithm(&config, "halve_update");
  ASSERT_TRUE(client.Fit(global, config, 1).ok());
  AddClientAlgorithm(&config, "refuses");
  absl::StatusOr<FitRes> res = client.Fit(global, config, 2);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(res.status().message()), HasSubstr("refused on purpose"));
  EXPECT_EQ(client.algorithm_state().count("refuses"), 0u);
  EXPECT_EQ(client.algorithm_state().at("halve_update").tensor(0).item<int64_t>(), 1);
}

TEST(ClientAlgorithmTest, UnknownNamesParamsAndRepeatsAreRefused) {
  RegisterTestAlgorithms();
  LocalClient client = MakeClient(24);
  const Parameters global = client.model().GetParameters().Clone();

  v1::FitConfig unknown = Config();
  AddClientAlgorithm(&unknown, "my_regularizer");
  absl::StatusOr<FitRes> res = client.Fit(global, unknown, 1);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(res.status().message()), HasSubstr("'my_regularizer'"));
  EXPECT_THAT(std::string(res.status().message()), HasSubstr("fedprox"));  // the known ones

  v1::FitConfig misspelt = Config();
  (*AddClientAlgorithm(&misspelt, kFedProxAlgorithm)->mutable_params())["mu"].set_double_value(1);
  res = client.Fit(global, misspelt, 1);
  ASSERT_FALSE(res.ok());
  EXPECT_THAT(std::string(res.status().message()), HasSubstr("'mu'"));
  EXPECT_THAT(std::string(res.status().message()), HasSubstr(kProximalMuParam));

  v1::FitConfig twice = Config();
  AddClientAlgorithm(&twice, "halve_update");
  AddClientAlgorithm(&twice, "halve_update");
  res = client.Fit(global, twice, 1);
  ASSERT_FALSE(res.ok());
  EXPECT_THAT(std::string(res.status().message()), HasSubstr("more than once"));

  v1::FitConfig no_clip = Config();
  AddClientAlgorithm(&no_clip, kDifferentialPrivacyAlgorithm);
  res = client.Fit(global, no_clip, 1);
  ASSERT_FALSE(res.ok());
  EXPECT_THAT(std::string(res.status().message()), HasSubstr(kClipNormParam));
}

TEST(ClientAlgorithmTest, RegistryListsBuiltinsAndRefusesATakenName) {
  RegisterTestAlgorithms();
  std::vector<std::string> names = RegisteredClientAlgorithms();
  for (const char* builtin : {kFedProxAlgorithm, kQFedAvgAlgorithm, kScaffoldAlgorithm,
                              kDifferentialPrivacyAlgorithm, "l2_to_zero"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), builtin), names.end()) << builtin;
  }
  absl::Status again = RegisterClientAlgorithm(
      kScaffoldAlgorithm,
      [](ClientAlgorithmParams&) -> absl::StatusOr<std::unique_ptr<ClientAlgorithm>> {
        return nullptr;
      });
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
}

// Client-side DP clipping first, then SCAFFOLD: the control variate is
// estimated from the clipped update, the one the server receives.
TEST(ClientAlgorithmTest, PrependedAlgorithmRunsFirst) {
  LocalClient client = MakeClient(25);
  const Parameters global = client.model().GetParameters().Clone();
  Parameters c;
  for (size_t i = 0; i < global.size(); ++i) c.Add(global.name(i), at::zeros_like(global.tensor(i)));
  v1::FitConfig config = Config();
  config.set_local_epochs(1);
  AddClientAlgorithm(&config, kScaffoldAlgorithm);
  (*PrependClientAlgorithm(&config, kDifferentialPrivacyAlgorithm)->mutable_params())
      [kClipNormParam].set_double_value(1e-3);
  ASSERT_EQ(config.client_algorithms(0).name(), kDifferentialPrivacyAlgorithm);
  absl::StatusOr<FitRes> res = client.Fit(global, config, 1, &c);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_NEAR(res->update.L2Norm(), 1e-3, 1e-9);
  const double steps = 3, lr = 0.1;  // 48 examples in batches of 16
  for (size_t i = 0; i < global.size(); ++i) {
    EXPECT_TRUE(at::allclose(res->aux.tensor(i), -res->update.tensor(i) / (steps * lr), 1e-5,
                             1e-8))
        << global.name(i);
  }
}

}  // namespace
}  // namespace shoal::client
