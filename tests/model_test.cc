#include "client/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <sys/stat.h>
#include <torch/script.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "client/data/dataset.h"
#include "client/inference.h"
#include "client/trainer.h"
#include "common/parameters.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/model_testing.h"
#include "tests/testing.h"

namespace shoal::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

bool AllEqual(const Parameters& a, const Parameters& b) {
  if (a.names() != b.names()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!at::equal(a.tensor(i), b.tensor(i))) return false;
  }
  return true;
}

// A small learnable task: ten classes, each a fixed random image plus noise.
Dataset ClusteredData(int64_t n, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor centers = at::randn({10, 1, 28, 28}, gen);
  at::Tensor labels = at::randint(0, 10, {n}, gen, at::kLong);
  at::Tensor images =
      centers.index_select(0, labels) + 0.5 * at::randn({n, 1, 28, 28}, gen);
  return Dataset{images, labels};
}

TEST(ParseModelSpecTest, AcceptsBuiltinsAndTorchScriptPaths) {
  for (const char* name : {"cnn", "2nn", "logreg"}) {
    absl::StatusOr<ModelSpec> spec = ParseModelSpec(name);
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_EQ(spec->name, name);
    EXPECT_EQ(ModelSpecToString(*spec), name);
  }
  for (const char* path : {"/models/a.pt", "b.pth"}) {
    absl::StatusOr<ModelSpec> spec = ParseModelSpec(path);
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_EQ(spec->name, "torchscript");
    EXPECT_EQ(spec->torchscript_path, path);
    EXPECT_EQ(ModelSpecToString(*spec), path);
  }
}

TEST(ParseModelSpecTest, RejectsUnknownNamesListingChoices) {
  for (const char* text : {"", "CNN", "resnet", "model.onnx", "torchscript"}) {
    absl::StatusOr<ModelSpec> spec = ParseModelSpec(text);
    ASSERT_FALSE(spec.ok()) << text;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(spec.status().message(), HasSubstr("cnn"));
    EXPECT_THAT(spec.status().message(), HasSubstr("2nn"));
    EXPECT_THAT(spec.status().message(), HasSubstr("logreg"));
    EXPECT_THAT(spec.status().message(), HasSubstr(".pt"));
  }
}

TEST(CreateModelTest, UnknownNameIsInvalidArgument) {
  ModelSpec spec;
  spec.name = "resnet";
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(spec);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("resnet"));
}

