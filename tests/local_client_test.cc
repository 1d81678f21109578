// LocalClient: the strategy-specific parts of a client's round (SCAFFOLD's
// control variate, q-FedAvg's initial loss) on top of the Trainer, through
// the built-in client algorithms.
#include "client/local_client.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <memory>

#include "client/client_algorithm_registry.h"
#include "common/client_algorithms.h"
#include "common/types.h"
#include "common/update_compression.h"
#include "gtest/gtest.h"
#include "tests/testing.h"

namespace shoal::client {
namespace {

Dataset Data(int64_t n, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return Dataset{at::randn({n, 1, 28, 28}, gen), at::randint(0, 10, {n}, gen, at::kLong)};
}

LocalClient MakeClient(uint64_t seed) {
  ModelSpec spec;
  spec.name = "logreg";
  spec.input_shape = {1, 28, 28};
  spec.outputs = 10;
  return LocalClient(*CreateModel(spec, seed), *Trainer::Create(TrainerOptions{}),
                     Data(40, seed), Dataset{});
}

v1::FitConfig ScaffoldConfig(double lr) {
  v1::FitConfig config;
  config.set_local_epochs(1);
  config.set_batch_size(10);
  config.set_learning_rate(lr);
  AddClientAlgorithm(&config, kScaffoldAlgorithm);
  return config;
}

Parameters Filled(const Parameters& like, double value) {
  Parameters out;
  for (size_t i = 0; i < like.size(); ++i) {
    out.Add(like.name(i), at::full_like(like.tensor(i), value));
  }
  return out;
}

// Option II of Karimireddy et al.: c_i+ = c_i - c + (x - y) / (K lr), so the
// returned change is -c - update / (K lr) whatever c_i was; and the next
// round's gradients are corrected by c - c_i with the c_i the client kept.
TEST(LocalClientTest, ScaffoldReturnsControlChangeAndKeepsItsControlVariate) {
  const double lr = 0.05;
  LocalClient client = MakeClient(3);
  const Parameters global = client.model().GetParameters().Clone();
  const Parameters c1 = Filled(global, 0.01);
  absl::StatusOr<FitRes> r1 = client.Fit(global, ScaffoldConfig(lr), 1, &c1);
  ASSERT_TRUE(r1.ok()) << r1.status();
  const int64_t steps = std::get<int64_t>(r1->metrics.at(kStepsMetric));
  ASSERT_EQ(steps, 4);
  ASSERT_EQ(r1->aux.size(), global.size());
  for (size_t i = 0; i < global.size(); ++i) {
    const at::Tensor want = -c1.tensor(i) - r1->update.tensor(i) / (steps * lr);
    EXPECT_TRUE(at::allclose(r1->aux.tensor(i), want, 1e-5, 1e-6)) << global.name(i);
  }

  // Round 2: the client's c_i is now r1->aux (it started at zero).
  const Parameters c2 = Filled(global, -0.02);
  absl::StatusOr<FitRes> r2 = client.Fit(global, ScaffoldConfig(lr), 2, &c2);
  ASSERT_TRUE(r2.ok()) << r2.status();
  ASSERT_EQ(client.algorithm_state().count(kScaffoldAlgorithm), 1u);
  // The same round by a bare Trainer corrected by c2 - c_i, c_i = r1->aux.
  std::unique_ptr<Model> model = *CreateModel(*ParseModelSpec("logreg-1x28x28-10"), 3);
  Trainer trainer = *Trainer::Create(TrainerOptions{});
  const v1::FitConfig config = ScaffoldConfig(lr);
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> scaffold =
      CreateClientAlgorithm(config.client_algorithms(0));
  ASSERT_TRUE(scaffold.ok()) << scaffold.status();
  Parameters control = r1->aux;
  ASSERT_TRUE((*scaffold)->BeforeTraining(ClientRound{2, global, config, &c2}, &control).ok());
  absl::StatusOr<FitOutcome> bare =
      trainer.Fit(*model, global, client.train_data(), config, 2, {scaffold->get()});
  ASSERT_TRUE(bare.ok()) << bare.status();
  for (size_t i = 0; i < global.size(); ++i) {
    EXPECT_TRUE(at::allclose(r2->update.tensor(i), bare->update.tensor(i), 1e-5, 1e-7))
        << global.name(i);
  }
}

TEST(LocalClientTest, ScaffoldWithoutControlVariateIsRefused) {
  LocalClient client = MakeClient(4);
  const Parameters global = client.model().GetParameters().Clone();
  absl::StatusOr<FitRes> res = client.Fit(global, ScaffoldConfig(0.1), 1, nullptr);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(res.status().message().find("control variate"), std::string::npos);
}

TEST(LocalClientTest, PlainRoundsReturnNoAuxAndInitialLossOnRequest) {
  LocalClient client = MakeClient(5);
  const Parameters global = client.model().GetParameters().Clone();
  v1::FitConfig config = ScaffoldConfig(0.1);
  config.clear_client_algorithms();
  absl::StatusOr<FitRes> plain = client.Fit(global, config, 1);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_TRUE(plain->aux.empty());
  EXPECT_EQ(plain->metrics.count(kInitialLossMetric), 0u);
  EXPECT_TRUE(client.algorithm_state().empty());

  v1::ClientAlgorithmConfig* qfedavg = AddClientAlgorithm(&config, kQFedAvgAlgorithm);
  absl::StatusOr<FitRes> asked = client.Fit(global, config, 1);
  ASSERT_TRUE(asked.ok()) << asked.status();
  EXPECT_GT(MetricAsDouble(asked->metrics.at(kInitialLossMetric)), 0);

  (*qfedavg->mutable_params())["report"].set_bool_value(true);  // q-FedAvg takes no params
  absl::StatusOr<FitRes> bad = client.Fit(global, config, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("qfedavg"), std::string::npos);
  EXPECT_NE(bad.status().message().find("report"), std::string::npos);
}

v1::FitConfig Compressed(const std::string& kind, double fraction) {
  v1::FitConfig config = ScaffoldConfig(0.1);
  config.clear_client_algorithms();
  config.mutable_compression()->set_kind(kind);
  config.mutable_compression()->set_block(64);
  config.mutable_compression()->set_fraction(fraction);
  return config;
}

// The update a bare Trainer gets from the same round, uncompressed.
Parameters BareUpdate(LocalClient& client, const Parameters& global, uint32_t round) {
  std::unique_ptr<Model> model = *CreateModel(*ParseModelSpec("logreg-1x28x28-10"), 3);
  Trainer trainer = *Trainer::Create(TrainerOptions{});
  v1::FitConfig config = Compressed("none", 0);
  return trainer.Fit(*model, global, client.train_data(), config, round)->update;
}

// Error feedback: what top-k sends plus what it keeps is, exactly, the
// round's update plus what it kept before.
TEST(LocalClientTest, TopKSendsWhatTheServerDecodesAndKeepsExactlyWhatItDropped) {
  LocalClient client = MakeClient(3);
  const Parameters global = client.model().GetParameters().Clone();
  const v1::FitConfig config = Compressed("topk", 0.05);
  Parameters kept_before;
  for (uint32_t round = 1; round <= 2; ++round) {
    absl::StatusOr<FitRes> res = client.Fit(global, config, round);
    ASSERT_TRUE(res.ok()) << res.status();
    ASSERT_NE(res->compressed, nullptr);
    absl::StatusOr<Parameters> decoded = DecompressUpdate(global, *res->compressed);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    const Parameters bare = BareUpdate(client, global, round);
    ASSERT_EQ(client.algorithm_state().count(kCompressionResidualState), 1u);
    const Parameters& kept = client.algorithm_state().at(kCompressionResidualState);
    ASSERT_EQ(kept.size(), global.size());
    for (size_t i = 0; i < global.size(); ++i) {
      EXPECT_TRUE(at::equal(decoded->tensor(i), res->update.tensor(i))) << global.name(i);
      const at::Tensor before = round == 1 ? at::zeros_like(bare.tensor(i)) : kept_before.tensor(i);
      EXPECT_TRUE(at::allclose(res->update.tensor(i) + kept.tensor(i), bare.tensor(i) + before,
                               0, 1e-7))
          << global.name(i) << " in round " << round;
      // At most ceil(5 %) of the values went.
      EXPECT_LE(res->compressed->compressed(static_cast<int>(i)).sparse().gaps_size(),
                (global.tensor(i).numel() + 19) / 20);
    }
    kept_before = kept.Clone();
  }
}

TEST(LocalClientTest, QuantizedRoundsKeepNoResidualAndReportTheirCost) {
  LocalClient client = MakeClient(3);
  const Parameters global = client.model().GetParameters().Clone();
  absl::StatusOr<FitRes> res = client.Fit(global, Compressed("q8", 0), 1);
  ASSERT_TRUE(res.ok()) << res.status();
  ASSERT_NE(res->compressed, nullptr);
  EXPECT_EQ(res->compressed->compressed_size(), static_cast<int>(global.size()));
  EXPECT_TRUE(client.algorithm_state().empty());
  EXPECT_GE(MetricAsDouble(res->metrics.at("compress_seconds")), 0);
  const Parameters bare = BareUpdate(client, global, 1);
  for (size_t i = 0; i < global.size(); ++i) {
    const double range = (bare.tensor(i).max() - bare.tensor(i).min()).item<double>();
    EXPECT_LE((res->update.tensor(i) - bare.tensor(i)).abs().max().item<double>(),
              range / 255 * 1.01);
  }
  absl::StatusOr<FitRes> bad = client.Fit(global, Compressed("q2", 0), 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("compression"), std::string::npos);
}

// Partial fine-tuning: a frozen tensor gets no step, ends bit-identical to
// the global model's, and is not in the update (nor in its compressed form).
TEST(LocalClientTest, FrozenTensorsStayBitIdenticalAndAreNotSent) {
  LocalClient client = MakeClient(3);
  const Parameters global = client.model().GetParameters().Clone();
  ASSERT_EQ(global.name(1), "fc.bias");
  for (const char* kind : {"none", "q8"}) {
    v1::FitConfig config = Compressed(kind, 0);
    config.set_weight_decay(0.1);  // would move every trained tensor
    config.add_frozen("fc.bias");
    absl::StatusOr<FitRes> res = client.Fit(global, config, 1);
    ASSERT_TRUE(res.ok()) << res.status();
    ASSERT_EQ(res->update.size(), 1u) << kind;
    EXPECT_EQ(res->update.name(0), "fc.weight");
    const Parameters after = client.model().GetParameters();
    EXPECT_TRUE(at::equal(after.tensor(1), global.tensor(1))) << kind;
    EXPECT_FALSE(at::equal(after.tensor(0), global.tensor(0))) << kind;
    if (res->compressed != nullptr) {
      ASSERT_EQ(res->compressed->compressed_size(), 1);
      EXPECT_EQ(res->compressed->compressed(0).name(), "fc.weight");
      EXPECT_EQ(res->compressed->tensors_size(), 0);
    }
    // Trainable again for the next round.
    for (const at::Tensor& p : client.model().TrainableParameters()) {
      EXPECT_TRUE(p.requires_grad());
    }
  }
  v1::FitConfig bad = Compressed("none", 0);
  bad.add_frozen("fc.nothing");
  absl::StatusOr<FitRes> refused = client.Fit(global, bad, 1);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("freezes a tensor this model does not have"),
            std::string::npos);
}

// Personal layers: the server lists them as frozen (it never sees them);
// the device trains them from its own values, keeps them, evaluates with
// them, and never puts them in an update.
TEST(LocalClientTest, PersonalTensorsTrainHereAreKeptAndNeverSent) {
  LocalClient client = MakeClient(3);
  client.set_personal({"fc.bias"});
  const Parameters global = client.model().GetParameters().Clone();
  v1::FitConfig config = Compressed("q8", 0);
  config.add_frozen("fc.bias");  // as the server's task says
  absl::StatusOr<FitRes> r1 = client.Fit(global, config, 1);
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_EQ(r1->update.size(), 1u);
  EXPECT_EQ(r1->update.name(0), "fc.weight");
  ASSERT_EQ(r1->compressed->compressed_size(), 1);
  ASSERT_EQ(client.algorithm_state().count(kPersonalState), 1u);
  const Parameters kept = client.algorithm_state().at(kPersonalState).Clone();
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_FALSE(at::equal(kept.tensor(0), global.tensor(1)));  // trained here
  // The model it evaluates and trains next is the global one with its own bias.
  const Parameters mine = client.PersonalModel(global);
  EXPECT_TRUE(at::equal(mine.tensor(0), global.tensor(0)));
  EXPECT_TRUE(at::equal(mine.tensor(1), kept.tensor(0)));
  absl::StatusOr<FitRes> r2 = client.Fit(global, config, 2);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->update.size(), 1u);
  EXPECT_FALSE(at::equal(client.algorithm_state().at(kPersonalState).tensor(0), kept.tensor(0)));
  // Kept across a restart: written and read back as the agent does.
  testing::TempDir dir;
  ASSERT_TRUE(WriteClientState(dir.path(), client.algorithm_state()).ok());
  absl::StatusOr<ClientAlgorithmState> read = ReadClientState(dir.path());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(at::equal(read->at(kPersonalState).tensor(0),
                        client.algorithm_state().at(kPersonalState).tensor(0)));
  // A device's own tensors are checked before use.
  Parameters bad;
  bad.Add("fc.bias", at::full({10}, NAN));
  EXPECT_NE(WithPersonal(global, bad).status().message().find("not finite"), std::string::npos);
  bad = Parameters();
  bad.Add("fc.other", at::zeros({10}));
  EXPECT_NE(WithPersonal(global, bad).status().message().find("not in the model"),
            std::string::npos);
  bad = Parameters();
  bad.Add("fc.bias", at::zeros({11}));
  EXPECT_NE(WithPersonal(global, bad).status().message().find("another shape"), std::string::npos);
  // Without the pattern the same task freezes it: kept as the global one.
  LocalClient plain = MakeClient(3);
  absl::StatusOr<FitRes> frozen = plain.Fit(global, config, 1);
  ASSERT_TRUE(frozen.ok()) << frozen.status();
  EXPECT_EQ(plain.algorithm_state().count(kPersonalState), 0u);
  EXPECT_TRUE(at::equal(plain.model().GetParameters().tensor(1), global.tensor(1)));
}

}  // namespace
}  // namespace shoal::client
