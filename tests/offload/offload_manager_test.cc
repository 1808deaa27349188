// OffloadManager (the tier chain) on its own: hand-built tiers, a ManualScheduler that runs each link's
// jobs only when the test says so, so that every interleaving of the background work is reproduced
// exactly. What is checked: write-through happens at release in release order; queued copies follow
// retention priority, then age; an eviction makes a queued copy first (backlog = wait) or drops and counts
// it (backlog = drop); a full queue makes the producer copy (wait) or drops (drop); G2 → G3 write-back;
// hits are touched, onboarded blocks staged on their way up; bytes arrive intact through every path.
#include "kvbm/offload/offload_manager.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <vector>

#include "support/block_bytes.h"
#include "support/manual_scheduler.h"

namespace kvbm {
namespace {

using testing::ManualScheduler;

// 1 layer × 2 × 2 tokens × 8 × 1 byte = 32 bytes per block.
const ModelConfig kModel{.num_layers = 1, .outer_dim = 2, .page_size = 2, .inner_dim = 8, .dtype_bytes = 1};

// G1's pool exists before the OffloadManager that observes it: releases reach it through this.
class Relay final : public ReleaseObserver {
 public:
  void on_released(CacheLevel level, std::span<const ReleasedBlock> blocks) override {
    if (to_ != nullptr) to_->on_released(level, blocks);
  }
  ReleaseObserver* to_ = nullptr;
};

template <CacheLevel L>
std::unique_ptr<Tier<L>> make_tier(std::uint32_t blocks, bool bytes, ReleaseObserver* on_release) {
  auto tier = std::make_unique<Tier<L>>();
  tier->layout = *FullyContiguousLayout::create(kModel, blocks);
  if (bytes) {
    tier->storage = *SystemMemory::for_layout(*tier->layout, SystemMemory::Options{});
    tier->memory = std::make_unique<TierMemory>(*TierMemory::bind(tier->layout.get(), tier->storage.get()));
  }
  BlockPoolConfig pc;
  pc.num_blocks = blocks;
  pc.page_size = kModel.page_size;
  pc.eviction = EvictionPolicyKind::kLru;
  pc.keep_tokens = false;
  pc.memory = tier->memory.get();
  pc.on_release = on_release;
  tier->pool = *BlockPool<L>::create(pc);
  return tier;
}

struct ChainOptions {
  std::uint32_t g1 = 4, g2 = 4, g3 = 0;
  bool bytes = false;
  OffloadConfig offload = [] {
    OffloadConfig c;
    c.g3_min_frequency = 0;
    c.batch_blocks = 64;
    return c;
  }();
};

// A chain over hand-built tiers, its jobs on a ManualScheduler.
class Chain {
 public:
  explicit Chain(ChainOptions o) : model_(kModel) {
    tiers_.g1 = make_tier<CacheLevel::kG1>(o.g1, o.bytes, &relay_);
    if (o.g2 != 0) tiers_.g2 = make_tier<CacheLevel::kG2>(o.g2, o.bytes, nullptr);
    if (o.g3 != 0) tiers_.g3 = make_tier<CacheLevel::kG3>(o.g3, o.bytes, nullptr);
    if (o.bytes) engine_ = *TransferEngine::create(TransferEngine::Options{});
    OffloadManager::Options mo;
    mo.scheduler = &scheduler;
    offload = std::make_unique<OffloadManager>(&tiers_, engine_.get(), o.offload, std::move(mo));
    relay_.to_ = offload->g1_release_observer();
  }
  ~Chain() {
    scheduler.run_all();  // the manager waits for every job it posted
    relay_.to_ = nullptr;
    offload.reset();
  }

  // Registers blocks `hashes` (a chain) in G1 as an engine would, filling their bytes, and holds them.
  std::vector<G1Block> compute(const std::vector<std::uint64_t>& hashes) {
    std::vector<EvictedBlock> evicted;
    auto blocks = tiers_.g1->pool->allocate(hashes.size(), offload->wants_g1_evictions() ? &evicted : nullptr);
    EXPECT_TRUE(blocks.ok()) << blocks.status();
    if (!evicted.empty()) offload->on_g1_evicted(evicted);
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      BlockIdentity id{BlockHash{hashes[i]}, SequenceHash{hashes[i]}, std::nullopt};
      if (i > 0) id.parent = SequenceHash{hashes[i - 1]};
      if (tiers_.g1->has_bytes()) testing::fill((*blocks)[i], id.sequence_hash, model_);
      EXPECT_TRUE((*blocks)[i].apply(id).ok());
    }
    auto registered = tiers_.g1->pool->register_blocks(*blocks);
    EXPECT_TRUE(registered.ok()) << registered.status();
    return *std::move(registered);
  }
  // compute() and release, tail first.
  void request(const std::vector<std::uint64_t>& hashes) { g1().release(compute(hashes)); }