TEST(BuiltinModelTest, CnnHasPaperParameterCountAndShapes) {
  std::unique_ptr<Model> model = MustCreate("cnn");
  ASSERT_NE(model, nullptr);
  Parameters params = model->GetParameters();
  EXPECT_EQ(params.NumElements(), 1663370);
  EXPECT_THAT(
      params.names(),
      ElementsAre("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                  "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"));
  at::Tensor out = model->Forward(at::randn({3, 1, 28, 28}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 10}));
}

TEST(BuiltinModelTest, TwoNnHasPaperParameterCountAndShapes) {
  std::unique_ptr<Model> model = MustCreate("2nn");
  ASSERT_NE(model, nullptr);
  Parameters params = model->GetParameters();
  EXPECT_EQ(params.NumElements(), 199210);
  EXPECT_THAT(params.names(),
              ElementsAre("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                          "fc3.weight", "fc3.bias"));
  at::Tensor out = model->Forward(at::randn({5, 1, 28, 28}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{5, 10}));
}

TEST(BuiltinModelTest, LogRegShapes) {
  std::unique_ptr<Model> model = MustCreate("logreg");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->GetParameters().NumElements(), 784 * 10 + 10);
  EXPECT_EQ(model->Forward(at::randn({2, 1, 28, 28})).sizes(),
            (std::vector<int64_t>{2, 10}));
  EXPECT_EQ(model->TrainableParameters().size(), 2u);
}

TEST(BuiltinModelTest, SameSeedGivesSameWeightsRegardlessOfGlobalRng) {
  torch::manual_seed(1);
  std::unique_ptr<Model> a = MustCreate("cnn", 42);
  torch::manual_seed(2);  // must not matter
  std::unique_ptr<Model> b = MustCreate("cnn", 42);
  std::unique_ptr<Model> c = MustCreate("cnn", 43);
  EXPECT_TRUE(AllEqual(a->GetParameters(), b->GetParameters()));
  EXPECT_FALSE(AllEqual(a->GetParameters(), c->GetParameters()));
}

TEST(BuiltinModelTest, InitMatchesPyTorchDefaultBounds) {
  // Default Linear/Conv2d init is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  std::unique_ptr<Model> model = MustCreate("cnn", 7);
  Parameters params = model->GetParameters();
  const std::vector<double> fan_in = {25, 25, 800, 800, 3136, 3136, 512, 512};
  ASSERT_EQ(params.size(), fan_in.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const double bound = 1.0 / std::sqrt(fan_in[i]);
    EXPECT_LE(params.tensor(i).abs().max().item<double>(), bound)
        << params.name(i);
    // Not degenerate: a good part of the range is used.
    EXPECT_GT(params.tensor(i).abs().max().item<double>(), 0.5 * bound)
        << params.name(i);
  }
}

TEST(BuiltinModelTest, SetGetParametersRoundTrip) {
  std::unique_ptr<Model> a = MustCreate("2nn", 1);
  std::unique_ptr<Model> b = MustCreate("2nn", 2);
  Parameters want = a->GetParameters().Clone();
  ASSERT_TRUE(b->SetParameters(want).ok());
  EXPECT_TRUE(AllEqual(b->GetParameters(), want));
  // Copied, not aliased: changing the source later does not reach b.
  want.mutable_tensor(0).add_(1.0);
  EXPECT_FALSE(AllEqual(b->GetParameters(), want));
  // And GetParameters shares storage with the model.
  b->GetParameters().mutable_tensor(1).zero_();
  EXPECT_EQ(b->GetParameters().tensor(1).abs().sum().item<double>(), 0.0);
}

TEST(BuiltinModelTest, SetParametersRefusesWrongShapeAndLeavesModelUnchanged) {
  std::unique_ptr<Model> model = MustCreate("2nn", 3);
  const Parameters before = model->GetParameters().Clone();

  Parameters bad;
  for (size_t i = 0; i < before.size(); ++i) {
    at::Tensor t = at::zeros_like(before.tensor(i));
    if (before.name(i) == "fc2.weight") t = at::zeros({200, 199});
    bad.Add(before.name(i), t);
  }
  absl::Status status = model->SetParameters(bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("fc2.weight"));
  EXPECT_TRUE(AllEqual(model->GetParameters(), before));
}

TEST(BuiltinModelTest, SetParametersRefusesWrongNameAndDtype) {
  std::unique_ptr<Model> model = MustCreate("logreg", 3);
  const Parameters before = model->GetParameters().Clone();

  Parameters renamed;
  renamed.Add("fc.weight", at::zeros({10, 784}));
  renamed.Add("fc.bias_typo", at::zeros({10}));
  absl::Status status = model->SetParameters(renamed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("fc.bias_typo"));
  EXPECT_TRUE(AllEqual(model->GetParameters(), before));

  Parameters doubles;
  doubles.Add("fc.weight", at::zeros({10, 784}, at::kDouble));
  doubles.Add("fc.bias", at::zeros({10}, at::kDouble));
  status = model->SetParameters(doubles);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("fc.weight"));
  EXPECT_TRUE(AllEqual(model->GetParameters(), before));

  Parameters missing;
  missing.Add("fc.weight", at::zeros({10, 784}));
  status = model->SetParameters(missing);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(AllEqual(model->GetParameters(), before));
}

// ------------------------------------------------------------- TorchScript

ModelSpec TinySpec() {
  ModelSpec spec;
  spec.name = "torchscript";
  spec.torchscript_path = SHOAL_TINY_TORCHSCRIPT;
  return spec;
}

TEST(TorchScriptModelTest, LoadsWithPythonParameterNames) {
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(TinySpec());
  ASSERT_TRUE(model.ok()) << model.status();
  Parameters params = (*model)->GetParameters();
  // The names of TinyMlp's named_parameters() in make_torchscript_model.py.
  EXPECT_THAT(params.names(),
              ElementsAre("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"));
  EXPECT_EQ(params.tensor(0).sizes(), (std::vector<int64_t>{32, 784}));
  EXPECT_EQ(params.NumElements(), 784 * 32 + 32 + 32 * 10 + 10);
  EXPECT_EQ((*model)->TrainableParameters().size(), 4u);
  EXPECT_EQ((*model)->Forward(at::randn({4, 1, 28, 28})).sizes(),
            (std::vector<int64_t>{4, 10}));
}

// Partial fine-tuning on a scripted model: the frozen layer's tensors are
// found by storage in the TorchScript module too, get no step, and are
// trainable again afterwards.
TEST(TorchScriptModelTest, FrozenTensorsOfAScriptedModelStayBitIdentical) {
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(TinySpec());
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<Trainer> trainer = Trainer::Create(TrainerOptions{});
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const Parameters global = (*model)->GetParameters().Clone();
  v1::FitConfig config;
  config.set_local_epochs(1);
  config.set_batch_size(32);
  config.set_learning_rate(0.05);
  config.set_momentum(0.9);
  config.set_weight_decay(0.01);
  config.add_frozen("fc1.weight");
  config.add_frozen("fc1.bias");
  absl::StatusOr<FitOutcome> fit = trainer->Fit(**model, global, ClusteredData(128, 5), config, 1);
  ASSERT_TRUE(fit.ok()) << fit.status();
  const Parameters after = (*model)->GetParameters();
  for (size_t i = 0; i < global.size(); ++i) {
    const bool frozen = i < 2;
    EXPECT_EQ(at::equal(after.tensor(i), global.tensor(i)), frozen) << global.name(i);
    EXPECT_EQ(fit->update.tensor(i).abs().max().item<float>() == 0, frozen) << global.name(i);
  }
  EXPECT_EQ((*model)->TrainableParameters().size(), 4u);
}

TEST(TorchScriptModelTest, TrainsThroughTrainer) {
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(TinySpec());
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<Trainer> trainer = Trainer::Create(TrainerOptions{});
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const Dataset data = ClusteredData(256, 5);
  const Parameters global = (*model)->GetParameters().Clone();

  absl::StatusOr<EvalOutcome> before = trainer->Evaluate(**model, data);
  ASSERT_TRUE(before.ok()) << before.status();
  v1::FitConfig config;
  config.set_local_epochs(3);
  config.set_batch_size(32);
  config.set_learning_rate(0.05);
  absl::StatusOr<FitOutcome> fit =
      trainer->Fit(**model, global, data, config, /*round=*/1);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->steps, 3 * 8);
  absl::StatusOr<EvalOutcome> after = trainer->Evaluate(**model, data);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_LT(after->loss, 0.5 * before->loss);
  EXPECT_EQ(fit->update.names(), global.names());

  // The update round-trips through SetParameters on a fresh load.
  absl::StatusOr<std::unique_ptr<Model>> fresh = CreateModel(TinySpec());
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE((*fresh)->SetParameters((*model)->GetParameters()).ok());
  EXPECT_TRUE(AllEqual((*fresh)->GetParameters(), (*model)->GetParameters()));
}

