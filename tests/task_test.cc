// Tasks: losses and metrics checked against PyTorch's own
// (tests/golden/task_golden.py), the checks that refuse targets a task
// cannot use, and training on tasks other than classification, with
// built-in and TorchScript models of shapes other than 28 x 28.
#include "client/task.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "client/model.h"
#include "client/trainer.h"
#include "strategies/fedavg.h"

namespace shoal::client {
namespace {

using ::testing::HasSubstr;

nlohmann::json Golden(const std::string& name) {
  std::ifstream in(SHOAL_SOURCE_DIR "/tests/golden/task_golden.json");
  EXPECT_TRUE(in.good()) << "cannot open the golden file";
  return nlohmann::json::parse(in).at(name);
}

// FromJson turns nested JSON lists into a float32 (or int64) tensor.
at::Tensor FromJson(const nlohmann::json& j, at::ScalarType type) {
  std::vector<double> flat;
  std::vector<int64_t> shape = {static_cast<int64_t>(j.size())};
  if (j.at(0).is_array()) {
    shape.push_back(static_cast<int64_t>(j.at(0).size()));
    for (const auto& row : j) {
      for (const auto& v : row) flat.push_back(v.get<double>());
    }
  } else {
    for (const auto& v : j) flat.push_back(v.get<double>());
  }
  return at::tensor(flat, at::kDouble).to(type).view(shape);
}

double Metric(const Metrics& m, const std::string& name) {
  auto it = m.find(name);
  EXPECT_NE(it, m.end()) << name;
  return it == m.end() ? NAN : MetricAsDouble(it->second);
}

TEST(TaskTest, ClassificationLossAndAccuracyMatchPyTorch) {
  const nlohmann::json g = Golden("classification");
  const at::Tensor outputs = FromJson(g.at("outputs"), at::kFloat);
  const at::Tensor targets = FromJson(g.at("targets"), at::kLong);
  const Task task;
  ASSERT_TRUE(task.CheckTargets(targets, outputs).ok());
  EXPECT_NEAR(task.Loss(outputs, targets).item<double>(), g.at("loss_mean").get<double>(), 1e-6);
  EXPECT_NEAR(task.Loss(outputs, targets, /*sum=*/true).item<double>(),
              g.at("loss_sum").get<double>(), 1e-5);
  Task::MetricSums sums(task, outputs.options());
  sums.Add(outputs.slice(0, 0, 4), targets.slice(0, 0, 4));  // in two batches
  sums.Add(outputs.slice(0, 4), targets.slice(0, 4));
  EXPECT_DOUBLE_EQ(Metric(sums.Result(6), "accuracy"), g.at("accuracy").get<double>());
}

TEST(TaskTest, MultiLabelBceAndLabelAccuracyMatchPyTorch) {
  const nlohmann::json g = Golden("multilabel");
  const at::Tensor outputs = FromJson(g.at("outputs"), at::kFloat);
  const at::Tensor targets = FromJson(g.at("targets"), at::kFloat);
  const Task task(TaskOptions{TaskKind::kMultiLabel});
  ASSERT_TRUE(task.CheckTargets(targets, outputs).ok());
  EXPECT_NEAR(task.Loss(outputs, targets).item<double>(), g.at("loss_mean").get<double>(), 1e-6);
  Task::MetricSums sums(task, outputs.options());
  sums.Add(outputs, targets);
  EXPECT_NEAR(Metric(sums.Result(5), "accuracy"), g.at("accuracy").get<double>(), 1e-12);
}

TEST(TaskTest, RegressionLossesAndMetricsMatchPyTorch) {
  const nlohmann::json g = Golden("regression");
  const at::Tensor outputs = FromJson(g.at("outputs"), at::kFloat);  // [8, 1]
  const at::Tensor targets = FromJson(g.at("targets"), at::kFloat);  // [8]
  TaskOptions options{TaskKind::kRegression};
  const Task mse(options);
  ASSERT_TRUE(mse.CheckTargets(targets, outputs).ok());
  EXPECT_NEAR(mse.Loss(outputs, targets).item<double>(), g.at("mse_mean").get<double>(), 1e-5);
  options.regression_loss = RegressionLoss::kL1;
  const Task l1(options);
  EXPECT_NEAR(l1.Loss(outputs, targets).item<double>(), g.at("l1_mean").get<double>(), 1e-6);
  Task::MetricSums sums(mse, outputs.options());
  sums.Add(outputs.slice(0, 0, 3), targets.slice(0, 0, 3));
  sums.Add(outputs.slice(0, 3), targets.slice(0, 3));
  const Metrics m = sums.Result(8);
  EXPECT_NEAR(Metric(m, "mae"), g.at("mae").get<double>(), 1e-6);
  EXPECT_NEAR(Metric(m, "rmse"), g.at("rmse").get<double>(), 1e-6);
  EXPECT_NEAR(Metric(m, "r2"), g.at("r2").get<double>(), 1e-6);
}

// Federated evaluation: the server's RMSE and R² over clients of different
// sizes and target ranges are those of all their held-out examples pooled,
// not the example-weighted mean of each client's RMSE and R².
TEST(TaskTest, FederatedRmseAndR2AreThoseOfAllTheClientsExamples) {
  const nlohmann::json g = Golden("regression");
  const at::Tensor outputs = FromJson(g.at("outputs"), at::kFloat);  // [8, 1]
  const at::Tensor targets = FromJson(g.at("targets"), at::kFloat);
  const Task task(TaskOptions{TaskKind::kRegression});
  auto evaluate = [&](int64_t begin, int64_t end, bool pooled) {
    Task::MetricSums sums(task, outputs.options());
    sums.Add(outputs.slice(0, begin, end), targets.slice(0, begin, end));
    EvaluateRes res{end - begin, 0.0, sums.Result(end - begin)};
    if (pooled) {
      const Metrics p = sums.Pooled();
      res.metrics.insert(p.begin(), p.end());
    }
    return res;
  };
  const Metrics all = evaluate(0, 8, false).metrics;
  FedAvg fedavg({});
  absl::StatusOr<EvaluateRes> federated = fedavg.AggregateEvaluate(
      1, {{"a", evaluate(0, 3, true)}, {"b", evaluate(3, 8, true)}}, {});
  ASSERT_TRUE(federated.ok()) << federated.status();
  EXPECT_NEAR(Metric(federated->metrics, "mae"), Metric(all, "mae"), 1e-12);
  EXPECT_NEAR(Metric(federated->metrics, "rmse"), Metric(all, "rmse"), 1e-12);
  EXPECT_NEAR(Metric(federated->metrics, "r2"), Metric(all, "r2"), 1e-12);
  for (const auto& [name, value] : federated->metrics) {
    EXPECT_THAT(name, ::testing::Not(::testing::StartsWith(kPooledPrefix)));
  }
  // Without the pooled means (a client that does not send them) the server
  // falls back to the weighted means, which are measurably off here.
  absl::StatusOr<EvaluateRes> mixed = fedavg.AggregateEvaluate(
      1, {{"a", evaluate(0, 3, true)}, {"b", evaluate(3, 8, false)}}, {});
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  EXPECT_GT(std::abs(Metric(mixed->metrics, "r2") - Metric(all, "r2")), 1e-3);
  EXPECT_EQ(mixed->metrics.count("pooled.mse"), 0u);
}

TEST(TaskTest, RefusesTargetsTheTaskCannotUseNamingWhy) {
  const at::Tensor logits = at::zeros({4, 3});
  const Task classification;
  EXPECT_THAT(std::string(classification.CheckTargets(at::zeros({4}), logits).message()),
              HasSubstr("int64 class indices"));
  EXPECT_THAT(std::string(classification
                              .CheckTargets(at::tensor({0, 1, 3, 2}, at::kLong), logits)
                              .message()),
              HasSubstr("labels range over [0, 3] but the model has 3 classes"));
  const Task multilabel(TaskOptions{TaskKind::kMultiLabel});
  EXPECT_THAT(std::string(multilabel.CheckTargets(at::full({4, 3}, 0.5), logits).message()),
              HasSubstr("0 or 1"));
  const Task regression(TaskOptions{TaskKind::kRegression});
  EXPECT_THAT(std::string(regression.CheckTargets(at::zeros({4, 2}), logits).message()),
              HasSubstr("the model returns"));
  at::Tensor nan = at::zeros({4, 3});
  nan[1][1] = NAN;
  EXPECT_THAT(std::string(regression.CheckTargets(nan, logits).message()), HasSubstr("NaN"));
}

TEST(TaskTest, ParsesTaskNamesAndRefusesOthers) {
  EXPECT_EQ(*ParseTaskKind("binary"), TaskKind::kMultiLabel);
  EXPECT_EQ(*ParseTaskKind("regression"), TaskKind::kRegression);
  EXPECT_THAT(std::string(ParseTaskKind("ranking").status().message()),
              HasSubstr("classification, binary, multilabel or regression"));
  EXPECT_FALSE(ParseRegressionLoss("huber").ok());
}

// y = x . w + 0.5 over 3 features: an MLP fits it.
Dataset LinearData(int64_t n, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor x = at::randn({n, 3}, gen);
  const at::Tensor w = at::tensor({1.5, -2.0, 0.5}, at::kFloat);
  return Dataset{x, at::matmul(x, w) + 0.5};
}

TEST(TaskTrainingTest, MlpLearnsARegressionAndReportsItsMetrics) {
  const Dataset data = LinearData(256, 1);
  ModelSpec spec = *ParseModelSpec("mlp");
  spec.hidden = {16};
  absl::StatusOr<ModelSpec> shaped = ResolveModelShape(spec, {3}, 1);
  ASSERT_TRUE(shaped.ok()) << shaped.status();
  EXPECT_EQ(ModelSpecToString(*shaped), "mlp-3-1-16");
  std::unique_ptr<Model> model = *CreateModel(*shaped, 5);
  TrainerOptions options;
  options.task.kind = TaskKind::kRegression;
  Trainer trainer = *Trainer::Create(options);
  const absl::StatusOr<EvalOutcome> before = trainer.Evaluate(*model, data);
  ASSERT_TRUE(before.ok()) << before.status();
  v1::FitConfig config;
  config.set_local_epochs(20);
  config.set_batch_size(16);
  config.set_learning_rate(0.05);
  Parameters global = model->GetParameters().Clone();
  for (int round = 0; round < 3; ++round) {
    absl::StatusOr<FitOutcome> fit = trainer.Fit(*model, global, data, config, round);
    ASSERT_TRUE(fit.ok()) << fit.status();
    EXPECT_EQ(fit->train_metrics.count("rmse"), 1u);
    global = global.Clone();
    for (size_t i = 0; i < global.size(); ++i) global.mutable_tensor(i).add_(fit->update.tensor(i));
  }
  ASSERT_TRUE(model->SetParameters(global).ok());
  const absl::StatusOr<EvalOutcome> after = trainer.Evaluate(*model, data);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_LT(Metric(after->metrics, "rmse"), 0.2 * Metric(before->metrics, "rmse"));
  EXPECT_GT(Metric(after->metrics, "r2"), 0.95);
  EXPECT_NEAR(after->loss, std::pow(Metric(after->metrics, "rmse"), 2), 1e-4);
}

TEST(TaskTrainingTest, TorchScriptModelTrainsOnItsOwnLoss) {
  const Dataset data = LinearData(64, 2);
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(SHOAL_OWN_LOSS_TORCHSCRIPT);
  ASSERT_TRUE(spec.ok());
  spec->input_shape = {3};
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(*spec);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE((*model)->HasLoss());
  TrainerOptions options;
  options.task.kind = TaskKind::kRegression;  // MSE, were the model's loss() ignored
  Trainer trainer = *Trainer::Create(options);
  // The model's loss is twice the mean absolute error: Evaluate reports it,
  // while the metrics stay the task's.
  absl::StatusOr<EvalOutcome> eval = trainer.Evaluate(**model, data, 16);
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_NEAR(eval->loss, 2 * Metric(eval->metrics, "mae"), 1e-5);
  v1::FitConfig config;
  config.set_local_epochs(1);
  config.set_batch_size(64);
  config.set_learning_rate(0.1);
  const Parameters global = (*model)->GetParameters().Clone();
  absl::StatusOr<FitOutcome> fit = trainer.Fit(**model, global, data, config, 0);
  ASSERT_TRUE(fit.ok()) << fit.status();
  // One full-batch step: its loss is the model's loss of the global model.
  EXPECT_NEAR(fit->train_loss, eval->loss, 1e-5);
}

TEST(TaskTrainingTest, TorchScriptModelOfRgbImagesTrainsWithoutA28x28Probe) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const Dataset data{at::randn({32, 3, 8, 8}, gen), at::randint(0, 4, {32}, gen, at::kLong)};
  absl::StatusOr<ModelSpec> spec = ParseModelSpec(SHOAL_RGB_TORCHSCRIPT);
  ASSERT_TRUE(spec.ok());
  absl::StatusOr<ModelSpec> shaped = ResolveModelShape(*spec, {3, 8, 8}, 4);
  ASSERT_TRUE(shaped.ok()) << shaped.status();
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(*shaped);
  ASSERT_TRUE(model.ok()) << model.status();
  Trainer trainer = *Trainer::Create({});
  v1::FitConfig config;
  config.set_local_epochs(1);
  config.set_batch_size(8);
  config.set_learning_rate(0.05);
  absl::StatusOr<FitOutcome> fit =
      trainer.Fit(**model, (*model)->GetParameters().Clone(), data, config, 0);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->steps, 4);