  // Matches `hashes` (every block expected in `from`), onboards them and counts the blocks that came back
  // into G1 byte-exact; releases them.
  std::size_t onboard_intact(const std::vector<SequenceHash>& hashes, CacheLevel from) {
    MatchResult m = offload->match(hashes);
    EXPECT_EQ(m.size(), hashes.size());
    for (CacheLevel t : m.tiers) EXPECT_EQ(t, from);
    auto op = offload->onboard(std::move(m));
    scheduler.run_all();
    auto blocks = op->wait();
    EXPECT_TRUE(blocks.ok()) << blocks.status();
    if (!blocks.ok()) return 0;
    std::size_t intact = 0;
    for (const G1Block& b : *blocks) intact += testing::wrong_bytes(b, model_) == 0 ? 1 : 0;
    g1().release(*std::move(blocks));
    return intact;
  }

  G1Pool& g1() { return *tiers_.g1->pool; }
  G2Pool& g2() { return *tiers_.g2->pool; }
  G3Pool& g3() { return *tiers_.g3->pool; }
  bool in(CacheLevel level, std::uint64_t h) {
    switch (level) {
      case CacheLevel::kG1:
        return g1().contains(SequenceHash{h});
      case CacheLevel::kG2:
        return g2().contains(SequenceHash{h});
      default:
        return g3().contains(SequenceHash{h});
    }
  }
  LinkStats link(CacheLevel into) const { return offload->stats().links[static_cast<int>(into)]; }
  JobLane lane(const char* name) const { return scheduler.lane(name); }

  ManualScheduler scheduler;  // declared first: outlives the manager
  std::unique_ptr<OffloadManager> offload;

