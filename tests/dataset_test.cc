#include "client/data/dataset.h"

#include <ATen/ATen.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing.h"

namespace shoal::client {
namespace {

constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;

void AppendBigEndian32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(v >> shift);
}

// IdxBytes builds an IDX file: magic, big-endian dims, then `payload`.
std::vector<uint8_t> IdxBytes(uint32_t magic, const std::vector<uint32_t>& dims,
                              const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out;
  AppendBigEndian32(out, magic);
  for (uint32_t d : dims) AppendBigEndian32(out, d);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

void WritePlain(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  ASSERT_TRUE(out.good()) << path;
}

void WriteGzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  if (!bytes.empty()) {
    ASSERT_EQ(gzwrite(f, bytes.data(), bytes.size()),
              static_cast<int>(bytes.size()));
  }
  ASSERT_EQ(gzclose(f), Z_OK);
}

// Pixels 0, 1, 2, ... (mod 256) for n images of h x w.
std::vector<uint8_t> Pixels(int n, int h, int w) {
  std::vector<uint8_t> p(n * h * w);
  for (size_t i = 0; i < p.size(); ++i) p[i] = i % 256;
  return p;
}

TEST(ReadIdxImagesTest, ReadsGzippedFileBack) {
  testing::TempDir dir;
  const std::string path = dir.File("images.gz");
  WriteGzip(path, IdxBytes(kImagesMagic, {3, 4, 5}, Pixels(3, 4, 5)));

  absl::StatusOr<at::Tensor> images = ReadIdxImages(path);
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ(images->scalar_type(), at::kByte);
  EXPECT_EQ(images->sizes(), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ((*images)[1][2][3].item<uint8_t>(), 20 + 2 * 5 + 3);
  EXPECT_EQ((*images)[2][3][4].item<uint8_t>(), 59);
}

TEST(ReadIdxImagesTest, ReadsUncompressedFileBack) {
  testing::TempDir dir;
  const std::string path = dir.File("images");
  WritePlain(path, IdxBytes(kImagesMagic, {2, 28, 28}, Pixels(2, 28, 28)));

  absl::StatusOr<at::Tensor> images = ReadIdxImages(path);
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ(images->sizes(), (std::vector<int64_t>{2, 28, 28}));
  const std::vector<uint8_t> expected = Pixels(2, 28, 28);
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(),
                         images->data_ptr<uint8_t>()));
}

TEST(ReadIdxLabelsTest, ReadsGzippedAndPlainFilesBackAsInt64) {
  testing::TempDir dir;
  const std::vector<uint8_t> bytes = IdxBytes(kLabelsMagic, {4}, {9, 0, 3, 7});
  WriteGzip(dir.File("labels.gz"), bytes);
  WritePlain(dir.File("labels"), bytes);

  for (const std::string name : {"labels.gz", "labels"}) {
    absl::StatusOr<at::Tensor> labels = ReadIdxLabels(dir.File(name));
    ASSERT_TRUE(labels.ok()) << labels.status();
    EXPECT_EQ(labels->scalar_type(), at::kLong);
    EXPECT_TRUE(at::equal(*labels, at::tensor({9, 0, 3, 7}, at::kLong)))
        << name;
  }
}

TEST(ReadIdxImagesTest, TruncatedDataIsDataLossNamingTheFile) {
  testing::TempDir dir;
  std::vector<uint8_t> bytes =
      IdxBytes(kImagesMagic, {3, 4, 5}, Pixels(3, 4, 5));
  bytes.resize(bytes.size() - 7);
  WritePlain(dir.File("short"), bytes);
  WriteGzip(dir.File("short.gz"), bytes);

  for (const std::string name : {"short", "short.gz"}) {
    absl::StatusOr<at::Tensor> images = ReadIdxImages(dir.File(name));
    EXPECT_EQ(images.status().code(), absl::StatusCode::kDataLoss) << name;
    EXPECT_THAT(images.status().message(),
                AllOf(HasSubstr(dir.File(name)), HasSubstr("truncated"),
                      HasSubstr("60"), HasSubstr("53")));
  }
}

