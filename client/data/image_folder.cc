#include "client/data/image_folder.h"

// jpeglib.h needs FILE and size_t declared first.
#include <ATen/ATen.h>
#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <new>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/quote.h"
#include "common/status.h"

namespace shoal::client {
namespace {

namespace fs = std::filesystem;

// One image file and its class.
struct ImageFile {
  std::string path;
  int64_t label = 0;
};

// DecodedImage: 8-bit pixels, rows top to bottom, channels interleaved.
struct DecodedImage {
  int64_t height = 0;
  int64_t width = 0;
  std::vector<uint8_t> pixels;  // height * width * channels
};

bool IsHidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

bool HasImageExtension(const fs::path& path) {
  const std::string ext = absl::AsciiStrToLower(path.extension().string());
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

absl::Status TooLarge(const std::string& path, int64_t width, int64_t height, int64_t max_side) {
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": ", width, " x ", height, " pixels; the limit is ", max_side, " on either side"));
}

absl::StatusOr<DecodedImage> DecodePng(const std::string& path, const std::string& bytes,
                                       int64_t channels, int64_t max_side) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a readable PNG: ", image.message));
  }
  if (image.width > max_side || image.height > max_side) {
    png_image_free(&image);
    return TooLarge(path, image.width, image.height, max_side);
  }
  image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  DecodedImage out;
  out.height = image.height;
  out.width = image.width;
  // Zeros: with no background given, libpng composites transparent pixels
  // onto what the buffer holds, so black.
  out.pixels.assign(PNG_IMAGE_SIZE(image), 0);
  // On failure libpng frees `image` itself.
  if (!png_image_finish_read(&image, /*background=*/nullptr, out.pixels.data(),
                             /*row_stride=*/0, /*colormap=*/nullptr)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": corrupt or truncated PNG: ", image.message));
  }
  return out;
}

// libjpeg reports errors through a callback that must not return; the
// classic answer is setjmp/longjmp back into the decoding function.
struct JpegErrorManager {
  jpeg_error_mgr pub;  // first, so a j_common_ptr's err casts to this
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void JpegFail(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings fail too: on a truncated or damaged file libjpeg warns, fills the
// missing part with gray and carries on, which would pass a broken image.
void JpegMessage(j_common_ptr cinfo, int level) {
  if (level < 0) JpegFail(cinfo);
}

// DecodeJpegOrFail decodes into `out` and returns true, or returns false
// with the reason in `message`. Nothing with a destructor is created in
// this frame after setjmp, so the longjmp skips no destructor; `out`
// belongs to the caller.
bool DecodeJpegOrFail(const std::string& bytes, int64_t channels, int64_t max_side,
                      DecodedImage* out, char (&message)[JMSG_LENGTH_MAX]) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = JpegFail;
  err.pub.emit_message = JpegMessage;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    std::memcpy(message, err.message, sizeof(err.message));
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  jpeg_read_header(&cinfo, /*require_image=*/TRUE);
  if (cinfo.image_width > max_side || cinfo.image_height > max_side) {
    std::snprintf(message, JMSG_LENGTH_MAX, "%u x %u pixels; the limit is %lld on either side",
                  cinfo.image_width, cinfo.image_height, static_cast<long long>(max_side));
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  cinfo.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const size_t row_bytes = size_t{cinfo.output_width} * cinfo.output_components;
  out->height = cinfo.output_height;
  out->width = cinfo.output_width;
  try {
    out->pixels.resize(row_bytes * cinfo.output_height);
  } catch (const std::bad_alloc&) {
    std::snprintf(message, JMSG_LENGTH_MAX, "out of memory");
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out->pixels.data() + row_bytes * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

absl::StatusOr<DecodedImage> DecodeJpeg(const std::string& path, const std::string& bytes,
                                        int64_t channels, int64_t max_side) {
  DecodedImage out;
  char message[JMSG_LENGTH_MAX] = "";
  if (!DecodeJpegOrFail(bytes, channels, max_side, &out, message)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": corrupt, truncated or unsupported JPEG: ", message));
  }
  return out;
}

absl::StatusOr<DecodedImage> DecodeImage(const std::string& path,
                                         const ImageFolderOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(const std::string bytes, ReadFile(path, options.max_file_bytes));
  static constexpr unsigned char kPngSignature[] = {0x89, 'P', 'N', 'G'};
  static constexpr unsigned char kJpegSignature[] = {0xFF, 0xD8, 0xFF};
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), kPngSignature, 4) == 0) {
    return DecodePng(path, bytes, options.channels, options.max_side);
  }
  if (bytes.size() >= 3 && std::memcmp(bytes.data(), kJpegSignature, 3) == 0) {
    return DecodeJpeg(path, bytes, options.channels, options.max_side);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": neither a PNG nor a JPEG (it starts with ",
                   QuoteForMessage(absl::string_view(bytes).substr(0, 8)), ")"));
}

