#include "common/chunking.h"

#include <random>

#include "gtest/gtest.h"

namespace shoal {
namespace {

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::vector<v1::Chunk> Chunks(const ChunkedPayload& payload) {
  std::vector<v1::Chunk> out(payload.num_chunks());
  for (uint32_t i = 0; i < payload.num_chunks(); ++i) payload.FillChunk(i, &out[i]);
  return out;
}

absl::StatusOr<std::string> Assemble(const std::vector<v1::Chunk>& chunks,
                                     uint64_t limit = 1 << 30) {
  ChunkAssembler assembler(limit);
  for (const v1::Chunk& c : chunks) {
    absl::Status s = assembler.Add(c);
    if (!s.ok()) return s;
  }
  return assembler.Finish();
}

TEST(ChunkingTest, SeveralMiBPayloadArrivesWhole) {
  const std::string data = RandomBytes(5 * kChunkBytes + 12345, 1);
  ChunkedPayload payload(data);
  EXPECT_EQ(payload.num_chunks(), 6u);
  std::vector<v1::Chunk> chunks = Chunks(payload);
  for (const v1::Chunk& c : chunks) EXPECT_LE(c.data().size(), kChunkBytes);
  absl::StatusOr<std::string> back = Assemble(chunks);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, data);
}

TEST(ChunkingTest, EmptyAndExactMultiplePayloads) {
  for (size_t n : {size_t{0}, kChunkBytes, 2 * kChunkBytes}) {
    const std::string data = RandomBytes(n, n);
    absl::StatusOr<std::string> back = Assemble(Chunks(ChunkedPayload(data)));
    ASSERT_TRUE(back.ok()) << n << ": " << back.status();
    EXPECT_EQ(*back, data);
  }
}

TEST(ChunkingTest, CorruptedChunkIsRefused) {
  std::vector<v1::Chunk> chunks = Chunks(ChunkedPayload(RandomBytes(3 * kChunkBytes, 2)));
  (*chunks[1].mutable_data())[100] ^= 0x01;
  absl::StatusOr<std::string> back = Assemble(chunks);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(back.status().message().find("SHA-256"), std::string::npos);
}

TEST(ChunkingTest, TruncatedStreamIsRefused) {
  std::vector<v1::Chunk> chunks = Chunks(ChunkedPayload(RandomBytes(3 * kChunkBytes, 3)));
  chunks.pop_back();
  absl::StatusOr<std::string> back = Assemble(chunks);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(back.status().message().find("truncated"), std::string::npos);
}

TEST(ChunkingTest, OutOfOrderMissingHeaderAndOverrunAreRefused) {
  std::vector<v1::Chunk> chunks = Chunks(ChunkedPayload(RandomBytes(2 * kChunkBytes + 1, 4)));
  std::vector<v1::Chunk> swapped = {chunks[0], chunks[2], chunks[1]};
  EXPECT_FALSE(Assemble(swapped).ok());

  std::vector<v1::Chunk> headless = chunks;
  headless[0].clear_header();
  EXPECT_FALSE(Assemble(headless).ok());

  std::vector<v1::Chunk> overrun = chunks;
  overrun[2].mutable_data()->append("extra");
  EXPECT_FALSE(Assemble(overrun).ok());

  EXPECT_FALSE(Assemble({}).ok());
}

TEST(ChunkingTest, PayloadOverTheLimitIsRefusedFromTheHeader) {
  std::vector<v1::Chunk> chunks = Chunks(ChunkedPayload(RandomBytes(2 * kChunkBytes, 5)));
  ChunkAssembler assembler(/*max_payload_bytes=*/kChunkBytes);
  absl::Status s = assembler.Add(chunks[0]);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  // The assembler is spent after an error.
  EXPECT_FALSE(assembler.Add(chunks[1]).ok());
}

}  // namespace
}  // namespace shoal
