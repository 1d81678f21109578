// Data files: the CSV, IDX and image readers (client/data/) on arbitrary
// files, as a device or a data scientist hands them in. They are read by
// every client before it trains, whole (LoadData) or a chunk at a time into
// a spool (data.stream), and the two must agree.
//
// Properties: nothing crashes; what a reader returns has the shapes it
// promises and only finite inputs; reading the same file a chunk at a time
// gives the same examples bit for bit, or the same error.
//
// Input: one byte picks the reader and its options, one the chunk size,
// then framed parts (fuzz/fuzz_support.h): for CSV the file (and a targets
// file), for IDX the image file and the label file, for images one PNG or
// JPEG file.
#include <ATen/ATen.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/data/csv_reader.h"
#include "client/data/dataset.h"
#include "client/data/image_folder.h"
#include "fuzz/fuzz_support.h"

namespace shoal::fuzz {
namespace {

using client::ChunkFn;
using client::Dataset;

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Chunked reads `read` a chunk at a time and joins the chunks.
absl::StatusOr<Dataset> Chunked(const std::function<absl::Status(const ChunkFn&)>& read) {
  std::vector<at::Tensor> inputs, targets;
  absl::Status status = read([&](Dataset chunk) {
    inputs.push_back(chunk.inputs);
    targets.push_back(chunk.targets);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (inputs.empty()) return absl::InternalError("no chunks");
  return Dataset{at::cat(inputs), at::cat(targets)};
}

// Agree checks the properties on a whole read and a chunked one. With
// `same_error`, a file both refuse must be refused with the same status
// (the CSV reader: one code path); otherwise the two may find a different
// fault first (IDX reads the labels first in chunks, the images whole).
void Agree(const absl::StatusOr<Dataset>& whole, const absl::StatusOr<Dataset>& chunked,
           bool same_error) {
  Check(whole.ok() == chunked.ok(), "a file reads whole but not in chunks, or the other way");
  if (!whole.ok()) {
    Check(!same_error || whole.status() == chunked.status(),
          "whole and chunked reads fail differently");
    return;
  }
  Check(whole->inputs.dim() >= 2 && whole->inputs.size(0) == whole->targets.size(0),
        "inputs and targets disagree on the number of examples");
  Check(whole->inputs.scalar_type() == at::kFloat && whole->inputs.isfinite().all().item<bool>(),
        "inputs are not finite float32");
  Check(at::equal(whole->inputs, chunked->inputs) && at::equal(whole->targets, chunked->targets),
        "chunks do not join to the whole file");
}

std::vector<std::string> Seeds() {
  auto seed = [](uint8_t kind, uint8_t chunk, std::vector<std::string> parts) {
    std::string out(1, static_cast<char>(kind));
    out += static_cast<char>(chunk);
    for (const std::string& p : parts) AppendFramed(&out, p);
    return out;
  };
  std::string idx_images("\x00\x00\x08\x03\x00\x00\x00\x03\x00\x00\x00\x02\x00\x00\x00\x02", 16);
  idx_images += std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\xff", 12);
  std::string idx_labels("\x00\x00\x08\x01\x00\x00\x00\x03\x00\x01\x02", 11);
  // The smallest valid PNG: 1 x 1 gray (octal escapes: they end after three digits).
  const std::string png(
      "\211\120\116\107\015\012\032\012\000\000\000\015\111\110\104\122\000\000\000\001"
      "\000\000\000\001\010\000\000\000\000\072\176\233\125\000\000\000\012\111\104\101"
      "\124\170\234\143\150\000\000\000\202\000\201\167\315\162\266\000\000\000\000\111"
      "\105\116\104\256\102\140\202",
      67);
  return {
      seed(0, 2, {"a,b,label\n1,2,0\n3.5,-4,1\n5,6e3,2\n"}),
      seed(1, 1, {"\xEF\xBB\xBF\"x\",y,t\r\n1,2,0.5\r\n3,4,1.5\r\n\r\n"}),
      seed(2, 3, {"1 2 3\n4 5 6\n 7\t8 9 \n"}),
      seed(3, 1, {"x,y\n1,2\n3,4\n", "t\n0\n1\n"}),
      seed(0, 1, {"a,b,label\n1,,0\n"}),
      seed(0, 1, {"a,b,label\n1,2\n"}),
      seed(4, 2, {idx_images, idx_labels}),
      seed(4, 1, {idx_images.substr(0, 20), idx_labels}),
      seed(5, 1, {png}),
  };
}

}  // namespace
}  // namespace shoal::fuzz

SHOAL_FUZZ_INITIALIZE(shoal::fuzz::Seeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shoal;
  using namespace shoal::fuzz;
  FramedReader in(data, size);
  const uint8_t kind = in.Byte() % 6;
  const int64_t chunk = 1 + in.Byte() % 8;
  const std::string dir = ScratchDir();
  const std::string first = dir + "/a";
  const std::string second = dir + "/b";
  WriteBytes(first, in.Part());
  if (kind <= 3) {
    client::CsvOptions options;
    options.max_file_bytes = 1 << 20;
    options.max_columns = 64;
    options.max_line_bytes = 1024;
    switch (kind) {
      case 0:  // a header, a class column
        options.target_columns = {"label"};
        break;
      case 1:  // float targets, a column ignored
        options.target_columns = {"t"};
        options.ignore_columns = {"y"};
        options.targets = client::TargetType::kFloat;
        break;
      case 2:  // no header, blank-separated, bounded labels
        options.header = false;
        options.delimiter = ' ';
        options.target_columns = {"3"};
        options.num_classes = 10;
        options.skip_lines = 0;
        break;
      case 3:  // targets in a second file
        options.target_columns = {"t"};
        options.targets = client::TargetType::kFloat;
        options.targets_path = second;
        WriteBytes(second, in.Part());
        break;
    }
    Agree(client::ReadCsv(first, options), Chunked([&](const client::ChunkFn& fn) {
            return client::ReadCsvChunks(first, options, chunk, fn);
          }),
          /*same_error=*/true);
  } else if (kind == 4) {
    WriteBytes(second, in.Part());
    Agree(client::LoadIdxDataset(first, second), Chunked([&](const client::ChunkFn& fn) {
            return client::ReadIdxChunks(first, second, chunk, fn);
          }),
          /*same_error=*/false);
  } else {
    const std::string folder = dir + "/images";
    std::filesystem::create_directories(folder + "/c");
    std::filesystem::rename(first, folder + "/c/x.png");
    client::ImageFolderOptions options;
    options.height = 4;
    options.width = 4;
    options.channels = 1 + 2 * (chunk % 2);
    options.resize = true;
    options.max_side = 64;
    options.max_file_bytes = 1 << 16;
    Agree(
        [&]() -> absl::StatusOr<Dataset> {
          absl::StatusOr<client::LabelledImages> images = client::ReadImageFolder(folder, options);
          if (!images.ok()) return images.status();
          return images->data;
        }(),
        Chunked([&](const client::ChunkFn& fn) {
          return client::ReadImageFolderChunks(folder, options, chunk, fn);
        }),
        /*same_error=*/false);
    std::filesystem::remove_all(folder);
  }
  std::remove(first.c_str());
  std::remove(second.c_str());
  return 0;
}
