#include "client/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "client/client_algorithm_registry.h"
#include "client/data/dataset.h"
#include "client/model.h"
#include "common/client_algorithms.h"
#include "common/parameters.h"
#include "common/types.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/model_testing.h"

namespace shoal::client {
namespace {

using ::testing::HasSubstr;

Trainer MustTrainer(uint64_t seed = 0) {
  TrainerOptions options;
  options.seed = seed;
  absl::StatusOr<Trainer> trainer = Trainer::Create(options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return *std::move(trainer);
}

// Algorithm creates the built-in client algorithm `name` with no params, as
// a client does for a round.
std::unique_ptr<ClientAlgorithm> Algorithm(const std::string& name) {
  v1::ClientAlgorithmConfig config;
  config.set_name(name);
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> algorithm = CreateClientAlgorithm(config);
  EXPECT_TRUE(algorithm.ok()) << algorithm.status();
  return *std::move(algorithm);
}

std::unique_ptr<ClientAlgorithm> FedProx(double mu) {
  v1::ClientAlgorithmConfig config;
  config.set_name(kFedProxAlgorithm);
  (*config.mutable_params())[kProximalMuParam].set_double_value(mu);
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> algorithm = CreateClientAlgorithm(config);
  EXPECT_TRUE(algorithm.ok()) << algorithm.status();
  return *std::move(algorithm);
}

v1::FitConfig Config(uint32_t epochs, uint32_t batch, double lr) {
  v1::FitConfig config;
  config.set_local_epochs(epochs);
  config.set_batch_size(batch);
  config.set_learning_rate(lr);
  return config;
}

// Two classes (labels 0 and 1 of ten logits) that a linear model separates
// with a wide margin: a fixed random direction, added or subtracted.
Dataset SeparableData(int64_t n, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor direction = at::randn({1, 1, 28, 28}, gen);
  at::Tensor labels = at::randint(0, 2, {n}, gen, at::kLong);
  at::Tensor sign = (labels.to(at::kFloat) * 2 - 1).view({n, 1, 1, 1});
  at::Tensor images = 0.3 * sign * direction + at::randn({n, 1, 28, 28}, gen);
  return Dataset{images, labels};
}

bool AllEqual(const Parameters& a, const Parameters& b) {
  if (a.names() != b.names()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!at::equal(a.tensor(i), b.tensor(i))) return false;
  }
  return true;
}

TEST(TrainerCreateTest, ParsesDevices) {
  TrainerOptions options;
  EXPECT_TRUE(Trainer::Create(options).ok());
  options.device = "cpu";
  EXPECT_TRUE(Trainer::Create(options).ok());

  options.device = "gpu0";
  absl::StatusOr<Trainer> bad = Trainer::Create(options);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("gpu0"));

  options.device = "meta";
  EXPECT_EQ(Trainer::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TrainerCreateTest, RefusesCudaWithoutCuda) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "CUDA is available";
  TrainerOptions options;
  options.device = "cuda";
  absl::StatusOr<Trainer> trainer = Trainer::Create(options);
  ASSERT_FALSE(trainer.ok());
  EXPECT_THAT(trainer.status().message(), HasSubstr("CUDA is not available"));
}

TEST(TrainerTest, FitReducesLossAndSeparatesClasses) {
  std::unique_ptr<Model> model = MustCreate("logreg", 1);
  Trainer trainer = MustTrainer();
  const Dataset data = SeparableData(256, 1);
  const Parameters global = model->GetParameters().Clone();

  absl::StatusOr<EvalOutcome> before = trainer.Evaluate(*model, data, 100);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->num_examples, 256);

  absl::StatusOr<FitOutcome> fit =
      trainer.Fit(*model, global, data, Config(5, 32, 0.05), /*round=*/1);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->num_examples, 256);
  EXPECT_EQ(fit->steps, 5 * 8);
  EXPECT_TRUE(std::isfinite(fit->train_loss));
  EXPECT_GE(MetricAsDouble(fit->train_metrics.at("accuracy")), 0.9);

  absl::StatusOr<EvalOutcome> after = trainer.Evaluate(*model, data, 100);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_LT(after->loss, 0.25 * before->loss);
  EXPECT_GE(MetricAsDouble(after->metrics.at("accuracy")), 0.95);

  // A held-out sample from the same distribution is also separated.
  Dataset test = SeparableData(512, 1);
  test.inputs = test.inputs.slice(0, 256);
  test.targets = test.targets.slice(0, 256);
  absl::StatusOr<EvalOutcome> held_out = trainer.Evaluate(*model, test);
  ASSERT_TRUE(held_out.ok()) << held_out.status();
  EXPECT_GE(MetricAsDouble(held_out->metrics.at("accuracy")), 0.95);
}

