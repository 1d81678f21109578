// Chunked transfer: payloads larger than one chunk travel as a stream of
// v1::Chunk messages. Chunk 0 carries a PayloadHeader (size, chunk count,
// SHA-256); the receiver refuses anything that does not add up.
#ifndef SHOAL_COMMON_CHUNKING_H_
#define SHOAL_COMMON_CHUNKING_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sha256.h"
#include "shoal/v1/shoal.pb.h"

namespace shoal {

// kChunkBytes is the size of every chunk but the last (1 MiB), well under
// gRPC's default 4 MiB message limit, which Shoal never raises.
inline constexpr size_t kChunkBytes = size_t{1} << 20;

// ChunkedPayload is an immutable payload cut into chunks on demand. It is
// cheap to share (std::shared_ptr<const ChunkedPayload>) between the many
// clients downloading the same model. Thread-safe (immutable).
class ChunkedPayload {
 public:
  explicit ChunkedPayload(std::string payload, size_t chunk_bytes = kChunkBytes);

  const std::string& payload() const { return payload_; }
  const v1::PayloadHeader& header() const { return header_; }
  uint32_t num_chunks() const { return header_.num_chunks(); }
  // FillChunk writes chunk `index` (< num_chunks()) into `chunk`.
  void FillChunk(uint32_t index, v1::Chunk* chunk) const;

 private:
  std::string payload_;
  size_t chunk_bytes_;
  v1::PayloadHeader header_;
};

// ChunkAssembler rebuilds a payload from chunks, refusing (with a status
// that says why) a missing header, chunks out of order, a payload larger than
// `max_payload_bytes`, a chunk larger than `max_chunk_bytes`, a short stream
// or a digest mismatch. Not thread-safe.
//
// Example:
//   ChunkAssembler assembler(/*max_payload_bytes=*/64 << 20);
//   while (stream.Read(&chunk)) SHOAL_RETURN_IF_ERROR(assembler.Add(chunk));
//   SHOAL_ASSIGN_OR_RETURN(std::string payload, assembler.Finish());
class ChunkAssembler {
 public:
  explicit ChunkAssembler(uint64_t max_payload_bytes,
                          size_t max_chunk_bytes = 2 * kChunkBytes);

  // Add appends the next chunk. After an error the assembler is spent.
  absl::Status Add(const v1::Chunk& chunk);
  // Finish checks that every chunk arrived and the digest matches.
  absl::StatusOr<std::string> Finish();

  uint32_t chunks_received() const { return next_index_; }

 private:
  uint64_t max_payload_bytes_;
  size_t max_chunk_bytes_;
  bool have_header_ = false;
  bool failed_ = false;
  v1::PayloadHeader header_;
  uint32_t next_index_ = 0;
  std::string payload_;
  Sha256Hasher hasher_;
};

}  // namespace shoal

#endif  // SHOAL_COMMON_CHUNKING_H_
