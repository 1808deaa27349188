// The policies of issue 5/8 through the EvictionPolicy interface alone: every policy evicts each inactive
// block exactly once under random operation sequences, and each shows its defining behaviour.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "kvbm/pool/eviction_policy.h"

namespace kvbm {
namespace {

BlockId B(std::uint32_t v) { return BlockId{v}; }

InactiveBlockInfo info(std::uint64_t hash, std::uint32_t depth = 0, bool tail = false, bool leaf = true) {
  InactiveBlockInfo i;
  i.sequence_hash = hash;
  i.depth = depth;
  i.is_tail = tail;
  i.is_leaf = leaf;
  return i;
}

std::vector<std::uint32_t> drain(EvictionPolicy& p) {
  std::vector<std::uint32_t> out;
  while (auto v = p.evict()) out.push_back(v->value());
  return out;
}

class EveryPolicyTest : public ::testing::TestWithParam<EvictionPolicyKind> {};

// A reference set of held ids: insert/erase/touch/set_leaf/evict at random; the policy's size must match
// and every victim must be held (then no longer).
TEST_P(EveryPolicyTest, RandomOperationsKeepTheSetExact) {
  constexpr std::uint32_t kCap = 64;
  for (std::uint64_t seed : {1, 2, 3}) {
    auto p = make_eviction_policy(GetParam(), kCap);
    std::mt19937_64 rng(seed);
    std::set<std::uint32_t> held;
    std::uint64_t next_hash = 1;
    std::vector<std::uint64_t> hash_of(kCap, 0);
    for (int step = 0; step < 20000; ++step) {
      const std::uint32_t id = static_cast<std::uint32_t>(rng() % kCap);
      switch (rng() % 6) {
        case 0:
        case 1:
          if (!held.contains(id)) {
            // Sometimes the same block comes back (same hash), sometimes a new one.
            if (hash_of[id] == 0 || rng() % 2 == 0) hash_of[id] = next_hash++ % 200 + 1;
            p->insert(B(id), info(hash_of[id], static_cast<std::uint32_t>(rng() % 40), rng() % 3 == 0, rng() % 2));
            held.insert(id);
          }
          break;
        case 2:
          if (held.contains(id)) {
            p->erase(B(id));
            held.erase(id);
          }
          break;
        case 3:
          if (held.contains(id)) p->touch(B(id));
          break;
        case 4:
          if (held.contains(id)) p->set_leaf(B(id), rng() % 2 == 0);
          break;
        case 5: {
          auto v = p->evict();
          ASSERT_EQ(v.has_value(), !held.empty());
          if (v) {
            ASSERT_TRUE(held.contains(v->value())) << "evicted a block not in the set";
            held.erase(v->value());
          }
          break;
        }
      }
      ASSERT_EQ(p->size(), held.size());
    }
    std::vector<std::uint32_t> rest = drain(*p);
    std::sort(rest.begin(), rest.end());
    EXPECT_EQ(rest, std::vector<std::uint32_t>(held.begin(), held.end()));
    EXPECT_EQ(p->size(), 0u);
  }
}

// Issue 5/8: policy state per cached block ≤ 64 bytes, from memory_bytes() (every array, ghost and map
// the policy allocated) after enough churn to fill its ghost: each slot evicted and refilled 8 times,
// with a third of the blocks coming back (ghost hits) so that ghost maps reach their steady size.
TEST_P(EveryPolicyTest, StateIsAtMost64BytesPerCachedBlock) {
  constexpr std::uint32_t kCap = 16384;
  auto p = make_eviction_policy(GetParam(), kCap);
  std::mt19937_64 rng(7);
  std::uint64_t next_hash = 1;
  for (std::uint32_t id = 0; id < kCap; ++id) p->insert(B(id), info(next_hash++, id % 32, id % 16 == 0));
  for (std::uint32_t step = 0; step < 8 * kCap; ++step) {
    const std::uint32_t v = p->evict()->value();
    const std::uint64_t hash = rng() % 3 == 0 ? next_hash - rng() % (2 * kCap) : next_hash++;
    p->insert(B(v), info(hash, step % 32, step % 16 == 0));
    if (step % 5 == 0) p->touch(B(v));
  }
  const double per_block = static_cast<double>(p->memory_bytes()) / kCap;
  std::printf("%-14s %.1f bytes of policy state per cached block\n",
              std::string(eviction_policy_name(GetParam())).c_str(), per_block);
  EXPECT_LE(per_block, 64.0) << eviction_policy_name(GetParam());
  EXPECT_GE(per_block, 8.0) << "at least the LRU links";
}

TEST_P(EveryPolicyTest, NameRoundTrips) {
  auto parsed = parse_eviction_policy(eviction_policy_name(GetParam()));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, GetParam());
  EXPECT_EQ(make_eviction_policy(GetParam(), 4)->name(), eviction_policy_name(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, EveryPolicyTest, ::testing::ValuesIn(all_eviction_policy_kinds()),
                         [](const auto& i) { return std::string(eviction_policy_name(i.param)); });

// Blocks used again outlive a scan of blocks used once.
TEST(ScanResistanceTest, ReusedBlocksSurviveAOneOffScan) {
  for (EvictionPolicyKind kind : {EvictionPolicyKind::kS3Fifo, EvictionPolicyKind::kSlru, EvictionPolicyKind::kLfu}) {
    auto p = make_eviction_policy(kind, 1000);
    for (std::uint32_t id = 0; id < 10; ++id) p->insert(B(id), info(id + 1));
    for (std::uint32_t id = 0; id < 10; ++id) {  // used again: matched, then released
      p->erase(B(id));
      p->insert(B(id), info(id + 1));
    }
    for (std::uint32_t id = 10; id < 100; ++id) p->insert(B(id), info(id + 1));
    std::vector<std::uint32_t> order = drain(*p);
    ASSERT_EQ(order.size(), 100u);
    // SLRU may demote 2 of the 10 to probation (protected ≤ 80 %); S3-FIFO keeps the rest until the scan
    // has drained the small queue.
    const auto reused_early = std::count_if(order.begin(), order.begin() + 80, [](std::uint32_t v) { return v < 10; });
    EXPECT_LE(reused_early, 2) << eviction_policy_name(kind);
  }
}

// S3-FIFO: a block evicted from the small queue and then registered again goes to main (ghost hit).
TEST(S3FifoTest, GhostHitEntersMain) {
  auto p = make_eviction_policy(EvictionPolicyKind::kS3Fifo, 20);
  p->insert(B(0), info(777));
  EXPECT_EQ(p->evict()->value(), 0u);  // small → ghost
  p->insert(B(0), info(777));          // back: main
  for (std::uint32_t id = 1; id < 20; ++id) p->insert(B(id), info(id));
  std::vector<std::uint32_t> order = drain(*p);
  EXPECT_EQ(order.back(), 0u);
}

// Prefix-aware forms never evict a block with a cached child while a chain tail is evictable.
TEST(PrefixAwareTest, InteriorBlocksGoLast) {
  for (EvictionPolicyKind kind :
       {EvictionPolicyKind::kS3FifoPrefix, EvictionPolicyKind::kSlruPrefix, EvictionPolicyKind::kLfuPrefix}) {
    auto p = make_eviction_policy(kind, 8);
    EXPECT_TRUE(p->uses_lineage());
    p->insert(B(0), info(1, 0, false, /*leaf=*/false));
    p->insert(B(1), info(2, 1, true, /*leaf=*/true));
    p->insert(B(2), info(3, 0, false, /*leaf=*/true));
    p->set_leaf(B(2), false);
    std::vector<std::uint32_t> order = drain(*p);
    ASSERT_EQ(order.size(), 3u);
    EXPECT_EQ(order[0], 1u) << eviction_policy_name(kind);
  }
}

// Learned: on a stream where prompt heads (depth 0) come back 30 requests later and tails never do,
// it learns to evict tails first, though every head is older than the newest tails (LRU evicts both).
TEST(LearnedTest, LearnsThatTailsDoNotReturn) {
  constexpr std::uint32_t kCap = 40;
  auto p = make_eviction_policy(EvictionPolicyKind::kLearned, kCap);
  std::vector<std::uint32_t> free_ids;
  for (std::uint32_t v = 0; v < kCap; ++v) free_ids.push_back(v);
  std::map<std::uint64_t, std::uint32_t> cached;  // hash → id
  std::map<std::uint32_t, std::uint64_t> hash_of;
  std::uint64_t hits = 0, tail_victims = 0, victims = 0;
  auto take = [&]() {
    if (!free_ids.empty()) {
      const std::uint32_t v = free_ids.back();
      free_ids.pop_back();
      return v;
    }
    const std::uint32_t v = p->evict()->value();
    ++victims;
    if (hash_of[v] >= 1000000) ++tail_victims;
    cached.erase(hash_of[v]);
    return v;
  };
  for (std::uint64_t r = 0; r < 3000; ++r) {
    const std::uint64_t head = r % 30 + 1, tail = 1000000 + r;
    std::uint32_t head_id;
    if (auto it = cached.find(head); it != cached.end()) {
      head_id = it->second;
      p->erase(B(head_id));
      if (r >= 2000) ++hits;
    } else {
      head_id = take();
      cached[head] = head_id;
      hash_of[head_id] = head;
    }
    const std::uint32_t tail_id = take();
    cached[tail] = tail_id;
    hash_of[tail_id] = tail;
    p->insert(B(tail_id), info(tail, 1, /*tail=*/true));  // release: tail first
    p->insert(B(head_id), info(head, 0, false));
  }
  EXPECT_GT(tail_victims * 10, victims * 9);  // ≥ 90 % of victims are tails
  EXPECT_GT(hits, 900u);                      // heads almost always hit after warm-up
}

// Learned: a release batch whose tail is still held by another request never sends is_tail, so the
// previous batch stays open. A block of that batch evicted meanwhile and released again as a new block
// must be moved once, not unlinked while it waits for its batch's level (a corrupted list would hand out
// a held block). Every block must still come out exactly once.
TEST(LearnedTest, VictimReleasedAgainIntoAnOpenBatch) {
  auto p = make_eviction_policy(EvictionPolicyKind::kLearned, 4);  // under 1.5 batches: LRU order
  p->insert(B(1), info(101, 2, /*tail=*/true));                    // a batch of three new blocks, tail first
  p->insert(B(2), info(102, 1, false));
  p->insert(B(3), info(103, 0, false));
  p->erase(B(1));  // matched by the next request, which still holds it when that request ends
  const std::uint32_t v = p->evict()->value();  // the oldest inactive block: 2, new in the open batch
  ASSERT_EQ(v, 2u);
  p->insert(B(2), info(202, 1, false));  // the slot again, as a new block; no tail arrives
  p->insert(B(1), info(101, 2, false));  // a cached block: the open batch's new blocks change level
  std::vector<std::uint32_t> order = drain(*p);
  std::sort(order.begin(), order.end());
  EXPECT_EQ(order, (std::vector<std::uint32_t>{1, 2, 3}));
  // Every slot once more, as one request: each comes out exactly once, and nothing else does.
  for (std::uint32_t i = 0; i < 4; ++i) p->insert(B(i), info(400 + i, 3 - i, i == 0));
  order = drain(*p);
  std::sort(order.begin(), order.end());
  EXPECT_EQ(order, (std::vector<std::uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(p->size(), 0u);
}

// Learned under request-shaped traffic where another request often still holds a batch's tail, so batches
// stay open across evictions and slots come back in them as new blocks: every victim must be inactive
// and every inactive block must come out exactly once.
TEST(LearnedTest, RequestsWithHeldTailsKeepTheSetExact) {
  // 16 blocks (under 1.5 requests: LRU order, so a batch's new blocks are soon victims) and 48.
  for (std::uint32_t capacity : {16u, 48u}) {
    for (std::uint64_t seed : {1, 2, 3, 4, 5, 6, 7, 8}) {
      auto p = make_eviction_policy(EvictionPolicyKind::kLearned, capacity);
      std::mt19937_64 rng(seed);
      std::set<std::uint32_t> inactive;
      std::vector<std::uint32_t> free_ids, held_tails;
      for (std::uint32_t v = 0; v < capacity; ++v) free_ids.push_back(v);
      std::uint64_t next_hash = 1;
      for (int r = 0; r < 3000; ++r) {
        std::vector<std::uint32_t> batch;  // in release order: tail first
        const std::size_t n = 1 + rng() % 10;
        for (std::size_t i = 0; i < n; ++i) {
          if (!inactive.empty() && rng() % 3 == 0) {  // a cached block, matched
            auto it = inactive.begin();
            std::advance(it, static_cast<long>(rng() % inactive.size()));
            const std::uint32_t v = *it;
            inactive.erase(it);
            p->erase(B(v));
            batch.push_back(v);
          } else if (!free_ids.empty()) {
            batch.push_back(free_ids.back());
            free_ids.pop_back();
          } else if (!inactive.empty()) {
            const auto victim = p->evict();
            ASSERT_TRUE(victim.has_value());
            ASSERT_EQ(inactive.erase(victim->value()), 1u)
                << "capacity " << capacity << " seed " << seed << " request " << r;
            batch.push_back(victim->value());
          }
        }
        std::reverse(batch.begin(), batch.end());
        // Another request still holds the tail a third of the time: it is released later, alone.
        const bool held = batch.size() > 1 && rng() % 3 == 0;
        for (std::size_t i = held ? 1 : 0; i < batch.size(); ++i) {
          p->insert(B(batch[i]), info(next_hash++, static_cast<std::uint32_t>(batch.size() - 1 - i), i == 0));
          inactive.insert(batch[i]);
        }
        if (held) held_tails.push_back(batch[0]);
        if (held_tails.size() > 3) {
          p->insert(B(held_tails.front()), info(next_hash++, 5, true));
          inactive.insert(held_tails.front());
          held_tails.erase(held_tails.begin());
        }
        ASSERT_EQ(p->size(), inactive.size()) << "capacity " << capacity << " seed " << seed << " request " << r;
      }
      std::vector<std::uint32_t> order = drain(*p);
      std::sort(order.begin(), order.end());
      EXPECT_EQ(order, std::vector<std::uint32_t>(inactive.begin(), inactive.end()))
          << "capacity " << capacity << " seed " << seed;
    }
  }
}

// The request stream twin_run() feeds: request r takes a prefix of rng() % shared_choices blocks of one
// of `prompts` prompts (the cached ones matched, while the prefix is unbroken), then fresh blocks, `length`
// blocks in all (0: 1 + rng() % max_length).
struct TwinRequests {
  std::uint64_t prompts = 5;
  std::uint32_t shared_choices = 9;
  std::uint32_t length = 10;
  std::uint32_t max_length = 0;
};
struct TwinCounts {
  std::uint64_t hits = 0;
  std::uint64_t victims = 0;
};

// Feeds policies a and b (capacity `capacity`) the same `requests` requests, each released tail first as
// BlockPool::release does, and checks that they choose the same victims in the same order and hold the
// same number of blocks. after_release(inactive, hash_of) runs after each request's release.
void twin_run(EvictionPolicy& a, EvictionPolicy& b, std::uint32_t capacity, std::uint64_t requests, std::uint64_t seed,
              const TwinRequests& shape, TwinCounts& counts,
              const std::function<void(const std::set<std::uint32_t>&, const std::map<std::uint32_t, std::uint64_t>&)>&
                  after_release = {}) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint32_t> free_ids;
  for (std::uint32_t v = 0; v < capacity; ++v) free_ids.push_back(v);
  std::map<std::uint64_t, std::uint32_t> cached;  // hash → id, the same in both (same victims)
  std::map<std::uint32_t, std::uint64_t> hash_of;
  std::set<std::uint32_t> inactive;
  for (std::uint64_t r = 0; r < requests; ++r) {
    const std::uint64_t prompt = rng() % shape.prompts;
    const std::uint32_t shared = static_cast<std::uint32_t>(rng() % shape.shared_choices);
    const std::uint32_t blocks =
        shape.length != 0 ? shape.length : 1 + static_cast<std::uint32_t>(rng() % shape.max_length);
    std::vector<std::uint32_t> ids;
    for (std::uint32_t d = 0; d < blocks; ++d) {
      const std::uint64_t h = d < shared ? (prompt + 1) * 100 + d : 1000000 + r * 16 + d;
      if (auto it = cached.find(h); it != cached.end() && ids.size() == d) {
        a.erase(B(it->second));
        b.erase(B(it->second));
        inactive.erase(it->second);
        ids.push_back(it->second);
        ++counts.hits;
        continue;
      }
      if (free_ids.empty() && ids.size() == capacity) break;
      std::uint32_t v;
      if (!free_ids.empty()) {
        v = free_ids.back();
        free_ids.pop_back();
      } else {
        v = a.evict()->value();
        ASSERT_EQ(b.evict()->value(), v) << "request " << r << " block " << d;
        ++counts.victims;
        inactive.erase(v);
        cached.erase(hash_of[v]);
      }
      cached[h] = v;
      hash_of[v] = h;
      ids.push_back(v);
    }
    for (std::size_t i = ids.size(); i-- > 0;) {
      const InactiveBlockInfo in = info(hash_of[ids[i]], static_cast<std::uint32_t>(i), i + 1 == ids.size());
      a.insert(B(ids[i]), in);
      b.insert(B(ids[i]), in);
      inactive.insert(ids[i]);
    }
    if (after_release) after_release(inactive, hash_of);
    ASSERT_EQ(a.size(), b.size()) << "request " << r;
  }
}

// Learned in a cache smaller than ~1.5 requests: every request then evicts most of what the others left,
// and the policy evicts exactly as LRU does (same victims in the same order), whatever the classes.
TEST(LearnedTest, SmallCacheEvictsInLruOrder) {
  constexpr std::uint32_t kCap = 12;
  auto learned = make_eviction_policy(EvictionPolicyKind::kLearned, kCap);
  auto lru = make_eviction_policy(EvictionPolicyKind::kLru, kCap);
  TwinCounts counts;
  twin_run(*learned, *lru, kCap, 2000, 7, TwinRequests{}, counts);
  EXPECT_GT(counts.victims, 1000u);
  EXPECT_GT(counts.hits, 100u);
}

// A copy's pin (BlockPool::pin_for_copy, EvictionPolicy::pin / unpin) is not a use: learned with blocks
// pinned and unpinned between requests evicts exactly as learned without, and a block used while pinned
// counts as used.
TEST(LearnedTest, PinForCopyIsNotAUse) {
  constexpr std::uint32_t kCap = 48;
  auto plain = make_eviction_policy(EvictionPolicyKind::kLearned, kCap);
  auto pinned = make_eviction_policy(EvictionPolicyKind::kLearned, kCap);
  std::mt19937_64 copy_rng(12);
  std::uint64_t pins = 0;
  TwinCounts counts;
  twin_run(*plain, *pinned, kCap, 3000, 11, TwinRequests{6, 6, 0, 8}, counts,
           [&](const std::set<std::uint32_t>& inactive, const std::map<std::uint32_t, std::uint64_t>& hash_of) {
             // Copies of a few inactive blocks, released in another order than taken.
             std::vector<std::uint32_t> copies;
             for (std::uint32_t v : inactive) {
               if (copy_rng() % 8 == 0) copies.push_back(v);
             }
             for (std::uint32_t v : copies) pinned->pin(B(v));
             std::shuffle(copies.begin(), copies.end(), copy_rng);
             for (std::uint32_t v : copies) pinned->unpin(B(v), info(hash_of.at(v)));
             pins += copies.size();
           });
  EXPECT_GT(counts.victims, 1000u);
  EXPECT_GT(pins, 1000u);

  // Used while pinned: the release that follows is a use (the same as erase + insert).
  auto used = make_eviction_policy(EvictionPolicyKind::kLearned, 4);
  auto erased = make_eviction_policy(EvictionPolicyKind::kLearned, 4);
  for (std::uint32_t v = 0; v < 4; ++v) {
    used->insert(B(v), info(v + 1, 0, true));
    erased->insert(B(v), info(v + 1, 0, true));
  }
  used->pin(B(0));
  used->insert(B(0), info(1, 0, true));
  erased->erase(B(0));
  erased->insert(B(0), info(1, 0, true));
  EXPECT_EQ(drain(*used), drain(*erased));
}

}  // namespace
}  // namespace kvbm
