// Chunk decoding: a ChunkAssembler (common/chunking.h) fed a sequence of
// v1::Chunk messages, as SubmitFit and every download receive them.
//
// Properties: nothing crashes; an accepted stream's payload has the size and
// SHA-256 its header announced; a payload cut by ChunkedPayload and
// reassembled comes back byte for byte.
//
// Input: byte 0 holds options (bit 0: fix up the header's sha256 to the
// digest of the chunks' data, so the fuzzer reaches the accepting path;
// bits 1-3: payload limit; bits 4-7: chunk size for the round trip); then
// framed parts (fuzz_support.h), each a serialized v1::Chunk.
#include <cstdint>
#include <string>
#include <vector>

#include "common/chunking.h"
#include "common/sha256.h"
#include "fuzz/fuzz_support.h"

namespace shoal::fuzz {
namespace {

std::vector<std::string> Seeds() {
  std::vector<std::string> seeds;
  const std::vector<std::pair<std::string, size_t>> payloads = {
      {"", 4}, {"hello, chunks", 4}, {std::string(100, 'x'), 32}, {"abc", 1}};
  for (const auto& [payload, chunk_bytes] : payloads) {
    ChunkedPayload chunked(payload, chunk_bytes);
    std::string seed(1, '\x0b');  // limit 1 KiB << 1, exact sha
    for (uint32_t i = 0; i < chunked.num_chunks(); ++i) {
      v1::Chunk chunk;
      chunked.FillChunk(i, &chunk);
      AppendFramed(&seed, chunk.SerializeAsString());
    }
    seeds.push_back(seed);
  }
  return seeds;
}

}  // namespace
}  // namespace shoal::fuzz

SHOAL_FUZZ_INITIALIZE(shoal::fuzz::Seeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shoal;
  using namespace shoal::fuzz;
  FramedReader in(data, size);
  const uint8_t options = in.Byte();
  const bool fix_sha = options & 1;
  const uint64_t max_payload = uint64_t{512} << ((options >> 1) & 7);  // 512 B .. 64 KiB
  const size_t max_chunk = 64;

  std::vector<v1::Chunk> chunks;
  while (!in.done() && chunks.size() < 256) {
    v1::Chunk chunk;
    if (!chunk.ParseFromString(in.Part())) continue;
    chunks.push_back(std::move(chunk));
  }
  if (fix_sha && !chunks.empty() && chunks[0].has_header()) {
    std::string all;
    for (const v1::Chunk& c : chunks) all += c.data();
    chunks[0].mutable_header()->set_sha256(Sha256(all));
  }

  ChunkAssembler assembler(max_payload, max_chunk);
  bool failed = false;
  for (const v1::Chunk& chunk : chunks) {
    if (!assembler.Add(chunk).ok()) {
      failed = true;
      Check(!assembler.Add(chunk).ok(), "a failed assembler accepted another chunk");
      break;
    }
  }
  absl::StatusOr<std::string> payload = assembler.Finish();
  Check(!(failed && payload.ok()), "a failed stream finished");
  Check(!assembler.Finish().ok(), "an assembler finished twice");
  if (!payload.ok()) return 0;
  const v1::PayloadHeader& header = chunks[0].header();
  Check(payload->size() == header.total_bytes(), "payload size differs from its header");
  Check(payload->size() <= max_payload, "payload beyond the limit was accepted");
  Check(Sha256(*payload) == header.sha256(), "payload digest differs from its header");

  // Round trip through the sender's side at a chunk size of 1..16 bytes.
  ChunkedPayload chunked(*payload, 1 + (options >> 4));
  ChunkAssembler again(max_payload, max_chunk);
  for (uint32_t i = 0; i < chunked.num_chunks(); ++i) {
    v1::Chunk chunk;
    chunked.FillChunk(i, &chunk);
    Check(again.Add(chunk).ok(), "a ChunkedPayload chunk was refused");
  }
  absl::StatusOr<std::string> back = again.Finish();
  Check(back.ok() && *back == *payload, "ChunkedPayload round trip changed the payload");
  return 0;
}
