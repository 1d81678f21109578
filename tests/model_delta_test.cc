// Model downloads as a delta (common/model_delta.h): bit-for-bit
// reconstruction of real serialized models, the bytes it saves, and every
// malformed delta refused without inflating past the held model's size.
#include "common/model_delta.h"

#include <ATen/ATen.h>

#include <zlib.h>

#include "common/parameters.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

// Two versions of one model a round of SGD apart, serialized as the server
// stores them.
std::pair<std::string, std::string> TwoVersions() {
  at::manual_seed(3);
  Parameters a;
  a.Add("conv.weight", at::randn({32, 1, 5, 5}) * 0.1);
  a.Add("fc.weight", at::randn({10, 517}) * 0.05);  // an odd size: a tail under one word
  a.Add("fc.bias", at::zeros({10}));
  a.Add("bn.num_batches_tracked", at::tensor({int64_t{40}}));
  Parameters b = a.Clone();
  for (size_t i = 0; i < 3; ++i) b.mutable_tensor(i) += at::randn_like(a.tensor(i)) * 1e-3;
  b.mutable_tensor(3) += 12;
  return {SerializeParameters(a), SerializeParameters(b)};
}

TEST(ModelDeltaTest, ADeltaRebuildsTheModelBitForBitInFewerBytes) {
  const auto [base, target] = TwoVersions();
  absl::StatusOr<std::string> delta = EncodeModelDelta(base, target);
  ASSERT_TRUE(delta.ok()) << delta.status();
  EXPECT_LT(delta->size(), target.size() * 9 / 10);
  absl::StatusOr<std::string> rebuilt = DecodeModelDelta(base, *delta);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_TRUE(*rebuilt == target);
  // The same version twice: nearly nothing to send.
  EXPECT_LT(EncodeModelDelta(target, target)->size(), target.size() / 100);
}

TEST(ModelDeltaTest, AMalformedDeltaIsRefusedAndNeverInflatesPastTheModel) {
  const auto [base, target] = TwoVersions();
  const std::string delta = *EncodeModelDelta(base, target);
  auto error = [&](const std::string& d, absl::string_view b) {
    absl::StatusOr<std::string> out = DecodeModelDelta(b, d);
    return out.ok() ? std::string("decoded") : std::string(out.status().message());
  };
  EXPECT_THAT(error(delta.substr(0, delta.size() / 2), base), HasSubstr("not deflate data"));
  EXPECT_THAT(error("not zlib at all", base), HasSubstr("not deflate data"));
  EXPECT_THAT(error(delta + "x", base), HasSubstr("not deflate data"));
  // Against a base of another size (another model): refused.
  EXPECT_THAT(error(delta, absl::string_view(base).substr(0, base.size() - 4)),
              HasSubstr("not deflate data"));
  // A bomb: 64 MiB of zeros claimed against a small base stops at its size.
  std::string zeros(64 << 20, '\0');
  uLongf size = compressBound(zeros.size());
  std::string bomb(size, '\0');
  ASSERT_EQ(compress2(reinterpret_cast<Bytef*>(bomb.data()), &size,
                      reinterpret_cast<const Bytef*>(zeros.data()), zeros.size(), 9),
            Z_OK);
  bomb.resize(size);
  EXPECT_THAT(error(bomb, base), HasSubstr("not deflate data"));
  EXPECT_THAT(std::string(EncodeModelDelta(base, target + "x").status().message()),
              HasSubstr("one size"));
}

}  // namespace
}  // namespace shoal
