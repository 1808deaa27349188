// Multi-threaded stress test of one BlockPool: threads allocate, fill, register overlapping chains (shared
// prefixes, so de-duplication and match contend), match, pass copies of ImmutableBlocks between threads,
// release, touch and upgrade weak handles, while one thread polls status() and tries reset(). Bounded
// iterations, no timing: it checks invariants, and is meant to run clean under TSan and ASan.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kvbm/core/hashing.h"
#include "kvbm/core/mutex.h"
#include "kvbm/core/token_block_sequence.h"
#include "kvbm/pool/block_pool.h"
#include "support/pool_test_util.h"
#include "support/recording_event_sink.h"

namespace kvbm {
namespace {

using ::kvbm::testing::RecordingEventSink;

constexpr CacheLevel kL = CacheLevel::kG1;
using Pool = BlockPool<kL>;
using Mutable = MutableBlock<kL>;
using Immutable = ImmutableBlock<kL>;

constexpr std::uint32_t kNumBlocks = 32;
constexpr std::uint32_t kPageSize = 4;
constexpr int kWorkers = 6;
constexpr int kIterations = 1500;
constexpr std::size_t kMaxDepth = 5;
constexpr std::size_t kExchangeCapacity = 24;

// The tokens of block `depth` whose content is `c`; a chain is identified by its contents.
std::vector<std::uint32_t> path_tokens(const std::vector<std::uint32_t>& contents) {
  std::vector<std::uint32_t> tokens;
  for (std::size_t d = 0; d < contents.size(); ++d) {
    for (std::uint32_t j = 0; j < kPageSize; ++j) {
      tokens.push_back(contents[d] * 1000u + static_cast<std::uint32_t>(d) * 10u + j);
    }
  }
  return tokens;
}

// Handles shared between threads: copies go in, other threads take them out and drop them.
class Exchange {
 public:
  void put(Immutable block) {
    Immutable evicted;
    MutexLock lock(&mu_);
    if (blocks_.size() >= kExchangeCapacity) {
      evicted = std::move(blocks_.front());
      blocks_.erase(blocks_.begin());
    }
    blocks_.push_back(std::move(block));
  }
  std::optional<Immutable> take() {
    MutexLock lock(&mu_);
    if (blocks_.empty()) return std::nullopt;
    Immutable b = std::move(blocks_.back());
    blocks_.pop_back();
    return b;
  }
  void clear() {
    std::vector<Immutable> drop;
    MutexLock lock(&mu_);
    drop.swap(blocks_);
  }