TEST(TrainerTest, FitReducesLossOnCnnWithPartialLastBatch) {
  std::unique_ptr<Model> model = MustCreate("cnn", 2);
  Trainer trainer = MustTrainer();
  const Dataset data = SeparableData(100, 2);
  const Parameters global = model->GetParameters().Clone();
  absl::StatusOr<EvalOutcome> before = trainer.Evaluate(*model, data);
  ASSERT_TRUE(before.ok()) << before.status();
  v1::FitConfig config = Config(2, 32, 0.01);
  config.set_momentum(0.5);
  absl::StatusOr<FitOutcome> fit = trainer.Fit(*model, global, data, config, 1);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->steps, 2 * 4);  // 32 + 32 + 32 + 4
  absl::StatusOr<EvalOutcome> after = trainer.Evaluate(*model, data);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_LT(after->loss, before->loss);
}

TEST(TrainerTest, UpdateIsExactlyAfterMinusGlobal) {
  std::unique_ptr<Model> model = MustCreate("2nn", 3);
  Trainer trainer = MustTrainer();
  const Dataset data = SeparableData(128, 3);
  const Parameters global = model->GetParameters().Clone();
  absl::StatusOr<FitOutcome> fit =
      trainer.Fit(*model, global, data, Config(1, 16, 0.1), 1);
  ASSERT_TRUE(fit.ok()) << fit.status();

  const Parameters after = model->GetParameters();
  ASSERT_TRUE(global.CheckCompatible(fit->update).ok());
  bool any_change = false;
  for (size_t i = 0; i < global.size(); ++i) {
    EXPECT_TRUE(
        at::equal(fit->update.tensor(i), after.tensor(i) - global.tensor(i)))
        << global.name(i);
    any_change |= fit->update.tensor(i).abs().sum().item<double>() > 0;
  }
  EXPECT_TRUE(any_change);
}

TEST(TrainerTest, GlobalAliasingTheModelStillGivesTheUpdate) {
  // A caller passing GetParameters() without Clone(): training mutates the
  // very tensors `global` points at; the update must still be non-zero.
  std::unique_ptr<Model> model = MustCreate("logreg", 4);
  const Parameters start = model->GetParameters().Clone();
  Trainer trainer = MustTrainer();
  const Dataset data = SeparableData(64, 4);
  absl::StatusOr<FitOutcome> fit =
      trainer.Fit(*model, model->GetParameters(), data, Config(1, 64, 0.1), 1);
  ASSERT_TRUE(fit.ok()) << fit.status();
  const Parameters after = model->GetParameters();
  for (size_t i = 0; i < start.size(); ++i) {
    EXPECT_TRUE(
        at::equal(fit->update.tensor(i), after.tensor(i) - start.tensor(i)));
  }
  EXPECT_GT(fit->update.tensor(0).abs().sum().item<double>(), 0);
}

TEST(TrainerTest, SameSeedAndRoundAreBitIdentical) {
  const Dataset data = SeparableData(200, 5);
  auto run = [&](uint64_t trainer_seed, uint32_t round) {
    std::unique_ptr<Model> model = MustCreate("2nn", 9);
    Trainer trainer = MustTrainer(trainer_seed);
    v1::FitConfig config = Config(2, 16, 0.05);
    config.set_momentum(0.9);
    config.set_weight_decay(1e-4);
    absl::StatusOr<FitOutcome> fit = trainer.Fit(
        *model, model->GetParameters().Clone(), data, config, round);
    EXPECT_TRUE(fit.ok()) << fit.status();
    return fit.ok() ? fit->update : Parameters();
  };
  const Parameters a = run(7, 3);
  EXPECT_TRUE(AllEqual(a, run(7, 3)));
  // Rounds and seeds shuffle differently.
  EXPECT_FALSE(AllEqual(a, run(7, 4)));
  EXPECT_FALSE(AllEqual(a, run(8, 3)));
}

