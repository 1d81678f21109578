// Tests of the CSV, image-folder and torch.save readers: fixtures written
// at run time into a temp dir, plus the real sklearn files Debian ships.
// jpeglib.h needs FILE and size_t declared first.
#include <ATen/ATen.h>
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "client/data/csv_reader.h"
#include "client/data/image_folder.h"
#include "client/data/source.h"
#include "client/data/torch_file.h"
#include "client/model.h"
#include "client/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing.h"

namespace shoal::client {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kSklearnData[] = "/usr/lib/python3/dist-packages/sklearn/datasets/data";
constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

void WriteText(const std::string& path, absl::string_view text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(text.data(), text.size());
  ASSERT_TRUE(out.good()) << path;
}

void WriteGzipText(const std::string& path, absl::string_view text) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, text.data(), text.size()), static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

CsvOptions ClassOptions(const std::string& target) {
  CsvOptions options;
  options.target_columns = {target};
  return options;
}

// ReadCsvError writes `text` to a file, reads it with `options`, expects an
// error and returns it.
absl::Status ReadCsvError(const testing::TempDir& dir, absl::string_view text,
                          const CsvOptions& options) {
  const std::string path = dir.File("bad.csv");
  WriteText(path, text);
  absl::StatusOr<Dataset> data = ReadCsv(path, options);
  EXPECT_FALSE(data.ok());
  return data.status();
}

// ---------------------------------------------------------------- CSV

TEST(CsvReaderTest, ReadsFeaturesInHeaderOrderAndClassTarget) {
  testing::TempDir dir;
  const std::string path = dir.File("data.csv");
  // CRLF, a quoted header name, an ignored text column, blank lines at the end.
  WriteText(path,
            "id,\"width, cm\",label,height\r\n"
            "a,1.5,2,-3\r\n"
            "b,0.25,0,4e2\r\n"
            "\r\n\n");
  CsvOptions options = ClassOptions("label");
  options.ignore_columns = {"id"};
  absl::StatusOr<Dataset> data = ReadCsv(path, options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(at::equal(data->inputs, at::tensor({1.5f, -3.0f, 0.25f, 400.0f}).reshape({2, 2})));
  EXPECT_EQ(data->targets.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(data->targets, at::tensor({2, 0}, at::kLong)));
}

TEST(CsvReaderTest, ReadsGzippedFileLikePlainOne) {
  testing::TempDir dir;
  const std::string text = "x,y\n1,0\n2,1\n3,1\n";
  WriteText(dir.File("plain.csv"), text);
  WriteGzipText(dir.File("packed.csv.gz"), text);
  absl::StatusOr<Dataset> plain = ReadCsv(dir.File("plain.csv"), ClassOptions("y"));
  absl::StatusOr<Dataset> packed = ReadCsv(dir.File("packed.csv.gz"), ClassOptions("y"));
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(packed.ok()) << packed.status();
  EXPECT_TRUE(at::equal(plain->inputs, packed->inputs));
  EXPECT_TRUE(at::equal(plain->targets, packed->targets));
}

TEST(CsvReaderTest, FloatTargetsAreVectorForOneColumnMatrixForSeveral) {
  testing::TempDir dir;
  const std::string path = dir.File("data.csv");
  WriteText(path, "a,t1,b,t2\n1,0.5,2,-1\n3,1.5,4,-2\n");
  CsvOptions options;
  options.targets = TargetType::kFloat;
  options.target_columns = {"t2", "t1"};  // their order, not the file's
  absl::StatusOr<Dataset> two = ReadCsv(path, options);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_TRUE(at::equal(two->inputs, at::tensor({1.f, 2.f, 3.f, 4.f}).reshape({2, 2})));
  EXPECT_TRUE(at::equal(two->targets, at::tensor({-1.f, 0.5f, -2.f, 1.5f}).reshape({2, 2})));

  options.target_columns = {"t1"};
  options.ignore_columns = {"t2"};
  absl::StatusOr<Dataset> one = ReadCsv(path, options);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->targets.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(one->targets, at::tensor({0.5f, 1.5f})));
}

