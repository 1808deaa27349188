// API misuse (issue 8/8): every wrong use of the pool and manager API is an error that changes nothing,
// never a crash, a corrupted pool or another block's bytes. One test per case.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "kvbm/core/hashing.h"
#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/pool/block_pool.h"
#include "support/pool_test_util.h"

namespace kvbm {
namespace {

using ::testing::HasSubstr;
using testing::identity_chain;
using testing::make_tokens;
using testing::sequence_hashes;

constexpr std::uint32_t kPage = 4;

std::unique_ptr<G1Pool> make_pool(std::uint32_t blocks = 8, bool keep_tokens = true) {
  auto pool = G1Pool::create(BlockPoolConfig{.num_blocks = blocks, .page_size = kPage, .keep_tokens = keep_tokens});
  EXPECT_TRUE(pool.ok()) << pool.status();
  return *std::move(pool);
}

// `n` Complete blocks of a fresh chain (seed picks the tokens).
std::vector<G1MutableBlock> complete_blocks(G1Pool& pool, std::size_t n, std::uint32_t seed) {
  const std::vector<std::uint32_t> tokens = make_tokens(n * kPage, seed);
  const std::vector<BlockIdentity> chain = identity_chain(tokens, kPage);
  auto blocks = pool.allocate(n);
  EXPECT_TRUE(blocks.ok()) << blocks.status();
  for (std::size_t i = 0; i < n; ++i) EXPECT_TRUE((*blocks)[i].apply(chain[i]).ok());
  return *std::move(blocks);
}

TEST(ApiMisuseTest, RegisteringTheSameHandlesTwice) {
  auto pool = make_pool();
  auto blocks = complete_blocks(*pool, 2, 1);
  auto registered = pool->register_blocks(blocks);
  ASSERT_TRUE(registered.ok()) << registered.status();
  const PoolStatus before = pool->status();
  auto again = pool->register_blocks(blocks);  // the handles were consumed
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("block #0 is an empty (moved-from) handle"));
  EXPECT_EQ(pool->status(), before);
}

TEST(ApiMisuseTest, RegisteringIncompleteBlocksChangesNothing) {
  auto pool = make_pool();
  auto blocks = pool->allocate(3);
  ASSERT_TRUE(blocks.ok());
  const auto chain = identity_chain(make_tokens(kPage, 2), kPage);
  ASSERT_TRUE((*blocks)[0].apply(chain[0]).ok());                  // Complete
  ASSERT_TRUE((*blocks)[1].init(SaltHash{0}, std::nullopt).ok());  // Partial
  const std::vector<std::uint32_t> two = {1, 2};
  ASSERT_TRUE((*blocks)[1].append(two).ok());
  // [2] stays Reset.
  const PoolStatus before = pool->status();
  auto partial = pool->register_blocks(std::span(*blocks).first(2));
  ASSERT_FALSE(partial.ok());
  EXPECT_THAT(std::string(partial.status().message()), HasSubstr("block #1 is Partial (2/4 tokens)"));
  auto reset = pool->register_blocks(std::span(*blocks).subspan(2));
  ASSERT_FALSE(reset.ok());
  EXPECT_THAT(std::string(reset.status().message()), HasSubstr("block #0 is Reset"));
  EXPECT_EQ(pool->status(), before);
  EXPECT_FALSE(pool->contains(chain[0].sequence_hash));  // all or nothing: the Complete one was not registered
  EXPECT_TRUE((*blocks)[0].valid());
  auto ok = pool->register_blocks(std::span(*blocks).first(1));
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(ApiMisuseTest, WrongSizeTokenBlocks) {
  auto pool = make_pool();
  auto blocks = pool->allocate(1);
  ASSERT_TRUE(blocks.ok());
  G1MutableBlock& b = (*blocks)[0];
  for (std::size_t n : {std::size_t{0}, std::size_t{kPage - 1}, std::size_t{kPage + 1}, std::size_t{1000}}) {
    const std::vector<std::uint32_t> tokens = make_tokens(n, 3);
    const TokenBlock block{tokens, BlockHash{1}, SequenceHash{2}, std::nullopt};
    const absl::Status s = b.apply(block);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << n;
    EXPECT_THAT(std::string(s.message()), HasSubstr("page_size is 4")) << n;
    EXPECT_EQ(b.state(), MutableState::kReset);
  }
  // Appending more than a page, or committing less than one.
  ASSERT_TRUE(b.init(SaltHash{0}, std::nullopt).ok());
  const std::vector<std::uint32_t> five = make_tokens(5, 4);
  EXPECT_EQ(b.append(five).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(b.num_tokens(), 0u);
  ASSERT_TRUE(b.append(std::span(five).first(3)).ok());
  EXPECT_EQ(b.commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.append(std::span(five).first(2)).code(), absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(b.append(std::span(five).first(1)).ok());
  EXPECT_TRUE(b.commit().ok());
}

TEST(ApiMisuseTest, OperationsInTheWrongState) {
  auto pool = make_pool();
  auto blocks = pool->allocate(2);
  ASSERT_TRUE(blocks.ok());
  G1MutableBlock& b = (*blocks)[0];
  const std::vector<std::uint32_t> one = {7};
  EXPECT_EQ(b.append(one).code(), absl::StatusCode::kFailedPrecondition);  // before init
  EXPECT_EQ(b.commit().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(b.init(SaltHash{0}, std::nullopt).ok());
  EXPECT_EQ(b.init(SaltHash{0}, std::nullopt).code(), absl::StatusCode::kFailedPrecondition);  // init twice
  const auto chain = identity_chain(make_tokens(kPage, 5), kPage);
  EXPECT_EQ(b.apply(chain[0]).code(), absl::StatusCode::kFailedPrecondition);  // apply on Partial
  G1MutableBlock& c = (*blocks)[1];
  ASSERT_TRUE(c.apply(chain[0]).ok());
  EXPECT_EQ(c.apply(chain[0]).code(), absl::StatusCode::kFailedPrecondition);  // apply twice
  EXPECT_EQ(c.init(SaltHash{0}, std::nullopt).code(), absl::StatusCode::kFailedPrecondition);
  // keep_tokens = false: building token by token is refused, apply(identity) works.
  auto no_tokens = make_pool(4, /*keep_tokens=*/false);
  auto d = no_tokens->allocate(1);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE((*d)[0].init(SaltHash{0}, std::nullopt).ok());
  EXPECT_THAT(std::string((*d)[0].append(one).message()), HasSubstr("keep_tokens = false"));
}

TEST(ApiMisuseTest, EmptyHandlesAreErrorsNotCrashes) {
  auto pool = make_pool();
  G1MutableBlock empty;
  const std::vector<std::uint32_t> one = {1};
  EXPECT_EQ(empty.init(SaltHash{0}, std::nullopt).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(empty.append(one).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(empty.commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(empty.apply(BlockIdentity{}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(empty.chunk(0, 0).empty());
  std::vector<G1MutableBlock> v;
  v.push_back(std::move(empty));
  auto r = pool->register_blocks(v);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);

  // An empty ImmutableBlock: every accessor answers (no null dereference), reset and release are no-ops.
  G1Block none;
  EXPECT_FALSE(none.valid());
  EXPECT_EQ(none.identity().sequence_hash, SequenceHash{0});
  EXPECT_EQ(none.priority(), kDefaultRetentionPriority);
  EXPECT_TRUE(none.tokens().empty());
  EXPECT_TRUE(none.chunk(0, 0).empty());
  none.reset();
  std::vector<G1Block> nones(3);
  pool->release(std::move(nones));
  EXPECT_EQ(pool->status(), (PoolStatus{0, 0, 8, 0}));
}

TEST(ApiMisuseTest, ForeignMutableBlockIsRefused) {
  auto a = make_pool();
  auto b = make_pool();
  auto blocks = complete_blocks(*a, 2, 6);
  const PoolStatus a_before = a->status();
  const PoolStatus b_before = b->status();
  auto r = b->register_blocks(blocks);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("block #0 belongs to another pool"));
  EXPECT_EQ(a->status(), a_before);
  EXPECT_EQ(b->status(), b_before);
  EXPECT_TRUE(blocks[0].valid());
  auto ok = a->register_blocks(blocks);  // still registrable where they belong
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(ApiMisuseTest, ForeignImmutableBlocksReleaseIntoTheirOwnPool) {
  auto a = make_pool();
  auto b = make_pool();
  auto blocks = complete_blocks(*a, 2, 7);
  auto registered = a->register_blocks(blocks);
  ASSERT_TRUE(registered.ok());
  EXPECT_TRUE(a->owns((*registered)[0]));
  EXPECT_FALSE(b->owns((*registered)[0]));
  b->release(std::move(*registered));
  EXPECT_EQ(a->status(), (PoolStatus{0, 2, 6, 0}));
  EXPECT_EQ(b->status(), (PoolStatus{0, 0, 8, 0}));
}

TEST(ApiMisuseTest, ReleasingTwiceIsANoOp) {
  auto pool = make_pool();
  auto blocks = complete_blocks(*pool, 2, 8);
  auto registered = pool->register_blocks(blocks);
  ASSERT_TRUE(registered.ok());
  G1Block copy = (*registered)[0];  // a second reference to block 0
  (*registered)[0].reset();
  (*registered)[0].reset();               // twice: nothing
  EXPECT_EQ(pool->status().active, 2u);   // block 0 still held by `copy`
  pool->release(std::move(*registered));  // [0] empty, [1] released
  pool->release(std::move(*registered));  // the moved-from vector: nothing
  EXPECT_EQ(pool->status(), (PoolStatus{1, 1, 6, 0}));
  copy.reset();
  EXPECT_EQ(pool->status(), (PoolStatus{0, 2, 6, 0}));
}

TEST(ApiMisuseTest, AllocateZeroAndHugeCounts) {
  auto pool = make_pool();
  auto zero = pool->allocate(0);
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(zero->empty());
  for (std::size_t n : {std::size_t{9}, std::size_t{1} << 32, std::numeric_limits<std::size_t>::max()}) {
    auto huge = pool->allocate(n);
    ASSERT_FALSE(huge.ok()) << n;
    EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(pool->status(), (PoolStatus{0, 0, 8, 0}));
  }
  auto all = pool->allocate(8);
  EXPECT_TRUE(all.ok());
  EXPECT_EQ(pool->allocate(1).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(ApiMisuseTest, ResetWhileHeldIsRefusedAndChangesNothing) {
  auto pool = make_pool();
  auto owned = pool->allocate(1);
  ASSERT_TRUE(owned.ok());
  EXPECT_EQ(pool->reset().code(), absl::StatusCode::kFailedPrecondition);
  owned->clear();
  auto blocks = complete_blocks(*pool, 2, 9);
  const auto hashes = std::vector<SequenceHash>{blocks[0].identity().sequence_hash, blocks[1].identity().sequence_hash};
  auto registered = pool->register_blocks(blocks);
  ASSERT_TRUE(registered.ok());
  const absl::Status s = pool->reset();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("2 registered"));
  EXPECT_TRUE(pool->contains(hashes[0]));
  EXPECT_EQ((*registered)[1].identity().sequence_hash, hashes[1]);
  pool->release(std::move(*registered));
  EXPECT_TRUE(pool->reset().ok());
  EXPECT_FALSE(pool->contains(hashes[0]));
}

TEST(ApiMisuseTest, MatchOnUnknownHashesIsAMiss) {
  auto pool = make_pool();
  auto blocks = complete_blocks(*pool, 3, 10);
  std::vector<SequenceHash> hashes;
  for (const auto& b : blocks) hashes.push_back(b.identity().sequence_hash);
  auto registered = pool->register_blocks(blocks);
  ASSERT_TRUE(registered.ok());
  pool->release(std::move(*registered));
  const std::vector<SequenceHash> unknown_first = {SequenceHash{12345}, hashes[0], hashes[1]};
  EXPECT_TRUE(pool->match(unknown_first).empty());  // a prefix match: nothing after a miss
  EXPECT_TRUE(pool->match(std::span<const SequenceHash>{}).empty());
  EXPECT_EQ(pool->touch(unknown_first), 2u);
  EXPECT_FALSE(pool->find(SequenceHash{12345}).has_value());
  EXPECT_EQ(pool->status(), (PoolStatus{0, 3, 5, 0}));
}

TEST(ApiMisuseTest, DuplicateHashesInOneBatchAreDeduplicated) {
  auto pool = make_pool();
  const auto chain = identity_chain(make_tokens(kPage, 11), kPage);
  auto blocks = pool->allocate(3);
  ASSERT_TRUE(blocks.ok());
  for (auto& b : *blocks) ASSERT_TRUE(b.apply(chain[0]).ok());
  auto registered = pool->register_blocks(*blocks);
  ASSERT_TRUE(registered.ok());
  ASSERT_EQ(registered->size(), 3u);
  EXPECT_EQ((*registered)[0].id(), (*registered)[2].id());
  EXPECT_EQ(pool->status(), (PoolStatus{1, 0, 7, 0}));
  pool->release(std::move(*registered));
  EXPECT_EQ(pool->status(), (PoolStatus{0, 1, 7, 0}));
}

TEST(ApiMisuseTest, BadPoolConfigs) {
  EXPECT_EQ(G1Pool::create(BlockPoolConfig{.num_blocks = 0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(G1Pool::create(BlockPoolConfig{.num_blocks = 4, .page_size = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(G1Pool::create(BlockPoolConfig{.num_blocks = 0xFFFFFFFFu, .page_size = 4}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto huge_tokens = G1Pool::create(BlockPoolConfig{.num_blocks = 1u << 30, .page_size = 1u << 10});
  EXPECT_EQ(huge_tokens.status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- the manager ----

KvbmConfig manager_config(bool with_g2) {
  KvbmConfig c;
  c.model = ModelConfig{.num_layers = 2, .outer_dim = 2, .page_size = kPage, .inner_dim = 8, .dtype_bytes = 2};
  c.g1.num_blocks = 8;
  if (with_g2) c.g2.num_blocks = 16;
  return c;
}

// Registers the full blocks of `tokens` (salt `salt`) in `m` with bytes derived from their hashes.
std::vector<G1Block> store(KvBlockManager& m, const std::vector<std::uint32_t>& tokens, SaltHash salt) {
  auto seq = m.make_sequence(tokens, salt);
  EXPECT_TRUE(seq.ok());
  auto blocks = m.allocate(seq->num_full_blocks());
  EXPECT_TRUE(blocks.ok()) << blocks.status();
  for (std::size_t i = 0; i < blocks->size(); ++i) {
    EXPECT_TRUE((*blocks)[i].apply(seq->block(i)).ok());
    for (std::uint32_t l = 0; l < m.model().num_layers; ++l) {
      for (std::uint32_t o = 0; o < m.model().outer_dim; ++o) {
        auto bytes = (*blocks)[i].chunk(l, o);
        std::fill(bytes.begin(), bytes.end(), static_cast<std::byte>(seq->block(i).sequence_hash.value() + l + o));
      }
    }
  }
  auto registered = m.register_blocks(*blocks);
  EXPECT_TRUE(registered.ok()) << registered.status();
  return *std::move(registered);
}

TEST(ApiMisuseTest, MatchOnAnUnknownSaltIsAMiss) {
  auto m = KvBlockManager::create(manager_config(false));
  ASSERT_TRUE(m.ok()) << m.status();
  const std::vector<std::uint32_t> tokens = make_tokens(3 * kPage, 12);
  (*m)->release(store(**m, tokens, compute_salt_hash("tenant-a")));
  auto other = (*m)->make_sequence(tokens, compute_salt_hash("tenant-b"));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*m)->match(other->sequence_hashes()).size(), 0u);
  auto onboarded = (*m)->match_and_onboard(other->sequence_hashes());
  ASSERT_TRUE(onboarded.ok());
  EXPECT_TRUE(onboarded->empty());
  auto same = (*m)->make_sequence(tokens, compute_salt_hash("tenant-a"));
  auto hit = (*m)->match_g1(same->sequence_hashes());
  EXPECT_EQ(hit.size(), 3u);
  (*m)->release(std::move(hit));
}

TEST(ApiMisuseTest, ManagerRefusesForeignHandles) {
  for (bool with_g2 : {false, true}) {
    SCOPED_TRACE(with_g2 ? "with G2" : "G1 only");
    auto m1 = KvBlockManager::create(manager_config(with_g2));
    auto m2 = KvBlockManager::create(manager_config(with_g2));
    ASSERT_TRUE(m1.ok() && m2.ok());
    const std::vector<std::uint32_t> tokens = make_tokens(2 * kPage, 13);
    auto seq = (*m1)->make_sequence(tokens);
    ASSERT_TRUE(seq.ok());

    // m1's fresh blocks registered in m2.
    auto fresh = (*m1)->allocate(2);
    ASSERT_TRUE(fresh.ok());
    for (std::size_t i = 0; i < 2; ++i) ASSERT_TRUE((*fresh)[i].apply(seq->block(i)).ok());
    auto r = (*m2)->register_blocks(*fresh);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ((*m2)->status(), (PoolStatus{0, 0, 8, 0}));
    fresh->clear();

    // m1's match onboarded by m2: an error, not m1's slots handed out as m2's.
    (*m1)->release(store(**m1, tokens, SaltHash{0}));
    (*m1)->flush();
    MatchResult foreign = (*m1)->match(seq->sequence_hashes());
    ASSERT_EQ(foreign.size(), 2u);
    auto onboarded = (*m2)->onboard(std::move(foreign))->wait();
    ASSERT_FALSE(onboarded.ok());
    EXPECT_EQ(onboarded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(onboarded.status().message()), HasSubstr("another manager"));
    EXPECT_EQ((*m1)->status().active, 0u);  // the foreign match's references were dropped
    EXPECT_EQ((*m2)->status(), (PoolStatus{0, 0, 8, 0}));

    // m1's blocks released through m2 go back to m1.
    auto held = (*m1)->match_g1(seq->sequence_hashes());
    ASSERT_EQ(held.size(), 2u);
    (*m2)->release(std::move(held));
    EXPECT_EQ((*m1)->status().active, 0u);
    EXPECT_EQ((*m2)->status(), (PoolStatus{0, 0, 8, 0}));
  }
}

TEST(ApiMisuseTest, ManagerAllocateAndResetMisuse) {
  auto m = KvBlockManager::create(manager_config(true));
  ASSERT_TRUE(m.ok());
  auto zero = (*m)->allocate(0);
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(zero->empty());
  EXPECT_EQ((*m)->allocate(9).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ((*m)->allocate(std::numeric_limits<std::size_t>::max()).status().code(),
            absl::StatusCode::kResourceExhausted);
  auto held = store(**m, make_tokens(2 * kPage, 14), SaltHash{0});
  EXPECT_EQ((*m)->reset().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*m)->status().active, 2u);
  (*m)->release(std::move(held));
  EXPECT_TRUE((*m)->reset().ok());
  EXPECT_EQ((*m)->status(), (PoolStatus{0, 0, 8, 0}));
  // A sequence of the wrong page size applied to the manager's blocks.
  auto seq = TokenBlockSequence::create(kPage * 2, SaltHash{0}, make_tokens(4 * kPage, 15));
  ASSERT_TRUE(seq.ok());
  auto blocks = (*m)->allocate(1);
  ASSERT_TRUE(blocks.ok());
  EXPECT_EQ((*blocks)[0].apply(seq->block(0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*blocks)[0].chunk(2, 0).empty());  // layer out of range
  EXPECT_TRUE((*blocks)[0].chunk(0, 2).empty());  // outer out of range
}

}  // namespace
}  // namespace kvbm
