#include "kvbm/core/token_block_sequence.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "kvbm/core/hashing.h"

namespace kvbm {
namespace {

std::vector<std::uint32_t> iota_tokens(std::uint32_t first, std::size_t count) {
  std::vector<std::uint32_t> tokens(count);
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

// The hashes an explicit chain over `tokens` gives, block by block.
std::vector<SequenceHash> explicit_chain(const std::vector<std::uint32_t>& tokens, std::uint32_t page, SaltHash salt) {
  std::vector<SequenceHash> out;
  std::optional<SequenceHash> parent;
  for (std::size_t start = 0; start + page <= tokens.size(); start += page) {
    const BlockHash block = compute_block_hash(std::span(tokens).subspan(start, page), salt);
    parent = chain_sequence_hash(parent, block, salt);
    out.push_back(*parent);
  }
  return out;
}

std::vector<SequenceHash> to_vector(std::span<const SequenceHash> hashes) { return {hashes.begin(), hashes.end()}; }

TEST(TokenBlockSequenceTest, RejectsPageSizeZero) {
  auto sequence = TokenBlockSequence::create(0);
  ASSERT_FALSE(sequence.ok());
  EXPECT_EQ(sequence.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(sequence.status().message().find("page_size"), std::string_view::npos);
}

TEST(TokenBlockSequenceTest, AppendOneByOneHashesWhenBlockFills) {
  auto sequence = TokenBlockSequence::create(4);
  ASSERT_TRUE(sequence.ok());
  for (std::uint32_t t = 0; t < 3; ++t) sequence->append(t);
  EXPECT_EQ(sequence->num_full_blocks(), 0u);
  EXPECT_EQ(sequence->partial_tokens().size(), 3u);
  sequence->append(3u);
  ASSERT_EQ(sequence->num_full_blocks(), 1u);
  EXPECT_TRUE(sequence->partial_tokens().empty());
  const TokenBlock block = sequence->block(0);
  EXPECT_EQ(block.tokens.size(), 4u);
  EXPECT_EQ(block.tokens[3], 3u);
  EXPECT_FALSE(block.parent_sequence_hash.has_value());
  EXPECT_EQ(block.block_hash, compute_block_hash(iota_tokens(0, 4), SaltHash{0}));
  EXPECT_EQ(block.sequence_hash.value(), block.block_hash.value());
}

TEST(TokenBlockSequenceTest, AppendManyMatchesExplicitChainWithPartialTail) {
  const SaltHash salt = compute_salt_hash("s");
  const std::vector<std::uint32_t> tokens = iota_tokens(1000, 16 * 5 + 7);
  auto sequence = TokenBlockSequence::create(16, salt, tokens);
  ASSERT_TRUE(sequence.ok());
  EXPECT_EQ(sequence->num_tokens(), tokens.size());
  EXPECT_EQ(sequence->num_full_blocks(), 5u);
  EXPECT_EQ(sequence->partial_tokens().size(), 7u);
  EXPECT_EQ(sequence->partial_tokens()[0], 1000u + 80u);
  EXPECT_EQ(to_vector(sequence->sequence_hashes()), explicit_chain(tokens, 16, salt));
  const std::vector<TokenBlock> blocks = sequence->blocks();
  ASSERT_EQ(blocks.size(), 5u);
  for (std::size_t i = 1; i < blocks.size(); ++i) {
    ASSERT_TRUE(blocks[i].parent_sequence_hash.has_value());
    EXPECT_EQ(*blocks[i].parent_sequence_hash, blocks[i - 1].sequence_hash);
    EXPECT_EQ(blocks[i].block_hash, sequence->block_hashes()[i]);
  }
}

TEST(TokenBlockSequenceTest, IncrementalAppendEqualsBulk) {
  const std::vector<std::uint32_t> tokens = iota_tokens(7, 50);
  auto bulk = TokenBlockSequence::create(8, SaltHash{0}, tokens);
  auto inc = TokenBlockSequence::create(8);
  ASSERT_TRUE(bulk.ok() && inc.ok());
  inc->append(std::span(tokens).subspan(0, 5));
  for (std::size_t i = 5; i < 20; ++i) inc->append(tokens[i]);
  inc->append(std::span(tokens).subspan(20));
  EXPECT_EQ(to_vector(inc->sequence_hashes()), to_vector(bulk->sequence_hashes()));
}

TEST(TokenBlockSequenceTest, PopAcrossBlockBoundaryRehashesIdentically) {
  const std::vector<std::uint32_t> tokens = iota_tokens(1, 12);
  auto sequence = TokenBlockSequence::create(4, SaltHash{0}, tokens);
  ASSERT_TRUE(sequence.ok());
  const std::vector<SequenceHash> before = to_vector(sequence->sequence_hashes());
  ASSERT_EQ(before.size(), 3u);
  sequence->pop(5);  // 12 → 7 tokens: block 2 and block 1 lose tokens.
  EXPECT_EQ(sequence->num_tokens(), 7u);
  EXPECT_EQ(sequence->num_full_blocks(), 1u);
  EXPECT_EQ(sequence->sequence_hashes()[0], before[0]);
  EXPECT_EQ(sequence->partial_tokens().size(), 3u);
  sequence->append(std::span(tokens).subspan(7));
  EXPECT_EQ(to_vector(sequence->sequence_hashes()), before);

  // Re-appending different tokens gives different hashes for the re-filled blocks only.
  sequence->pop(1);
  sequence->append(999u);
  EXPECT_EQ(sequence->sequence_hashes()[1], before[1]);
  EXPECT_NE(sequence->sequence_hashes()[2], before[2]);
}

TEST(TokenBlockSequenceTest, PopClampsAndDefaultsToOne) {
  auto sequence = TokenBlockSequence::create(4, SaltHash{0}, iota_tokens(0, 4));
  ASSERT_TRUE(sequence.ok());
  sequence->pop();
  EXPECT_EQ(sequence->num_tokens(), 3u);
  EXPECT_EQ(sequence->num_full_blocks(), 0u);
  sequence->pop(100);
  EXPECT_EQ(sequence->num_tokens(), 0u);
  EXPECT_TRUE(sequence->partial_tokens().empty());
}

TEST(TokenBlockSequenceTest, Truncate) {
  const std::vector<std::uint32_t> tokens = iota_tokens(1, 20);
  auto sequence = TokenBlockSequence::create(4, SaltHash{0}, tokens);
  ASSERT_TRUE(sequence.ok());
  sequence->truncate(100);  // no-op
  EXPECT_EQ(sequence->num_tokens(), 20u);
  EXPECT_EQ(sequence->num_full_blocks(), 5u);
  sequence->truncate(8);  // exactly on a boundary: two full blocks stay hashed
  EXPECT_EQ(sequence->num_full_blocks(), 2u);
  EXPECT_TRUE(sequence->partial_tokens().empty());
  EXPECT_EQ(to_vector(sequence->sequence_hashes()),
            explicit_chain(std::vector<std::uint32_t>(tokens.begin(), tokens.begin() + 8), 4, SaltHash{0}));
  sequence->truncate(0);
  EXPECT_EQ(sequence->num_tokens(), 0u);
  EXPECT_EQ(sequence->num_full_blocks(), 0u);
}

TEST(TokenBlockSequenceTest, AccessorsReportConstruction) {
  const SaltHash salt{123};
  auto sequence = TokenBlockSequence::create(16, salt);
  ASSERT_TRUE(sequence.ok());
  EXPECT_EQ(sequence->page_size(), 16u);
  EXPECT_EQ(sequence->salt_hash(), salt);
  EXPECT_EQ(sequence->num_tokens(), 0u);
}

// Appends split at every kind of boundary (inside a block, exactly on one, completing a partial block
// and running on) give the bulk hashes and tokens; page 64 with a salt takes XXH3's long path.
TEST(TokenBlockSequenceTest, ChunkedAppendEqualsExplicitChainAcrossPageSizes) {
  for (const std::uint32_t page : {1u, 5u, 16u, 32u, 64u}) {
    for (const SaltHash salt : {SaltHash{0}, compute_salt_hash("s")}) {
      SCOPED_TRACE(testing::Message() << "page " << page << " salt " << salt.value());
      const std::vector<std::uint32_t> tokens = iota_tokens(3, 9 * page + 3);
      const std::vector<SequenceHash> expected = explicit_chain(tokens, page, salt);
      for (const std::size_t chunk : {std::size_t{1}, std::size_t{page - 1 + (page == 1)}, std::size_t{page},
                                      std::size_t{page + 3}, std::size_t{3 * page + 1}, tokens.size()}) {
        auto sequence = TokenBlockSequence::create(page, salt);
        ASSERT_TRUE(sequence.ok());
        for (std::size_t start = 0; start < tokens.size(); start += chunk) {
          sequence->append(std::span(tokens).subspan(start, std::min(chunk, tokens.size() - start)));
        }
        EXPECT_EQ(to_vector(sequence->sequence_hashes()), expected) << "chunk " << chunk;
        EXPECT_TRUE(std::ranges::equal(sequence->tokens(), tokens)) << "chunk " << chunk;
        EXPECT_EQ(sequence->partial_tokens().size(), 3u % page);
        ASSERT_EQ(sequence->num_full_blocks(), expected.size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
          EXPECT_EQ(sequence->block_hashes()[i], compute_block_hash(std::span(tokens).subspan(i * page, page), salt));
        }
      }
    }
  }
}

TEST(TokenBlockSequenceTest, CopyIsIndependent) {
  const std::vector<std::uint32_t> tokens = iota_tokens(1, 40);
  auto sequence = TokenBlockSequence::create(16, SaltHash{0}, tokens);
  ASSERT_TRUE(sequence.ok());
  TokenBlockSequence copy = *sequence;
  copy.pop(20);
  copy.append(std::span(tokens).subspan(0, 20));
  EXPECT_TRUE(std::ranges::equal(sequence->tokens(), tokens));
  EXPECT_EQ(to_vector(sequence->sequence_hashes()), explicit_chain(tokens, 16, SaltHash{0}));
  EXPECT_EQ(copy.num_tokens(), 40u);
  EXPECT_EQ(copy.sequence_hashes()[0], sequence->sequence_hashes()[0]);
  EXPECT_NE(copy.sequence_hashes()[1], sequence->sequence_hashes()[1]);
}

}  // namespace
}  // namespace kvbm