TEST(CsvReaderTest, ClassLabelWrittenAsWholeFloatIsAccepted) {
  testing::TempDir dir;
  const std::string path = dir.File("data.csv");
  WriteText(path, "x,y\n1,3.0\n2,1e1\n");
  absl::StatusOr<Dataset> data = ReadCsv(path, ClassOptions("y"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(at::equal(data->targets, at::tensor({3, 10}, at::kLong)));
}

TEST(CsvReaderTest, ReadsBlankSeparatedFileWithoutHeaderByGivenNames) {
  testing::TempDir dir;
  const std::string path = dir.File("data.txt");
  WriteText(path, "# a title line\n  1 2\t 7\n3   4 8  \n");
  CsvOptions options = ClassOptions("c");
  options.skip_lines = 1;
  options.header = false;
  options.column_names = {"a", "b", "c"};
  options.delimiter = ' ';
  absl::StatusOr<Dataset> data = ReadCsv(path, options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(at::equal(data->inputs, at::tensor({1.f, 2.f, 3.f, 4.f}).reshape({2, 2})));
  EXPECT_TRUE(at::equal(data->targets, at::tensor({7, 8}, at::kLong)));
}

TEST(CsvReaderTest, ColumnsWithoutHeaderOrNamesAreNamedByPosition) {
  testing::TempDir dir;
  const std::string path = dir.File("data.csv");
  WriteText(path, "5,6,1\n7,8,0\n");
  CsvOptions options = ClassOptions("3");
  options.header = false;
  absl::StatusOr<Dataset> data = ReadCsv(path, options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(at::equal(data->inputs, at::tensor({5.f, 6.f, 7.f, 8.f}).reshape({2, 2})));
  EXPECT_TRUE(at::equal(data->targets, at::tensor({1, 0}, at::kLong)));
}

TEST(CsvReaderTest, ReadsTargetsFromASecondFileRowByRow) {
  testing::TempDir dir;
  WriteText(dir.File("x.csv"), "a,b\n1,2\n3,4\n");
  WriteText(dir.File("y.csv"), "0.5\n-0.5\n");
  CsvOptions options;
  options.targets = TargetType::kFloat;
  options.target_columns = {"y"};
  options.targets_path = dir.File("y.csv");
  // The header applies to both files, so the targets file needs one too.
  absl::StatusOr<Dataset> data = ReadCsv(dir.File("x.csv"), options);
  ASSERT_FALSE(data.ok());
  WriteText(dir.File("y.csv"), "y\n0.5\n-0.5\n");
  data = ReadCsv(dir.File("x.csv"), options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(at::equal(data->inputs, at::tensor({1.f, 2.f, 3.f, 4.f}).reshape({2, 2})));
  EXPECT_TRUE(at::equal(data->targets, at::tensor({0.5f, -0.5f})));

  WriteText(dir.File("y.csv"), "y\n0.5\n");
  data = ReadCsv(dir.File("x.csv"), options);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(), AllOf(HasSubstr("holds 2 rows"), HasSubstr("holds 1")));
}

TEST(CsvReaderTest, RefusesRaggedRowNamingLine) {
  testing::TempDir dir;
  const absl::Status status = ReadCsvError(dir, "a,b,y\n1,2,0\n3,4\n", ClassOptions("y"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(dir.File("bad.csv") + ":3:"), HasSubstr("2 cells"),
                                      HasSubstr("3 columns")));
}

TEST(CsvReaderTest, RefusesNonNumericCellQuotingItWithLineAndColumn) {
  testing::TempDir dir;
  const absl::Status status = ReadCsvError(dir, "a,b,y\n1,2,0\n3,4x,1\n", ClassOptions("y"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr(":3:"), HasSubstr("column 'b'"), HasSubstr("'4x' is not a number")));
}

TEST(CsvReaderTest, RefusesEmptyCell) {
  testing::TempDir dir;
  const absl::Status status = ReadCsvError(dir, "a,b,y\n1,,0\n", ClassOptions("y"));
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr(":2:"), HasSubstr("column 'b'"), HasSubstr("empty cell")));
}

TEST(CsvReaderTest, RefusesNanAndInfinityFeatures) {
  testing::TempDir dir;
  for (const char* cell : {"nan", "NaN", "inf", "-Infinity", "1e39"}) {
    const absl::Status status =
        ReadCsvError(dir, std::string("a,y\n1,0\n") + cell + ",1\n", ClassOptions("y"));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << cell;
    EXPECT_THAT(status.message(),
                AllOf(HasSubstr(":3:"), HasSubstr("column 'a'"), HasSubstr("not a finite float32")))
        << cell;
  }
}

TEST(CsvReaderTest, RefusesMissingTargetColumnListingTheColumnsFound) {
  testing::TempDir dir;
  const absl::Status status = ReadCsvError(dir, "a,b,label\n1,2,0\n", ClassOptions("target"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("no target column 'target'"), HasSubstr("'a', 'b', 'label'")));
}

TEST(CsvReaderTest, ListOfColumnsFoundIsBounded) {
  testing::TempDir dir;
  std::string header;
  for (int i = 0; i < 500; ++i) header += "c" + std::to_string(i) + ",";
  header += "y\n";
  const absl::Status status = ReadCsvError(dir, header, ClassOptions("nope"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("and 481 more"));
  EXPECT_LT(status.message().size(), 600u);
}

TEST(CsvReaderTest, RefusesMissingIgnoredColumn) {
  testing::TempDir dir;
  CsvOptions options = ClassOptions("y");
  options.ignore_columns = {"id"};
  EXPECT_EQ(ReadCsvError(dir, "a,y\n1,0\n", options).code(), absl::StatusCode::kNotFound);
}

TEST(CsvReaderTest, RefusesDuplicateColumnNames) {
  testing::TempDir dir;
  const absl::Status status = ReadCsvError(dir, "a,b,a,y\n1,2,3,0\n", ClassOptions("y"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(":1:"), HasSubstr("'a' appears twice")));
}

TEST(CsvReaderTest, RefusesNegativeOrFractionalClassLabels) {
  testing::TempDir dir;
  for (const char* label : {"-1", "1.5", "two", "1e30"}) {
    const absl::Status status =
        ReadCsvError(dir, std::string("a,y\n1,0\n2,") + label + "\n", ClassOptions("y"));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << label;
    EXPECT_THAT(status.message(), AllOf(HasSubstr(":3:"), HasSubstr("column 'y'"),
                                        HasSubstr("is not a non-negative integer")))
        << label;
  }
}

TEST(CsvReaderTest, RefusesClassLabelAtOrAboveNumClasses) {
  testing::TempDir dir;
  CsvOptions options = ClassOptions("y");
  options.num_classes = 3;
  const absl::Status status = ReadCsvError(dir, "a,y\n1,2\n2,3\n", options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(":3:"), HasSubstr("not below 3")));
}

TEST(CsvReaderTest, RefusesEmptyFileAndHeaderOnly) {
  testing::TempDir dir;
  EXPECT_THAT(ReadCsvError(dir, "", ClassOptions("y")).message(),
              HasSubstr("empty: no header row"));
  EXPECT_THAT(ReadCsvError(dir, "a,y\n\n", ClassOptions("y")).message(),
              HasSubstr("a header but no rows"));
  CsvOptions headerless = ClassOptions("2");
  headerless.header = false;
  EXPECT_THAT(ReadCsvError(dir, "\n", headerless).message(), HasSubstr("empty: no rows"));
  CsvOptions skipping = ClassOptions("y");
  skipping.skip_lines = 3;
  EXPECT_THAT(ReadCsvError(dir, "title\n", skipping).message(), HasSubstr("empty"));
}

TEST(CsvReaderTest, RefusesBlankLineBetweenRows) {
  testing::TempDir dir;
  EXPECT_THAT(ReadCsvError(dir, "a,y\n1,0\n\n2,1\n", ClassOptions("y")).message(),
              AllOf(HasSubstr(":3:"), HasSubstr("blank line")));
}

TEST(CsvReaderTest, ReadsQuotedCellsAndRefusesUnclosedQuote) {
  testing::TempDir dir;
  const std::string path = dir.File("quoted.csv");
  WriteText(path, "\"a \"\"q\"\"\",y\n\"1.5\", \"0\" \n");
  absl::StatusOr<Dataset> data = ReadCsv(path, ClassOptions("y"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(at::equal(data->inputs, at::tensor({1.5f}).reshape({1, 1})));
  EXPECT_TRUE(at::equal(data->targets, at::tensor({0}, at::kLong)));
  // The first column is named 'a "q"'; ignoring it leaves no features.
  CsvOptions options = ClassOptions("y");
  options.ignore_columns = {"a \"q\""};
  EXPECT_THAT(ReadCsv(path, options).status().message(), HasSubstr("no feature columns"));

  EXPECT_THAT(ReadCsvError(dir, "a,y\n\"1,0\n", ClassOptions("y")).message(),
              AllOf(HasSubstr(":2:"), HasSubstr("not closed")));
}

TEST(CsvReaderTest, RefusesLineLongerThanLimitAndTooManyColumns) {
  testing::TempDir dir;
  CsvOptions options = ClassOptions("y");
  options.max_line_bytes = 8;
  EXPECT_THAT(ReadCsvError(dir, "a,y\n1.000000,0\n", options).message(),
              AllOf(HasSubstr(":2:"), HasSubstr("longer than the limit of 8")));
  options = ClassOptions("y");
  options.max_columns = 2;
  EXPECT_THAT(ReadCsvError(dir, "a,b,y\n1,2,0\n", options).message(),
              AllOf(HasSubstr(":1:"), HasSubstr("more than the limit of 2")));
}

TEST(CsvReaderTest, RefusesFileLargerThanLimit) {
  testing::TempDir dir;
  CsvOptions options = ClassOptions("y");
  options.max_file_bytes = 10;
  EXPECT_EQ(ReadCsvError(dir, "a,y\n1,0\n2,1\n3,1\n", options).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(CsvReaderTest, TruncatedGzipIsDataLoss) {
  testing::TempDir dir;
  std::string text = "a,b,y\n";
  for (int i = 0; i < 2000; ++i) {
    text += std::to_string(i) + "," + std::to_string(i * 7 % 13) + ",1\n";
  }
  const std::string whole = dir.File("whole.csv.gz");
  WriteGzipText(whole, text);
  std::ifstream in(whole, std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = dir.File("cut.csv.gz");
  WriteText(cut, gz.substr(0, gz.size() / 2));
  absl::StatusOr<Dataset> data = ReadCsv(cut, ClassOptions("y"));
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(), AllOf(HasSubstr(cut), HasSubstr("truncated")));
}

TEST(CsvReaderTest, MissingFileIsNotFound) {
  testing::TempDir dir;
  EXPECT_EQ(ReadCsv(dir.File("nope.csv"), ClassOptions("y")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(CsvReaderTest, RefusesBadOptions) {
  testing::TempDir dir;
  WriteText(dir.File("d.csv"), "a,y,z\n1,0,1\n");
  CsvOptions none;
  EXPECT_EQ(ReadCsv(dir.File("d.csv"), none).status().code(), absl::StatusCode::kInvalidArgument);
  CsvOptions two_classes;
  two_classes.target_columns = {"y", "z"};
  EXPECT_EQ(ReadCsv(dir.File("d.csv"), two_classes).status().code(),
            absl::StatusCode::kInvalidArgument);
  CsvOptions names_with_header = ClassOptions("y");
  names_with_header.column_names = {"a", "y", "z"};
  EXPECT_THAT(ReadCsv(dir.File("d.csv"), names_with_header).status().message(),
              HasSubstr("header = false"));
  CsvOptions both = ClassOptions("y");
  both.ignore_columns = {"y"};
  EXPECT_THAT(ReadCsv(dir.File("d.csv"), both).status().message(),
              HasSubstr("both a target and ignored"));
}

// Real data from a Debian package (python3-sklearn, installed by
// scripts/install-deps.sh): its absence is a failure, not a skip.
TEST(CsvReaderTest, ReadsSklearnBreastCancerFromDebian) {
  const std::string path = std::string(kSklearnData) + "/breast_cancer.csv";
  ASSERT_TRUE(std::filesystem::exists(path))
      << path << " is missing: apt-get install python3-sklearn";
  // The first line is "569,30,malignant,benign" (counts and class names),
  // then 569 rows of 30 features and the class, no header.
  CsvOptions options = ClassOptions("31");
  options.skip_lines = 1;
  options.header = false;
  options.num_classes = 2;
  absl::StatusOr<Dataset> data = ReadCsv(path, options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->inputs.sizes(), (std::vector<int64_t>{569, 30}));
  // 212 malignant (0), 357 benign (1), as sklearn's description says.
  EXPECT_TRUE(at::equal(at::bincount(data->targets), at::tensor({212, 357}, at::kLong)));
  EXPECT_EQ(data->inputs[0][0].item<float>(), 17.99f);
  EXPECT_EQ(data->inputs[0][29].item<float>(), 0.1189f);
}

TEST(CsvReaderTest, ReadsSklearnDiabetesFromDebian) {
  const std::string dir = kSklearnData;
  ASSERT_TRUE(std::filesystem::exists(dir + "/diabetes_data_raw.csv.gz"))
      << dir << " is missing: apt-get install python3-sklearn";
  // Both files: gzipped, blank-separated, no header; the 10 features in
  // one, the disease progression (a float) in the other.
  CsvOptions options;
  options.targets = TargetType::kFloat;
  options.target_columns = {"progression"};
  options.targets_path = dir + "/diabetes_target.csv.gz";
  options.header = false;
  options.delimiter = ' ';
  absl::StatusOr<Dataset> data = ReadCsv(dir + "/diabetes_data_raw.csv.gz", options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->inputs.sizes(), (std::vector<int64_t>{442, 10}));
  EXPECT_EQ(data->targets.sizes(), (std::vector<int64_t>{442}));
  EXPECT_EQ(data->targets.scalar_type(), at::kFloat);
  // First row: "59 2 32.1 101.0 157 93.2 38.0 4.0 4.8598 87", target 151.
  EXPECT_TRUE(at::equal(data->inputs[0], at::tensor({59.f, 2.f, 32.1f, 101.f, 157.f, 93.2f, 38.f,
                                                     4.f, 4.8598f, 87.f})));
  EXPECT_EQ(data->targets[0].item<float>(), 151.f);
  EXPECT_EQ(data->targets.min().item<float>(), 25.f);
  EXPECT_EQ(data->targets.max().item<float>(), 346.f);
}

// ---------------------------------------------------------- image folder

// Pixels: 8-bit, rows top to bottom, channels interleaved.
using Pixels = std::vector<uint8_t>;

// Noise returns h x w x c pixels from a fixed seed.
Pixels Noise(int h, int w, int c, uint32_t seed) {
  Pixels p(h * w * c);
  for (uint8_t& v : p) {
    seed = seed * 1664525u + 1013904223u;
    v = seed >> 24;
  }
  return p;
}

// WritePng writes with libpng: channels 1 (gray), 3 (RGB) or 4 (RGBA).
void WritePng(const std::string& path, int h, int w, int channels, const Pixels& pixels) {
  fs::create_directories(fs::path(path).parent_path());
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = w;
  image.height = h;
  image.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
  ASSERT_TRUE(png_image_write_to_file(&image, path.c_str(), 0, pixels.data(), 0, nullptr))
      << path << ": " << image.message;
}

// WriteJpeg writes with libjpeg at quality 95: channels 1 or 3.
void WriteJpeg(const std::string& path, int h, int w, int channels, const Pixels& pixels) {
  fs::create_directories(fs::path(path).parent_path());
  FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);  // exits on error: fine in a test
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, file);
  cinfo.image_width = w;
  cinfo.image_height = h;
  cinfo.input_components = channels;
  cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 95, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(pixels.data()) + size_t{cinfo.next_scanline} * w * channels;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  ASSERT_EQ(std::fclose(file), 0);
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Expected returns pixels as float32 [C, H, W] / 255, as the reader should.
at::Tensor Expected(const Pixels& pixels, int h, int w, int c) {
  return at::tensor(std::vector<float>(pixels.begin(), pixels.end()))
      .reshape({h, w, c})
      .permute({2, 0, 1})
      .div(255.0);
}

ImageFolderOptions Size(int64_t h, int64_t w, int64_t channels) {
  ImageFolderOptions options;
  options.height = h;
  options.width = w;
  options.channels = channels;
  return options;
}

absl::Status ReadFolderError(const std::string& dir, const ImageFolderOptions& options) {
  absl::StatusOr<LabelledImages> images = ReadImageFolder(dir, options);
  EXPECT_FALSE(images.ok());
  return images.status();
}

TEST(ImageFolderTest, ReadsClassesAndFilesInSortedOrderScaledToUnit) {
  testing::TempDir dir;
  const Pixels cat1 = Noise(4, 5, 3, 1), cat2 = Noise(4, 5, 3, 2), dog = Noise(4, 5, 3, 3);
  WritePng(dir.File("dog/x.png"), 4, 5, 3, dog);
  WritePng(dir.File("cat/2.png"), 4, 5, 3, cat2);
  WritePng(dir.File("cat/1.PNG"), 4, 5, 3, cat1);
  WriteText(dir.File("cat/.DS_Store"), "junk");  // hidden: ignored
  fs::create_directories(dir.File(".thumbnails"));
  absl::StatusOr<LabelledImages> images = ReadImageFolder(dir.path(), Size(4, 5, 3));
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ(images->class_names, (std::vector<std::string>{"cat", "dog"}));
  const Dataset& data = images->data;
  EXPECT_EQ(data.inputs.sizes(), (std::vector<int64_t>{3, 3, 4, 5}));
  EXPECT_TRUE(at::equal(data.targets, at::tensor({0, 0, 1}, at::kLong)));
  EXPECT_TRUE(at::equal(data.inputs[0], Expected(cat1, 4, 5, 3)));
  EXPECT_TRUE(at::equal(data.inputs[1], Expected(cat2, 4, 5, 3)));
  EXPECT_TRUE(at::equal(data.inputs[2], Expected(dog, 4, 5, 3)));
}

TEST(ImageFolderTest, ConvertsGrayToRgbAndRgbToGray) {
  testing::TempDir dir;
  const Pixels gray = Noise(3, 3, 1, 7);
  WritePng(dir.File("a/gray.png"), 3, 3, 1, gray);
  absl::StatusOr<LabelledImages> rgb = ReadImageFolder(dir.path(), Size(3, 3, 3));
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  const at::Tensor g = Expected(gray, 3, 3, 1);
  EXPECT_TRUE(at::equal(rgb->data.inputs[0], at::cat({g, g, g})));

  testing::TempDir dir2;
  Pixels grey_rgb;  // an RGB image whose pixels are shades of gray
  for (uint8_t v : gray) grey_rgb.insert(grey_rgb.end(), {v, v, v});
  WritePng(dir2.File("a/rgb.png"), 3, 3, 3, grey_rgb);
  absl::StatusOr<LabelledImages> back = ReadImageFolder(dir2.path(), Size(3, 3, 1));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(at::allclose(back->data.inputs[0], g, 0, 1.0 / 255));
}

TEST(ImageFolderTest, ReadsJpegCloseToWhatWasWritten) {
  testing::TempDir dir;
  // Smooth content: JPEG at quality 95 keeps it within a few levels.
  Pixels smooth;
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) smooth.insert(smooth.end(), {uint8_t(8 * x), uint8_t(8 * y), 128});
  WriteJpeg(dir.File("b/photo.JPEG"), 16, 16, 3, smooth);
  WriteJpeg(dir.File("a/gray.jpg"), 16, 16, 1, Pixels(256, 77));
  absl::StatusOr<LabelledImages> images = ReadImageFolder(dir.path(), Size(16, 16, 3));
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_TRUE(at::equal(images->data.targets, at::tensor({0, 1}, at::kLong)));
  EXPECT_TRUE(
      at::allclose(images->data.inputs[0], at::full({3, 16, 16}, 77 / 255.0), 0, 1.5 / 255));
  EXPECT_LT((images->data.inputs[1] - Expected(smooth, 16, 16, 3)).abs().max().item<float>(),
            6.0 / 255);
}

TEST(ImageFolderTest, TransparentPixelsAreCompositedOntoBlack) {
  testing::TempDir dir;
  WritePng(dir.File("a/alpha.png"), 1, 2, 4, {200, 100, 50, 0, 200, 100, 50, 255});
  absl::StatusOr<LabelledImages> images = ReadImageFolder(dir.path(), Size(1, 2, 3));
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_TRUE(at::equal(images->data.inputs[0], Expected({0, 0, 0, 200, 100, 50}, 1, 2, 3)));
}

TEST(ImageFolderTest, RefusesImageOfAnotherSizeNamingFileAndSizes) {
  testing::TempDir dir;
  WritePng(dir.File("a/ok.png"), 4, 4, 3, Noise(4, 4, 3, 1));
  WritePng(dir.File("a/wide.png"), 4, 6, 3, Noise(4, 6, 3, 2));
  const absl::Status status = ReadFolderError(dir.path(), Size(4, 4, 3));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(dir.File("a/wide.png")), HasSubstr("6 x 4"),
                                      HasSubstr("4 x 4 expected")));
}

TEST(ImageFolderTest, ResizesWhenAsked) {
  testing::TempDir dir;
  WritePng(dir.File("a/big.png"), 8, 12, 1, Pixels(96, 200));
  ImageFolderOptions options = Size(4, 6, 1);
  options.resize = true;
  absl::StatusOr<LabelledImages> images = ReadImageFolder(dir.path(), options);
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ(images->data.inputs.sizes(), (std::vector<int64_t>{1, 1, 4, 6}));
  EXPECT_TRUE(at::allclose(images->data.inputs, at::full({1, 1, 4, 6}, 200 / 255.0)));
}

TEST(ImageFolderTest, RefusesCorruptAndTruncatedImagesNamingTheFile) {
  const std::string png = [] {
    testing::TempDir d;
    WritePng(d.File("x.png"), 32, 32, 3, Noise(32, 32, 3, 5));
    return ReadBytes(d.File("x.png"));
  }();
  const std::string jpeg = [] {
    testing::TempDir d;
    WriteJpeg(d.File("x.jpg"), 32, 32, 3, Noise(32, 32, 3, 5));
    return ReadBytes(d.File("x.jpg"));
  }();
  std::string flipped_png = png;
  flipped_png[png.size() / 2] ^= 0x55;  // inside IDAT: the CRC fails
  std::string flipped_jpeg = jpeg;
  for (size_t i = jpeg.size() / 2; i < jpeg.size() / 2 + 40; ++i) flipped_jpeg[i] = '\xff';
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"truncated.png", png.substr(0, png.size() / 2)},
      {"flipped.png", flipped_png},
      {"header.png", png.substr(0, 20)},
      {"truncated.jpg", jpeg.substr(0, jpeg.size() / 2)},
      {"flipped.jpg", flipped_jpeg},
      {"header.jpg", jpeg.substr(0, 10)},
      {"text.png", "hello, world"},
      {"empty.jpeg", ""},
  };
  for (const auto& [name, bytes] : bad) {
    testing::TempDir dir;
    WriteText(dir.File("a/good.png"), png);
    WriteText(dir.File("a/" + name), bytes);
    const absl::Status status = ReadFolderError(dir.path(), Size(32, 32, 3));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(status.message(), HasSubstr(dir.File("a/" + name))) << name;
  }
}

TEST(ImageFolderTest, RefusesStrayFilesAndFolders) {
  {
    testing::TempDir dir;
    WritePng(dir.File("a/ok.png"), 2, 2, 3, Noise(2, 2, 3, 1));
    WriteText(dir.File("a/notes.txt"), "hi");
    EXPECT_THAT(ReadFolderError(dir.path(), Size(2, 2, 3)).message(),
                AllOf(HasSubstr(dir.File("a/notes.txt")), HasSubstr("not a .png")));
  }
  {
    testing::TempDir dir;
    WritePng(dir.File("a/ok.png"), 2, 2, 3, Noise(2, 2, 3, 1));
    WriteText(dir.File("README"), "hi");
    EXPECT_THAT(ReadFolderError(dir.path(), Size(2, 2, 3)).message(),
                AllOf(HasSubstr(dir.File("README")), HasSubstr("not a folder")));
  }
  {
    testing::TempDir dir;
    WritePng(dir.File("a/nested/ok.png"), 2, 2, 3, Noise(2, 2, 3, 1));
    EXPECT_THAT(ReadFolderError(dir.path(), Size(2, 2, 3)).message(),
                HasSubstr(dir.File("a/nested")));
  }
}

TEST(ImageFolderTest, MissingOrEmptyFolderIsNotFound) {
  testing::TempDir dir;
  EXPECT_EQ(ReadFolderError(dir.File("nope"), Size(2, 2, 3)).code(), absl::StatusCode::kNotFound);
  fs::create_directories(dir.File("a"));  // a class with no images
  EXPECT_EQ(ReadFolderError(dir.path(), Size(2, 2, 3)).code(), absl::StatusCode::kNotFound);
}

TEST(ImageFolderTest, ClassNamesKeepIndicesWhenAClassIsAbsent) {
  testing::TempDir dir;
  WritePng(dir.File("dog/1.png"), 2, 2, 3, Noise(2, 2, 3, 1));
  ImageFolderOptions options = Size(2, 2, 3);
  options.class_names = {"cat", "dog", "eel"};
  absl::StatusOr<LabelledImages> images = ReadImageFolder(dir.path(), options);
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ(images->class_names, options.class_names);
  EXPECT_TRUE(at::equal(images->data.targets, at::tensor({1}, at::kLong)));

  WritePng(dir.File("fox/1.png"), 2, 2, 3, Noise(2, 2, 3, 1));
  EXPECT_THAT(ReadFolderError(dir.path(), options).message(),
              AllOf(HasSubstr("'fox'"), HasSubstr("not one of the 3 classes")));
}

TEST(ImageFolderTest, EnforcesLimits) {
  testing::TempDir dir;
  WritePng(dir.File("a/1.png"), 8, 8, 1, Pixels(64, 9));
  WritePng(dir.File("a/2.png"), 8, 8, 1, Pixels(64, 9));
  ImageFolderOptions options = Size(4, 4, 1);
  options.resize = true;
  options.max_side = 4;
  EXPECT_THAT(ReadFolderError(dir.path(), options).message(),
              AllOf(HasSubstr(dir.File("a/1.png")), HasSubstr("the limit is 4")));
  options = Size(8, 8, 1);
  options.max_files = 1;
  EXPECT_THAT(ReadFolderError(dir.path(), options).message(),
              HasSubstr("more than the limit of 1"));
  options = Size(8, 8, 1);
  options.max_tensor_bytes = 8 * 8 * 4;
  EXPECT_THAT(ReadFolderError(dir.path(), options).message(),
              HasSubstr("need more than the limit"));
  EXPECT_EQ(ReadFolderError(dir.path(), Size(8, 8, 2)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadFolderError(dir.path(), Size(0, 8, 1)).code(), absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------ torch.save

// Writes every torch.save fixture with Debian's python3-torch, in one run.
// same.csv is written first, from C++; the script reads it with Python's csv
// module and saves the same numbers, for the CSV-vs-torch.save test.
constexpr char kMakeTorchFiles[] = R"py(
import csv, sys, torch
d = sys.argv[1]
def save(name, obj, **kw):
    torch.save(obj, d + "/" + name, **kw)
long = torch.long
save("good.pt", {"x": torch.arange(12, dtype=torch.float32).reshape(3, 2, 2),
                 "y": torch.tensor([2, 0, 1])})
save("dtypes.pt", {"x": torch.tensor([[1, 255], [7, 0]], dtype=torch.uint8),
                   "y": torch.tensor([[0.5, 1.5], [2.5, -1.0]], dtype=torch.float64)})
save("int32_y.pt", {"x": torch.full((2, 3), 0.1, dtype=torch.float64),
                    "y": torch.tensor([1, 4], dtype=torch.int32)})
save("view.pt", {"x": torch.arange(20.).reshape(10, 2)[2:5], "y": torch.tensor([0, 1, 2])})
save("only_x.pt", {"x": torch.ones(2, 2)})
save("x_and_z.pt", {"x": torch.ones(2, 2), "z": torch.zeros(2, dtype=long)})
save("extra.pt", {"x": torch.ones(2, 2), "y": torch.zeros(2, dtype=long), "z": 1})
save("mismatch.pt", {"x": torch.ones(3, 2), "y": torch.zeros(4, dtype=long)})
save("tensor.pt", torch.ones(2, 2))
save("list_x.pt", {"x": [1.0, 2.0], "y": torch.zeros(2, dtype=long)})
save("negative.pt", {"x": torch.ones(2, 2), "y": torch.tensor([0, -1])})
save("nan.pt", {"x": torch.tensor([[1.0, float("nan")]]), "y": torch.tensor([0])})
save("bool_y.pt", {"x": torch.ones(2, 2), "y": torch.tensor([True, False])})
save("empty.pt", {"x": torch.ones(0, 2), "y": torch.zeros(0, dtype=long)})
save("one_d_x.pt", {"x": torch.ones(3), "y": torch.zeros(3, dtype=long)})
save("expanded.pt", {"x": torch.ones(1, 1).expand(1000000, 100),
                     "y": torch.zeros(1, dtype=long).expand(1000000)})
save("legacy.pt", {"x": torch.ones(2, 2), "y": torch.zeros(2, dtype=long)},
     _use_new_zipfile_serialization=False)
with open(d + "/same.csv") as f:
    rows = list(csv.reader(f))[1:]
save("same.pt", {"x": torch.tensor([[float(v) for v in r[:-1]] for r in rows], dtype=torch.float32),
                 "y": torch.tensor([int(r[-1]) for r in rows], dtype=torch.int64)})
)py";

constexpr char kSystemPython[] = "/usr/bin/python3";

class TorchFileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir;
    // 50 rows of 4 features from a fixed seed, written with 9 significant
    // digits (enough for any float32 to read back exactly), and a class.
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> uniform(-100, 100);
    std::vector<float> x;
    std::string csv = "a,b,c,d,label\n";
    for (int i = 0; i < 50; ++i) {
      for (int j = 0; j < 4; ++j) {
        x.push_back(uniform(rng));
        absl::StrAppendFormat(&csv, "%.9g,", x.back());
      }
      absl::StrAppend(&csv, i % 3, "\n");
    }
    same_x_ = new at::Tensor(at::tensor(x).reshape({50, 4}));
    WriteText(dir_->File("same.csv"), csv);
    WriteText(dir_->File("make.py"), kMakeTorchFiles);
    has_torch_ =
        std::system(absl::StrCat(kSystemPython, " -c 'import torch' 2>/dev/null").c_str()) == 0;
    if (has_torch_) {
      made_ =
          std::system(
              absl::StrCat(kSystemPython, " ", dir_->File("make.py"), " ", dir_->path()).c_str()) ==
          0;
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete same_x_;
  }
  void SetUp() override {
    if (!has_torch_)
      GTEST_SKIP() << kSystemPython << " has no torch (apt-get install python3-torch)";
    ASSERT_TRUE(made_) << "the fixture script failed";
  }
  static std::string File(const std::string& name) { return dir_->File(name); }

  // Error reads `name`, expects InvalidArgument and returns the message.
  static std::string Error(const std::string& name) {
    absl::StatusOr<Dataset> data = ReadTorchFile(File(name));
    EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(data.status().message(), HasSubstr(File(name)));
    return std::string(data.status().message());
  }

  static testing::TempDir* dir_;
  static at::Tensor* same_x_;
  static bool has_torch_;
  static bool made_;
};
testing::TempDir* TorchFileTest::dir_ = nullptr;
at::Tensor* TorchFileTest::same_x_ = nullptr;
bool TorchFileTest::has_torch_ = false;
bool TorchFileTest::made_ = false;

TEST_F(TorchFileTest, ReadsDictOfXAndY) {
  absl::StatusOr<Dataset> data = ReadTorchFile(File("good.pt"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(at::equal(data->inputs, at::arange(12, at::kFloat).reshape({3, 2, 2})));
  EXPECT_TRUE(at::equal(data->targets, at::tensor({2, 0, 1}, at::kLong)));
}

TEST_F(TorchFileTest, ConvertsDtypesWithoutScaling) {
  absl::StatusOr<Dataset> data = ReadTorchFile(File("dtypes.pt"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(at::equal(data->inputs, at::tensor({1.f, 255.f, 7.f, 0.f}).reshape({2, 2})));
  EXPECT_TRUE(at::equal(data->targets, at::tensor({0.5f, 1.5f, 2.5f, -1.f}).reshape({2, 2})));
  data = ReadTorchFile(File("int32_y.pt"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->inputs.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(data->inputs, at::full({2, 3}, 0.1f)));  // float64 0.1 rounded
  EXPECT_TRUE(at::equal(data->targets, at::tensor({1, 4}, at::kLong)));
}

TEST_F(TorchFileTest, AViewOfALargerTensorIsCopiedOut) {
  absl::StatusOr<Dataset> data = ReadTorchFile(File("view.pt"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(at::equal(data->inputs, at::arange(4, 10, at::kFloat).reshape({3, 2})));
  EXPECT_TRUE(data->inputs.is_contiguous());
  EXPECT_EQ(data->inputs.storage().nbytes(), 6 * sizeof(float));
}

TEST_F(TorchFileTest, RefusesMissingAndExtraKeysNamingThem) {
  EXPECT_THAT(Error("x_and_z.pt"), HasSubstr("no key 'y'; unexpected key(s) 'z'"));
  // LibTorch cannot unpickle a one-key dict at all; the message says why.
  EXPECT_THAT(Error("only_x.pt"), HasSubstr("a dict with one key?"));
  EXPECT_THAT(Error("extra.pt"), HasSubstr("unexpected key(s) 'z'"));
}

TEST_F(TorchFileTest, RefusesDifferentNumbersOfExamples) {
  EXPECT_THAT(Error("mismatch.pt"), AllOf(HasSubstr("'x' holds 3 examples but 'y' holds 4")));
}

TEST_F(TorchFileTest, RefusesWhatIsNotADictOfTensors) {
  EXPECT_THAT(Error("tensor.pt"), HasSubstr("not a dict"));
  EXPECT_THAT(Error("list_x.pt"), HasSubstr("'x' is a"));
}

TEST_F(TorchFileTest, RefusesBadValues) {
  EXPECT_THAT(Error("negative.pt"), HasSubstr("class label -1"));
  EXPECT_THAT(Error("nan.pt"), HasSubstr("NaN"));
  EXPECT_THAT(Error("bool_y.pt"), HasSubstr("dtype Bool"));
  EXPECT_THAT(Error("empty.pt"), HasSubstr("N > 0"));
  EXPECT_THAT(Error("one_d_x.pt"), HasSubstr("2 to 8 dimensions"));
  EXPECT_THAT(Error("expanded.pt"), HasSubstr("more elements than the file holds"));
}

TEST_F(TorchFileTest, RefusesFilesThatAreNotTorchSaveZips) {
  EXPECT_THAT(Error("legacy.pt"), HasSubstr("not a torch.save file"));
  EXPECT_THAT(Error("same.csv"), HasSubstr("not a torch.save file"));
  const std::string good = ReadBytes(File("good.pt"));
  WriteText(File("truncated.pt"), good.substr(0, good.size() / 2));
  EXPECT_THAT(Error("truncated.pt"), HasSubstr("not a readable torch.save file"));
  EXPECT_EQ(ReadTorchFile(File("nope.pt")).status().code(), absl::StatusCode::kNotFound);
}

// The same numbers written as CSV (from C++) and as torch.save (by Python
// reading that CSV) load to bit-identical tensors, equal to the originals,
// and train to bit-identical weights.
TEST_F(TorchFileTest, CsvAndTorchSaveOfTheSameDataAreIdenticalAndTrainIdentically) {
  absl::StatusOr<Dataset> from_torch = ReadTorchFile(File("same.pt"));
  absl::StatusOr<Dataset> from_csv = ReadCsv(File("same.csv"), ClassOptions("label"));
  ASSERT_TRUE(from_torch.ok()) << from_torch.status();
  ASSERT_TRUE(from_csv.ok()) << from_csv.status();
  EXPECT_TRUE(at::equal(from_csv->inputs, from_torch->inputs));
  EXPECT_TRUE(at::equal(from_csv->targets, from_torch->targets));
  EXPECT_TRUE(at::equal(from_csv->inputs, *same_x_));
  EXPECT_TRUE(at::equal(from_csv->targets, at::arange(50, at::kLong).remainder(3)));

  // And they train to bit-identical weights: the same model, seed and round
  // on either file.
  const auto train = [](const Dataset& data) {
    ModelSpec spec = *ParseModelSpec("mlp");
    spec.hidden = {8};
    spec = *ResolveModelShape(spec, InputShape(data), 3);
    std::unique_ptr<Model> model = *CreateModel(spec, 11);
    Trainer trainer = *Trainer::Create({});
    v1::FitConfig config;
    config.set_local_epochs(3);
    config.set_batch_size(8);
    config.set_learning_rate(0.1);
    config.set_momentum(0.9);
    absl::StatusOr<FitOutcome> fit =
        trainer.Fit(*model, model->GetParameters().Clone(), data, config, 1);
    EXPECT_TRUE(fit.ok()) << fit.status();
    return fit.ok() ? fit->update : Parameters{};
  };
  const Parameters a = train(*from_csv);
  const Parameters b = train(*from_torch);
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::equal(a.tensor(i), b.tensor(i))) << a.name(i);
  }
  EXPECT_GT(a.L2Norm(), 0);
}

// ---------------------------------------------------------- streaming
// data.stream: the same examples, spooled to disk and read back a batch at
// a time, must be what LoadData holds in memory, bit for bit, and train
// and evaluate to bit-identical results.

// AllInputs reads every input of `source` in order.
at::Tensor AllInputs(const ExampleSource& source) {
  absl::StatusOr<at::Tensor> x = source.Inputs(at::arange(source.size(), at::kLong));
  EXPECT_TRUE(x.ok()) << x.status();
  return x.ok() ? *x : at::Tensor();
}

// StreamedAndInMemory opens the `split` of `options` both ways.
std::pair<std::shared_ptr<const ExampleSource>, std::shared_ptr<const ExampleSource>>
StreamedAndInMemory(DataOptions options, Split split, const Task& task, int64_t chunk) {
  options.stream = true;
  absl::StatusOr<std::shared_ptr<const ExampleSource>> streamed =
      OpenData(options, split, task, 0, chunk);
  options.stream = false;
  absl::StatusOr<std::shared_ptr<const ExampleSource>> memory = OpenData(options, split, task);
  EXPECT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_TRUE(memory.ok()) << memory.status();
  if (!streamed.ok() || !memory.ok()) return {};
  EXPECT_EQ((*streamed)->memory(), nullptr);
  EXPECT_NE((*memory)->memory(), nullptr);
  return {*streamed, *memory};
}

// TableText is `rows` rows of 5 features and a class label, generated.
std::string TableText(int rows) {
  std::string text = "a,b,c,d,e,label\n";
  uint32_t seed = 7;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < 5; ++c) {
      seed = seed * 1664525u + 1013904223u;
      absl::StrAppendFormat(&text, "%.4f,", (seed >> 8) / 65536.0 - 128 + c);
    }
    absl::StrAppendFormat(&text, "%d\n", (r * 7 + r / 3) % 3);
  }
  return text;
}

DataOptions CsvData(const std::string& path) {
  DataOptions options;
  options.format = DataFormat::kCsv;
  options.train = path;
  options.csv.target_columns = {"label"};
  return options;
}

TEST(StreamTest, StreamedCsvTrainsAndEvaluatesBitIdenticallyToInMemory) {
  testing::TempDir dir;
  WriteText(dir.File("t.csv"), TableText(203));
  DataOptions options = CsvData(dir.File("t.csv"));
  options.spool_dir = dir.path();
  options.normalization.mode = Normalization::Mode::kGiven;
  options.normalization.mean = {-127, -126, -125, -124, -123};
  options.normalization.std = {70, 71, 72, 73, 74};
  const Task task{TaskOptions{}};
  // Chunks of 16 rows: many chunk boundaries, and a last chunk of 11.
  auto [streamed, memory] = StreamedAndInMemory(options, Split::kTrain, task, 16);
  ASSERT_NE(streamed, nullptr);
  ASSERT_EQ(streamed->size(), 203);
  EXPECT_EQ(streamed->input_shape(), std::vector<int64_t>({5}));
  EXPECT_TRUE(at::equal(streamed->targets(), memory->targets()));
  EXPECT_TRUE(at::equal(AllInputs(*streamed), memory->memory()->inputs));

  // A client's holdout split of each, trained and evaluated the same way.
  auto [s_train, s_held] = SplitClientData(*streamed, 0.2, ClientSeed(3, 1));
  auto [m_train, m_held] = SplitClientData(*memory, 0.2, ClientSeed(3, 1));
  ASSERT_EQ(s_train->size(), m_train->size());
  ASSERT_EQ(s_held->size(), 40);
  EXPECT_TRUE(at::equal(AllInputs(*s_held), AllInputs(*m_held)));
  ModelSpec spec = *ParseModelSpec("mlp");
  spec.hidden = {8};
  spec = *ResolveModelShape(spec, {5}, 3);
  Trainer trainer = *Trainer::Create({});
  v1::FitConfig config;
  config.set_local_epochs(2);
  config.set_batch_size(10);
  config.set_learning_rate(0.05);
  config.set_momentum(0.9);
  std::unique_ptr<Model> a = *CreateModel(spec, 5);
  std::unique_ptr<Model> b = *CreateModel(spec, 5);
  const Parameters global = a->GetParameters().Clone();
  absl::StatusOr<FitOutcome> fit_s = trainer.Fit(*a, global, *s_train, config, 4);
  absl::StatusOr<FitOutcome> fit_m = trainer.Fit(*b, global, *m_train, config, 4);
  ASSERT_TRUE(fit_s.ok()) << fit_s.status();
  ASSERT_TRUE(fit_m.ok()) << fit_m.status();
  ASSERT_EQ(fit_s->update.size(), fit_m->update.size());
  for (size_t i = 0; i < fit_s->update.size(); ++i) {
    EXPECT_TRUE(at::equal(fit_s->update.tensor(i), fit_m->update.tensor(i)))
        << fit_s->update.name(i);
  }
  EXPECT_GT(fit_s->update.L2Norm(), 0);
  EXPECT_EQ(fit_s->train_loss, fit_m->train_loss);
  absl::StatusOr<EvalOutcome> eval_s = trainer.Evaluate(*a, *s_held, 7);
  absl::StatusOr<EvalOutcome> eval_m = trainer.Evaluate(*b, *m_held, 7);
  ASSERT_TRUE(eval_s.ok()) << eval_s.status();
  ASSERT_TRUE(eval_m.ok()) << eval_m.status();
  EXPECT_EQ(eval_s->loss, eval_m->loss);
  EXPECT_EQ(eval_s->metrics, eval_m->metrics);
}

TEST(StreamTest, StreamedIdxAndImageFolderMatchInMemory) {
  DataOptions idx;
  idx.dir = kFashionMnistDir;
  idx.normalization.mode = Normalization::Mode::kGiven;
  idx.normalization.mean = {0.2860};
  idx.normalization.std = {0.3530};
  const Task task{TaskOptions{}};
  auto [streamed, memory] = StreamedAndInMemory(idx, Split::kTest, task, 999);
  ASSERT_NE(streamed, nullptr);
  ASSERT_EQ(streamed->size(), 10000);
  EXPECT_TRUE(at::equal(streamed->targets(), memory->targets()));
  EXPECT_TRUE(at::equal(AllInputs(*streamed), memory->memory()->inputs));

  testing::TempDir dir;
  int seed = 0;
  for (const char* name : {"cat/1.png", "cat/2.png", "cat/3.png", "dog/a.png", "dog/b.png"}) {
    WritePng(dir.File(std::string("images/") + name), 6, 4, 3, Noise(6, 4, 3, ++seed));
  }
  DataOptions images;
  images.format = DataFormat::kImageFolder;
  images.train = dir.File("images");
  images.images.height = 6;
  images.images.width = 4;
  images.normalization.mode = Normalization::Mode::kGiven;
  images.normalization.mean = {0.5, 0.4, 0.3};
  images.normalization.std = {0.2, 0.25, 0.3};
  auto [s_images, m_images] = StreamedAndInMemory(images, Split::kTrain, task, 2);
  ASSERT_NE(s_images, nullptr);
  EXPECT_TRUE(at::equal(s_images->targets(), at::tensor({0, 0, 0, 1, 1}, at::kLong)));
  EXPECT_TRUE(at::equal(AllInputs(*s_images), m_images->memory()->inputs));
  // Out of order, repeated, and a subset of a subset, as training reads them.
  const at::Tensor picked = at::tensor({4, 0, 3, 3}, at::kLong);
  EXPECT_TRUE(at::equal(*s_images->Inputs(picked), m_images->memory()->inputs.index_select(0, picked)));
  std::shared_ptr<const ExampleSource> sub = s_images->Subset({4, 2, 1})->Subset({2, 0});
  EXPECT_TRUE(at::equal(AllInputs(*sub), m_images->memory()->inputs.index_select(
                                             0, at::tensor({1, 4}, at::kLong))));
  EXPECT_THAT(s_images->Inputs(at::tensor({5}, at::kLong)).status().message(),
              HasSubstr("out of range"));
}

TEST(StreamTest, TestFractionAndAutoNormalizationAgreeWithInMemory) {
  testing::TempDir dir;
  WriteText(dir.File("t.csv"), TableText(120));
  DataOptions options = CsvData(dir.File("t.csv"));
  options.test_fraction = 0.25;
  options.split_seed = 9;
  options.normalization.mode = Normalization::Mode::kAuto;
  const Task task{TaskOptions{}};
  for (Split split : {Split::kTrain, Split::kTest}) {
    auto [streamed, memory] = StreamedAndInMemory(options, split, task, 7);
    ASSERT_NE(streamed, nullptr);
    EXPECT_EQ(streamed->size(), split == Split::kTest ? 30 : 90);
    EXPECT_TRUE(at::equal(streamed->targets(), memory->targets()));
    // kAuto's statistics come from one pass in double: equal to the last
    // bits or so, not necessarily bit for bit.
    EXPECT_TRUE(at::allclose(AllInputs(*streamed), memory->memory()->inputs, 1e-5, 1e-5));
    EXPECT_NEAR(AllInputs(*streamed).select(1, 2).mean().item<double>(),
                split == Split::kTrain ? 0.0 : memory->memory()->inputs.select(1, 2).mean().item<double>(),
                1e-5);
  }
}

TEST(StreamTest, ABadRowInALaterChunkFailsNamingItsLineAndNothingIsReturned) {
  testing::TempDir dir;
  std::string text = TableText(100);
  // Row 90 is line 91 (after the header): its third cell is not a number.
  size_t at = 0;
  for (int line = 1; line < 91; ++line) at = text.find('\n', at) + 1;
  const size_t comma = text.find(',', text.find(',', at) + 1);
  text.insert(comma + 1, "x");
  WriteText(dir.File("t.csv"), text);
  DataOptions options = CsvData(dir.File("t.csv"));
  options.stream = true;
  absl::StatusOr<std::shared_ptr<const ExampleSource>> source =
      OpenData(options, Split::kTrain, Task(TaskOptions{}), 0, 8);
  ASSERT_FALSE(source.ok());
  EXPECT_THAT(std::string(source.status().message()),
              AllOf(HasSubstr("t.csv:91"), HasSubstr("column 'c'"), HasSubstr("not a number")));
}

TEST(StreamTest, ASpoolDirThatCannotHoldAFileIsNamed) {
  testing::TempDir dir;
  WriteText(dir.File("t.csv"), TableText(10));
  DataOptions options = CsvData(dir.File("t.csv"));
  options.stream = true;
  options.spool_dir = dir.File("missing");
  absl::StatusOr<std::shared_ptr<const ExampleSource>> source =
      OpenData(options, Split::kTrain, Task(TaskOptions{}));
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(source.status().message(), HasSubstr(dir.File("missing")));
}

TEST(CsvReaderTest, ChunksAcrossReadBlocksAndATargetsFileJoinToTheWholeFile) {
  testing::TempDir dir;
  // More than one 1 MiB read block, so lines straddle block boundaries.
  std::string features = "x,y\n";
  std::string targets = "t\n";
  const int rows = 80000;
  for (int r = 0; r < rows; ++r) {
    absl::StrAppendFormat(&features, "%d.25,%d\n", r, -r);
    absl::StrAppendFormat(&targets, "%d.5\n", r % 10);
  }
  ASSERT_GT(features.size(), size_t{1} << 20);
  WriteText(dir.File("x.csv"), features);
  WriteText(dir.File("y.csv"), targets);
  CsvOptions options;
  options.target_columns = {"t"};
  options.targets = TargetType::kFloat;
  options.targets_path = dir.File("y.csv");
  std::vector<at::Tensor> xs, ys;
  ASSERT_TRUE(ReadCsvChunks(dir.File("x.csv"), options, 4096, [&](Dataset chunk) {
                EXPECT_LE(chunk.size(), 4096);
                xs.push_back(chunk.inputs);
                ys.push_back(chunk.targets);
                return absl::OkStatus();
              }).ok());
  EXPECT_EQ(xs.size(), 20u);
  const at::Tensor r = at::arange(rows, at::kFloat);
  EXPECT_TRUE(at::equal(at::cat(xs), at::stack({r + 0.25, -r}, 1)));
  EXPECT_TRUE(at::equal(at::cat(ys), r.remainder(10) + 0.5));
  absl::StatusOr<Dataset> whole = ReadCsv(dir.File("x.csv"), options);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_TRUE(at::equal(whole->inputs, at::cat(xs)));

  // A targets file one row short is refused after counting every row.
  WriteText(dir.File("y.csv"), targets.substr(0, targets.size() - 4));
  absl::Status short_targets =
      ReadCsvChunks(dir.File("x.csv"), options, 4096, [](Dataset) { return absl::OkStatus(); });
  EXPECT_THAT(short_targets.message(), AllOf(HasSubstr("holds 80000 rows"), HasSubstr("79999")));
}

}  // namespace
}  // namespace shoal::client