TEST(ReadIdxImagesTest, CutGzipStreamIsDataLoss) {
  testing::TempDir dir;
  const std::string whole = dir.File("whole.gz");
  WriteGzip(whole, IdxBytes(kImagesMagic, {50, 28, 28}, Pixels(50, 28, 28)));
  // Keep the first half of the compressed stream, as an interrupted
  // download would.
  std::ifstream in(whole, std::ios::binary);
  std::vector<uint8_t> gz((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  gz.resize(gz.size() / 2);
  const std::string cut = dir.File("cut.gz");
  WritePlain(cut, gz);

  absl::StatusOr<at::Tensor> images = ReadIdxImages(cut);
  EXPECT_EQ(images.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(images.status().message(), HasSubstr(cut));
}

TEST(ReadIdxImagesTest, TruncatedHeaderIsDataLoss) {
  testing::TempDir dir;
  std::vector<uint8_t> bytes = IdxBytes(kImagesMagic, {3, 4, 5}, {});
  bytes.resize(10);
  WritePlain(dir.File("header"), bytes);

  absl::StatusOr<at::Tensor> images = ReadIdxImages(dir.File("header"));
  EXPECT_EQ(images.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(images.status().message(),
              AllOf(HasSubstr(dir.File("header")), HasSubstr("header")));
}

TEST(ReadIdxImagesTest, BadMagicIsInvalidArgument) {
  testing::TempDir dir;
  // A label file handed to the image reader.
  WritePlain(dir.File("labels"), IdxBytes(kLabelsMagic, {3}, {1, 2, 3}));

  absl::StatusOr<at::Tensor> images = ReadIdxImages(dir.File("labels"));
  EXPECT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(images.status().message(),
              AllOf(HasSubstr(dir.File("labels")), HasSubstr("magic"),
                    HasSubstr("0x00000801"), HasSubstr("0x00000803")));
}

TEST(ReadIdxLabelsTest, BadMagicIsInvalidArgument) {
  testing::TempDir dir;
  WritePlain(dir.File("text"), {'h', 'e', 'l', 'l', 'o', '\n', 'x', 'y'});

  absl::StatusOr<at::Tensor> labels = ReadIdxLabels(dir.File("text"));
  EXPECT_EQ(labels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(labels.status().message(),
              AllOf(HasSubstr(dir.File("text")), HasSubstr("magic")));
}

TEST(ReadIdxImagesTest, MissingFileIsNotFound) {
  testing::TempDir dir;
  const std::string path = dir.File("nope.gz");
  absl::StatusOr<at::Tensor> images = ReadIdxImages(path);
  EXPECT_EQ(images.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(images.status().message(), HasSubstr(path));

  absl::StatusOr<at::Tensor> labels = ReadIdxLabels(path);
  EXPECT_EQ(labels.status().code(), absl::StatusCode::kNotFound);
}

TEST(ReadIdxImagesTest, HugeHeaderClaimsAreRefusedBeforeAllocating) {
  testing::TempDir dir;
  WritePlain(dir.File("many"),
             IdxBytes(kImagesMagic, {0xFFFFFFFF, 28, 28}, {}));
  WritePlain(dir.File("wide"), IdxBytes(kImagesMagic, {1, 28, 100000}, {}));
  WritePlain(dir.File("flat"), IdxBytes(kImagesMagic, {1, 0, 28}, {}));

  for (const std::string name : {"many", "wide", "flat"}) {
    absl::StatusOr<at::Tensor> images = ReadIdxImages(dir.File(name));
    EXPECT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument)
        << name;
    EXPECT_THAT(images.status().message(), HasSubstr(dir.File(name)));
  }
}

// Issue 14: a 305 KB gzip file whose header claimed 1e8 images grew the
// reader to 1.7 GB. A claim beyond what the file can decompress to is
// refused before anything is allocated.
TEST(ReadIdxImagesTest, AClaimLargerThanTheFileCanHoldIsRefusedBeforeAllocating) {
  testing::TempDir dir;
  // 100,000,000 images of 28 x 28 claimed, 300 KB of zeros given: a gzip
  // stream of ~300 bytes.
  WriteGzip(dir.File("bomb.gz"),
            IdxBytes(kImagesMagic, {100000000, 28, 28}, std::vector<uint8_t>(300000, 0)));
  WritePlain(dir.File("bomb"), IdxBytes(kImagesMagic, {100000000, 28, 28}, {1, 2, 3}));
  for (const std::string name : {"bomb.gz", "bomb"}) {
    absl::StatusOr<at::Tensor> images = ReadIdxImages(dir.File(name));
    EXPECT_EQ(images.status().code(), absl::StatusCode::kDataLoss) << name;
    EXPECT_THAT(images.status().message(),
                AllOf(HasSubstr(dir.File(name)), HasSubstr("78400000000 bytes"),
                      HasSubstr("more than a file of its size can hold")));
  }
  // A highly compressed but honest file still reads: 2,000 blank images.
  WriteGzip(dir.File("blank.gz"),
            IdxBytes(kImagesMagic, {2000, 28, 28}, std::vector<uint8_t>(2000 * 28 * 28, 0)));
  absl::StatusOr<at::Tensor> blank = ReadIdxImages(dir.File("blank.gz"));
  ASSERT_TRUE(blank.ok()) << blank.status();
  EXPECT_EQ(blank->size(0), 2000);
}

// Issue 14: `shoal infer --input` naming a FIFO hung in open().
TEST(ReadIdxImagesTest, AFifoIsRefusedWithoutWaiting) {
  testing::TempDir dir;
  const std::string fifo = dir.File("images.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  absl::StatusOr<at::Tensor> images = ReadIdxImages(fifo);
  EXPECT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(images.status().message(), AllOf(HasSubstr(fifo), HasSubstr("a FIFO")));
  absl::StatusOr<at::Tensor> folder = ReadIdxLabels(dir.path());
  EXPECT_THAT(folder.status().message(), HasSubstr("a folder, not a regular file"));
}

TEST(ReadIdxImagesTest, TrailingBytesAreInvalidArgument) {
  testing::TempDir dir;
  std::vector<uint8_t> pixels = Pixels(2, 3, 3);
  pixels.push_back(0);
  WritePlain(dir.File("long"), IdxBytes(kImagesMagic, {2, 3, 3}, pixels));

  absl::StatusOr<at::Tensor> images = ReadIdxImages(dir.File("long"));
  EXPECT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(images.status().message(), HasSubstr(dir.File("long")));
}

TEST(LoadIdxDatasetTest, ScalesImagesToTheUnitIntervalWithoutNormalizing) {
  testing::TempDir dir;
  WriteGzip(dir.File("i.gz"),
            IdxBytes(kImagesMagic, {2, 1, 2}, {0, 255, 51, 0}));
  WriteGzip(dir.File("l.gz"), IdxBytes(kLabelsMagic, {2}, {4, 9}));

  absl::StatusOr<Dataset> data =
      LoadIdxDataset(dir.File("i.gz"), dir.File("l.gz"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->size(), 2);
  EXPECT_EQ(data->inputs.scalar_type(), at::kFloat);
  EXPECT_EQ(data->inputs.sizes(), (std::vector<int64_t>{2, 1, 1, 2}));
  EXPECT_FLOAT_EQ(data->inputs[0][0][0][0].item<float>(), 0);
  EXPECT_FLOAT_EQ(data->inputs[0][0][0][1].item<float>(), 1);
  EXPECT_NEAR(data->inputs[1][0][0][0].item<float>(), 0.2, 1e-6);
  EXPECT_TRUE(at::equal(data->targets, at::tensor({4, 9}, at::kLong)));
}

TEST(LoadIdxDatasetTest, CountMismatchIsInvalidArgumentNamingBothFiles) {
  testing::TempDir dir;
  WritePlain(dir.File("i"), IdxBytes(kImagesMagic, {3, 2, 2}, Pixels(3, 2, 2)));
  WritePlain(dir.File("l"), IdxBytes(kLabelsMagic, {2}, {1, 2}));

  absl::StatusOr<Dataset> data = LoadIdxDataset(dir.File("i"), dir.File("l"));
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(),
              AllOf(HasSubstr(dir.File("i")), HasSubstr(dir.File("l")),
                    HasSubstr("3 images"), HasSubstr("2 labels")));
}

TEST(LoadIdxDirTest, FindsGzippedAndUncompressedNames) {
  testing::TempDir dir;
  WriteGzip(dir.File("t10k-images-idx3-ubyte.gz"),
            IdxBytes(kImagesMagic, {3, 28, 28}, Pixels(3, 28, 28)));
  WritePlain(dir.File("t10k-labels-idx1-ubyte"),
             IdxBytes(kLabelsMagic, {3}, {0, 5, 9}));

  absl::StatusOr<Dataset> data = LoadIdxDir(dir.path(), /*test=*/true);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->size(), 3);
  EXPECT_EQ(data->inputs.sizes(), (std::vector<int64_t>{3, 1, 28, 28}));

  // The train split is not there.
  absl::StatusOr<Dataset> train = LoadIdxDir(dir.path(), /*test=*/false);
  EXPECT_EQ(train.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(train.status().message(),
              AllOf(HasSubstr("train-images-idx3-ubyte"), HasSubstr(dir.path()),
                    HasSubstr("dataset-fashion-mnist")));
}

TEST(DatasetTest, SubsetCopiesTheChosenExamplesInOrder) {
  Dataset data{at::arange(5 * 4, at::kFloat).reshape({5, 1, 2, 2}),
               at::tensor({0, 1, 2, 3, 4}, at::kLong)};
  Dataset sub = data.Subset({4, 1, 1});
  EXPECT_EQ(sub.size(), 3);
  EXPECT_TRUE(at::equal(sub.targets, at::tensor({4, 1, 1}, at::kLong)));
  EXPECT_TRUE(at::equal(sub.inputs[0], data.inputs[4]));
  EXPECT_TRUE(at::equal(sub.inputs[2], data.inputs[1]));

  sub.inputs.fill_(-1);  // A copy: the original is untouched.
  EXPECT_EQ(data.inputs[4][0][0][0].item<float>(), 16);

  EXPECT_EQ(data.Subset({}).size(), 0);
  EXPECT_EQ(Dataset{}.size(), 0);
}

// The one test that reads the real data: the container is expected to have
// Debian's package installed, so its absence is a failure, not a skip.
TEST(LoadIdxDirTest, LoadsTheInstalledFashionMnistTestSplit) {
  ASSERT_TRUE(std::filesystem::is_directory(kFashionMnistDir))
      << kFashionMnistDir
      << " is missing: install it with `apt-get install dataset-fashion-mnist`";
  absl::StatusOr<Dataset> data =
      LoadIdxDir(kFashionMnistDir, /*test=*/true);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->size(), 10000);
  EXPECT_EQ(data->inputs.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  EXPECT_GE(data->targets.min().item<int64_t>(), 0);
  EXPECT_LT(data->targets.max().item<int64_t>(), 10);
  // The test split is balanced: 1000 of each class.
  EXPECT_TRUE(
      at::equal(at::bincount(data->targets), at::full({10}, 1000, at::kLong)));
  // Fashion-MNIST's own mean and std leave the split near mean 0, std 1.
  EXPECT_NEAR(data->inputs.mean().item<float>(), 0.2860, 0.01);
  data->inputs.sub_(0.2860).div_(0.3530);
  EXPECT_NEAR(data->inputs.mean().item<float>(), 0.0, 0.05);
  EXPECT_NEAR(data->inputs.std().item<float>(), 1.0, 0.05);
}

}  // namespace
}  // namespace shoal::client
