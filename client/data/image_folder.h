// ReadImageFolder: labelled PNG and JPEG images, one sub-folder per class,
// read into a Dataset.
#ifndef SHOAL_CLIENT_DATA_IMAGE_FOLDER_H_
#define SHOAL_CLIENT_DATA_IMAGE_FOLDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/data/dataset.h"

namespace shoal::client {

// ImageFolderOptions: the size every image is delivered at, and limits.
struct ImageFolderOptions {
  // The size of every image, in pixels. Required (> 0).
  int64_t height = 0;
  int64_t width = 0;
  // 1 (gray) or 3 (RGB). Images of the other kind are converted (libpng
  // and libjpeg do it: RGB to gray by luminance, gray to RGB by copying).
  // Default 3.
  int64_t channels = 3;
  // What to do with an image of another size: when false (the default) it
  // is an error naming the file and both sizes; when true it is resized
  // with antialiased bilinear interpolation (torchvision's Resize).
  bool resize = false;
  // The classes, in index order. Empty (the default): the class folders
  // found, sorted by name (byte order). Give it when clients may lack some
  // classes, so that every client numbers the classes alike; each folder
  // must then be one of these names.
  std::vector<std::string> class_names;

  // Limits, checked before the work they bound.
  // Largest width or height of an image as stored. Default 8192.
  int64_t max_side = 8192;
  // Most image files. Default 1,000,000.
  int64_t max_files = 1'000'000;
  // Largest image file, in bytes. Default 64 MiB.
  uint64_t max_file_bytes = uint64_t{64} << 20;
  // Largest `inputs` tensor, N * C * H * W * 4 bytes. Default 8 GiB.
  uint64_t max_tensor_bytes = uint64_t{8} << 30;
};

// LabelledImages: images with class labels and the classes' names.
struct LabelledImages {
  // inputs float32 [N, C, H, W] in [0, 1]; targets int64 [N], the index of
  // each image's class in `class_names`.
  Dataset data;
  std::vector<std::string> class_names;
};

// ReadImageFolder reads `dir`, which holds one sub-folder per class, each
// holding that class's images:
//   dir/cat/001.png  dir/cat/002.jpg  dir/dog/a.jpeg ...
// Files ending in .png, .jpg or .jpeg (any case) are decoded by content
// (libpng, libjpeg-turbo). Examples come in sorted order: by class, then by
// file name. Names starting with '.' (hidden files and folders, such as
// .DS_Store) are ignored at both levels; anything else that is not an
// image in a class folder, or not a folder in `dir`, is an error. An
// empty class folder is allowed (the class keeps its index); no image at
// all is an error. 8-bit and 16-bit images are read as 8-bit sRGB;
// transparent pixels are composited onto black.
//
// Example:
//   ImageFolderOptions options;
//   options.height = 32;
//   options.width = 32;
//   SHOAL_ASSIGN_OR_RETURN(LabelledImages images,
//                          ReadImageFolder("/data/cifar/train", options));
//
// Errors (naming the folder or file):
//   InvalidArgument: bad options; a stray file or folder; an image that
//     is corrupt, truncated, of an unsupported kind (e.g. CMYK JPEG), of
//     another size (unless resize), or larger than max_side; a folder not
//     in class_names; more than max_files images or max_tensor_bytes.
//   NotFound: `dir` missing, or no image in it.
//   ResourceExhausted: an image file larger than max_file_bytes.
// Nothing is returned on any error.
absl::StatusOr<LabelledImages> ReadImageFolder(const std::string& dir,
                                               const ImageFolderOptions& options);

// ReadImageFolderChunks reads what ReadImageFolder does, `chunk_examples`
// images at a time, so that the images need not fit in memory; the class
// names go to `class_names` (may be null) once every image is read. The
// same errors, and those `fn` returns.
absl::Status ReadImageFolderChunks(const std::string& dir, const ImageFolderOptions& options,
                                   int64_t chunk_examples, const ChunkFn& fn,
                                   std::vector<std::string>* class_names = nullptr);

}  // namespace shoal::client

#endif  // SHOAL_CLIENT_DATA_IMAGE_FOLDER_H_
