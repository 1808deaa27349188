// Unit tests of BlockPool and its handles: allocation, the MutableBlock state machine, registration and
// de-duplication, matching, release order, reset, weak handles, events, token-less pools and bytes.
#include "kvbm/pool/block_pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <concepts>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "kvbm/core/hashing.h"
#include "kvbm/core/token_block_sequence.h"
#include "kvbm/layout/layout.h"
#include "kvbm/storage/storage.h"
#include "support/pool_test_util.h"
#include "support/recording_event_sink.h"

namespace kvbm {
namespace {

using ::kvbm::testing::complete_blocks;
using ::kvbm::testing::fill_block;
using ::kvbm::testing::identity_chain;
using ::kvbm::testing::make_tokens;
using ::kvbm::testing::RecordingEventSink;
using ::kvbm::testing::register_chain;
using ::kvbm::testing::register_tokens;
using ::kvbm::testing::sequence_hashes;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr CacheLevel kG1 = CacheLevel::kG1;
constexpr CacheLevel kG2 = CacheLevel::kG2;
using Pool = BlockPool<kG1>;
using Mutable = MutableBlock<kG1>;
using Immutable = ImmutableBlock<kG1>;

// ---- Compile-time contract: what the handle types forbid. ----
static_assert(!std::is_convertible_v<ImmutableBlock<kG1>, ImmutableBlock<kG2>>, "tiers must not mix");
static_assert(!std::is_constructible_v<ImmutableBlock<kG2>, const ImmutableBlock<kG1>&>, "tiers must not mix");
static_assert(!std::is_convertible_v<MutableBlock<kG1>, MutableBlock<kG2>>, "tiers must not mix");
static_assert(!std::is_copy_constructible_v<MutableBlock<kG1>> && !std::is_copy_assignable_v<MutableBlock<kG1>>,
              "MutableBlock is move-only");
static_assert(std::is_nothrow_move_constructible_v<MutableBlock<kG1>>);
static_assert(std::is_copy_constructible_v<ImmutableBlock<kG1>> && std::is_copy_assignable_v<ImmutableBlock<kG1>>);
static_assert(std::is_same_v<decltype(std::declval<ImmutableBlock<kG1>&>().chunk(0, 0)), std::span<const std::byte>>,
              "ImmutableBlock exposes read-only bytes only");
static_assert(std::is_same_v<decltype(std::declval<MutableBlock<kG1>&>().chunk(0, 0)), std::span<std::byte>>);
static_assert(!std::is_constructible_v<BlockId, std::uint32_t> || !std::is_convertible_v<std::uint32_t, BlockId>);
// A block of one tier cannot be registered into a pool of another.
template <typename P, typename B>
concept CanRegister = requires(P& pool, std::span<B> blocks) {
  pool.register_blocks(blocks);
};
static_assert(CanRegister<BlockPool<kG1>, MutableBlock<kG1>>);
static_assert(!CanRegister<BlockPool<kG1>, MutableBlock<kG2>>);

BlockPoolConfig config(std::uint32_t num_blocks, std::uint32_t page_size = 4, EventSink* events = nullptr,
                       EvictionPolicyKind eviction = EvictionPolicyKind::kLru) {
  BlockPoolConfig c;
  c.num_blocks = num_blocks;
  c.page_size = page_size;
  c.events = events;
  c.eviction = eviction;
  return c;
}

std::unique_ptr<Pool> make_pool(const BlockPoolConfig& c) {
  auto pool = Pool::create(c);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return pool.ok() ? *std::move(pool) : nullptr;
}

std::vector<BlockIdentity> chain_of(std::size_t blocks, std::uint32_t seed, std::uint32_t page = 4) {
  const std::vector<std::uint32_t> tokens = make_tokens(blocks * page, seed);
  return identity_chain(tokens, page);
}

std::vector<BlockId> ids_of(const std::vector<Immutable>& blocks) {
  std::vector<BlockId> out;
  for (const Immutable& b : blocks) out.push_back(b.id());
  return out;
}

PoolStatus st(std::uint32_t active, std::uint32_t inactive, std::uint32_t free, std::uint32_t owned) {
  return PoolStatus{active, inactive, free, owned};
}

// ---- Configuration ----

TEST(BlockPoolConfigTest, RejectsZeroBlocksNamingTheField) {
  auto pool = Pool::create(config(0));
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pool.status().message(), HasSubstr("num_blocks"));
  EXPECT_THAT(pool.status().message(), HasSubstr("got 0"));
}

TEST(BlockPoolConfigTest, RejectsZeroPageSizeNamingTheField) {
  auto pool = Pool::create(config(4, 0));
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pool.status().message(), HasSubstr("page_size"));
}

TEST(BlockPoolConfigTest, RejectsLayoutWhoseBlockCountDiffers) {
  ModelConfig model{.num_layers = 1, .outer_dim = 2, .page_size = 4, .inner_dim = 8, .dtype_bytes = 2};
  auto layout = FullyContiguousLayout::create(model, 8);
  ASSERT_TRUE(layout.ok()) << layout.status();
  auto memory = SystemMemory::for_layout(**layout, SystemMemory::Options{});
  ASSERT_TRUE(memory.ok()) << memory.status();
  auto tier = TierMemory::bind(layout->get(), memory->get());
  ASSERT_TRUE(tier.ok()) << tier.status();

  BlockPoolConfig c = config(4, 4);
  c.memory = &*tier;
  auto pool = Pool::create(c);
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pool.status().message(), HasSubstr("num_blocks"));

  BlockPoolConfig page_mismatch = config(8, 16);
  page_mismatch.memory = &*tier;
  auto pool2 = Pool::create(page_mismatch);
  ASSERT_FALSE(pool2.ok());
  EXPECT_THAT(pool2.status().message(), HasSubstr("page_size"));
}

TEST(BlockPoolConfigTest, CreateForcesTheTierOfTheType) {
  BlockPoolConfig c = config(2);
  c.level = CacheLevel::kG3;
  auto pool = BlockPool<kG2>::create(c);
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ((*pool)->config().level, kG2);
  EXPECT_EQ((*pool)->num_blocks(), 2u);
  EXPECT_EQ((*pool)->page_size(), 4u);
}

// ---- Allocation ----

TEST(BlockPoolTest, NewPoolIsAllFree) {
  auto pool = make_pool(config(5));
  EXPECT_EQ(pool->status(), st(0, 0, 5, 0));
}