 private:
  Mutex mu_;
  std::vector<Immutable> blocks_ ABSL_GUARDED_BY(mu_);
};

struct WorkerResult {
  std::map<std::uint64_t, int> new_registrations;                 // hash → times this thread registered it as new
  std::map<std::uint64_t, std::vector<std::uint32_t>> tokens_of;  // hash → its block's tokens
  int errors = 0;
  std::string first_error;
  int registers = 0, dedups = 0, matched = 0, exhausted = 0;
};

class BlockPoolStressTest : public ::testing::TestWithParam<EvictionPolicyKind> {};

TEST_P(BlockPoolStressTest, ConcurrentOperationsKeepInvariants) {
  RecordingEventSink sink;
  BlockPoolConfig config;
  config.num_blocks = kNumBlocks;
  config.page_size = kPageSize;
  config.eviction = GetParam();
  config.events = &sink;
  auto created = Pool::create(config);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<Pool> pool = *std::move(created);

  Exchange exchange;
  std::atomic<int> workers_left{kWorkers};
  // The workers start after the poller's first status(), so that polls overlap the operations even when a
  // loaded machine would otherwise run every worker to the end before the poller is scheduled.
  std::atomic<bool> polled{false};
  std::vector<WorkerResult> results(kWorkers);

  auto fail = [](WorkerResult& r, const std::string& what) {
    if (r.errors++ == 0) r.first_error = what;
  };

  auto worker = [&](int index) {
    WorkerResult& r = results[static_cast<std::size_t>(index)];
    while (!polled.load()) std::this_thread::yield();
    std::mt19937 rng(static_cast<std::uint32_t>(1234 + index));
    auto uniform = [&](std::uint32_t lo, std::uint32_t hi) {
      return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
    };
    // Every held block must carry the tokens of its hash: a slot reused while held would not.
    auto check_tokens = [&](const Immutable& b, std::span<const std::uint32_t> expected) {
      if (!std::equal(b.tokens().begin(), b.tokens().end(), expected.begin(), expected.end())) {
        fail(r, "held block's tokens changed (slot reused while held?)");
      }
    };
    std::vector<WeakBlock<kL>> weak;

    for (int it = 0; it < kIterations; ++it) {
      std::vector<std::uint32_t> contents(uniform(1, kMaxDepth));
      for (auto& c : contents) c = uniform(0, 2) == 0 ? uniform(1, 3) : 0;
      const std::vector<std::uint32_t> tokens = path_tokens(contents);
      auto seq = TokenBlockSequence::create(kPageSize, SaltHash{0}, tokens);
      if (!seq.ok()) {
        fail(r, "TokenBlockSequence::create failed");
        continue;
      }
      const std::span<const SequenceHash> hashes = seq->sequence_hashes();
      for (std::size_t i = 0; i < hashes.size(); ++i) {
        auto block_tokens = std::span<const std::uint32_t>(tokens).subspan(i * kPageSize, kPageSize);
        r.tokens_of[hashes[i].value()].assign(block_tokens.begin(), block_tokens.end());
      }

      // Mostly look the prefix up first; sometimes register the whole chain blind, so it de-duplicates.
      std::vector<Immutable> chain;
      if (uniform(0, 2) != 0) chain = pool->match(hashes);
      r.matched += static_cast<int>(chain.size());
      for (std::size_t i = 0; i < chain.size(); ++i) {
        if (chain[i].sequence_hash() != hashes[i]) fail(r, "match returned the wrong hash");
        check_tokens(chain[i], seq->block(i).tokens);
      }

      const std::size_t missing = hashes.size() - chain.size();
      auto blocks = pool->allocate(missing);
      if (!blocks.ok()) {
        if (blocks.status().code() != absl::StatusCode::kResourceExhausted) fail(r, blocks.status().ToString());
        ++r.exhausted;
        pool->release(std::move(chain));
        continue;
      }
      std::vector<BlockId> own_ids;
      for (std::size_t k = 0; k < missing; ++k) {
        const std::size_t i = chain.size() + k;
        Mutable& b = (*blocks)[k];
        own_ids.push_back(b.id());
        absl::Status s;
        if (uniform(0, 1) == 0) {
          s = b.apply(seq->block(i));
        } else {
          const std::optional<SequenceHash> parent = i == 0 ? std::nullopt : std::optional(hashes[i - 1]);
          s = ::kvbm::testing::fill_block(b, seq->block(i).tokens, SaltHash{0}, parent);
        }
        if (!s.ok()) fail(r, s.ToString());
        if (b.identity().sequence_hash != hashes[i]) fail(r, "block hashed differently from the sequence");
        if (uniform(0, 3) == 0) b.set_priority(static_cast<std::uint8_t>(uniform(0, kMaxRetentionPriority)));
      }
      auto registered = pool->register_blocks(std::span<Mutable>(*blocks));
      if (!registered.ok()) {
        fail(r, registered.status().ToString());
        continue;
      }
      for (std::size_t k = 0; k < registered->size(); ++k) {
        Immutable& b = (*registered)[k];
        const std::size_t i = chain.size() + k;
        if (b.sequence_hash() != hashes[i]) fail(r, "register returned the wrong hash");
        check_tokens(b, seq->block(i).tokens);
        if (b.id() == own_ids[k]) {
          ++r.new_registrations[hashes[i].value()];
          ++r.registers;
        } else {
          ++r.dedups;
        }
      }
      for (Immutable& b : *registered) chain.push_back(std::move(b));

      // Share some copies, drop some taken from others, use weak handles, touch.
      switch (uniform(0, 5)) {
        case 0:
          exchange.put(chain[uniform(0, static_cast<std::uint32_t>(chain.size() - 1))]);
          break;
        case 1:
          if (auto taken = exchange.take()) {
            auto t = r.tokens_of.find(taken->sequence_hash().value());
            if (t != r.tokens_of.end()) check_tokens(*taken, t->second);
            if (uniform(0, 1) == 0) taken->reset();
          }
          break;
        case 2:
          weak.push_back(pool->downgrade(chain.back()));
          if (weak.size() > 8) weak.erase(weak.begin());
          break;
        case 3:
          if (!weak.empty()) {
            const auto& w = weak[uniform(0, static_cast<std::uint32_t>(weak.size() - 1))];
            if (auto up = w.upgrade()) {
              if (up->sequence_hash() != w.sequence_hash()) fail(r, "upgrade returned another block");
              check_tokens(*up, r.tokens_of[w.sequence_hash().value()]);
            }
          }
          break;
        case 4: {
          std::vector<SequenceHash> some(hashes.begin(), hashes.end());
          std::shuffle(some.begin(), some.end(), rng);
          (void)pool->touch(some);
          break;
        }
        default:
          break;
      }

      if (uniform(0, 1) == 0) {
        pool->release(std::move(chain));
      } else {
        std::shuffle(chain.begin(), chain.end(), rng);
        for (Immutable& b : chain) b.reset();
      }
    }
    workers_left.fetch_sub(1);
  };

  int status_polls = 0, status_errors = 0, resets = 0;
  auto poller = [&] {
    while (workers_left.load() > 0) {
      const PoolStatus s = pool->status();
      ++status_polls;
      polled.store(true);
      if (s.active + s.inactive + s.free + s.owned != kNumBlocks) ++status_errors;
      if (status_polls % 64 == 0) {
        absl::Status reset = pool->reset();
        if (reset.ok()) {
          ++resets;
        } else if (reset.code() != absl::StatusCode::kFailedPrecondition) {
          ++status_errors;
        }
      }
      std::this_thread::yield();
    }
  };

  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kWorkers; ++i) threads.emplace_back(worker, i);
    threads.emplace_back(poller);
    for (std::thread& t : threads) t.join();
  }
  exchange.clear();

