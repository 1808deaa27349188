#include "kvbm/manager/kv_block_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <random>

#include "kvbm/core/hashing.h"

namespace kvbm {
namespace {

using ::testing::HasSubstr;

KvbmConfig small_config(LayoutKind layout) {
  KvbmConfig config;
  config.model = ModelConfig{.num_layers = 3, .outer_dim = 2, .page_size = 4, .inner_dim = 8, .dtype_bytes = 2};
  config.g1.num_blocks = 16;
  config.g1.layout.kind = layout;
  return config;
}

// Fills every chunk of a block with bytes derived from its sequence hash, layer and outer index.
void fill(G1MutableBlock& block, SequenceHash hash, const ModelConfig& model) {
  for (std::uint32_t l = 0; l < model.num_layers; ++l) {
    for (std::uint32_t o = 0; o < model.outer_dim; ++o) {
      std::span<std::byte> bytes = block.chunk(l, o);
      ASSERT_EQ(bytes.size(), model.bytes_per_chunk());
      std::mt19937_64 rng(hash.value() ^ (l * 131 + o));
      for (std::byte& b : bytes) b = static_cast<std::byte>(rng());
    }
  }
}

void expect_filled(const G1Block& block, SequenceHash hash, const ModelConfig& model) {
  for (std::uint32_t l = 0; l < model.num_layers; ++l) {
    for (std::uint32_t o = 0; o < model.outer_dim; ++o) {
      std::span<const std::byte> bytes = block.chunk(l, o);
      ASSERT_EQ(bytes.size(), model.bytes_per_chunk());
      std::mt19937_64 rng(hash.value() ^ (l * 131 + o));
      for (std::size_t i = 0; i < bytes.size(); ++i) {
        ASSERT_EQ(bytes[i], static_cast<std::byte>(rng())) << "layer " << l << " outer " << o << " byte " << i;
      }
    }
  }
}

class KvBlockManagerLayoutTest : public ::testing::TestWithParam<LayoutKind> {};

TEST_P(KvBlockManagerLayoutTest, SecondRequestReusesPrefixBytes) {
  auto kvbm = KvBlockManager::create(small_config(GetParam()));
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  KvBlockManager& m = **kvbm;
  const ModelConfig& model = m.model();

  std::vector<std::uint32_t> prompt(4 * 5 + 2);  // 5 full blocks + a partial tail
  std::iota(prompt.begin(), prompt.end(), 1000u);
  auto seq = m.make_sequence(prompt);
  ASSERT_TRUE(seq.ok());
  ASSERT_EQ(seq->num_full_blocks(), 5u);

  // First request: nothing cached.
  EXPECT_TRUE(m.match_g1(seq->sequence_hashes()).empty());
  auto fresh = m.allocate(5);
  ASSERT_TRUE(fresh.ok());
  for (std::size_t i = 0; i < 5; ++i) {
    TokenBlock tb = seq->block(i);
    fill((*fresh)[i], tb.sequence_hash, model);
    ASSERT_TRUE((*fresh)[i].apply(tb).ok());
  }
  auto registered = m.register_blocks(*fresh);
  ASSERT_TRUE(registered.ok()) << registered.status();
  m.release(*std::move(registered));
  EXPECT_EQ(m.status(), (PoolStatus{.active = 0, .inactive = 5, .free = 11, .owned = 0}));

  // Second request shares the first 3 blocks, then diverges.
  std::vector<std::uint32_t> second(prompt.begin(), prompt.begin() + 12);
  second.insert(second.end(), {7, 7, 7, 7});
  auto seq2 = m.make_sequence(second);
  ASSERT_TRUE(seq2.ok());
  std::vector<G1Block> hits = m.match_g1(seq2->sequence_hashes());
  ASSERT_EQ(hits.size(), 3u);
  for (std::size_t i = 0; i < hits.size(); ++i) {
    EXPECT_EQ(hits[i].sequence_hash(), seq->sequence_hashes()[i]);
    expect_filled(hits[i], seq->sequence_hashes()[i], model);
    std::vector<std::uint32_t> expected(prompt.begin() + 4 * i, prompt.begin() + 4 * (i + 1));
    EXPECT_THAT(std::vector<std::uint32_t>(hits[i].tokens().begin(), hits[i].tokens().end()),
                ::testing::ElementsAreArray(expected));
  }
  EXPECT_EQ(m.status().active, 3u);
  m.release(std::move(hits));
  EXPECT_EQ(m.status().active, 0u);
}

INSTANTIATE_TEST_SUITE_P(Layouts, KvBlockManagerLayoutTest,
                         ::testing::Values(LayoutKind::kFullyContiguous, LayoutKind::kLayerSeparate));

TEST(KvBlockManagerTest, BuildsBlockTokenByToken) {
  auto kvbm = KvBlockManager::create(small_config(LayoutKind::kFullyContiguous));
  ASSERT_TRUE(kvbm.ok());
  KvBlockManager& m = **kvbm;
  const SaltHash salt = compute_salt_hash("tenant-a");
  auto blocks = m.allocate(1);
  ASSERT_TRUE(blocks.ok());
  G1MutableBlock& b = (*blocks)[0];
  ASSERT_TRUE(b.init(salt, std::nullopt).ok());
  const std::uint32_t tokens[] = {5, 6, 7, 8};
  ASSERT_TRUE(b.append(std::span(tokens, 2)).ok());
  ASSERT_TRUE(b.append(std::span(tokens + 2, 2)).ok());
  ASSERT_TRUE(b.commit().ok());
  auto seq = m.make_sequence(tokens, salt);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(b.identity().sequence_hash, seq->sequence_hashes()[0]);
  auto registered = m.register_blocks(*blocks);
  ASSERT_TRUE(registered.ok());
  // The same tokens under no salt must not match.
  auto unsalted = m.make_sequence(tokens);
  EXPECT_TRUE(m.match_g1(unsalted->sequence_hashes()).empty());
  EXPECT_EQ(m.match_g1(seq->sequence_hashes()).size(), 1u);
}

TEST(KvBlockManagerTest, CapacityFromBytes) {
  KvbmConfig config = small_config(LayoutKind::kFullyContiguous);
  config.g1.num_blocks = 0;
  config.g1.bytes = config.model.bytes_per_block() * 7 + 100;
  auto kvbm = KvBlockManager::create(config);
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  EXPECT_EQ((*kvbm)->status().free, 7u);
  EXPECT_EQ((*kvbm)->g1_layout().num_blocks(), 7u);
}

TEST(KvBlockManagerTest, InvalidConfigIsRejectedWithTheField) {
  KvbmConfig config = small_config(LayoutKind::kFullyContiguous);
  config.model.outer_dim = 3;
  auto kvbm = KvBlockManager::create(config);
  ASSERT_FALSE(kvbm.ok());
  EXPECT_EQ(kvbm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(kvbm.status().message()), HasSubstr("outer_dim"));
}

TEST(KvBlockManagerTest, ExhaustionIsAnErrorNotACrash) {
  auto kvbm = KvBlockManager::create(small_config(LayoutKind::kFullyContiguous));
  ASSERT_TRUE(kvbm.ok());
  auto all = (*kvbm)->allocate(16);
  ASSERT_TRUE(all.ok());
  auto more = (*kvbm)->allocate(1);
  ASSERT_FALSE(more.ok());
  EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(more.status().message()), HasSubstr("0 free + 0 evictable of 16"));
}

TEST(KvBlockManagerTest, ResetDropsEverythingWhenNothingIsHeld) {
  auto kvbm = KvBlockManager::create(small_config(LayoutKind::kFullyContiguous));
  ASSERT_TRUE(kvbm.ok());
  KvBlockManager& m = **kvbm;
  std::vector<std::uint32_t> tokens(8, 3);
  auto seq = m.make_sequence(tokens);
  auto blocks = m.allocate(2);
  ASSERT_TRUE((*blocks)[0].apply(seq->block(0)).ok());
  ASSERT_TRUE((*blocks)[1].apply(seq->block(1)).ok());
  auto registered = m.register_blocks(*blocks);
  ASSERT_TRUE(registered.ok());
  EXPECT_EQ(m.reset().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m.match_g1(seq->sequence_hashes()).size(), 2u);
  registered->clear();
  ASSERT_TRUE(m.reset().ok());
  EXPECT_TRUE(m.match_g1(seq->sequence_hashes()).empty());
  EXPECT_EQ(m.status().free, 16u);
}

}  // namespace
}  // namespace kvbm
