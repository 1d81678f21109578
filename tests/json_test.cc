#include "common/json.h"

#include <string>

#include "common/quote.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Nested returns `depth` nested arrays around 1: [[[1]]].
std::string Nested(int depth) {
  return std::string(depth, '[') + "1" + std::string(depth, ']');
}

std::string ErrorOf(const std::string& text, const JsonLimits& limits = {}) {
  absl::StatusOr<nlohmann::json> j = ParseJson(text, "in.json", limits);
  EXPECT_FALSE(j.ok()) << text.substr(0, 80);
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(j.status().message());
}

// The attack of issue 14: 100,000 levels overflowed the stack of every
// process that parsed (and then copied or destroyed) the value.
TEST(ParseJsonTest, DeepNestingIsRefusedBeforeParsingNamingWhere) {
  const std::string deep = R"({"rounds": )" + Nested(100000) + "}";
  const std::string message = ErrorOf(deep);
  EXPECT_THAT(message, HasSubstr("in.json"));
  EXPECT_THAT(message, HasSubstr("in.json: nests deeper than 32 levels (line 1, column 43)"));
  EXPECT_LT(message.size(), 200u);
}

TEST(ParseJsonTest, DepthUpToTheLimitParses) {
  EXPECT_TRUE(ParseJson(Nested(32), "in.json").ok());
  EXPECT_THAT(ErrorOf(Nested(33)), HasSubstr("deeper than 32"));
  EXPECT_TRUE(ParseJson(Nested(33), "in.json", JsonLimits{1 << 20, 33}).ok());
}

TEST(ParseJsonTest, BracketsInsideStringsDoNotCount) {
  const std::string text = R"({"a": ")" + std::string(100, '[') + R"(\"[[[", "b": [1]})";
  absl::StatusOr<nlohmann::json> j = ParseJson(text, "in.json", JsonLimits{1 << 20, 2});
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["b"][0], 1);
}

TEST(ParseJsonTest, LargerThanTheLimitIsRefusedBeforeParsing) {
  const std::string text = "[" + std::string(2000, ' ') + "]";
  EXPECT_THAT(ErrorOf(text, JsonLimits{1000, 32}),
              HasSubstr("2002 bytes is larger than the limit of 1000 bytes"));
}

TEST(ParseJsonTest, DuplicateKeysAreRefusedNamingThePath) {
  EXPECT_THAT(ErrorOf(R"({"seed": 1, "seed": 2})"), HasSubstr("key 'seed' appears twice"));
  EXPECT_THAT(ErrorOf(R"({"fit": {"batch_size": 8, "local_epochs": 1, "batch_size": 16}})"),
              HasSubstr("key 'fit.batch_size' appears twice"));
  EXPECT_THAT(ErrorOf(R"({"a": [{"x": 1}, {"x": 2, "x": 3}]})"), HasSubstr("'a[].x'"));
  // Equal keys in different objects are not duplicates.
  EXPECT_TRUE(ParseJson(R"({"a": {"x": 1}, "b": {"x": 1}, "x": [{"x": 1}, {"x": 2}]})",
                        "in.json")
                  .ok());
}

TEST(ParseJsonTest, SyntaxErrorsNameLineAndColumnAndStayShort) {
  EXPECT_THAT(ErrorOf("{\n  \"a\": 1,\n  \"b\" 2\n}"), HasSubstr("line 3"));
  // An unterminated megabyte string is quoted by nlohmann; the message is cut.
  const std::string message = ErrorOf("\"" + std::string(1 << 19, 'x'));
  EXPECT_LT(message.size(), 400u);
  EXPECT_THAT(ErrorOf("[1e400]"), HasSubstr("not valid JSON"));
}

TEST(JsonForMessageTest, ShowsValuesBounded) {
  using nlohmann::json;
  EXPECT_EQ(JsonForMessage(json(12)), "12");
  EXPECT_EQ(JsonForMessage(json(true)), "true");
  EXPECT_EQ(JsonForMessage(json("abc")), "'abc'");
  EXPECT_EQ(JsonForMessage(json::parse(R"({"a": 1, "b": 2})")), "an object of 2 keys");
  EXPECT_EQ(JsonForMessage(json::parse("[[1]]")), "an array of 1 element");
  const std::string shown = JsonForMessage(json(std::string(3 << 20, 'x')));
  EXPECT_LT(shown.size(), 100u);
  EXPECT_THAT(shown, HasSubstr("3145688 more bytes"));
}

TEST(QuoteForMessageTest, EscapesControlCharactersSoALineCannotBeForged) {
  EXPECT_EQ(QuoteForMessage("a\nb\x01"), "'a\\x0ab\\x01'");
  EXPECT_THAT(QuoteForMessage("id\n[info] server: all clients revoked"), Not(HasSubstr("\n")));
  EXPECT_EQ(QuoteForMessage(std::string(10, 'y'), 4), "'yyyy'... (6 more bytes)");
}

}  // namespace
}  // namespace shoal