TEST(BlockPoolTest, AllocateIsAllOrNothing) {
  auto pool = make_pool(config(4));
  auto two = pool->allocate(2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(pool->status(), st(0, 0, 2, 2));

  auto three = pool->allocate(3);
  ASSERT_FALSE(three.ok());
  EXPECT_EQ(three.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(pool->status(), st(0, 0, 2, 2)) << "a failed allocation must not take any block";

  auto rest = pool->allocate(2);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(pool->status(), st(0, 0, 0, 4));
  EXPECT_FALSE(pool->allocate(1).ok());

  auto none = pool->allocate(0);
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
}

TEST(BlockPoolTest, AllocatedIdsAreDistinctAndValid) {
  auto pool = make_pool(config(6));
  auto blocks = pool->allocate(6);
  ASSERT_TRUE(blocks.ok());
  std::vector<std::uint32_t> ids;
  for (const Mutable& b : *blocks) {
    EXPECT_TRUE(b.valid());
    EXPECT_EQ(b.state(), MutableState::kReset);
    EXPECT_EQ(b.num_tokens(), 0u);
    ids.push_back(b.id().value());
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_THAT(ids, ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST(BlockPoolTest, DroppingAMutableBlockFreesItInAnyState) {
  auto pool = make_pool(config(3));
  auto blocks = pool->allocate(3);
  ASSERT_TRUE(blocks.ok());
  ASSERT_TRUE((*blocks)[1].init(SaltHash{0}, std::nullopt).ok());
  ASSERT_TRUE((*blocks)[2].apply(chain_of(1, 1)[0]).ok());
  blocks->clear();
  EXPECT_EQ(pool->status(), st(0, 0, 3, 0));
}

TEST(BlockPoolTest, MovingAMutableBlockTransfersOwnership) {
  auto pool = make_pool(config(2));
  auto blocks = pool->allocate(2);
  ASSERT_TRUE(blocks.ok());
  Mutable a = std::move((*blocks)[0]);
  EXPECT_FALSE((*blocks)[0].valid());
  EXPECT_TRUE(a.valid());
  a = std::move((*blocks)[1]);  // the slot `a` held is freed
  EXPECT_EQ(pool->status(), st(0, 0, 1, 1));
  EXPECT_EQ(a.init(SaltHash{0}, std::nullopt).ok(), true);
  EXPECT_EQ((*blocks)[1].init(SaltHash{0}, std::nullopt).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(BlockPoolTest, AllocationTakesFreeSlotsBeforeEvicting) {
  RecordingEventSink sink;
  auto pool = make_pool(config(4, 4, &sink));
  {
    auto held = register_chain(*pool, chain_of(2, 1));
    ASSERT_TRUE(held.ok());
    pool->release(std::move(*held));  // tail first: the tail is evicted first
  }
  EXPECT_EQ(pool->status(), st(0, 2, 2, 0));
  sink.clear();

  auto two = pool->allocate(2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(pool->status(), st(0, 2, 0, 2)) << "free slots must be used before evicting";
  EXPECT_THAT(sink.removed(), IsEmpty());

  auto one = pool->allocate(1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(pool->status(), st(0, 1, 0, 3));
  EXPECT_THAT(sink.removed_hashes(), ElementsAre(chain_of(2, 1)[1].sequence_hash));

  // Active blocks are never evicted: hold the last inactive one and the pool is exhausted.
  auto matched = pool->match(sequence_hashes(std::span<const BlockIdentity>(chain_of(2, 1))));
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(pool->status(), st(1, 0, 0, 3));
  auto more = pool->allocate(1);
  EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(pool->status(), st(1, 0, 0, 3));
}

// ---- MutableBlock state machine ----

TEST(MutableBlockTest, AppendBeforeInitFails) {
  auto pool = make_pool(config(1));
  auto blocks = pool->allocate(1);
  ASSERT_TRUE(blocks.ok());
  Mutable& b = (*blocks)[0];
  const std::vector<std::uint32_t> t = {1, 2};
  absl::Status s = b.append(t);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("Reset"));
  EXPECT_EQ(b.num_tokens(), 0u);
  EXPECT_EQ(b.state(), MutableState::kReset);
}

TEST(MutableBlockTest, CommitBeforeInitFails) {
  auto pool = make_pool(config(1));
  auto blocks = pool->allocate(1);
  ASSERT_TRUE(blocks.ok());
  EXPECT_EQ((*blocks)[0].commit().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(MutableBlockTest, AppendPastPageSizeIsOutOfRangeAndAddsNothing) {
  auto pool = make_pool(config(1, 4));
  auto blocks = pool->allocate(1);
  ASSERT_TRUE(blocks.ok());
  Mutable& b = (*blocks)[0];
  ASSERT_TRUE(b.init(SaltHash{0}, std::nullopt).ok());
  const std::vector<std::uint32_t> three = {1, 2, 3};
  ASSERT_TRUE(b.append(three).ok());
  EXPECT_EQ(b.num_tokens(), 3u);
  const std::vector<std::uint32_t> two = {4, 5};
  absl::Status s = b.append(two);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(b.num_tokens(), 3u) << "a rejected append must add nothing";
  EXPECT_EQ(b.state(), MutableState::kPartial);

  const std::vector<std::uint32_t> one = {4};
  ASSERT_TRUE(b.append(one).ok());
  EXPECT_EQ(b.append(one).code(), absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(b.commit().ok());
  // The committed tokens are exactly the ones accepted: 1 2 3 4.
  const std::vector<std::uint32_t> expected = {1, 2, 3, 4};
  EXPECT_EQ(b.identity().block_hash, compute_block_hash(expected, SaltHash{0}));
}

TEST(MutableBlockTest, CommitOfPartialBlockFails) {
  auto pool = make_pool(config(1, 4));
  auto blocks = pool->allocate(1);
  ASSERT_TRUE(blocks.ok());
  Mutable& b = (*blocks)[0];
  ASSERT_TRUE(b.init(SaltHash{0}, std::nullopt).ok());
  const std::vector<std::uint32_t> t = {1, 2};
  ASSERT_TRUE(b.append(t).ok());
  absl::Status s = b.commit();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("page_size"));
  EXPECT_EQ(b.state(), MutableState::kPartial);
}

TEST(MutableBlockTest, InitTwiceAndApplyOnPartialOrCompleteFail) {
  auto pool = make_pool(config(1, 4));
  auto blocks = pool->allocate(1);
  ASSERT_TRUE(blocks.ok());
  Mutable& b = (*blocks)[0];
  ASSERT_TRUE(b.init(SaltHash{0}, std::nullopt).ok());
  EXPECT_EQ(b.init(SaltHash{0}, std::nullopt).code(), absl::StatusCode::kFailedPrecondition);
  const BlockIdentity id = chain_of(1, 3)[0];
  EXPECT_EQ(b.apply(id).code(), absl::StatusCode::kFailedPrecondition);
  const std::vector<std::uint32_t> t = {1, 2, 3, 4};
  ASSERT_TRUE(b.append(t).ok());
  ASSERT_TRUE(b.commit().ok());
  EXPECT_EQ(b.state(), MutableState::kComplete);
  EXPECT_EQ(b.commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.init(SaltHash{0}, std::nullopt).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.append(t).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.apply(id).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(MutableBlockTest, EmptyHandleRejectsEverything) {
  Mutable b;
  EXPECT_FALSE(b.valid());
  EXPECT_EQ(b.init(SaltHash{0}, std::nullopt).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.append({}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.apply(BlockIdentity{}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(b.chunk(0, 0).empty());
}

TEST(MutableBlockTest, CommitHashesMatchTheHashingFunctions) {
  auto pool = make_pool(config(2, 4));
  auto blocks = pool->allocate(2);
  ASSERT_TRUE(blocks.ok());
  const SaltHash salt = compute_salt_hash("tenant-a");
  const std::vector<std::uint32_t> first = {10, 11, 12, 13};
  const std::vector<std::uint32_t> second = {20, 21, 22, 23};
  ASSERT_TRUE(fill_block((*blocks)[0], first, salt, std::nullopt).ok());
  const BlockIdentity& a = (*blocks)[0].identity();
  EXPECT_EQ(a.block_hash, compute_block_hash(first, salt));
  EXPECT_EQ(a.sequence_hash, SequenceHash{compute_block_hash(first, salt).value()});
  EXPECT_EQ(a.parent, std::nullopt);

  ASSERT_TRUE(fill_block((*blocks)[1], second, salt, a.sequence_hash).ok());
  const BlockIdentity& b = (*blocks)[1].identity();
  EXPECT_EQ(b.block_hash, compute_block_hash(second, salt));
  EXPECT_EQ(b.sequence_hash, compute_sequence_hash(a.sequence_hash, b.block_hash, salt));
  EXPECT_EQ(b.sequence_hash, chain_sequence_hash(a.sequence_hash, b.block_hash, salt));
  EXPECT_EQ(b.parent, a.sequence_hash);

  // Another salt gives other hashes for the same tokens.
  auto other = pool->allocate(0);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(compute_block_hash(first, SaltHash{0}), a.block_hash);
}

TEST(MutableBlockTest, ApplyTokenBlockFromSequenceAgreesWithTokenByTokenFill) {
  constexpr std::uint32_t kPage = 4;
  const SaltHash salt = compute_salt_hash("s");
  const std::vector<std::uint32_t> tokens = make_tokens(3 * kPage + 2, 7);
  auto seq = TokenBlockSequence::create(kPage, salt, tokens);
  ASSERT_TRUE(seq.ok());
  ASSERT_EQ(seq->num_full_blocks(), 3u);

  auto pool = make_pool(config(6, kPage));
  auto applied = pool->allocate(3);
  ASSERT_TRUE(applied.ok());
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE((*applied)[i].apply(seq->block(i)).ok());
    EXPECT_EQ((*applied)[i].state(), MutableState::kComplete);
    EXPECT_EQ((*applied)[i].num_tokens(), kPage);
    EXPECT_EQ((*applied)[i].identity().sequence_hash, seq->sequence_hashes()[i]);
    EXPECT_EQ((*applied)[i].identity().block_hash, seq->block_hashes()[i]);
  }
  EXPECT_EQ((*applied)[0].identity().parent, std::nullopt);
  EXPECT_EQ((*applied)[2].identity().parent, seq->sequence_hashes()[1]);

  // Token-by-token blocks over the same tokens hash identically (so they de-duplicate).
  auto filled = pool->allocate(3);
  ASSERT_TRUE(filled.ok());
  std::optional<SequenceHash> parent;
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(fill_block((*filled)[i], std::span(tokens).subspan(i * kPage, kPage), salt, parent).ok());
    parent = (*filled)[i].identity().sequence_hash;
    EXPECT_EQ(*parent, seq->sequence_hashes()[i]);
  }

  auto registered = pool->register_blocks(std::span<Mutable>(*applied));
  ASSERT_TRUE(registered.ok());
  EXPECT_THAT((*registered)[1].tokens(), ElementsAreArray(seq->block(1).tokens));
  auto dedup = pool->register_blocks(std::span<Mutable>(*filled));
  ASSERT_TRUE(dedup.ok());
  EXPECT_EQ(ids_of(*dedup), ids_of(*registered));
  EXPECT_EQ(pool->status(), st(3, 0, 3, 0));
}

TEST(MutableBlockTest, ApplyTokenBlockOfWrongSizeFails) {
  auto seq = TokenBlockSequence::create(8, SaltHash{0}, make_tokens(8, 1));
  ASSERT_TRUE(seq.ok());
  auto pool = make_pool(config(1, 4));
  auto blocks = pool->allocate(1);
  ASSERT_TRUE(blocks.ok());
  absl::Status s = (*blocks)[0].apply(seq->block(0));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*blocks)[0].state(), MutableState::kReset);
}

TEST(MutableBlockTest, SetPriorityClamps) {
  auto pool = make_pool(config(1));
  auto blocks = pool->allocate(1);
  ASSERT_TRUE(blocks.ok());
  EXPECT_EQ((*blocks)[0].priority(), kDefaultRetentionPriority);
  (*blocks)[0].set_priority(250);
  EXPECT_EQ((*blocks)[0].priority(), kMaxRetentionPriority);
  (*blocks)[0].set_priority(3);
  EXPECT_EQ((*blocks)[0].priority(), 3);
}

// ---- Registration ----

TEST(RegisterTest, IncompleteBlockFailsNamingItsIndexAndRegistersNothing) {
  RecordingEventSink sink;
  auto pool = make_pool(config(4, 4, &sink));
  const auto chain = chain_of(3, 1);
  auto blocks = pool->allocate(3);
  ASSERT_TRUE(blocks.ok());
  ASSERT_TRUE((*blocks)[0].apply(chain[0]).ok());
  ASSERT_TRUE((*blocks)[1].init(SaltHash{0}, chain[0].sequence_hash).ok());  // Partial
  ASSERT_TRUE((*blocks)[2].apply(chain[2]).ok());

  auto r = pool->register_blocks(std::span<Mutable>(*blocks));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("#1"));
  EXPECT_THAT(r.status().message(), HasSubstr("Partial"));
  EXPECT_EQ(pool->status(), st(0, 0, 1, 3));
  EXPECT_TRUE(pool->match(sequence_hashes(std::span<const BlockIdentity>(chain))).empty())
      << "all or nothing: block #0 must not have been registered";
  EXPECT_EQ(sink.size(), 0u);
  for (const Mutable& b : *blocks) EXPECT_TRUE(b.valid()) << "a failed register must not consume handles";

  // Reset block at index 2.
  auto fresh = pool->allocate(1);
  ASSERT_TRUE(fresh.ok());
  std::vector<Mutable> batch;
  batch.push_back(std::move((*blocks)[0]));
  batch.push_back(std::move((*blocks)[2]));
  batch.push_back(std::move((*fresh)[0]));
  auto r2 = pool->register_blocks(std::span<Mutable>(batch));
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r2.status().message(), HasSubstr("#2"));
  EXPECT_THAT(r2.status().message(), HasSubstr("Reset"));
  EXPECT_EQ(pool->status(), st(0, 0, 0, 4));

  // Once fixed, the same handles register.
  ASSERT_TRUE((*blocks)[1].append(make_tokens(4, 99)).ok());
  ASSERT_TRUE((*blocks)[1].commit().ok());
  batch[2] = std::move((*blocks)[1]);
  auto r3 = pool->register_blocks(std::span<Mutable>(batch));
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(pool->status(), st(3, 0, 1, 0));
  for (const Mutable& b : batch) EXPECT_FALSE(b.valid()) << "register consumes the handles";
}

TEST(RegisterTest, EmptyHandleIsRejected) {
  auto pool = make_pool(config(2));
  std::vector<Mutable> batch(1);
  auto r = pool->register_blocks(std::span<Mutable>(batch));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("#0"));
}

TEST(RegisterTest, RegisteredBlocksAreActiveAndKeepTheirIds) {
  auto pool = make_pool(config(4));
  const auto chain = chain_of(3, 1);
  auto blocks = complete_blocks(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(blocks.ok());
  std::vector<BlockId> ids;
  for (const Mutable& b : *blocks) ids.push_back(b.id());
  auto r = pool->register_blocks(std::span<Mutable>(*blocks));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ids_of(*r), ids);
  EXPECT_EQ(sequence_hashes(std::span<const Immutable>(*r)), sequence_hashes(std::span<const BlockIdentity>(chain)));
  EXPECT_EQ(pool->status(), st(3, 0, 1, 0));
  r->clear();
  EXPECT_EQ(pool->status(), st(0, 3, 1, 0));
}

TEST(RegisterTest, DuplicateOfActiveBlockReturnsExistingAndFreesTheSlot) {
  RecordingEventSink sink;
  auto pool = make_pool(config(6, 4, &sink));
  const auto chain = chain_of(3, 1);
  auto first = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(pool->status(), st(3, 0, 3, 0));
  sink.clear();

  auto dups = complete_blocks(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(dups.ok());
  EXPECT_EQ(pool->status(), st(3, 0, 0, 3));
  auto second = pool->register_blocks(std::span<Mutable>(*dups));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(ids_of(*second), ids_of(*first));
  EXPECT_EQ(pool->status(), st(3, 0, 3, 0)) << "duplicate slots go back to free";
  EXPECT_THAT(sink.stored(), IsEmpty()) << "a pure de-duplication stores nothing new";

  // Blocks stay active until every holder has released.
  first->clear();
  EXPECT_EQ(pool->status(), st(3, 0, 3, 0));
  second->clear();
  EXPECT_EQ(pool->status(), st(0, 3, 3, 0));
}

TEST(RegisterTest, DuplicateOfInactiveBlockMakesItActive) {
  auto pool = make_pool(config(4));
  const auto chain = chain_of(2, 5);
  std::vector<BlockId> ids;
  {
    auto first = register_chain(*pool, std::span<const BlockIdentity>(chain));
    ASSERT_TRUE(first.ok());
    ids = ids_of(*first);
  }
  EXPECT_EQ(pool->status(), st(0, 2, 2, 0));
  auto second = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(ids_of(*second), ids);
  EXPECT_EQ(pool->status(), st(2, 0, 2, 0));
  // Active now: they cannot be evicted.
  auto all = pool->allocate(3);
  EXPECT_EQ(all.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(RegisterTest, DuplicateWithinOneCallDeduplicates) {
  auto pool = make_pool(config(4));
  const auto chain = chain_of(1, 5);
  const std::vector<BlockIdentity> twice = {chain[0], chain[0]};
  auto r = register_chain(*pool, std::span<const BlockIdentity>(twice));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].id(), (*r)[1].id());
  EXPECT_EQ(pool->status(), st(1, 0, 3, 0));
  r->clear();
  EXPECT_EQ(pool->status(), st(0, 1, 3, 0));
}

TEST(RegisterTest, ForeignBlockIsInvalidArgumentAndChangesNothing) {
  auto pool_a = make_pool(config(3));
  auto pool_b = make_pool(config(3));
  const auto chain = chain_of(2, 1);
  auto mine = complete_blocks(*pool_a, std::span<const BlockIdentity>(chain).first(1));
  auto theirs = complete_blocks(*pool_b, std::span<const BlockIdentity>(chain).subspan(1));
  ASSERT_TRUE(mine.ok() && theirs.ok());
  std::vector<Mutable> batch;
  batch.push_back(std::move((*mine)[0]));
  batch.push_back(std::move((*theirs)[0]));
  auto r = pool_a->register_blocks(std::span<Mutable>(batch));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("#1"));
  EXPECT_EQ(pool_a->status(), st(0, 0, 2, 1));
  EXPECT_EQ(pool_b->status(), st(0, 0, 2, 1));
  EXPECT_TRUE(batch[0].valid() && batch[1].valid());
  batch.clear();
  EXPECT_EQ(pool_a->status(), st(0, 0, 3, 0));
  EXPECT_EQ(pool_b->status(), st(0, 0, 3, 0));
}

TEST(RegisterTest, ReleaseOfForeignImmutableBlocksReleasesThemInTheirOwnPool) {
  auto pool_a = make_pool(config(2));
  auto pool_b = make_pool(config(2));
  auto a = register_chain(*pool_a, std::span<const BlockIdentity>(chain_of(1, 1)));
  auto b = register_chain(*pool_b, std::span<const BlockIdentity>(chain_of(1, 2)));
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<Immutable> mixed = {(*a)[0], (*b)[0]};
  a->clear();
  b->clear();
  pool_a->release(std::move(mixed));
  EXPECT_EQ(pool_a->status(), st(0, 1, 1, 0));
  EXPECT_EQ(pool_b->status(), st(0, 1, 1, 0));
}

// ---- Matching ----

TEST(MatchTest, LongestPrefixStopsAtFirstMiss) {
  auto pool = make_pool(config(8));
  const auto chain = chain_of(4, 1);
  const auto other = chain_of(1, 2);
  {
    auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
    ASSERT_TRUE(held.ok());
  }
  std::vector<SequenceHash> query = sequence_hashes(std::span<const BlockIdentity>(chain));
  auto all = pool->match(query);
  ASSERT_EQ(all.size(), 4u);
  all.clear();

  query[2] = other[0].sequence_hash;  // a miss in the middle: blocks after it are not returned
  auto prefix = pool->match(query);
  ASSERT_EQ(prefix.size(), 2u);
  EXPECT_EQ(prefix[0].sequence_hash(), chain[0].sequence_hash);
  EXPECT_EQ(prefix[1].sequence_hash(), chain[1].sequence_hash);
  EXPECT_EQ(pool->status(), st(2, 2, 4, 0)) << "matched inactive blocks become active";

  query[0] = other[0].sequence_hash;
  EXPECT_TRUE(pool->match(query).empty());
  EXPECT_TRUE(pool->match({}).empty());
}

TEST(MatchTest, ContainsNeitherHoldsNorReorders) {
  RecordingEventSink sink;
  auto pool = make_pool(config(2, 4, &sink));
  const auto x = chain_of(1, 1);
  const auto y = chain_of(1, 2);
  {
    auto hx = register_chain(*pool, std::span<const BlockIdentity>(x));
    auto hy = register_chain(*pool, std::span<const BlockIdentity>(y));
    ASSERT_TRUE(hx.ok() && hy.ok());
    hx->clear();  // x is the older
  }
  EXPECT_TRUE(pool->contains(x[0].sequence_hash));
  EXPECT_FALSE(pool->contains(chain_of(1, 3)[0].sequence_hash));
  EXPECT_EQ(pool->status(), st(0, 2, 0, 0));
  sink.clear();
  auto one = pool->allocate(1);
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(sink.removed_hashes(), ElementsAre(x[0].sequence_hash)) << "contains() must not count as a use";
  EXPECT_FALSE(pool->contains(x[0].sequence_hash));
}

TEST(MatchTest, MatchedBlocksAreTheRegisteredOnes) {
  auto pool = make_pool(config(4));
  const std::vector<std::uint32_t> tokens = make_tokens(8, 3);
  auto held = register_tokens(*pool, std::span<const std::uint32_t>(tokens));
  ASSERT_TRUE(held.ok());
  auto matched = pool->match(sequence_hashes(std::span<const Immutable>(*held)));
  ASSERT_EQ(matched.size(), 2u);
  EXPECT_EQ(ids_of(matched), ids_of(*held));
  EXPECT_THAT(matched[0].tokens(), ElementsAreArray(std::span(tokens).first(4)));
  EXPECT_THAT(matched[1].tokens(), ElementsAreArray(std::span(tokens).subspan(4)));
  EXPECT_EQ(pool->status(), st(2, 0, 2, 0));
  held->clear();
  EXPECT_EQ(pool->status(), st(2, 0, 2, 0));
  matched.clear();
  EXPECT_EQ(pool->status(), st(0, 2, 2, 0));
}

// ---- Discard (a block whose bytes turned out damaged) ----

TEST(DiscardTest, HeldBlockStopsMatchingAtOnceAndIsFreedAtItsLastRelease) {
  RecordingEventSink sink;
  auto pool = make_pool(config(4, 4, &sink));
  const auto chain = chain_of(3, 1);
  auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(held.ok());
  sink.clear();
  Immutable copy = (*held)[1];
  EXPECT_TRUE(pool->discard((*held)[1]));
  EXPECT_FALSE(pool->discard(copy)) << "already dropped";
  EXPECT_THAT(sink.removed_hashes(), ElementsAre(chain[1].sequence_hash));
  EXPECT_FALSE(pool->contains(chain[1].sequence_hash));
  EXPECT_EQ(pool->match(sequence_hashes(std::span<const BlockIdentity>(chain))).size(), 1u);
  EXPECT_EQ(pool->status(), st(3, 0, 1, 0));
  pool->release(std::move(*held));
  EXPECT_EQ(pool->status(), st(1, 2, 1, 0)) << "the copy still holds it";
  copy = Immutable{};
  EXPECT_EQ(pool->status(), st(0, 2, 2, 0)) << "free, not inactive";
  // Registered again later, the hash is an ordinary block once more.
  auto again = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(pool->contains(chain[1].sequence_hash));
}

// A block pinned for a copy (as onboarding pins G3 blocks) that is discarded leaves every policy too,
// including those whose pins keep the block's place (pins_keep_state).
TEST(DiscardTest, CopyPinnedBlockGoesToFreeUnderEveryPolicy) {
  for (EvictionPolicyKind kind : all_eviction_policy_kinds()) {
    auto pool = make_pool(config(4, 4, nullptr, kind));
    const auto chain = chain_of(3, 2);
    auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
    ASSERT_TRUE(held.ok());
    pool->release(std::move(*held));
    ASSERT_EQ(pool->status(), st(0, 3, 1, 0));
    std::optional<Immutable> pinned = pool->pin_for_copy(chain[1].sequence_hash);
    ASSERT_TRUE(pinned.has_value());
    EXPECT_TRUE(pool->discard(*pinned));
    pinned.reset();
    EXPECT_EQ(pool->status(), st(0, 2, 2, 0)) << eviction_policy_name(kind);
    // Every slot can be had: the policy names only blocks it still holds.
    auto all = pool->allocate(4);
    EXPECT_TRUE(all.ok()) << eviction_policy_name(kind) << ": " << all.status();
    EXPECT_FALSE(pool->contains(chain[0].sequence_hash) || pool->contains(chain[2].sequence_hash));
  }
}

// ---- Release order and eviction ----

TEST(ReleaseTest, BatchReleaseMakesTheTailEvictableFirst) {
  RecordingEventSink sink;
  auto pool = make_pool(config(3, 4, &sink));
  const auto chain = chain_of(3, 1);
  auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(held.ok());
  pool->release(std::move(*held));
  EXPECT_EQ(pool->status(), st(0, 3, 0, 0));
  sink.clear();

  auto one = pool->allocate(1);
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(sink.removed_hashes(), ElementsAre(chain[2].sequence_hash));
  auto two = pool->allocate(1);
  ASSERT_TRUE(two.ok());
  EXPECT_THAT(sink.removed_hashes(), ElementsAre(chain[2].sequence_hash, chain[1].sequence_hash));
  auto three = pool->allocate(1);
  ASSERT_TRUE(three.ok());
  EXPECT_THAT(sink.removed_hashes(),
              ElementsAre(chain[2].sequence_hash, chain[1].sequence_hash, chain[0].sequence_hash));
}

TEST(ReleaseTest, DroppingHandlesFrontFirstMakesTheHeadOldestUnderLru) {
  RecordingEventSink sink;
  auto pool = make_pool(config(3, 4, &sink));
  const auto chain = chain_of(3, 1);
  auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(held.ok());
  for (Immutable& b : *held) b.reset();  // head first
  sink.clear();
  auto all = pool->allocate(3);
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(sink.removed_hashes(),
              ElementsAre(chain[0].sequence_hash, chain[1].sequence_hash, chain[2].sequence_hash));
  ASSERT_EQ(sink.removed().size(), 1u) << "one Removed event per allocate call";
}

TEST(ReleaseTest, TouchMakesABlockMostRecentlyUsed) {
  RecordingEventSink sink;
  auto pool = make_pool(config(2, 4, &sink));
  const auto x = chain_of(1, 1);
  const auto y = chain_of(1, 2);
  {
    auto hx = register_chain(*pool, std::span<const BlockIdentity>(x));
    auto hy = register_chain(*pool, std::span<const BlockIdentity>(y));
    ASSERT_TRUE(hx.ok() && hy.ok());
    hx->clear();  // x released first: older
  }
  const std::vector<SequenceHash> touch_x = {x[0].sequence_hash, chain_of(1, 9)[0].sequence_hash};
  EXPECT_EQ(pool->touch(touch_x), 1u) << "unknown hashes are not counted";
  sink.clear();
  auto one = pool->allocate(1);
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(sink.removed_hashes(), ElementsAre(y[0].sequence_hash));
  EXPECT_EQ(pool->find(x[0].sequence_hash).has_value(), true);
}

TEST(ReleaseTest, ReleaseOfEmptyAndMovedFromHandlesIsANoOp) {
  auto pool = make_pool(config(2));
  auto held = register_chain(*pool, std::span<const BlockIdentity>(chain_of(1, 1)));
  ASSERT_TRUE(held.ok());
  std::vector<Immutable> batch;
  batch.emplace_back();
  batch.push_back(std::move((*held)[0]));
  Immutable moved_from = std::move(batch[1]);
  pool->release(std::move(batch));
  EXPECT_EQ(pool->status(), st(1, 0, 1, 0));
  moved_from.reset();
  moved_from.reset();
  EXPECT_EQ(pool->status(), st(0, 1, 1, 0));
}

// ---- Reset ----

TEST(ResetTest, FailsWhileBlocksAreHeldAndChangesNothing) {
  RecordingEventSink sink;
  auto pool = make_pool(config(4, 4, &sink));
  const auto chain = chain_of(2, 1);
  auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(held.ok());
  Immutable keep = (*held)[0];
  pool->release(std::move(*held));
  EXPECT_EQ(pool->status(), st(1, 1, 2, 0));
  sink.clear();

  absl::Status s = pool->reset();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(pool->status(), st(1, 1, 2, 0));
  EXPECT_EQ(sink.size(), 0u);
  keep.reset();

  auto owned = pool->allocate(1);
  ASSERT_TRUE(owned.ok());
  EXPECT_EQ(pool->reset().code(), absl::StatusCode::kFailedPrecondition) << "an owned MutableBlock blocks reset too";
  EXPECT_EQ(pool->status(), st(0, 2, 1, 1));
  owned->clear();

  ASSERT_TRUE(pool->reset().ok());
  EXPECT_EQ(pool->status(), st(0, 0, 4, 0));
  ASSERT_EQ(sink.cleared().size(), 1u);
  EXPECT_EQ(sink.cleared()[0].level, kG1);
  EXPECT_TRUE(pool->match(sequence_hashes(std::span<const BlockIdentity>(chain))).empty());

  // The pool works normally afterwards.
  auto again = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(pool->status(), st(2, 0, 2, 0));
}

// ---- Weak and immutable handles ----

TEST(WeakBlockTest, UpgradeWorksWhileRegisteredAndFailsAfterEviction) {
  auto pool = make_pool(config(2));
  const auto chain = chain_of(1, 1);
  WeakBlock<kG1> weak;
  EXPECT_FALSE(weak.upgrade().has_value()) << "an empty weak handle upgrades to nothing";
  {
    auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
    ASSERT_TRUE(held.ok());
    weak = pool->downgrade((*held)[0]);
    EXPECT_EQ(weak.sequence_hash(), chain[0].sequence_hash);
    auto up = weak.upgrade();
    ASSERT_TRUE(up.has_value());
    EXPECT_EQ(up->id(), (*held)[0].id());
  }
  EXPECT_EQ(pool->status(), st(0, 1, 1, 0)) << "a weak handle does not pin";
  {
    auto up = weak.upgrade();
    ASSERT_TRUE(up.has_value());
    EXPECT_EQ(pool->status(), st(1, 0, 1, 0));
  }
  auto all = pool->allocate(2);  // evicts the block
  ASSERT_TRUE(all.ok());
  EXPECT_FALSE(weak.upgrade().has_value());
}

TEST(ImmutableBlockTest, CopiesShareOneReference) {
  auto pool = make_pool(config(2));
  auto held = register_chain(*pool, std::span<const BlockIdentity>(chain_of(1, 1)));
  ASSERT_TRUE(held.ok());
  Immutable a = (*held)[0];
  held->clear();
  Immutable b = a;
  Immutable c;
  c = b;
  Immutable& alias_c = c;
  c = alias_c;  // self-assignment keeps the reference
  EXPECT_EQ(pool->status(), st(1, 0, 1, 0));
  a.reset();
  b = Immutable();
  EXPECT_EQ(pool->status(), st(1, 0, 1, 0)) << "still held by c";
  Immutable d = std::move(c);
  EXPECT_FALSE(c.valid());
  EXPECT_TRUE(d.valid());
  EXPECT_EQ(pool->status(), st(1, 0, 1, 0));
  Immutable e;
  e = std::move(d);
  EXPECT_EQ(pool->status(), st(1, 0, 1, 0));
  Immutable& alias_e = e;
  e = std::move(alias_e);
  EXPECT_TRUE(e.valid());
  e.reset();
  EXPECT_EQ(pool->status(), st(0, 1, 1, 0));
}

TEST(ImmutableBlockTest, AssigningOverAHandleReleasesItsOldBlock) {
  auto pool = make_pool(config(2));
  auto x = register_chain(*pool, std::span<const BlockIdentity>(chain_of(1, 1)));
  auto y = register_chain(*pool, std::span<const BlockIdentity>(chain_of(1, 2)));
  ASSERT_TRUE(x.ok() && y.ok());
  Immutable h = (*x)[0];
  x->clear();
  h = (*y)[0];
  EXPECT_EQ(pool->status(), st(1, 1, 0, 0));
  h = std::move((*y)[0]);
  y->clear();
  EXPECT_EQ(pool->status(), st(1, 1, 0, 0));
  h.reset();
  EXPECT_EQ(pool->status(), st(0, 2, 0, 0));
}

// ---- Events ----

TEST(EventsTest, StoredOncePerRegisterWithHashesParentAndTokens) {
  RecordingEventSink sink;
  auto pool = make_pool(config(8, 4, &sink));
  const std::vector<std::uint32_t> tokens = make_tokens(16, 11);
  const auto chain = identity_chain(tokens, 4);

  auto first = register_tokens(*pool, std::span<const std::uint32_t>(tokens).first(8));
  ASSERT_TRUE(first.ok());
  auto stored = sink.stored();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].level, kG1);
  EXPECT_EQ(stored[0].block_size, 4u);
  EXPECT_THAT(stored[0].block_hashes, ElementsAre(chain[0].sequence_hash, chain[1].sequence_hash));
  EXPECT_EQ(stored[0].parent_hash, std::nullopt);
  EXPECT_THAT(stored[0].token_ids, ElementsAreArray(std::span(tokens).first(8)));

  // Blocks 1..3: block 1 is a duplicate, 2 and 3 are new; the event names only the new ones and block 2's parent.
  auto tail =
      register_tokens(*pool, std::span<const std::uint32_t>(tokens).subspan(4), SaltHash{0}, chain[0].sequence_hash);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ((*tail)[0].id(), (*first)[1].id());
  stored = sink.stored();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_THAT(stored[1].block_hashes, ElementsAre(chain[2].sequence_hash, chain[3].sequence_hash));
  EXPECT_EQ(stored[1].parent_hash, chain[1].sequence_hash);
  EXPECT_THAT(stored[1].token_ids, ElementsAreArray(std::span(tokens).subspan(8)));

  // A pure duplicate stores nothing.
  auto dup = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ(sink.stored().size(), 2u);
  EXPECT_THAT(sink.removed(), IsEmpty());
}

// BlocksStored::token_ids are "the tokens of exactly these blocks (empty when not kept)": a register call
// mixing blocks with tokens and identity-only blocks must not report the tokens of only some of them.
TEST(EventsTest, StoredTokensAreAllOrNothingForMixedBatches) {
  RecordingEventSink sink;
  auto pool = make_pool(config(4, 4, &sink));
  const std::vector<std::uint32_t> tokens = make_tokens(8, 21);
  const auto chain = identity_chain(tokens, 4);
  auto blocks = pool->allocate(2);
  ASSERT_TRUE(blocks.ok());
  ASSERT_TRUE(fill_block((*blocks)[0], std::span(tokens).first(4), SaltHash{0}, std::nullopt).ok());
  ASSERT_TRUE((*blocks)[1].apply(chain[1]).ok());  // identity only: no tokens
  auto held = pool->register_blocks(std::span<Mutable>(*blocks));
  ASSERT_TRUE(held.ok());
  ASSERT_EQ(sink.stored().size(), 1u);
  const BlocksStored e = sink.stored()[0];
  EXPECT_THAT(e.block_hashes, ElementsAre(chain[0].sequence_hash, chain[1].sequence_hash));
  EXPECT_TRUE(e.token_ids.empty() || e.token_ids.size() == e.block_hashes.size() * e.block_size)
      << "token_ids has " << e.token_ids.size() << " tokens for " << e.block_hashes.size() << " blocks";
}

TEST(EventsTest, RemovedOncePerEvictedHash) {
  RecordingEventSink sink;
  auto pool = make_pool(config(3, 4, &sink));
  const auto chain = chain_of(3, 1);
  {
    auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
    ASSERT_TRUE(held.ok());
  }
  sink.clear();
  auto two = pool->allocate(2);
  ASSERT_TRUE(two.ok());
  auto removed = sink.removed();
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].level, kG1);
  EXPECT_THAT(removed[0].block_hashes, ElementsAre(chain[0].sequence_hash, chain[1].sequence_hash));
  two->clear();  // freeing unregistered slots reports nothing
  auto again = pool->allocate(2);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(sink.removed().size(), 1u);
  auto last = pool->allocate(1);
  ASSERT_TRUE(last.ok());
  EXPECT_THAT(sink.removed_hashes(),
              ElementsAre(chain[0].sequence_hash, chain[1].sequence_hash, chain[2].sequence_hash));
}

TEST(EventsTest, EventsCarryThePoolsTier) {
  RecordingEventSink sink;
  auto pool = BlockPool<kG2>::create(config(1, 4, &sink));
  ASSERT_TRUE(pool.ok());
  {
    auto held = register_chain(**pool, std::span<const BlockIdentity>(chain_of(1, 1)));
    ASSERT_TRUE(held.ok());
  }
  auto one = (*pool)->allocate(1);
  ASSERT_TRUE(one.ok());
  one->clear();
  ASSERT_TRUE((*pool)->reset().ok());
  ASSERT_EQ(sink.stored().size(), 1u);
  EXPECT_EQ(sink.stored()[0].level, kG2);
  ASSERT_EQ(sink.removed().size(), 1u);
  EXPECT_EQ(sink.removed()[0].level, kG2);
  ASSERT_EQ(sink.cleared().size(), 1u);
  EXPECT_EQ(sink.cleared()[0].level, kG2);
}

// ---- Pools that keep no tokens ----

TEST(KeepTokensTest, WithoutTokensAppendFailsButApplyWorks) {
  RecordingEventSink sink;
  BlockPoolConfig c = config(4, 4, &sink);
  c.keep_tokens = false;
  auto pool = make_pool(c);
  auto blocks = pool->allocate(2);
  ASSERT_TRUE(blocks.ok());
  ASSERT_TRUE((*blocks)[0].init(SaltHash{0}, std::nullopt).ok());
  const std::vector<std::uint32_t> t = {1, 2, 3, 4};
  absl::Status s = (*blocks)[0].append(t);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("keep_tokens"));
  EXPECT_EQ((*blocks)[0].num_tokens(), 0u);

  const auto chain = chain_of(2, 1);
  auto seq = TokenBlockSequence::create(4, SaltHash{0}, make_tokens(8, 1));
  ASSERT_TRUE(seq.ok());
  ASSERT_TRUE((*blocks)[1].apply(seq->block(0)).ok());
  auto one = pool->allocate(1);
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE((*one)[0].apply(chain[1]).ok());
  std::vector<Mutable> batch;
  batch.push_back(std::move((*blocks)[1]));
  batch.push_back(std::move((*one)[0]));
  auto r = pool->register_blocks(std::span<Mutable>(batch));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT((*r)[0].tokens(), IsEmpty());
  ASSERT_EQ(sink.stored().size(), 1u);
  EXPECT_THAT(sink.stored()[0].block_hashes, ElementsAre(chain[0].sequence_hash, chain[1].sequence_hash));
  EXPECT_THAT(sink.stored()[0].token_ids, IsEmpty());
}

TEST(KeepTokensTest, IdentityOnlyBlockReportsNoTokensEvenWhenThePoolKeepsThem) {
  RecordingEventSink sink;
  auto pool = make_pool(config(2, 4, &sink));
  // A slot first used with tokens, then reused for an identity-only block, must not leak the old tokens.
  {
    const std::vector<std::uint32_t> tokens = make_tokens(4, 1);
    auto held = register_tokens(*pool, std::span<const std::uint32_t>(tokens));
    ASSERT_TRUE(held.ok());
    EXPECT_THAT((*held)[0].tokens(), ElementsAreArray(tokens));
  }
  ASSERT_TRUE(pool->reset().ok());
  auto held = register_chain(*pool, std::span<const BlockIdentity>(chain_of(2, 2)));
  ASSERT_TRUE(held.ok());
  EXPECT_THAT((*held)[0].tokens(), IsEmpty());
  EXPECT_THAT((*held)[1].tokens(), IsEmpty());
  EXPECT_THAT(sink.stored().back().token_ids, IsEmpty());
}

// ---- Pools bound to memory ----

TEST(TierMemoryTest, ChunksAreTheLayoutsBytes) {
  const ModelConfig model{.num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 8, .dtype_bytes = 2};
  auto layout = FullyContiguousLayout::create(model, 3);
  ASSERT_TRUE(layout.ok()) << layout.status();
  auto memory = SystemMemory::for_layout(**layout, SystemMemory::Options{});
  ASSERT_TRUE(memory.ok()) << memory.status();
  auto tier = TierMemory::bind(layout->get(), memory->get());
  ASSERT_TRUE(tier.ok()) << tier.status();
  BlockPoolConfig c = config(3, 4);
  c.memory = &*tier;
  auto pool = make_pool(c);
  ASSERT_NE(pool, nullptr);

  const auto chain = chain_of(1, 1);
  auto blocks = complete_blocks(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(blocks.ok());
  Mutable& b = (*blocks)[0];
  const BlockId id = b.id();
  for (std::uint32_t layer = 0; layer < 2; ++layer) {
    for (std::uint32_t outer = 0; outer < 2; ++outer) {
      std::span<std::byte> bytes = b.chunk(layer, outer);
      ASSERT_EQ(bytes.size(), model.bytes_per_chunk());
      const std::span<std::byte> expected = tier->chunk(id.value(), layer, outer);
      EXPECT_EQ(bytes.data(), expected.data());
      std::memset(bytes.data(), static_cast<int>(0x10 + layer * 2 + outer), bytes.size());
    }
  }
  EXPECT_TRUE(b.chunk(2, 0).empty()) << "layer out of range";
  EXPECT_TRUE(b.chunk(0, 2).empty()) << "outer out of range";

  auto registered = pool->register_blocks(std::span<Mutable>(*blocks));
  ASSERT_TRUE(registered.ok());
  const Immutable& r = (*registered)[0];
  for (std::uint32_t layer = 0; layer < 2; ++layer) {
    for (std::uint32_t outer = 0; outer < 2; ++outer) {
      std::span<const std::byte> bytes = r.chunk(layer, outer);
      ASSERT_EQ(bytes.size(), model.bytes_per_chunk());
      const auto want = static_cast<std::byte>(0x10 + layer * 2 + outer);
      EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [&](std::byte x) { return x == want; }));
    }
  }
  // The bytes are those of the layout's block in the storage region.
  const auto* layout_fc = layout->get();
  std::span<std::byte> region = (*memory)->host_region(0);
  const std::uint64_t offset = id.value() * layout_fc->block_stride();
  EXPECT_EQ(r.chunk(0, 0).data(), region.data() + offset);
  EXPECT_TRUE(r.chunk(5, 0).empty());
  // Host memory: reported as such, with no device address.
  EXPECT_EQ(r.memory_kind(), StorageKind::kSystem);
  EXPECT_EQ(r.device_id(), -1);
  EXPECT_TRUE(r.device_chunk(0, 0).empty());
  EXPECT_EQ(r.device_chunk(0, 0).device, -1);
}

// Device memory as the pool sees it: regions with device addresses and no host bytes. The addresses are
// made up, which is safe because nothing on the host may dereference them (the CUDA build's real
// DeviceMemory is checked the same way in tests/transfer/cuda_path_test.cc where a GPU is present).
class DeviceAddressedStorage final : public Storage {
 public:
  explicit DeviceAddressedStorage(std::vector<std::uint64_t> sizes) : sizes_(std::move(sizes)) {}
  static constexpr std::uintptr_t kBase = 0x7f0000000000;
  static constexpr std::uintptr_t kRegionSpacing = 0x100000000;
  StorageKind kind() const override { return StorageKind::kDevice; }
  std::size_t num_regions() const override { return sizes_.size(); }
  std::uint64_t region_size(std::size_t index) const override { return sizes_[index]; }
  std::span<std::byte> host_region(std::size_t) const override { return {}; }
  void* device_region(std::size_t index) const override {
    return index < sizes_.size() ? reinterpret_cast<void*>(kBase + index * kRegionSpacing) : nullptr;
  }
  int device() const override { return 3; }

 private:
  std::vector<std::uint64_t> sizes_;
};

TEST(TierMemoryTest, DeviceMemoryChunksAreDeviceAddressesOfTheLayout) {
  const ModelConfig model{.num_layers = 3, .outer_dim = 2, .page_size = 4, .inner_dim = 8, .dtype_bytes = 2};
  for (const bool outer_contiguous : {false, true}) {
    auto layout = LayerSeparateLayout::create(model, 5, outer_contiguous);
    ASSERT_TRUE(layout.ok()) << layout.status();
    DeviceAddressedStorage storage((*layout)->region_sizes());
    auto tier = TierMemory::bind(layout->get(), &storage);
    ASSERT_TRUE(tier.ok()) << tier.status();
    EXPECT_FALSE(tier->host_addressable());
    EXPECT_TRUE(tier->device_addressable());
    BlockPoolConfig c = config(5, 4);
    c.memory = &*tier;
    auto pool = make_pool(c);
    ASSERT_NE(pool, nullptr);

    auto blocks = pool->allocate(3);
    ASSERT_TRUE(blocks.ok());
    const Mutable& b = (*blocks)[2];
    EXPECT_EQ(b.memory_kind(), StorageKind::kDevice);
    EXPECT_EQ(b.device_id(), 3);
    for (std::uint32_t layer = 0; layer < model.num_layers; ++layer) {
      for (std::uint32_t outer = 0; outer < model.outer_dim; ++outer) {
        const RegionRef ref = (*layout)->region_unchecked(b.id().value(), layer, outer);
        const DeviceChunk chunk = b.device_chunk(layer, outer);
        EXPECT_EQ(chunk.address,
                  DeviceAddressedStorage::kBase + ref.region * DeviceAddressedStorage::kRegionSpacing + ref.offset)
            << "layer " << layer << " outer " << outer;
        EXPECT_EQ(chunk.size, model.bytes_per_chunk());
        EXPECT_EQ(chunk.device, 3);
        EXPECT_TRUE(b.chunk(layer, outer).empty()) << "device bytes are not host bytes";
      }
    }
    EXPECT_TRUE(b.device_chunk(3, 0).empty()) << "layer out of range";
    EXPECT_TRUE(b.device_chunk(0, 2).empty()) << "outer out of range";

    auto chain = chain_of(1, 1);
    Mutable first = std::move((*blocks)[0]);
    ASSERT_TRUE(first.apply(chain[0]).ok());
    const BlockId id = first.id();
    const DeviceChunk before = first.device_chunk(1, 1);
    auto registered = pool->register_blocks(std::span<Mutable>(&first, 1));
    ASSERT_TRUE(registered.ok());
    const Immutable& r = (*registered)[0];
    EXPECT_EQ(r.id(), id);
    EXPECT_EQ(r.memory_kind(), StorageKind::kDevice);
    EXPECT_EQ(r.device_id(), 3);
    EXPECT_EQ(r.device_chunk(1, 1).address, before.address);
    EXPECT_EQ(r.device_chunk(1, 1).size, before.size);
    EXPECT_TRUE(r.chunk(1, 1).empty());
  }
}

TEST(TierMemoryTest, PoolWithoutMemoryHasNoBytes) {
  auto pool = make_pool(config(1));
  auto held = register_chain(*pool, std::span<const BlockIdentity>(chain_of(1, 1)));
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE((*held)[0].chunk(0, 0).empty());
  EXPECT_EQ((*held)[0].memory_kind(), std::nullopt);
  EXPECT_EQ((*held)[0].device_id(), -1);
  EXPECT_TRUE((*held)[0].device_chunk(0, 0).empty());
  Immutable empty;
  EXPECT_TRUE(empty.chunk(0, 0).empty());
  EXPECT_EQ(empty.memory_kind(), std::nullopt);
  EXPECT_TRUE(empty.device_chunk(0, 0).empty());
  EXPECT_TRUE(empty.tokens().empty());
}

}  // namespace
}  // namespace kvbm