TEST(TrainerTest, BadConfigFieldsAreRejectedByName) {
  std::unique_ptr<Model> model = MustCreate("logreg", 0);
  Trainer trainer = MustTrainer();
  const Dataset data = SeparableData(16, 0);
  const Parameters global = model->GetParameters().Clone();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    std::function<void(v1::FitConfig&)> mutate;
    const char* field;
  };
  const std::vector<Case> cases = {
      {[](v1::FitConfig& c) { c.set_local_epochs(0); }, "local_epochs"},
      {[](v1::FitConfig& c) { c.set_batch_size(0); }, "batch_size"},
      {[](v1::FitConfig& c) { c.set_learning_rate(0); }, "learning_rate"},
      {[](v1::FitConfig& c) { c.set_learning_rate(-0.1); }, "learning_rate"},
      {[&](v1::FitConfig& c) { c.set_learning_rate(nan); }, "learning_rate"},
      {[&](v1::FitConfig& c) { c.set_learning_rate(inf); }, "learning_rate"},
      {[](v1::FitConfig& c) { c.set_momentum(-0.1); }, "momentum"},
      {[](v1::FitConfig& c) { c.set_momentum(1.0); }, "momentum"},
      {[&](v1::FitConfig& c) { c.set_momentum(nan); }, "momentum"},
      {[](v1::FitConfig& c) { c.set_weight_decay(-1e-4); }, "weight_decay"},
      {[&](v1::FitConfig& c) { c.set_weight_decay(nan); }, "weight_decay"},
      {[&](v1::FitConfig& c) { c.set_weight_decay(inf); }, "weight_decay"},
  };
  for (const Case& c : cases) {
    v1::FitConfig config = Config(1, 8, 0.1);
    c.mutate(config);
    absl::StatusOr<FitOutcome> fit =
        trainer.Fit(*model, global, data, config, 1);
    ASSERT_FALSE(fit.ok()) << config.ShortDebugString();
    EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(fit.status().message(), HasSubstr(c.field));
  }
  EXPECT_EQ(trainer.Evaluate(*model, data, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TrainerTest, IncompatibleGlobalIsRefusedAndModelUnchanged) {
  std::unique_ptr<Model> model = MustCreate("logreg", 0);
  std::unique_ptr<Model> other = MustCreate("2nn", 0);
  Trainer trainer = MustTrainer();
  const Dataset data = SeparableData(16, 0);
  const Parameters before = model->GetParameters().Clone();

  absl::StatusOr<FitOutcome> fit =
      trainer.Fit(*model, other->GetParameters(), data, Config(1, 8, 0.1), 1);
  ASSERT_FALSE(fit.ok());
  EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fit.status().message(), HasSubstr("global weights"));

  Parameters wrong_shape;
  wrong_shape.Add("fc.weight", at::zeros({10, 783}));
  wrong_shape.Add("fc.bias", at::zeros({10}));
  fit = trainer.Fit(*model, wrong_shape, data, Config(1, 8, 0.1), 1);
  ASSERT_FALSE(fit.ok());
  EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fit.status().message(), HasSubstr("fc.weight"));
  EXPECT_TRUE(AllEqual(model->GetParameters(), before));
}

TEST(TrainerTest, BadDataIsRejected) {
  std::unique_ptr<Model> model = MustCreate("logreg", 0);
  Trainer trainer = MustTrainer();
  const Parameters global = model->GetParameters().Clone();
  const v1::FitConfig config = Config(1, 8, 0.1);

  Dataset empty{at::zeros({0, 1, 28, 28}), at::zeros({0}, at::kLong)};
  EXPECT_THAT(trainer.Fit(*model, global, empty, config, 1).status().message(),
              HasSubstr("empty"));
  EXPECT_EQ(trainer.Evaluate(*model, empty).status().code(),
            absl::StatusCode::kInvalidArgument);

  Dataset mismatched{at::zeros({4, 1, 28, 28}), at::zeros({3}, at::kLong)};
  EXPECT_EQ(trainer.Fit(*model, global, mismatched, config, 1).status().code(),
            absl::StatusCode::kInvalidArgument);

  Dataset out_of_range{at::zeros({4, 1, 28, 28}), at::full({4}, 10, at::kLong)};
  absl::StatusOr<FitOutcome> fit =
      trainer.Fit(*model, global, out_of_range, config, 1);
  EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fit.status().message(), HasSubstr("10 classes"));

  // A wrong image size reaches LibTorch, whose error comes back as a Status.
  Dataset wrong_size{at::zeros({4, 1, 27, 27}), at::zeros({4}, at::kLong)};
  fit = trainer.Fit(*model, global, wrong_size, config, 1);
  EXPECT_EQ(fit.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(fit.status().message(), HasSubstr("training"));
}

TEST(TrainerTest, DivergenceIsAnErrorNotANanUpdate) {
  std::unique_ptr<Model> model = MustCreate("2nn", 0);
  Trainer trainer = MustTrainer();
  Dataset data = SeparableData(64, 0);
  data.inputs = data.inputs * 1e4;
  absl::StatusOr<FitOutcome> fit = trainer.Fit(
      *model, model->GetParameters().Clone(), data, Config(3, 8, 1e10), 1);
  ASSERT_FALSE(fit.ok());
  EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fit.status().message(), HasSubstr("training diverged"));
  EXPECT_THAT(fit.status().message(), HasSubstr("lower the learning rate"));
}