 private:
  ModelConfig model_;
  Relay relay_;
  TierStack tiers_;
  std::unique_ptr<TransferEngine> engine_;
};

std::vector<SequenceHash> seq(std::initializer_list<std::uint64_t> hashes) {
  std::vector<SequenceHash> out;
  for (std::uint64_t h : hashes) out.push_back(SequenceHash{h});
  return out;
}

TEST(OffloadManagerTest, WritesThroughWhenReleasedNotWhenRegistered) {
  Chain c({});
  std::vector<G1Block> held = c.compute({1, 2});
  EXPECT_EQ(c.scheduler.pending(), 0u) << "nothing is queued while the engine holds the blocks";
  c.g1().release(std::move(held));
  ASSERT_EQ(c.scheduler.pending(c.lane("kvbm G1->G2")), 1u);
  EXPECT_FALSE(c.in(CacheLevel::kG2, 1));
  c.scheduler.run_all();
  EXPECT_TRUE(c.in(CacheLevel::kG2, 1));
  EXPECT_TRUE(c.in(CacheLevel::kG2, 2));
  EXPECT_EQ(c.link(CacheLevel::kG2).written, 2u);
}

// Released tail first, written tail first: in G2 the head is the most recent, so G2 evicts tails first.
TEST(OffloadManagerTest, G2TakesARequestTailFirst) {
  ChainOptions o;
  o.g2 = 3;
  Chain c(o);
  c.request({1, 2, 3});
  c.scheduler.run_all();
  c.request({9});  // evicts G2's least recent: 3, the tail
  c.scheduler.run_all();
  EXPECT_FALSE(c.in(CacheLevel::kG2, 3));
  EXPECT_TRUE(c.in(CacheLevel::kG2, 1));
  EXPECT_TRUE(c.in(CacheLevel::kG2, 2));
  EXPECT_TRUE(c.in(CacheLevel::kG2, 9));
}

// Queued copies go higher retention priority first, then older first.
TEST(OffloadManagerTest, QueueOrderIsPriorityThenAge) {
  ChainOptions o;
  o.offload.batch_blocks = 1;  // one block per job: the order is visible job by job
  o.g2 = 8;
  Chain c(o);
  std::vector<G1Block> low = c.compute({1});
  auto high_blocks = c.g1().allocate(1);
  ASSERT_TRUE(high_blocks.ok());
  (*high_blocks)[0].set_priority(90);
  ASSERT_TRUE((*high_blocks)[0].apply(BlockIdentity{BlockHash{2}, SequenceHash{2}, std::nullopt}).ok());
  auto high = c.g1().register_blocks(*high_blocks);
  ASSERT_TRUE(high.ok());
  std::vector<G1Block> older = c.compute({3});
  c.g1().release(std::move(older));  // default priority, queued first
  c.g1().release(std::move(low));    // default priority, queued second
  c.g1().release(*std::move(high));  // priority 90, queued last
  const JobLane lane = c.lane("kvbm G1->G2");
  ASSERT_TRUE(c.scheduler.run_one(lane));
  EXPECT_TRUE(c.in(CacheLevel::kG2, 2)) << "highest priority first";
  EXPECT_FALSE(c.in(CacheLevel::kG2, 3));
  ASSERT_TRUE(c.scheduler.run_one(lane));
  EXPECT_TRUE(c.in(CacheLevel::kG2, 3)) << "then the oldest";
  EXPECT_FALSE(c.in(CacheLevel::kG2, 1));
  ASSERT_TRUE(c.scheduler.run_one(lane));
  EXPECT_TRUE(c.in(CacheLevel::kG2, 1));
}

// backlog = wait: G1 evicts a block whose copy is still queued — the eviction makes the copy first, from
// the evicted slot, byte-exact; the queued copy then finds nothing left to do.
TEST(OffloadManagerTest, EvictionMakesAQueuedCopyFirst) {
  ChainOptions o;
  o.bytes = true;
  o.g1 = 2;
  Chain c(o);
  c.request({1, 2});
  EXPECT_EQ(c.scheduler.pending(), 1u);
  c.request({5, 6});  // evicts 1 and 2 before their copy ran
  EXPECT_TRUE(c.in(CacheLevel::kG2, 1));
  EXPECT_TRUE(c.in(CacheLevel::kG2, 2));
  EXPECT_EQ(c.link(CacheLevel::kG2).at_eviction, 2u);
  c.scheduler.run_all();
  const LinkStats s = c.link(CacheLevel::kG2);
  EXPECT_EQ(s.written, 4u);
  EXPECT_EQ(s.dropped_evicted, 0u);
  EXPECT_EQ(s.present, 0u);
  // The copies made by the eviction hold the right bytes: onboard them back.
  EXPECT_EQ(c.onboard_intact(seq({1, 2}), CacheLevel::kG2), 2u);
}

// backlog = drop: the same eviction drops the queued copies and counts them; nothing waits.
TEST(OffloadManagerTest, DropBacklogCountsWhatTheEvictionDropped) {
  ChainOptions o;
  o.bytes = true;
  o.g1 = 2;
  o.offload.backlog = OffloadBacklog::kDrop;
  Chain c(o);
  c.request({1, 2});
  c.request({5, 6});
  c.scheduler.run_all();
  EXPECT_FALSE(c.in(CacheLevel::kG2, 1));
  EXPECT_FALSE(c.in(CacheLevel::kG2, 2));
  const LinkStats s = c.link(CacheLevel::kG2);
  EXPECT_EQ(s.dropped_evicted, 2u);
  EXPECT_EQ(s.written, 2u);  // 5 and 6
  EXPECT_EQ(c.offload->stats().skipped_evicted, 2u);
}

// A full queue: with wait the producer copies the oldest queued blocks itself; with drop they are dropped.
TEST(OffloadManagerTest, FullQueueProducerCopiesOrDrops) {
  for (OffloadBacklog backlog : {OffloadBacklog::kWait, OffloadBacklog::kDrop}) {
    ChainOptions o;
    o.g1 = 8;
    o.g2 = 8;
    o.offload.queue_capacity = 2;
    o.offload.batch_blocks = 1;
    o.offload.backlog = backlog;
    Chain c(o);
    c.request({1, 2, 3, 4});
    if (backlog == OffloadBacklog::kWait) {
      EXPECT_EQ(c.link(CacheLevel::kG2).producer_runs, 2u);
      EXPECT_TRUE(c.in(CacheLevel::kG2, 4)) << "the tail was queued first, so copied first";
      EXPECT_TRUE(c.in(CacheLevel::kG2, 3));
    } else {
      EXPECT_EQ(c.link(CacheLevel::kG2).dropped_queue_full, 2u);
    }
    c.scheduler.run_all();
    const LinkStats s = c.link(CacheLevel::kG2);
    EXPECT_EQ(s.written, backlog == OffloadBacklog::kWait ? 4u : 2u);
    EXPECT_EQ(s.queue_peak, 2u);
  }
}

// G2 → G3 write-back: blocks reach G3 only when G2 evicts them, before their G2 slot is reused.
TEST(OffloadManagerTest, WriteBackFromG2ToG3) {
  ChainOptions o;
  o.bytes = true;
  o.g1 = 8;
  o.g2 = 2;
  o.g3 = 32;
  o.offload.g2_to_g3 = OffloadMode::kWriteBack;
  Chain c(o);
  c.request({1, 2});
  c.scheduler.run_all();
  EXPECT_TRUE(c.in(CacheLevel::kG2, 1));
  EXPECT_FALSE(c.in(CacheLevel::kG3, 1)) << "write-back copies nothing before the eviction";
  c.request({7, 8});  // G2 evicts 2 and 1 (tail first)
  c.scheduler.run_all();
  EXPECT_TRUE(c.in(CacheLevel::kG3, 1));
  EXPECT_TRUE(c.in(CacheLevel::kG3, 2));
  EXPECT_FALSE(c.in(CacheLevel::kG3, 7));
  EXPECT_EQ(c.link(CacheLevel::kG3).write_back, 2u);
  // The written-back bytes are intact: evict 1 and 2 from G1 and bring them back from G3.
  c.request({20, 21, 22, 23, 24, 25, 26, 27});
  c.scheduler.run_all();
  EXPECT_EQ(c.onboard_intact(seq({1, 2}), CacheLevel::kG3), 2u);
}

// A G2 hit is touched in G2 when its request releases it (not copied again); a G3 hit is read straight
// into G1, then staged into G2 and touched in G3 at its release.
TEST(OffloadManagerTest, HitsAreTouchedAndStagedAtRelease) {
  ChainOptions o;
  o.bytes = true;
  o.g1 = 2;
  o.g2 = 2;
  o.g3 = 8;
  Chain c(o);
  c.request({1});
  c.request({2});
  c.request({3});  // G1 {2,3}; G2 {2,3}; G3 {1,2,3}
  c.scheduler.run_all();
  ASSERT_FALSE(c.in(CacheLevel::kG2, 1));
  MatchResult m = c.offload->match(seq({1}));
  ASSERT_EQ(m.g3.size(), 1u);
  auto op = c.offload->onboard(std::move(m));
  c.scheduler.run_all();
  auto blocks = op->wait();
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 1u);
  EXPECT_EQ(testing::wrong_bytes((*blocks)[0], kModel), 0u);
  EXPECT_FALSE(c.in(CacheLevel::kG2, 1)) << "staged into G2 only when released";
  c.g1().release(*std::move(blocks));
  c.scheduler.run_all();
  EXPECT_TRUE(c.in(CacheLevel::kG2, 1));
  EXPECT_EQ(c.link(CacheLevel::kG2).staged, 1u);
  EXPECT_EQ(c.link(CacheLevel::kG3).touched, 1u);
  EXPECT_EQ(c.offload->stats().g3_to_g1, 1u);
}

