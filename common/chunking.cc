#include "common/chunking.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal {

ChunkedPayload::ChunkedPayload(std::string payload, size_t chunk_bytes)
    : payload_(std::move(payload)), chunk_bytes_(std::max<size_t>(chunk_bytes, 1)) {
  header_.set_total_bytes(payload_.size());
  // An empty payload still travels as one (empty) chunk carrying the header.
  header_.set_num_chunks(static_cast<uint32_t>(
      std::max<size_t>(1, (payload_.size() + chunk_bytes_ - 1) / chunk_bytes_)));
  header_.set_sha256(Sha256(payload_));
}

void ChunkedPayload::FillChunk(uint32_t index, v1::Chunk* chunk) const {
  chunk->Clear();
  chunk->set_index(index);
  if (index == 0) *chunk->mutable_header() = header_;
  const size_t begin = std::min(payload_.size(), size_t{index} * chunk_bytes_);
  const size_t end = std::min(payload_.size(), begin + chunk_bytes_);
  chunk->set_data(payload_.data() + begin, end - begin);
}

ChunkAssembler::ChunkAssembler(uint64_t max_payload_bytes, size_t max_chunk_bytes)
    : max_payload_bytes_(max_payload_bytes), max_chunk_bytes_(max_chunk_bytes) {}

absl::Status ChunkAssembler::Add(const v1::Chunk& chunk) {
  if (failed_) return absl::FailedPreconditionError("chunk stream already failed");
  auto fail = [this](absl::Status status) {
    failed_ = true;
    return status;
  };
  if (chunk.index() != next_index_) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk ", chunk.index(), " arrived where chunk ", next_index_,
        " was expected")));
  }
  if (next_index_ == 0) {
    if (!chunk.has_header()) {
      return fail(absl::InvalidArgumentError("chunk 0 carries no payload header"));
    }
    header_ = chunk.header();
    if (header_.total_bytes() > max_payload_bytes_) {
      return fail(absl::ResourceExhaustedError(absl::StrCat(
          "payload of ", header_.total_bytes(), " bytes exceeds the limit of ",
          max_payload_bytes_, " bytes")));
    }
    if (header_.num_chunks() == 0 || header_.sha256().size() != 32) {
      return fail(absl::InvalidArgumentError(
          "payload header needs num_chunks >= 1 and a 32-byte sha256"));
    }
    have_header_ = true;
    payload_.reserve(header_.total_bytes());
  } else if (chunk.has_header()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("chunk ", chunk.index(), " repeats the payload header")));
  }
  if (next_index_ >= header_.num_chunks()) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk ", chunk.index(), " is beyond the announced ",
        header_.num_chunks(), " chunks")));
  }
  if (chunk.data().size() > max_chunk_bytes_) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk ", chunk.index(), " holds ", chunk.data().size(),
        " bytes, more than the limit of ", max_chunk_bytes_)));
  }
  if (payload_.size() + chunk.data().size() > header_.total_bytes()) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk ", chunk.index(), " overruns the announced payload size of ",
        header_.total_bytes(), " bytes")));
  }
  payload_.append(chunk.data());
  hasher_.Update(chunk.data());
  ++next_index_;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ChunkAssembler::Finish() {
  if (failed_) return absl::FailedPreconditionError("chunk stream already failed");
  failed_ = true;  // spent either way
  if (!have_header_) {
    return absl::InvalidArgumentError("chunk stream is empty: no payload header");
  }
  if (next_index_ != header_.num_chunks() ||
      payload_.size() != header_.total_bytes()) {
    return absl::DataLossError(absl::StrCat(
        "chunk stream truncated: got ", next_index_, " of ",
        header_.num_chunks(), " chunks, ", payload_.size(), " of ",
        header_.total_bytes(), " bytes"));
  }
  if (hasher_.Finish() != header_.sha256()) {
    return absl::DataLossError(
        "payload SHA-256 does not match its header: a chunk was corrupted");
  }
  return std::move(payload_);
}

}  // namespace shoal