  int registers = 0, dedups = 0;
  for (const WorkerResult& r : results) {
    EXPECT_EQ(r.errors, 0) << r.first_error;
    registers += r.registers;
    dedups += r.dedups;
  }
  EXPECT_EQ(status_errors, 0);
  EXPECT_GT(status_polls, 0);
  EXPECT_GT(registers, 0);
  EXPECT_GT(dedups, 0) << "the workload must produce de-duplication";
  int matched = 0, exhausted = 0;
  for (const WorkerResult& r : results) {
    matched += r.matched;
    exhausted += r.exhausted;
  }
  std::printf("registers %d dedups %d matched %d exhausted %d status_polls %d resets %d evicted %zu\n", registers,
              dedups, matched, exhausted, status_polls, resets, sink.removed_hashes().size());

  // Every handle is dropped: nothing is held.
  const PoolStatus s = pool->status();
  EXPECT_EQ(s.active, 0u);
  EXPECT_EQ(s.owned, 0u);
  EXPECT_EQ(s.inactive + s.free, kNumBlocks);

  // Events: every Stored hash was registered as new, exactly as often as it was stored.
  std::map<std::uint64_t, int> registered_new;
  for (const WorkerResult& r : results) {
    for (const auto& [h, n] : r.new_registrations) registered_new[h] += n;
  }
  std::map<std::uint64_t, int> stored, removed;
  for (SequenceHash h : sink.stored_hashes()) ++stored[h.value()];
  for (SequenceHash h : sink.removed_hashes()) ++removed[h.value()];
  EXPECT_EQ(stored, registered_new) << "Stored events must name exactly the newly registered blocks";
  for (const BlocksStored& e : sink.stored()) {
    EXPECT_EQ(e.token_ids.size(), e.block_hashes.size() * kPageSize);
    EXPECT_EQ(e.block_size, kPageSize);
  }
  for (const auto& [h, n] : removed) {
    EXPECT_LE(n, stored[h]) << "hash " << h << " removed more often than stored";
  }
  EXPECT_EQ(static_cast<int>(sink.cleared().size()), resets);
  if (resets == 0) {
    // Without a reset, a hash is registered now iff it was stored once more than it was removed.
    std::uint32_t net_registered = 0;
    for (const auto& [h, n] : stored) {
      const int net = n - removed[h];
      EXPECT_TRUE(net == 0 || net == 1) << "hash " << h << " stored " << n << " removed " << removed[h];
      EXPECT_EQ(pool->contains(SequenceHash{h}), net == 1) << "hash " << h;
      net_registered += net == 1 ? 1 : 0;
    }
    EXPECT_EQ(net_registered, s.inactive);
  }
  EXPECT_EQ(pool->status(), s);
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, BlockPoolStressTest,
                         ::testing::ValuesIn(all_eviction_policy_kinds().begin(), all_eviction_policy_kinds().end()),
                         [](const auto& info) { return std::string(eviction_policy_name(info.param)); });

}  // namespace
}  // namespace kvbm
