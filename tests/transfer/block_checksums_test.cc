#include "kvbm/transfer/block_checksums.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "kvbm/core/hashing.h"

namespace kvbm {
namespace {

using ::testing::HasSubstr;

std::vector<std::byte> bytes_of(std::size_t n, std::uint8_t seed) {
  std::vector<std::byte> bytes(n);
  for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
  return bytes;
}

TEST(BlockChecksumTest, IsXxh3SeededWithTheTag) {
  const std::vector<std::byte> bytes = bytes_of(4096, 1);
  EXPECT_EQ(block_checksum(bytes, 77), xxh3_64(bytes.data(), bytes.size(), 77));
  EXPECT_NE(block_checksum(bytes, 77), block_checksum(bytes, 78));
  std::vector<std::byte> flipped = bytes;
  flipped[1000] ^= std::byte{1};
  EXPECT_NE(block_checksum(bytes, 77), block_checksum(flipped, 77));
}

TEST(BlockChecksumsTest, RecordThenVerify) {
  BlockChecksums checksums(16);
  const std::vector<std::byte> bytes = bytes_of(8192, 3);
  const std::uint64_t sum = block_checksum(bytes, 0xabc);
  checksums.record(BlockId{5}, 0xabc, sum);
  EXPECT_TRUE(checksums.verify(BlockId{5}, 0xabc, block_checksum(bytes, 0xabc)).ok());
  // Idempotent: verifying does not consume the record.
  EXPECT_TRUE(checksums.verify(BlockId{5}, 0xabc, sum).ok());
}

TEST(BlockChecksumsTest, MismatchIsDataLoss) {
  BlockChecksums checksums(16);
  std::vector<std::byte> bytes = bytes_of(4096, 4);
  checksums.record(BlockId{12}, 0x1f, block_checksum(bytes, 0x1f));
  bytes[17] ^= std::byte{0x80};
  const absl::Status status = checksums.verify(BlockId{12}, 0x1f, block_checksum(bytes, 0x1f));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), HasSubstr("block 12: checksum mismatch for tag 0x1f"));
}

TEST(BlockChecksumsTest, WrongTagIsDataLoss) {
  BlockChecksums checksums(16);
  const std::vector<std::byte> bytes = bytes_of(4096, 5);
  checksums.record(BlockId{3}, 0xaa, block_checksum(bytes, 0xaa));
  // Same bytes read back under another sequence hash: neither the tag nor the checksum matches.
  absl::Status status = checksums.verify(BlockId{3}, 0xbb, block_checksum(bytes, 0xbb));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), HasSubstr("block 3: checksum mismatch for tag 0xbb"));
  // Even a caller that passes the recorded checksum under the wrong tag is refused.
  status = checksums.verify(BlockId{3}, 0xbb, block_checksum(bytes, 0xaa));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
}

TEST(BlockChecksumsTest, NeverWrittenAndInvalidatedAreDataLoss) {
  BlockChecksums checksums(16);
  absl::Status status = checksums.verify(BlockId{12}, 1, 2);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), "block 12: no checksum recorded (never written or overwritten)");

  checksums.record(BlockId{12}, 1, 2);
  EXPECT_TRUE(checksums.verify(BlockId{12}, 1, 2).ok());
  checksums.invalidate(BlockId{12});
  status = checksums.verify(BlockId{12}, 1, 2);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), HasSubstr("no checksum recorded"));
  // Other blocks are unaffected by one block's records.
  EXPECT_EQ(checksums.verify(BlockId{11}, 1, 2).code(), absl::StatusCode::kDataLoss);
}

TEST(BlockChecksumsTest, RerecordReplacesTheEntry) {
  BlockChecksums checksums(4);
  checksums.record(BlockId{0}, 1, 10);
  checksums.record(BlockId{0}, 2, 20);
  EXPECT_EQ(checksums.verify(BlockId{0}, 1, 10).code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(checksums.verify(BlockId{0}, 2, 20).ok());
}

TEST(BlockChecksumsTest, OutOfRangeBlockIsDataLossNamingIt) {
  BlockChecksums checksums(4);
  checksums.record(BlockId{4}, 1, 1);  // ignored
  checksums.invalidate(BlockId{9});    // ignored
  const absl::Status status = checksums.verify(BlockId{4}, 1, 1);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), HasSubstr("block 4"));
}

TEST(BlockChecksumsTest, ConcurrentRecordAndVerifyOfDistinctBlocks) {
  constexpr std::uint32_t kBlocks = 64;
  BlockChecksums checksums(kBlocks);
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 200; ++round) {
        for (std::uint32_t b = static_cast<std::uint32_t>(t); b < kBlocks; b += 4) {
          const std::uint64_t tag = round * 1000 + b;
          checksums.invalidate(BlockId{b});
          checksums.record(BlockId{b}, tag, tag * 7);
          if (!checksums.verify(BlockId{b}, tag, tag * 7).ok()) ++failures[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

}  // namespace
}  // namespace kvbm