// Two lanes interleaved in every order the test picks: the tiers end the same, nothing is lost.
TEST(OffloadManagerTest, LaneInterleavingsAgree) {
  std::vector<std::vector<bool>> contents;
  for (int order = 0; order < 4; ++order) {
    ChainOptions o;
    o.bytes = true;
    o.g1 = 4;
    o.g2 = 4;
    o.g3 = 16;
    o.offload.batch_blocks = 1;
    Chain c(o);
    const JobLane down1 = c.lane("kvbm G1->G2");
    for (std::uint64_t r = 0; r < 6; ++r) {
      c.request({100 * r + 1, 100 * r + 2});
      // Run some of G1 → G2's jobs now, and G2 → G3's in a pattern set by `order`.
      if ((order & 1) != 0) (void)c.scheduler.run_one(down1);
      if ((order & 2) != 0) c.scheduler.run_lane(c.lane("kvbm G2->G3"));
    }
    c.scheduler.run_all();
    const LinkStats s2 = c.link(CacheLevel::kG2), s3 = c.link(CacheLevel::kG3);
    EXPECT_EQ(s2.dropped_evicted + s3.dropped_evicted, 0u);
    EXPECT_EQ(s2.written, 12u) << "order " << order;
    EXPECT_EQ(s3.written, 12u) << "order " << order;
    std::vector<bool> in3;
    for (std::uint64_t r = 0; r < 6; ++r) in3.push_back(c.in(CacheLevel::kG3, 100 * r + 1));
    contents.push_back(in3);
  }
  for (const auto& cset : contents) EXPECT_EQ(cset, contents.front());
}

// Shutting down without draining drops what is queued (counted) and never hangs.
TEST(OffloadManagerTest, ShutdownWithoutDrainDropsTheQueue) {
  Chain c({});
  c.request({1, 2, 3});
  c.offload->shutdown(/*drain=*/false);
  EXPECT_EQ(c.link(CacheLevel::kG2).written, 0u);
  EXPECT_EQ(c.link(CacheLevel::kG2).dropped_queue_full, 3u);
  c.request({4});  // after shutdown: ignored
  EXPECT_FALSE(c.in(CacheLevel::kG2, 4));
}

}  // namespace
}  // namespace kvbm