absl::Status ValidateOptions(const ImageFolderOptions& options) {
  if (options.height < 1 || options.width < 1 || options.height > options.max_side ||
      options.width > options.max_side) {
    return absl::InvalidArgumentError(
        absl::StrCat("image folder: height and width must be in [1, max_side = ", options.max_side,
                     "], got ", options.height, " x ", options.width));
  }
  if (options.channels != 1 && options.channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("image folder: channels must be 1 or 3, got ", options.channels));
  }
  if (options.max_files < 1) {
    return absl::InvalidArgumentError("image folder: max_files must be >= 1");
  }
  return absl::OkStatus();
}

// SortedEntries lists `dir`, hidden entries left out, sorted by name.
absl::StatusOr<std::vector<fs::directory_entry>> SortedEntries(const std::string& dir,
                                                               int64_t max_entries) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    const absl::StatusCode code = ec == std::errc::no_such_file_or_directory
                                      ? absl::StatusCode::kNotFound
                                      : absl::StatusCode::kInvalidArgument;
    return absl::Status(code, absl::StrCat(dir, ": cannot list: ", ec.message()));
  }
  std::vector<fs::directory_entry> entries;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (IsHidden(it->path())) continue;
    if (static_cast<int64_t>(entries.size()) >= max_entries) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, ": more than the limit of ", max_entries, " entries"));
    }
    entries.push_back(*it);
  }
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": cannot list: ", ec.message()));
  }
  std::sort(entries.begin(), entries.end(),
            [](const fs::directory_entry& a, const fs::directory_entry& b) {
              return a.path().filename().string() < b.path().filename().string();
            });
  return entries;
}

// ListImages finds the classes and their image files, in sorted order.
absl::Status ListImages(const std::string& dir, const ImageFolderOptions& options,
                        std::vector<std::string>* class_names, std::vector<ImageFile>* files) {
  absl::flat_hash_map<std::string, int64_t> index;
  for (size_t i = 0; i < options.class_names.size(); ++i) {
    if (!index.emplace(options.class_names[i], i).second) {
      return absl::InvalidArgumentError(absl::StrCat("image folder: class ",
                                                     QuoteForMessage(options.class_names[i]),
                                                     " named twice in class_names"));
    }
  }
  SHOAL_ASSIGN_OR_RETURN(std::vector<fs::directory_entry> classes,
                         SortedEntries(dir, options.max_files));
  std::error_code ec;
  for (const fs::directory_entry& entry : classes) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory(ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat(entry.path().string(),
                       ": not a folder; an image folder holds one sub-folder per class "
                       "(names starting with '.' are ignored)"));
    }
    if (options.class_names.empty()) {
      index.emplace(name, class_names->size());
      class_names->push_back(name);
    } else if (!index.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          entry.path().string(), ": folder ", QuoteForMessage(name), " is not one of the ",
          options.class_names.size(), " classes in class_names"));
    }
    const int64_t label = index.at(name);
    SHOAL_ASSIGN_OR_RETURN(std::vector<fs::directory_entry> images,
                           SortedEntries(entry.path().string(),
                                         options.max_files - static_cast<int64_t>(files->size())));
    for (const fs::directory_entry& image : images) {
      if (!image.is_regular_file(ec) || !HasImageExtension(image.path())) {
        return absl::InvalidArgumentError(
            absl::StrCat(image.path().string(),
                         ": not a .png, .jpg or .jpeg file; a class folder holds only "
                         "images (names starting with '.' are ignored)"));
      }
      files->push_back(ImageFile{image.path().string(), label});
    }
  }
  if (!options.class_names.empty()) *class_names = options.class_names;
  if (files->empty()) {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no images (expected <class>/<image>.png|jpg|jpeg)"));
  }
  return absl::OkStatus();
}