  // Data of another shape is refused at load, naming the file and the input.
  spec->input_shape = {1, 28, 28};
  absl::StatusOr<std::unique_ptr<Model>> wrong = CreateModel(*spec);
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(std::string(wrong.status().message()),
              AllOf(HasSubstr(SHOAL_RGB_TORCHSCRIPT), HasSubstr("does not take the data"),
                    HasSubstr("[1, 1, 28, 28]")));
}

TEST(BuiltinModelTest, ShapesComeFromTheDataAndBoundTheSize) {
  // The CNN on 3 x 32 x 32 images into 5 classes.
  absl::StatusOr<ModelSpec> cnn = ResolveModelShape(*ParseModelSpec("cnn"), {3, 32, 32}, 5);
  ASSERT_TRUE(cnn.ok()) << cnn.status();
  EXPECT_EQ(ModelSpecToString(*cnn), "cnn-3x32x32-5");
  std::unique_ptr<Model> model = *CreateModel(*cnn, 1);
  EXPECT_EQ(model->Forward(at::zeros({2, 3, 32, 32})).sizes(), (std::vector<int64_t>{2, 5}));
  // The canonical spec round-trips, and builds the same weights.
  absl::StatusOr<ModelSpec> parsed = ParseModelSpec("cnn-3x32x32-5");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::unique_ptr<Model> again = *CreateModel(*parsed, 1);
  EXPECT_TRUE(at::equal(model->GetParameters().tensor(0), again->GetParameters().tensor(0)));
  // Without shapes a built-in cannot be built, and says where they come from.
  EXPECT_THAT(std::string(CreateModel(*ParseModelSpec("2nn")).status().message()),
              HasSubstr("model.input_shape"));
  // Conflicting shapes, and absurd ones, are refused.
  EXPECT_FALSE(ResolveModelShape(*cnn, {3, 32, 32}, 6).ok());
  EXPECT_THAT(std::string(ParseModelSpec("mlp-100000x100000-10").status().message()),
              HasSubstr("values"));
  EXPECT_THAT(std::string(ParseModelSpec("mlp-1000-10-100000x100000").status().message()),
              HasSubstr("parameters"));
  EXPECT_FALSE(ParseModelSpec("cnn-1x2x2-10").ok());  // smaller than 4 x 4
  EXPECT_FALSE(ParseModelSpec("cnn-1x28x28").ok());
}

}  // namespace
}  // namespace shoal::client