TEST(TrainerTest, OneStepMatchesABareLibTorchStep) {
  std::unique_ptr<Model> model = MustCreate("2nn", 11);
  Trainer trainer = MustTrainer();
  const Dataset data = SeparableData(64, 11);
  const Parameters global = model->GetParameters().Clone();
  const double lr = 0.1;
  const double weight_decay = 0.01;
  v1::FitConfig config = Config(1, 64, lr);  // one full batch: order is moot
  config.set_momentum(0.9);                  // no effect on a first step
  config.set_weight_decay(weight_decay);
  absl::StatusOr<FitOutcome> fit = trainer.Fit(*model, global, data, config, 1);
  ASSERT_TRUE(fit.ok()) << fit.status();
  ASSERT_EQ(fit->steps, 1);

  // The same step, by hand: 784-200-200-10 ReLU MLP, mean cross-entropy,
  // w <- w - lr * (grad + weight_decay * w).
  std::vector<at::Tensor> w;
  for (const at::Tensor& t : global.tensors()) {
    w.push_back(t.clone().set_requires_grad(true));
  }
  at::Tensor h = data.inputs.flatten(1);
  h = at::relu(at::linear(h, w[0], w[1]));
  h = at::relu(at::linear(h, w[2], w[3]));
  at::Tensor logits = at::linear(h, w[4], w[5]);
  at::Tensor loss = torch::nn::functional::cross_entropy(logits, data.targets);
  loss.backward();
  EXPECT_NEAR(fit->train_loss, loss.item<double>(), 1e-5);

  const Parameters after = model->GetParameters();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < w.size(); ++i) {
    at::Tensor want = w[i] - lr * (w[i].grad() + weight_decay * w[i]);
    EXPECT_TRUE(at::allclose(after.tensor(i), want, /*rtol=*/1e-5,
                             /*atol=*/1e-6))
        << global.name(i) << " max diff "
        << (after.tensor(i) - want).abs().max().item<double>();
  }
}

// FedProx: two full-batch steps with mu > 0 against the same steps by hand.
// The proximal gradient mu * (w - w_global) is zero on the first step and
// pulls back on the second.
TEST(TrainerTest, ProximalTermMatchesHandWrittenFedProxSteps) {
  std::unique_ptr<Model> model = MustCreate("2nn", 12);
  Trainer trainer = MustTrainer();
  const Dataset data = SeparableData(64, 12);
  const Parameters global = model->GetParameters().Clone();
  const double lr = 0.1, mu = 0.5;
  v1::FitConfig config = Config(2, 64, lr);  // two epochs of one full batch
  std::unique_ptr<ClientAlgorithm> fedprox = FedProx(mu);
  absl::StatusOr<FitOutcome> fit = trainer.Fit(*model, global, data, config, 1, {fedprox.get()});
  ASSERT_TRUE(fit.ok()) << fit.status();
  ASSERT_EQ(fit->steps, 2);

  std::vector<at::Tensor> w0, w;
  for (const at::Tensor& t : global.tensors()) {
    w0.push_back(t.clone());
    w.push_back(t.clone().set_requires_grad(true));
  }
  for (int step = 0; step < 2; ++step) {
    at::Tensor h = data.inputs.flatten(1);
    h = at::relu(at::linear(h, w[0], w[1]));
    h = at::relu(at::linear(h, w[2], w[3]));
    at::Tensor loss = torch::nn::functional::cross_entropy(at::linear(h, w[4], w[5]), data.targets);
    for (size_t i = 0; i < w.size(); ++i) loss = loss + mu / 2 * (w[i] - w0[i]).pow(2).sum();
    loss.backward();
    torch::NoGradGuard no_grad;
    for (at::Tensor& t : w) {
      t.sub_(lr * t.grad());
      t.mutable_grad().zero_();
    }
  }
  const Parameters after = model->GetParameters();
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_TRUE(at::allclose(after.tensor(i), w[i].detach(), 1e-5, 1e-6)) << global.name(i);
  }
}