// ToTensor turns one decoded image into float32 [C, H, W] in [0, 1] of the
// size the options ask for.
absl::StatusOr<at::Tensor> ToTensor(const std::string& path, DecodedImage& image,
                                    const ImageFolderOptions& options) {
  if ((image.height != options.height || image.width != options.width) && !options.resize) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", image.width, " x ", image.height, " pixels (width x height); ", options.width,
        " x ", options.height, " expected (set resize to resize images)"));
  }
  at::Tensor pixels =
      at::from_blob(image.pixels.data(), {image.height, image.width, options.channels},
                    at::dtype(at::kByte))
          .permute({2, 0, 1})
          .to(at::kFloat)
          .div_(255.0);
  if (image.height != options.height || image.width != options.width) {
    pixels = at::_upsample_bilinear2d_aa(pixels.unsqueeze(0), {options.height, options.width},
                                         /*align_corners=*/false)
                 .squeeze(0)
                 .clamp_(0.0, 1.0);
  }
  return pixels;
}

}  // namespace

namespace {

// ListChecked lists and checks the images of `dir` (ListImages) and the
// tensor they make against max_tensor_bytes.
absl::Status ListChecked(const std::string& dir, const ImageFolderOptions& options,
                         std::vector<std::string>* class_names, std::vector<ImageFile>* files) {
  SHOAL_RETURN_IF_ERROR(ValidateOptions(options));
  SHOAL_RETURN_IF_ERROR(ListImages(dir, options, class_names, files));
  const int64_t n = static_cast<int64_t>(files->size());
  // n <= max_files and each side <= max_side, so no overflow below 2^63
  // unless max_files is absurd; divide instead of multiplying to be sure.
  const uint64_t per_image =
      uint64_t(options.channels) * options.height * options.width * sizeof(float);
  if (uint64_t(n) > options.max_tensor_bytes / per_image) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": ", n, " images of ", options.channels, " x ", options.height, " x ", options.width,
        " need more than the limit of ", options.max_tensor_bytes, " bytes"));
  }
  return absl::OkStatus();
}

// DecodeInto decodes files[begin, begin + count) into `inputs` and
// `targets`, which hold `count` examples.
absl::Status DecodeInto(const std::vector<ImageFile>& files, int64_t begin, int64_t count,
                        const ImageFolderOptions& options, at::Tensor& inputs,
                        at::Tensor& targets) {
  int64_t* label = targets.data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    const ImageFile& file = files[static_cast<size_t>(begin + i)];
    SHOAL_ASSIGN_OR_RETURN(DecodedImage image, DecodeImage(file.path, options));
    SHOAL_ASSIGN_OR_RETURN(at::Tensor pixels, ToTensor(file.path, image, options));
    inputs[i].copy_(pixels);
    label[i] = file.label;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LabelledImages> ReadImageFolder(const std::string& dir,
                                               const ImageFolderOptions& options) {
  LabelledImages result;
  std::vector<ImageFile> files;
  SHOAL_RETURN_IF_ERROR(ListChecked(dir, options, &result.class_names, &files));
  const int64_t n = static_cast<int64_t>(files.size());
  try {
    at::Tensor inputs = at::empty({n, options.channels, options.height, options.width}, at::kFloat);
    at::Tensor targets = at::empty({n}, at::kLong);
    SHOAL_RETURN_IF_ERROR(DecodeInto(files, 0, n, options, inputs, targets));
    result.data = Dataset{std::move(inputs), std::move(targets)};
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat(dir, ": cannot hold the images: ", e.what_without_backtrace()));
  }
  return result;
}

absl::Status ReadImageFolderChunks(const std::string& dir, const ImageFolderOptions& options,
                                   int64_t chunk_examples, const ChunkFn& fn,
                                   std::vector<std::string>* class_names) {
  if (chunk_examples < 1) return absl::InvalidArgumentError("chunk_examples must be >= 1");
  std::vector<std::string> names;
  std::vector<ImageFile> files;
  SHOAL_RETURN_IF_ERROR(ListChecked(dir, options, &names, &files));
  const int64_t n = static_cast<int64_t>(files.size());
  for (int64_t begin = 0; begin < n; begin += chunk_examples) {
    const int64_t count = std::min(chunk_examples, n - begin);
    at::Tensor inputs =
        at::empty({count, options.channels, options.height, options.width}, at::kFloat);
    at::Tensor targets = at::empty({count}, at::kLong);
    SHOAL_RETURN_IF_ERROR(DecodeInto(files, begin, count, options, inputs, targets));
    SHOAL_RETURN_IF_ERROR(fn(Dataset{std::move(inputs), std::move(targets)}));
  }
  if (class_names != nullptr) *class_names = std::move(names);
  return absl::OkStatus();
}

}  // namespace shoal::client
