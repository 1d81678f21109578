#include "common/json_fields.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

using ::nlohmann::json;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(JsonFieldsTest, AbsentFieldsLeaveTheirDefaults) {
  const json j = json::object();
  JsonFields f(j, "fit");
  double lr = 0.05;
  int64_t epochs = 3;
  std::string name = "x";
  EXPECT_TRUE(f.Number("learning_rate", 0, 1, &lr).ok());
  EXPECT_TRUE(f.Integer("epochs", 1, 10, &epochs).ok());
  EXPECT_TRUE(f.NonEmptyString("name", &name).ok());
  EXPECT_EQ(lr, 0.05);
  EXPECT_EQ(epochs, 3);
  EXPECT_EQ(name, "x");
  EXPECT_TRUE(f.Finish().ok());
}

TEST(JsonFieldsTest, RangesHonourOpenAndClosedBounds) {
  const json j = {{"lo", 0.0}, {"hi", 1.0}, {"mid", 0.5}};
  JsonFields f(j, "s");
  double x = -1;
  EXPECT_TRUE(f.Number("lo", 0, 1, &x).ok());
  EXPECT_EQ(x, 0);
  EXPECT_THAT(Message(f.Number("lo", 0, 1, &x, /*lo_open=*/true)),
              HasSubstr("'s.lo' = 0 is out of range (0, 1]"));
  EXPECT_THAT(Message(f.Number("hi", 0, 1, &x, false, /*hi_open=*/true)),
              HasSubstr("'s.hi' = 1 is out of range [0, 1)"));
  EXPECT_TRUE(f.Number("mid", 0, 1, &x, true, true).ok());
  EXPECT_EQ(x, 0.5);
}

TEST(JsonFieldsTest, IntegersRefuseFloatsAndNameHugeValuesAsWritten) {
  const json j = {{"float", 1.5}, {"huge", uint64_t{18446744073709551615u}}, {"ok", 7}};
  JsonFields f(j);
  int n = 0;
  EXPECT_THAT(Message(f.Integer("float", 0, 10, &n)),
              HasSubstr("'float' must be an integer, got 1.5"));
  EXPECT_THAT(Message(f.Integer("huge", 0, 10, &n)),
              HasSubstr("'huge' = 18446744073709551615 is out of range [0, 10]"));
  ASSERT_TRUE(f.Integer("ok", 0, 10, &n).ok());
  EXPECT_EQ(n, 7);
}

TEST(JsonFieldsTest, FinishRefusesUnreadKeysListingTheKnownOnes) {
  const json j = {{"momentum", 0.9}, {"lr", 0.1}};
  JsonFields f(j, "fit");
  double m = 0;
  ASSERT_TRUE(f.Number("momentum", 0, 1, &m).ok());
  double unused = 0;
  ASSERT_TRUE(f.Number("learning_rate", 0, 1, &unused).ok());
  const std::string e = Message(f.Finish());
  EXPECT_THAT(e, HasSubstr("unknown key 'fit.lr'"));
  EXPECT_THAT(e, HasSubstr("(known: learning_rate, momentum)"));
}

TEST(JsonFieldsTest, ContextSetsTheCodeAndTheWords) {
  const json j = {{"round", "two"}, {"extra", 1}};
  JsonFields::Context stored;
  stored.code = absl::StatusCode::kDataLoss;
  stored.prefix = "checkpoint 'c.json': field ";
  stored.stored_file = true;
  JsonFields f(j, "", stored);
  int round = 0;
  absl::Status s = f.Integer("round", 0, 10, &round);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Message(s), "checkpoint 'c.json': field 'round' has the wrong type (string)");
  EXPECT_EQ(Message(f.Require({"round", "missing"})),
            "checkpoint 'c.json': field 'missing' is missing");

  JsonFields::Context strategy;
  strategy.suffix = " for strategy 'krum'";
  strategy.noun = "parameter";
  const json p = {{"f", 1}};
  EXPECT_EQ(Message(JsonFields(p, "strategy", strategy).Finish()),
            "unknown parameter 'strategy.f' for strategy 'krum' (it takes none)");
}

TEST(JsonFieldsTest, UntrustedValuesAndKeysAreShownBounded) {
  const json j = {{"name", json::array({std::string(5000, 'x')})},
                  {"k\n" + std::string(3000, 'k'), 1}};
  JsonFields f(j);
  std::string name;
  const std::string type = Message(f.NonEmptyString("name", &name));
  EXPECT_THAT(type, HasSubstr("got an array of 1 element"));
  EXPECT_LT(type.size(), 200u);
  const std::string unknown = Message(f.Finish());
  EXPECT_LT(unknown.size(), 300u) << unknown;
  EXPECT_THAT(unknown, HasSubstr("\\x0a"));
}

TEST(JsonFieldsTest, StoredNumbersReadNullAsNanAndMetricsKeepTheirKinds) {
  const json j = {
      {"loss", nullptr}, {"m", {{"n", 3}, {"x", 0.5}, {"nan", nullptr}}}, {"bad", {{"s", "text"}}}};
  JsonFields f(j, "r");
  double loss = 0;
  ASSERT_TRUE(f.NumberOrNan("loss", &loss).ok());
  EXPECT_TRUE(std::isnan(loss));
  Metrics m;
  ASSERT_TRUE(f.Metrics("m", &m).ok());
  EXPECT_TRUE(std::holds_alternative<int64_t>(m.at("n")));
  EXPECT_EQ(std::get<double>(m.at("x")), 0.5);
  EXPECT_TRUE(std::isnan(MetricAsDouble(m.at("nan"))));
  EXPECT_EQ(MetricsToJson(m)["n"], 3);
  Metrics bad;
  EXPECT_THAT(Message(f.Metrics("bad", &bad)), HasSubstr("'r.bad.'s'' must be a number"));
}

TEST(JsonFieldsTest, ChildrenCarryTheirPathIntoMessages) {
  const json j = {{"history", json::array({json::object(), {{"round", -1}}})},
                  {"clients", {{"a b", {{"train", "x"}}}}}};
  JsonFields f(j);
  absl::StatusOr<std::vector<JsonFields>> history = f.Objects("history");
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 2u);
  int round = 0;
  EXPECT_THAT(Message((*history)[1].Integer("round", 0, 5, &round)),
              HasSubstr("'history[1].round' = -1 is out of range [0, 5]"));
  auto members = f.Members("clients");
  ASSERT_TRUE(members.ok()) << members.status();
  int64_t train = 0;
  EXPECT_THAT(Message((*members)[0].second.Integer("train", 0, 5, &train)),
              HasSubstr("'clients.'a b'.train' must be an integer"));
  EXPECT_THAT(Message(f.Object("nothing").status()), HasSubstr("'nothing' is missing"));
}

}  // namespace
}  // namespace shoal
