// Eviction policies, each on its own (make_eviction_policy) and inside a pool, parameterized over all three.
#include "kvbm/pool/eviction_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kvbm/pool/block_pool.h"
#include "support/pool_test_util.h"
#include "support/recording_event_sink.h"

namespace kvbm {
namespace {

using ::kvbm::testing::RecordingEventSink;
using ::kvbm::testing::register_chain;
using ::kvbm::testing::sequence_hashes;
using ::kvbm::testing::synthetic_chain;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr EvictionPolicyKind kAllKinds[] = {EvictionPolicyKind::kLru, EvictionPolicyKind::kPriorityLru,
                                            EvictionPolicyKind::kLineage};

BlockId B(std::uint32_t v) { return BlockId{v}; }

InactiveBlockInfo info(std::uint8_t priority = kDefaultRetentionPriority, bool is_leaf = true) {
  return InactiveBlockInfo{priority, is_leaf};
}

// Evicts until empty; the victims in order.
std::vector<std::uint32_t> drain(EvictionPolicy& policy) {
  std::vector<std::uint32_t> out;
  while (auto victim = policy.evict()) out.push_back(victim->value());
  EXPECT_EQ(policy.size(), 0u);
  return out;
}

// ---- Names ----

TEST(EvictionPolicyNameTest, NamesRoundTrip) {
  EXPECT_EQ(eviction_policy_name(EvictionPolicyKind::kLru), "lru");
  EXPECT_EQ(eviction_policy_name(EvictionPolicyKind::kPriorityLru), "priority_lru");
  EXPECT_EQ(eviction_policy_name(EvictionPolicyKind::kLineage), "lineage");
  for (EvictionPolicyKind kind : kAllKinds) {
    auto parsed = parse_eviction_policy(eviction_policy_name(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
}

TEST(EvictionPolicyNameTest, UnknownNameListsTheAllowedOnes) {
  for (std::string_view bad : {"", "LRU", "fifo", "lineage "}) {
    auto parsed = parse_eviction_policy(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr("lru"));
    EXPECT_THAT(parsed.status().message(), HasSubstr("priority_lru"));
    EXPECT_THAT(parsed.status().message(), HasSubstr("lineage"));
    EXPECT_THAT(parsed.status().message(), HasSubstr("'" + std::string(bad) + "'"));
  }
}

// ---- Every policy: the shared contract ----

class AnyPolicyTest : public ::testing::TestWithParam<EvictionPolicyKind> {};

TEST_P(AnyPolicyTest, KindSizeAndEmptyEvict) {
  auto policy = make_eviction_policy(GetParam(), 8);
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->name(), eviction_policy_name(GetParam()));
  EXPECT_EQ(policy->size(), 0u);
  EXPECT_EQ(policy->evict(), std::nullopt);
  policy->insert(B(3), info());
  policy->insert(B(7), info());
  EXPECT_EQ(policy->size(), 2u);
  policy->erase(B(3));
  EXPECT_EQ(policy->size(), 1u);
  EXPECT_EQ(policy->evict(), B(7));
  EXPECT_EQ(policy->evict(), std::nullopt);
}

TEST_P(AnyPolicyTest, WithEqualInfoTheOldestGoesFirst) {
  auto policy = make_eviction_policy(GetParam(), 8);
  for (std::uint32_t id : {5, 1, 6, 0}) policy->insert(B(id), info());
  EXPECT_THAT(drain(*policy), ElementsAre(5, 1, 6, 0));
}

TEST_P(AnyPolicyTest, ErasedBlocksAreNeverEvictedAndCanComeBack) {
  auto policy = make_eviction_policy(GetParam(), 4);
  for (std::uint32_t id : {0, 1, 2, 3}) policy->insert(B(id), info());
  policy->erase(B(0));
  policy->erase(B(2));
  policy->insert(B(0), info());  // re-inserted: now the newest
  EXPECT_THAT(drain(*policy), ElementsAre(1, 3, 0));
}

TEST_P(AnyPolicyTest, TouchMakesTheMostRecent) {
  auto policy = make_eviction_policy(GetParam(), 4);
  for (std::uint32_t id : {0, 1, 2}) policy->insert(B(id), info());
  policy->touch(B(0));
  policy->touch(B(1));
  EXPECT_THAT(drain(*policy), ElementsAre(2, 0, 1));
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, AnyPolicyTest, ::testing::ValuesIn(kAllKinds),
                         [](const auto& info) { return std::string(eviction_policy_name(info.param)); });

// ---- LRU ----

TEST(LruPolicyTest, IgnoresPriorityAndLineage) {
  auto policy = make_eviction_policy(EvictionPolicyKind::kLru, 4);
  policy->insert(B(0), info(100, false));
  policy->insert(B(1), info(0, true));
  policy->set_leaf(B(0), false);
  EXPECT_THAT(drain(*policy), ElementsAre(0, 1));
}

// ---- Priority then LRU ----

TEST(PriorityLruPolicyTest, LowestPriorityFirstThenLru) {
  auto policy = make_eviction_policy(EvictionPolicyKind::kPriorityLru, 8);
  policy->insert(B(0), info(50));
  policy->insert(B(1), info(10));
  policy->insert(B(2), info(70));  // second bitmap word
  policy->insert(B(3), info(10));
  policy->insert(B(4), info(0));
  policy->insert(B(5), info(kMaxRetentionPriority));
  policy->insert(B(6), info(63));
  policy->insert(B(7), info(64));
  EXPECT_THAT(drain(*policy), ElementsAre(4, 1, 3, 0, 6, 7, 2, 5));
}

TEST(PriorityLruPolicyTest, TouchReordersOnlyWithinAPriority) {
  auto policy = make_eviction_policy(EvictionPolicyKind::kPriorityLru, 4);
  policy->insert(B(0), info(10));
  policy->insert(B(1), info(10));
  policy->insert(B(2), info(20));
  policy->touch(B(0));  // newest of priority 10, still before anything of priority 20
  EXPECT_THAT(drain(*policy), ElementsAre(1, 0, 2));
}

TEST(PriorityLruPolicyTest, PriorityAboveTheMaximumIsClamped) {
  auto policy = make_eviction_policy(EvictionPolicyKind::kPriorityLru, 4);
  policy->insert(B(0), info(255));
  policy->insert(B(1), info(kMaxRetentionPriority));
  policy->insert(B(2), info(kMaxRetentionPriority - 1));
  EXPECT_THAT(drain(*policy), ElementsAre(2, 0, 1));
}

TEST(PriorityLruPolicyTest, ErasingTheLastOfAPriorityEmptiesIt) {
  auto policy = make_eviction_policy(EvictionPolicyKind::kPriorityLru, 4);
  policy->insert(B(0), info(5));
  policy->insert(B(1), info(90));
  policy->erase(B(0));
  EXPECT_EQ(policy->evict(), B(1));
  EXPECT_EQ(policy->evict(), std::nullopt);
  policy->insert(B(0), info(90));
  policy->insert(B(1), info(5));
  EXPECT_THAT(drain(*policy), ElementsAre(1, 0));
}

// ---- Lineage ----

TEST(LineagePolicyTest, LeavesFirstThenInterior) {
  auto policy = make_eviction_policy(EvictionPolicyKind::kLineage, 8);
  policy->insert(B(0), info(kDefaultRetentionPriority, false));
  policy->insert(B(1), info(kDefaultRetentionPriority, true));
  policy->insert(B(2), info(kDefaultRetentionPriority, false));
  policy->insert(B(3), info(kDefaultRetentionPriority, true));
  EXPECT_THAT(drain(*policy), ElementsAre(1, 3, 0, 2));
}

TEST(LineagePolicyTest, SetLeafMovesBetweenLists) {
  auto policy = make_eviction_policy(EvictionPolicyKind::kLineage, 8);
  policy->insert(B(0), info(kDefaultRetentionPriority, false));  // oldest, interior
  policy->insert(B(1), info(kDefaultRetentionPriority, true));
  policy->insert(B(2), info(kDefaultRetentionPriority, true));
  policy->insert(B(3), info(kDefaultRetentionPriority, false));  // newest, interior
  policy->insert(B(4), info(kDefaultRetentionPriority, true));
  // 0 became a leaf: it is older than every leaf, so it goes first.
  policy->set_leaf(B(0), true);
  // 3 became a leaf: newer than the oldest leaf, so it queues behind the leaves.
  policy->set_leaf(B(3), true);
  // 2 gained a child: it waits until no leaf is left.
  policy->set_leaf(B(2), false);
  policy->set_leaf(B(2), false);  // no change
  EXPECT_EQ(policy->size(), 5u);
  EXPECT_THAT(drain(*policy), ElementsAre(0, 1, 4, 3, 2));
}

TEST(LineagePolicyTest, TouchKeepsTheList) {
  auto policy = make_eviction_policy(EvictionPolicyKind::kLineage, 4);
  policy->insert(B(0), info(kDefaultRetentionPriority, false));
  policy->insert(B(1), info(kDefaultRetentionPriority, false));
  policy->insert(B(2), info(kDefaultRetentionPriority, true));
  policy->insert(B(3), info(kDefaultRetentionPriority, true));
  policy->touch(B(0));  // still interior
  policy->touch(B(2));  // still a leaf, now the newest one
  EXPECT_THAT(drain(*policy), ElementsAre(3, 2, 1, 0));
}

TEST(LineagePolicyTest, IgnoresPriority) {
  auto policy = make_eviction_policy(EvictionPolicyKind::kLineage, 4);
  policy->insert(B(0), info(100, true));
  policy->insert(B(1), info(0, true));
  EXPECT_THAT(drain(*policy), ElementsAre(0, 1));
}

// ---- Inside a pool ----

class PoolEvictionTest : public ::testing::TestWithParam<EvictionPolicyKind> {
 protected:
  std::unique_ptr<BlockPool<CacheLevel::kG1>> make_pool(std::uint32_t num_blocks) {
    BlockPoolConfig c;
    c.num_blocks = num_blocks;
    c.page_size = 4;
    c.eviction = GetParam();
    c.events = &sink_;
    auto pool = BlockPool<CacheLevel::kG1>::create(c);
    EXPECT_TRUE(pool.ok()) << pool.status();
    return *std::move(pool);
  }
  // Evicts every inactive block by allocating them all; the Removed hashes in eviction order.
  std::vector<SequenceHash> evict_all(BlockPool<CacheLevel::kG1>& pool) {
    sink_.clear();
    std::vector<SequenceHash> order;
    const PoolStatus before = pool.status();
    std::vector<MutableBlock<CacheLevel::kG1>> held;
    for (std::uint32_t i = 0; i < before.free + before.inactive; ++i) {
      auto one = pool.allocate(1);
      EXPECT_TRUE(one.ok());
      if (one.ok()) held.push_back(std::move(one->front()));
    }
    return sink_.removed_hashes();
  }

  RecordingEventSink sink_;
};

TEST_P(PoolEvictionTest, TailFirstReleasedChainUnderTouchesThatFavourTheParent) {
  auto pool = make_pool(3);
  const std::vector<std::uint64_t> contents = {1, 2, 3};
  const auto chain = synthetic_chain(contents);
  const SequenceHash a = chain[0].sequence_hash, b = chain[1].sequence_hash, c = chain[2].sequence_hash;
  auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(held.ok());
  pool->release(std::move(*held));  // recency, oldest first: c, b, a
  // Touch the tail, then the middle: plain recency now says a (the root), c, b.
  const std::vector<SequenceHash> touch_c = {c};
  const std::vector<SequenceHash> touch_b = {b};
  EXPECT_EQ(pool->touch(touch_c), 1u);
  EXPECT_EQ(pool->touch(touch_b), 1u);

  const std::vector<SequenceHash> order = evict_all(*pool);
  if (GetParam() == EvictionPolicyKind::kLineage) {
    EXPECT_THAT(order, ElementsAre(c, b, a)) << "lineage keeps the stored prefix contiguous";
  } else {
    EXPECT_THAT(order, ElementsAre(a, c, b));
  }
}

// A parent evicted while its child was held, then registered again, still has that cached child: under
// lineage it must not be evicted before the child.
TEST_P(PoolEvictionTest, ReRegisteredParentKeepsItsCachedChild) {
  auto pool = make_pool(3);
  const std::vector<std::uint64_t> contents = {1, 2};
  const auto chain = synthetic_chain(contents);
  const SequenceHash a = chain[0].sequence_hash, b = chain[1].sequence_hash;
  auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(held.ok());
  ImmutableBlock<CacheLevel::kG1> child = (*held)[1];
  held->clear();  // a inactive, b held
  EXPECT_EQ(evict_all(*pool), std::vector<SequenceHash>{a});
  auto again = register_chain(*pool, std::span<const BlockIdentity>(chain).first(1));
  ASSERT_TRUE(again.ok());
  again->clear();  // a released first: the older
  child.reset();   // then b
  const std::vector<SequenceHash> order = evict_all(*pool);
  if (GetParam() == EvictionPolicyKind::kLineage) {
    EXPECT_THAT(order, ElementsAre(b, a));
  } else {
    EXPECT_THAT(order, ElementsAre(a, b));
  }
}

TEST_P(PoolEvictionTest, ActiveBlocksAreNeverEvicted) {
  auto pool = make_pool(4);
  const std::vector<std::uint64_t> contents = {1, 2, 3, 4};
  const auto chain = synthetic_chain(contents);
  auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
  ASSERT_TRUE(held.ok());
  ImmutableBlock<CacheLevel::kG1> keep = (*held)[1];
  pool->release(std::move(*held));
  const std::vector<SequenceHash> order = evict_all(*pool);
  EXPECT_EQ(order.size(), 3u);
  for (SequenceHash h : order) EXPECT_NE(h, chain[1].sequence_hash);
  EXPECT_EQ(pool->status(), (PoolStatus{1, 0, 3, 0})) << "evicted slots were allocated, then dropped";
}

TEST_P(PoolEvictionTest, MatchedBlocksLeaveTheEvictableSet) {
  auto pool = make_pool(3);
  const std::vector<std::uint64_t> contents = {1, 2, 3};
  const auto chain = synthetic_chain(contents);
  {
    auto held = register_chain(*pool, std::span<const BlockIdentity>(chain));
    ASSERT_TRUE(held.ok());
    pool->release(std::move(*held));
  }
  const std::vector<SequenceHash> first_two = {chain[0].sequence_hash, chain[1].sequence_hash};
  auto matched = pool->match(first_two);
  ASSERT_EQ(matched.size(), 2u);
  EXPECT_THAT(evict_all(*pool), ElementsAre(chain[2].sequence_hash));
}

TEST_P(PoolEvictionTest, LowPriorityBlocksGoFirstOnlyUnderPriorityLru) {
  auto pool = make_pool(2);
  const std::vector<std::uint64_t> x_contents = {10};
  const std::vector<std::uint64_t> y_contents = {20};
  const auto x = synthetic_chain(x_contents);
  const auto y = synthetic_chain(y_contents);
  for (const auto* chain : {&x, &y}) {
    auto blocks = ::kvbm::testing::complete_blocks(*pool, std::span<const BlockIdentity>(*chain));
    ASSERT_TRUE(blocks.ok());
    (*blocks)[0].set_priority(chain == &x ? 80 : 5);
    auto held = pool->register_blocks(std::span<MutableBlock<CacheLevel::kG1>>(*blocks));
    ASSERT_TRUE(held.ok());
  }
  // x released first (older) but with a high priority.
  const std::vector<SequenceHash> order = evict_all(*pool);
  if (GetParam() == EvictionPolicyKind::kPriorityLru) {
    EXPECT_THAT(order, ElementsAre(y[0].sequence_hash, x[0].sequence_hash));
  } else {
    EXPECT_THAT(order, ElementsAre(x[0].sequence_hash, y[0].sequence_hash));
  }
}

TEST_P(PoolEvictionTest, ResetStartsAFreshPolicy) {
  auto pool = make_pool(2);
  const std::vector<std::uint64_t> contents = {1, 2};
  {
    auto held = register_chain(*pool, std::span<const BlockIdentity>(synthetic_chain(contents)));
    ASSERT_TRUE(held.ok());
  }
  ASSERT_TRUE(pool->reset().ok());
  EXPECT_TRUE(evict_all(*pool).empty());
  EXPECT_EQ(pool->status(), (PoolStatus{0, 0, 2, 0}));
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, PoolEvictionTest, ::testing::ValuesIn(kAllKinds),
                         [](const auto& info) { return std::string(eviction_policy_name(info.param)); });

}  // namespace
}  // namespace kvbm
