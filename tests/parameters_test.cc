#include "common/parameters.h"

#include <ATen/ATen.h>

#include <limits>

#include "gtest/gtest.h"

namespace shoal {
namespace {

Parameters RoundTrip(const Parameters& p) {
  absl::StatusOr<Parameters> back = ParseParameters(SerializeParameters(p));
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? *back : Parameters();
}

void ExpectSame(const Parameters& a, const Parameters& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a.name(i), b.name(i));
    EXPECT_EQ(a.tensor(i).scalar_type(), b.tensor(i).scalar_type()) << a.name(i);
    EXPECT_EQ(a.tensor(i).sizes(), b.tensor(i).sizes()) << a.name(i);
    EXPECT_TRUE(at::equal(a.tensor(i), b.tensor(i))) << a.name(i);
  }
}

class TensorRoundTripTest : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(TensorRoundTripTest, EveryDtypeAndOddShapeSurvivesTheWire) {
  const at::ScalarType type = GetParam();
  at::manual_seed(7);
  Parameters p;
  auto make = [&](at::IntArrayRef shape) {
    at::Tensor t = at::randint(-100, 100, shape, at::TensorOptions().dtype(at::kLong));
    if (type == at::kBool) return t.gt(0);
    if (type == at::kByte) return t.abs().to(type);
    return at::isFloatingType(type) ? (t.to(at::kDouble) / 7).to(type) : t.to(type);
  };
  p.Add("scalar", make({}));            // 0-d
  p.Add("empty", make({0}));            // no elements
  p.Add("empty2d", make({3, 0}));       // zero in a later dimension
  p.Add("vector", make({5}));
  p.Add("odd", make({3, 1, 7, 2}));
  ExpectSame(p, RoundTrip(p));
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, TensorRoundTripTest,
                         ::testing::Values(at::kFloat, at::kDouble, at::kHalf, at::kBFloat16,
                                           at::kChar, at::kByte, at::kShort, at::kInt,
                                           at::kLong, at::kBool));

TEST(ParametersTest, LargeTensorRoundTrips) {
  Parameters p;
  p.Add("big", at::randn({2048, 1024}));  // 8 MiB
  ExpectSame(p, RoundTrip(p));
}

TEST(ParametersTest, NonContiguousTensorIsSentInLogicalOrder) {
  at::Tensor t = at::arange(12, at::kFloat).reshape({3, 4}).t();
  Parameters p;
  p.Add("t", t);
  Parameters back = RoundTrip(p);
  EXPECT_TRUE(at::equal(back.tensor(0), t));
}

TEST(ParametersTest, DataSizeMismatchIsRefusedNamingTheTensor) {
  v1::ParametersProto proto;
  Parameters p;
  p.Add("w", at::ones({4}));
  ToProto(p, &proto);
  proto.mutable_tensors(0)->mutable_data()->pop_back();
  absl::StatusOr<Parameters> back = ParametersFromProto(proto);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(back.status().message().find("'w'"), std::string::npos) << back.status();
}

TEST(ParametersTest, UnknownDtypeNegativeDimAndHugeShapeAreRefused) {
  v1::ParametersProto proto;
  v1::TensorProto* t = proto.add_tensors();
  t->set_name("x");
  t->set_dtype(static_cast<v1::DType>(99));
  EXPECT_FALSE(ParametersFromProto(proto).ok());
  t->set_dtype(v1::DTYPE_FLOAT32);
  t->add_shape(-1);
  EXPECT_FALSE(ParametersFromProto(proto).ok());
  t->clear_shape();
  t->add_shape(std::numeric_limits<int64_t>::max());
  t->add_shape(4);
  absl::StatusOr<Parameters> huge = ParametersFromProto(proto);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("exceeds"), std::string::npos);
}

// Found by fuzz/parameters_fuzzer: an empty tensor (a zero dimension) with an
// absurd other dimension has no elements, but LibTorch reads sizes at or
// above 2^62 as symbolic and crashed cloning it.
TEST(ParametersTest, EmptyTensorWithHugeDimensionIsRefused) {
  v1::ParametersProto proto;
  v1::TensorProto* t = proto.add_tensors();
  t->set_name("counts");
  t->set_dtype(v1::DTYPE_INT64);
  t->add_shape(0);
  t->add_shape(int64_t{1} << 62);
  absl::StatusOr<Parameters> huge = ParametersFromProto(proto);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("exceeds"), std::string::npos);
  // Strides are products of the later dimensions: [0, 2^20, 2^20] has no
  // elements, but its first stride (2^40) is past the limit too.
  t->clear_shape();
  t->add_shape(0);
  t->add_shape(int64_t{1} << 20);
  t->add_shape(int64_t{1} << 20);
  EXPECT_FALSE(ParametersFromProto(proto).ok());
  // An honest empty tensor still parses.
  t->clear_shape();
  t->add_shape(0);
  t->add_shape(784);
  absl::StatusOr<Parameters> empty = ParametersFromProto(proto);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->tensor(0).sizes(), (std::vector<int64_t>{0, 784}));
  EXPECT_EQ(empty->Clone().tensor(0).numel(), 0);
}

TEST(ParametersTest, DuplicateNamesAndGarbageBytesAreRefused) {
  Parameters p;
  p.Add("w", at::ones({1}));
  v1::ParametersProto proto;
  ToProto(p, &proto);
  *proto.add_tensors() = proto.tensors(0);
  EXPECT_FALSE(ParametersFromProto(proto).ok());
  EXPECT_FALSE(ParseParameters("\xff\xff\xff garbage").ok());
}

TEST(ParametersTest, CheckCompatibleNamesTheFirstDifference) {
  Parameters a, b, c;
  a.Add("w", at::zeros({2, 3}));
  b.Add("w", at::zeros({3, 2}));
  c.Add("w", at::zeros({2, 3}, at::kDouble));
  EXPECT_TRUE(a.CheckCompatible(a.Clone()).ok());
  absl::Status shape = a.CheckCompatible(b);
  EXPECT_NE(shape.message().find("shape [3, 2]"), std::string::npos) << shape;
  absl::Status dtype = a.CheckCompatible(c);
  EXPECT_NE(dtype.message().find("dtype"), std::string::npos) << dtype;
}

TEST(ParametersTest, CheckFiniteFindsNanAndInf) {
  Parameters p;
  p.Add("ok", at::ones({3}));
  EXPECT_TRUE(p.CheckFinite().ok());
  at::Tensor bad = at::ones({3});
  bad[1] = std::numeric_limits<float>::quiet_NaN();
  p.Add("bad", bad);
  absl::Status s = p.CheckFinite();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'bad'"), std::string::npos);
  Parameters q;
  q.Add("inf", at::full({2}, std::numeric_limits<float>::infinity()));
  EXPECT_FALSE(q.CheckFinite().ok());
}

TEST(ParametersTest, CloneIsDeep) {
  Parameters p;
  p.Add("w", at::zeros({2}));
  Parameters c = p.Clone();
  c.mutable_tensor(0).add_(1);
  EXPECT_EQ(p.tensor(0).sum().item<float>(), 0);
}

}  // namespace
}  // namespace shoal