TEST(TorchScriptModelTest, SetParametersRefusesWrongShape) {
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(TinySpec());
  ASSERT_TRUE(model.ok()) << model.status();
  const Parameters before = (*model)->GetParameters().Clone();
  Parameters bad;
  bad.Add("fc1.weight", at::zeros({32, 784}));
  bad.Add("fc1.bias", at::zeros({32}));
  bad.Add("fc2.weight", at::zeros({10, 33}));
  bad.Add("fc2.bias", at::zeros({10}));
  absl::Status status = (*model)->SetParameters(bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("fc2.weight"));
  EXPECT_TRUE(AllEqual((*model)->GetParameters(), before));
}

TEST(TorchScriptModelTest, IncludesFloatingBuffersOnly) {
  // A module defined in C++ with a float buffer and an integer one.
  shoal::testing::TempDir dir;
  torch::jit::Module m("Scaled");
  m.register_parameter("w", at::zeros({784, 10}), /*is_buffer=*/false);
  m.register_buffer("scale", at::ones({1}));
  m.register_buffer("count", at::zeros({}, at::kLong));
  m.define(R"(
    def forward(self, x):
        return torch.flatten(x, 1).matmul(self.w) * self.scale
  )");
  const std::string path = dir.File("scaled.pt");
  m.save(path);

  ModelSpec spec;
  spec.name = "torchscript";
  spec.torchscript_path = path;
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(spec);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT((*model)->GetParameters().names(), ElementsAre("w", "scale"));

  // `w` was registered without requires_grad: nothing to train, and the
  // Trainer says so instead of failing inside backward().
  EXPECT_TRUE((*model)->TrainableParameters().empty());
  absl::StatusOr<Trainer> trainer = Trainer::Create(TrainerOptions{});
  ASSERT_TRUE(trainer.ok());
  v1::FitConfig config;
  config.set_local_epochs(1);
  config.set_batch_size(8);
  config.set_learning_rate(0.1);
  absl::StatusOr<FitOutcome> fit =
      trainer->Fit(**model, (*model)->GetParameters().Clone(),
                   ClusteredData(16, 0), config, 1);
  EXPECT_EQ(fit.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fit.status().message(), HasSubstr("no trainable parameters"));
}