TEST(TrainerTest, ProximalTermShrinksTheUpdateAndBadMuIsRefused) {
  const Dataset data = SeparableData(256, 13);
  auto norm_with_mu = [&](double mu) {
    std::unique_ptr<Model> model = MustCreate("2nn", 13);
    Trainer trainer = MustTrainer();
    const Parameters global = model->GetParameters().Clone();
    std::vector<std::unique_ptr<ClientAlgorithm>> fedprox;
    if (mu >= 0) fedprox.push_back(FedProx(mu));
    std::vector<ClientAlgorithm*> hooks;
    for (auto& a : fedprox) hooks.push_back(a.get());
    absl::StatusOr<FitOutcome> fit = trainer.Fit(*model, global, data, Config(3, 32, 0.1), 1, hooks);
    EXPECT_TRUE(fit.ok()) << fit.status();
    double sq = 0;
    for (const at::Tensor& t : fit->update.tensors()) sq += t.pow(2).sum().item<double>();
    return std::sqrt(sq);
  };
  const double plain = norm_with_mu(-1);  // no FedProx: plain SGD
  EXPECT_DOUBLE_EQ(norm_with_mu(0), plain);
  EXPECT_LT(norm_with_mu(10), 0.8 * plain);

  v1::ClientAlgorithmConfig bad;
  bad.set_name(kFedProxAlgorithm);
  (*bad.mutable_params())[kProximalMuParam].set_double_value(-1);
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> refused = CreateClientAlgorithm(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("proximal_mu"), std::string::npos);
}

// SCAFFOLD's correction: with plain SGD and one full-batch step, adding g to
// every gradient moves each weight by exactly -lr * g more. In a client's
// first round (c_i = 0) the correction is the server's c.
TEST(TrainerTest, GradientCorrectionShiftsEachStepByLrTimesCorrection) {
  const Dataset data = SeparableData(64, 14);
  const double lr = 0.1;
  auto fit_with = [&](const Parameters* correction) {
    std::unique_ptr<Model> model = MustCreate("logreg", 14);
    Trainer trainer = MustTrainer();
    const Parameters global = model->GetParameters().Clone();
    std::unique_ptr<ClientAlgorithm> scaffold = Algorithm(kScaffoldAlgorithm);
    std::vector<ClientAlgorithm*> hooks;
    if (correction != nullptr) {
      Parameters control;
      EXPECT_TRUE(
          scaffold->BeforeTraining(ClientRound{1, global, Config(1, 64, lr), correction}, &control)
              .ok());
      hooks.push_back(scaffold.get());
    }
    absl::StatusOr<FitOutcome> fit = trainer.Fit(*model, global, data, Config(1, 64, lr), 1, hooks);
    EXPECT_TRUE(fit.ok()) << fit.status();
    return fit->update;
  };
  std::unique_ptr<Model> model = MustCreate("logreg", 14);
  Parameters correction;
  const Parameters like = model->GetParameters();
  for (size_t i = 0; i < like.size(); ++i) {
    correction.Add(like.name(i), at::full_like(like.tensor(i), 0.5 * (i + 1)));
  }
  const Parameters plain = fit_with(nullptr);
  const Parameters corrected = fit_with(&correction);
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(at::allclose(corrected.tensor(i) - plain.tensor(i),
                             -lr * correction.tensor(i), 1e-5, 1e-6))
        << plain.name(i);
  }

  Parameters wrong;
  wrong.Add("nope", at::zeros({3}));
  Parameters control;
  absl::Status refused = Algorithm(kScaffoldAlgorithm)
                             ->BeforeTraining(ClientRound{1, like, Config(1, 64, lr), &wrong},
                                              &control);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.message()), HasSubstr("server control variate"));
}

TEST(TrainerTest, InitialLossIsTheGlobalModelsLossBeforeTraining) {
  const Dataset data = SeparableData(100, 15);
  std::unique_ptr<Model> model = MustCreate("2nn", 15);
  Trainer trainer = MustTrainer();
  const Parameters global = model->GetParameters().Clone();
  absl::StatusOr<EvalOutcome> before = trainer.Evaluate(*model, data);
  ASSERT_TRUE(before.ok());
  std::unique_ptr<ClientAlgorithm> qfedavg = Algorithm(kQFedAvgAlgorithm);
  const v1::FitConfig config = Config(2, 10, 0.1);
  absl::StatusOr<FitOutcome> fit = trainer.Fit(*model, global, data, config, 1, {qfedavg.get()});
  ASSERT_TRUE(fit.ok()) << fit.status();
  Parameters state;
  FitRes res;
  ASSERT_TRUE(qfedavg->AfterTraining(ClientRound{1, global, config, nullptr}, *fit, &state, &res)
                  .ok());
  const double initial_loss = MetricAsDouble(res.metrics.at(kInitialLossMetric));
  EXPECT_NEAR(initial_loss, before->loss, 1e-6);
  EXPECT_LT(fit->train_loss, initial_loss);
}

}  // namespace
}  // namespace shoal::client
