// Small file-system helpers with absl::Status errors.
#ifndef SHOAL_COMMON_FILES_H_
#define SHOAL_COMMON_FILES_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

// WriteFileAtomically replaces `path` with `contents` so that a crash at any
// moment leaves either the old file or the new one: it writes a temporary
// file beside it (`path`.tmp.*), fsyncs it, renames it over `path` and
// fsyncs the folder, so once it returns OK the new file survives a power
// loss. A crash may leave a `path`.tmp.* file behind; readers ignore it.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

// SyncDirectory fsyncs a folder, making the renames and removals in it
// durable. File systems that cannot sync a folder count as success.
absl::Status SyncDirectory(const std::string& dir);

// OpenRegularFile opens `path` for reading and returns the descriptor (the
// caller closes it) and, in `size`, the file's size. A FIFO, device or
// folder is refused without waiting: opening a FIFO for reading blocks until
// somebody writes, so an input path pointing at one would hang the reader.
// Errors: NotFound when missing, InvalidArgument when not a regular file,
// PermissionDenied when unreadable, Internal otherwise; each names `path`.
absl::StatusOr<int> OpenRegularFile(const std::string& path, uint64_t* size = nullptr);

// ReadFile returns the file's contents; NotFound when it is missing,
// InvalidArgument when it is not a regular file (OpenRegularFile) and
// ResourceExhausted when it is larger than `max_bytes`.
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     uint64_t max_bytes = uint64_t{1} << 32);

// MakeDirectories creates `path` and its parents if missing.
absl::Status MakeDirectories(const std::string& path);

}  // namespace shoal

#endif  // SHOAL_COMMON_FILES_H_