TEST(TorchScriptModelTest, MissingFileIsNotFoundNamingIt) {
  shoal::testing::TempDir dir;
  ModelSpec spec;
  spec.name = "torchscript";
  spec.torchscript_path = dir.File("nope.pt");
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(spec);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(model.status().message(), HasSubstr(spec.torchscript_path));
}

TEST(TorchScriptModelTest, NonTorchScriptFileIsInvalidArgumentNamingIt) {
  shoal::testing::TempDir dir;
  ModelSpec spec;
  spec.name = "torchscript";
  spec.torchscript_path = dir.File("junk.pt");
  std::ofstream(spec.torchscript_path) << "this is not a zip archive\n";
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(spec);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr(spec.torchscript_path));
}

TEST(TorchScriptModelTest, ForwardNotReturningLogitsIsRefusedAtLoad) {
  shoal::testing::TempDir dir;
  struct Case {
    const char* file;
    const char* source;
    const char* expect;
  };
  const Case cases[] = {
      {"tuple.pt", "def forward(self, x):\n    return (x, x)\n", "Tuple"},
      {"shape.pt", "def forward(self, x):\n    return x\n", "shape"},
      {"fails.pt",
       "def forward(self, x):\n    return torch.flatten(x, 1).matmul("
       "torch.zeros(3, 10))\n",
       "forward() failed"},
  };
  for (const Case& c : cases) {
    torch::jit::Module m("Bad");
    m.define(c.source);
    ModelSpec spec;
    spec.name = "torchscript";
    spec.torchscript_path = dir.File(c.file);
    spec.input_shape = {1, 28, 28};  // the data's: the model is probed with it
    m.save(spec.torchscript_path);
    absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(spec);
    ASSERT_FALSE(model.ok()) << c.file;
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(model.status().message(), HasSubstr(spec.torchscript_path));
    EXPECT_THAT(model.status().message(), HasSubstr(c.expect));
  }
}

// Issue 14: `shoal infer` on images of another size printed LibTorch's
// stack trace; on a file of zero images it printed "accuracy: -nan%".
TEST(InferenceTest, ImagesOfAnotherSizeAreNamedWithoutABacktrace) {
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(*ParseModelSpec("cnn-1x28x28-10"), 1);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<at::Tensor> p = Predict(**model, torch::zeros({2, 1, 32, 32}));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("inputs of shape [2, 1, 32, 32]"));
  EXPECT_EQ(p.status().message().find("Exception raised from"), std::string::npos)
      << p.status().message();
  EXPECT_LT(p.status().message().size(), 400u) << p.status().message();
}

