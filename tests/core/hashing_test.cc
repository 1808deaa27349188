// Known vectors computed independently with Debian's python3-xxhash:
//   xxhash.xxh3_64_intdigest(struct.pack('<%dI' % n, *tokens), seed=salt)            block hash
//   xxhash.xxh3_64_intdigest(struct.pack('<QQ', parent, block), seed=salt)            sequence hash
//   xxhash.xxh3_64_intdigest(salt.encode(), seed=0)                                   salt hash
#include "kvbm/core/hashing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace kvbm {
namespace {

std::vector<std::uint32_t> iota_tokens(std::uint32_t first, std::size_t count) {
  std::vector<std::uint32_t> tokens(count);
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

TEST(HashingTest, BlockHashKnownVectorUnsalted) {
  EXPECT_EQ(compute_block_hash(iota_tokens(1, 16), SaltHash{0}).value(), 15195734001507359261ull);
  EXPECT_EQ(compute_block_hash(iota_tokens(17, 16), SaltHash{0}).value(), 10782981959423027849ull);
}

TEST(HashingTest, SequenceHashKnownVectorChained) {
  const BlockHash first = compute_block_hash(iota_tokens(1, 16), SaltHash{0});
  const BlockHash second = compute_block_hash(iota_tokens(17, 16), SaltHash{0});
  const SequenceHash root = chain_sequence_hash(std::nullopt, first, SaltHash{0});
  EXPECT_EQ(root.value(), first.value());
  EXPECT_EQ(compute_sequence_hash(root, second, SaltHash{0}).value(), 18166693838618995723ull);
  EXPECT_EQ(chain_sequence_hash(root, second, SaltHash{0}).value(), 18166693838618995723ull);
}

TEST(HashingTest, SaltedKnownVectors) {
  const SaltHash salt = compute_salt_hash("tenant-a");
  EXPECT_EQ(salt.value(), 7159698576361518977ull);
  const BlockHash first = compute_block_hash(iota_tokens(1, 16), salt);
  const BlockHash second = compute_block_hash(iota_tokens(17, 16), salt);
  EXPECT_EQ(first.value(), 7299092984782865713ull);
  EXPECT_EQ(second.value(), 3489134883335653042ull);
  EXPECT_EQ(compute_sequence_hash(SequenceHash{first.value()}, second, salt).value(), 9455645613401739355ull);
}

TEST(HashingTest, HashAboveTwoToThe63IsKeptUnsigned) {
  const std::vector<std::uint32_t> tokens = {1};
  const std::uint64_t hash = compute_block_hash(tokens, SaltHash{0}).value();
  EXPECT_EQ(hash, 15781232456890734344ull);
  EXPECT_GE(hash, std::uint64_t{1} << 63);
}

TEST(HashingTest, EmptySaltIsZeroAndRawPrimitiveMatches) {
  EXPECT_EQ(compute_salt_hash("").value(), 0u);
  EXPECT_EQ(xxh3_64(nullptr, 0, 0), 3244421341483603138ull);
  const std::vector<std::uint32_t> tokens = iota_tokens(1, 16);
  EXPECT_EQ(xxh3_64(tokens.data(), tokens.size() * 4, 0), 15195734001507359261ull);
}

TEST(HashingTest, DeriveSaltHashKnownVectorsAndSeparation) {
  EXPECT_EQ(derive_salt_hash("", "").value(), 0u);
  EXPECT_EQ(derive_salt_hash("tenant-a", ""), compute_salt_hash("tenant-a"));
  // xxh3_64(b"tenant-a\x00lora:adapter1") and xxh3_64(b"\x00lora:adapter1").
  EXPECT_EQ(derive_salt_hash("tenant-a", "adapter1").value(), 13005308776273169764ull);
  EXPECT_EQ(derive_salt_hash("", "adapter1").value(), 956931840679897788ull);
  EXPECT_NE(derive_salt_hash("", "adapter1"), derive_salt_hash("", "adapter2"));
  EXPECT_NE(derive_salt_hash("", "adapter1"), compute_salt_hash("lora:adapter1"));
}

TEST(HashingTest, SaltChangesEveryHash) {
  const std::vector<std::uint32_t> tokens = iota_tokens(100, 32);
  const SaltHash a = compute_salt_hash("a");
  const SaltHash b = compute_salt_hash("b");
  EXPECT_NE(a, b);
  EXPECT_NE(compute_block_hash(tokens, a), compute_block_hash(tokens, b));
  EXPECT_NE(compute_block_hash(tokens, a), compute_block_hash(tokens, SaltHash{0}));
  const BlockHash block{42};
  EXPECT_NE(compute_sequence_hash(SequenceHash{7}, block, a), compute_sequence_hash(SequenceHash{7}, block, b));
}

TEST(HashingTest, ChainingDependsOnParentAndOrder) {
  const BlockHash block = compute_block_hash(iota_tokens(5, 8), SaltHash{0});
  EXPECT_NE(compute_sequence_hash(SequenceHash{1}, block, SaltHash{0}),
            compute_sequence_hash(SequenceHash{2}, block, SaltHash{0}));
  // Swapping parent and block must not give the same hash (the input is ordered, not a commutative mix).
  EXPECT_NE(compute_sequence_hash(SequenceHash{1}, BlockHash{2}, SaltHash{0}),
            compute_sequence_hash(SequenceHash{2}, BlockHash{1}, SaltHash{0}));
}

TEST(HashingTest, TokenOrderAndValueMatter) {
  std::vector<std::uint32_t> tokens = iota_tokens(1, 16);
  const BlockHash base = compute_block_hash(tokens, SaltHash{0});
  std::swap(tokens[0], tokens[1]);
  EXPECT_NE(compute_block_hash(tokens, SaltHash{0}), base);
  std::swap(tokens[0], tokens[1]);
  tokens[15] = 0xFFFFFFFFu;
  EXPECT_NE(compute_block_hash(tokens, SaltHash{0}), base);
}

TEST(HashingTest, HashBlocksKnownVectors) {
  const std::vector<std::uint32_t> tokens = iota_tokens(1, 32 + 5);  // two blocks and a partial tail
  BlockHash blocks[2];
  SequenceHash sequences[2];
  hash_blocks(tokens, 16, SaltHash{0}, std::nullopt, blocks, sequences);
  EXPECT_EQ(blocks[0].value(), 15195734001507359261ull);
  EXPECT_EQ(blocks[1].value(), 10782981959423027849ull);
  EXPECT_EQ(sequences[0].value(), 15195734001507359261ull);
  EXPECT_EQ(sequences[1].value(), 18166693838618995723ull);
}

// hash_blocks against compute_block_hash + chain_sequence_hash, block by block, over the page sizes that
// take each of its paths: the 16- and 32-token specialisations, generic short blocks, and blocks over
// 240 bytes (XXH3's long path, where a salt's secret is derived once per call instead of per block).
TEST(HashingTest, HashBlocksMatchesPerBlockHashingAndCopiesTokens) {
  constexpr std::uint32_t kSentinel = 0xDEADBEEFu;
  for (const std::uint32_t page : {1u, 3u, 4u, 16u, 32u, 61u, 64u, 100u, 256u}) {
    for (const SaltHash salt : {SaltHash{0}, compute_salt_hash("tenant-a")}) {
      for (const std::optional<SequenceHash> parent : {std::optional<SequenceHash>{}, std::optional(SequenceHash{7})}) {
        SCOPED_TRACE(testing::Message() << "page " << page << " salt " << salt.value() << " parent "
                                        << parent.has_value());
        constexpr std::size_t kBlocks = 5;
        std::vector<std::uint32_t> tokens(kBlocks * page + page / 2);
        for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::uint32_t>(i * 2654435761u);
        std::vector<BlockHash> blocks(kBlocks);
        std::vector<SequenceHash> sequences(kBlocks);
        std::vector<std::uint32_t> copy(kBlocks * page + 1, kSentinel);
        hash_blocks(tokens, page, salt, parent, blocks.data(), sequences.data(), copy.data());

        std::optional<SequenceHash> expected_parent = parent;
        for (std::size_t i = 0; i < kBlocks; ++i) {
          const BlockHash block = compute_block_hash(std::span(tokens).subspan(i * page, page), salt);
          expected_parent = chain_sequence_hash(expected_parent, block, salt);
          EXPECT_EQ(blocks[i], block) << "block " << i;
          EXPECT_EQ(sequences[i], *expected_parent) << "block " << i;
        }
        EXPECT_TRUE(std::equal(copy.begin(), copy.end() - 1, tokens.begin()));
        EXPECT_EQ(copy.back(), kSentinel);  // the partial tail is neither hashed nor copied

        // Without tokens_out the hashes are the same.
        std::vector<SequenceHash> again(kBlocks);
        hash_blocks(tokens, page, salt, parent, blocks.data(), again.data());
        EXPECT_EQ(again, sequences);
      }
    }
  }
}

TEST(HashingTest, HashBlocksWithNoFullBlockWritesNothing) {
  const std::vector<std::uint32_t> tokens = iota_tokens(1, 15);
  BlockHash block{42};
  SequenceHash sequence{43};
  std::uint32_t copy = 44;
  hash_blocks(tokens, 16, SaltHash{0}, std::nullopt, &block, &sequence, &copy);
  hash_blocks({}, 16, SaltHash{0}, SequenceHash{1}, &block, &sequence, &copy);
  EXPECT_EQ(block.value(), 42u);
  EXPECT_EQ(sequence.value(), 43u);
  EXPECT_EQ(copy, 44u);
}

}  // namespace
}  // namespace kvbm