TEST(InferenceTest, AnEmptyImageFileOrAFifoIsRefusedNamingIt) {
  testing::TempDir dir;
  const std::string empty = dir.File("empty-idx3-ubyte");
  {
    std::ofstream out(empty, std::ios::binary);
    const char header[16] = {0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28};
    out.write(header, sizeof(header));
  }
  absl::StatusOr<Dataset> none = LoadInputs(DataOptions(), empty, Task());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr(empty + "' holds no examples"));

  const std::string fifo = dir.File("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  absl::StatusOr<Dataset> blocked = LoadInputs(DataOptions(), fifo, Task());
  EXPECT_EQ(blocked.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(blocked.status().message(), HasSubstr("is a FIFO, not a regular file"));
}

TEST(InferenceTest, PgmImagesOfAnySizeAreNormalizedAsTheDataOptionsSay) {
  testing::TempDir dir;
  const std::string path = dir.File("image.pgm");
  {
    std::ofstream out(path, std::ios::binary);
    out << "P5\n5 3\n255\n" << std::string(15, '\xff');
  }
  absl::StatusOr<Dataset> raw = LoadInputs(DataOptions(), path, Task());
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(raw->inputs.sizes(), (std::vector<int64_t>{1, 1, 3, 5}));
  EXPECT_FALSE(raw->targets.defined());
  EXPECT_TRUE(at::allclose(raw->inputs, torch::ones({1, 1, 3, 5})));
  DataOptions options;
  options.normalization.mode = Normalization::Mode::kGiven;
  options.normalization.mean = {0.5};
  options.normalization.std = {0.25};
  absl::StatusOr<Dataset> normalized = LoadInputs(options, path, Task());
  ASSERT_TRUE(normalized.ok()) << normalized.status();
  EXPECT_TRUE(at::allclose(normalized->inputs, torch::full({1, 1, 3, 5}, 2.0)));
}

TEST(InferenceTest, PredictionsFollowTheTask) {
  const at::Tensor logits = torch::tensor({{0.0f, 2.0f}, {1.0f, -1.0f}, {0.0f, 0.0f}});
  absl::StatusOr<Predictions> cls = ToPredictions(Task(), logits);
  ASSERT_TRUE(cls.ok()) << cls.status();
  EXPECT_TRUE(at::equal(cls->classes, torch::tensor({1, 0, 0}, torch::kLong)));
  // softmax of (0, 2): 1 / (1 + e^-2).
  EXPECT_NEAR(cls->probabilities[0].item<double>(), 1 / (1 + std::exp(-2.0)), 1e-6);
  EXPECT_NEAR(cls->probabilities[2].item<double>(), 0.5, 1e-6);
  EXPECT_FALSE(cls->values.defined());

  TaskOptions multilabel;
  multilabel.kind = TaskKind::kMultiLabel;
  absl::StatusOr<Predictions> labels = ToPredictions(Task(multilabel), torch::tensor({0.0f, 3.0f}));
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_EQ(labels->probabilities.sizes(), (std::vector<int64_t>{2, 1}));
  EXPECT_NEAR(labels->probabilities[1][0].item<double>(), 1 / (1 + std::exp(-3.0)), 1e-6);

  TaskOptions regression;
  regression.kind = TaskKind::kRegression;
  absl::StatusOr<Predictions> values = ToPredictions(Task(regression), logits);
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_TRUE(at::equal(values->values, logits));

  EXPECT_EQ(ToPredictions(Task(), torch::zeros({3})).status().code(),
            absl::StatusCode::kInvalidArgument);

  // 2 of 3 right.
  absl::StatusOr<Metrics> metrics =
      ScoreOutputs(Task(), logits, torch::tensor({1, 0, 1}, torch::kLong));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NEAR(MetricAsDouble(metrics->at("accuracy")), 2.0 / 3, 1e-12);
  EXPECT_EQ(ScoreOutputs(Task(), logits, torch::tensor({1, 0, 7}, torch::kLong)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- export ----

TEST(ExportTest, ABuiltinExportsItsParametersAsAStateDictInOrder) {
  absl::StatusOr<std::unique_ptr<Model>> model = CreateModel(*ParseModelSpec("cnn-1x12x12-3"), 5);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::string> bytes = (*model)->Export();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const c10::IValue loaded = torch::pickle_load(std::vector<char>(bytes->begin(), bytes->end()));
  ASSERT_TRUE(loaded.isGenericDict());
  const Parameters params = (*model)->GetParameters();
  std::vector<std::string> names;
  size_t i = 0;
  for (const auto& entry : loaded.toGenericDict()) {
    names.push_back(entry.key().toStringRef());
    ASSERT_LT(i, params.size());
    EXPECT_TRUE(at::equal(entry.value().toTensor(), params.tensor(i))) << params.name(i);
    ++i;
  }
  EXPECT_THAT(names, ElementsAre("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                 "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"));
}

TEST(ExportTest, ATorchScriptExportCarriesTheWeightsSetIntoIt) {
  absl::StatusOr<std::unique_ptr<Model>> model =
      CreateModel(*ParseModelSpec(SHOAL_TINY_TORCHSCRIPT));
  ASSERT_TRUE(model.ok()) << model.status();
  const Parameters trained = (*model)->GetParameters().Scaled(-2.0);
  ASSERT_TRUE((*model)->SetParameters(trained).ok());
  absl::StatusOr<std::string> bytes = (*model)->Export();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  std::istringstream in(*bytes);
  torch::jit::Module reloaded = torch::jit::load(in);
  size_t i = 0;
  for (const auto& p : reloaded.named_parameters(/*recurse=*/true)) {
    ASSERT_LT(i, trained.size());
    EXPECT_EQ(p.name, trained.name(i));
    EXPECT_TRUE(at::equal(p.value, trained.tensor(i))) << p.name;
    ++i;
  }
  EXPECT_GT(i, 0u);
}

TEST(ExportTest, ThePythonModuleBuildsEachBuiltinWithItsLayerNames) {
  const auto module = [](const std::string& spec) {
    absl::StatusOr<std::string> text = BuiltinPythonModule(*ParseModelSpec(spec));
    EXPECT_TRUE(text.ok()) << spec << ": " << text.status();
    return text.value_or("");
  };
  const std::string cnn = module("cnn-3x30x30-4");
  EXPECT_THAT(cnn, HasSubstr("self.conv1 = nn.Conv2d(3, 32, 5, padding=2)"));
  EXPECT_THAT(cnn, HasSubstr("self.fc1 = nn.Linear(3136, 512)"));  // 7 * 7 * 64
  EXPECT_THAT(cnn, HasSubstr("self.fc2 = nn.Linear(512, 4)"));
  EXPECT_THAT(cnn, HasSubstr("INPUT_SHAPE = (3, 30, 30)"));
  const std::string logreg = module("logreg-1x28x28-10");
  EXPECT_THAT(logreg, HasSubstr("self.fc = nn.Linear(784, 10)"));
  EXPECT_THAT(logreg, HasSubstr("return self.fc(x)"));
  const std::string mlp = module("mlp-30-2-64x32");
  EXPECT_THAT(mlp, HasSubstr("INPUT_SHAPE = (30,)"));
  EXPECT_THAT(mlp, HasSubstr("x = F.relu(self.fc2(x))"));
  EXPECT_THAT(mlp, HasSubstr("self.fc3 = nn.Linear(32, 2)"));
  EXPECT_THAT(module("2nn-1x28x28-10"), HasSubstr("self.fc2 = nn.Linear(200, 200)"));

  EXPECT_EQ(BuiltinPythonModule(*ParseModelSpec(SHOAL_TINY_TORCHSCRIPT)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BuiltinPythonModule(*ParseModelSpec("cnn")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal::client
