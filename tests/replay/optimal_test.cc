// `kvbm replay --eviction optimal`: Belady on next use (deepest first on ties) equals an exhaustive search
// over every eviction choice on small random traces, under the sequential semantics of replay.h (every
// miss is cached while a slot is evictable; a request stops caching when every slot is held; hits are the
// cached prefix). Also: it is never below LRU, and reaches the unlimited hit rate with enough capacity.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "kvbm/replay/replay.h"
#include "kvbm/replay/trace.h"

namespace kvbm {
namespace {

using Requests = std::vector<std::vector<SequenceHash>>;

// Exhaustive optimum: the state between requests is the set of cached hashes (recency cannot matter when
// every eviction is chosen freely), memoised per request index.
class BruteForce {
 public:
  BruteForce(const Requests& requests, std::size_t capacity) : requests_(requests), capacity_(capacity) {}
  std::uint64_t best() { return from(0, {}); }

 private:
  std::uint64_t from(std::size_t r, const std::set<std::uint64_t>& cached) {
    if (r == requests_.size()) return 0;
    auto key = std::make_pair(r, cached);
    if (auto it = memo_.find(key); it != memo_.end()) return it->second;
    const auto& req = requests_[r];
    std::size_t k = 0;
    while (k < req.size() && cached.contains(req[k].value())) ++k;
    std::set<std::uint64_t> held;
    for (std::size_t i = 0; i < k; ++i) held.insert(req[i].value());
    std::uint64_t best = 0;
    step(r, k, cached, held, k, best);
    memo_[key] = best;
    return best;
  }
  // Step 3 from position i, branching over every inactive victim.
  void step(std::size_t r, std::size_t i, std::set<std::uint64_t> cached, std::set<std::uint64_t> held,
            std::uint64_t hits, std::uint64_t& best) {
    const auto& req = requests_[r];
    for (; i < req.size(); ++i) {
      const std::uint64_t h = req[i].value();
      if (cached.contains(h)) {
        held.insert(h);
        continue;
      }
      if (cached.size() < capacity_) {
        cached.insert(h);
        held.insert(h);
        continue;
      }
      bool any = false;
      for (std::uint64_t victim : cached) {
        if (held.contains(victim)) continue;
        any = true;
        auto c = cached;
        auto hd = held;
        c.erase(victim);
        c.insert(h);
        hd.insert(h);
        step(r, i + 1, c, hd, hits, best);
      }
      if (any) return;
      break;  // every slot held: stop caching
    }
    best = std::max(best, hits + from(r + 1, cached));
  }

  const Requests& requests_;
  std::size_t capacity_;
  std::map<std::pair<std::size_t, std::set<std::uint64_t>>, std::uint64_t> memo_;
};

// Prompts drawn from a small tree: each request follows a random path from one of a few roots, so
// requests share prefixes, and block ids encode their whole prefix as in Mooncake traces.
Requests random_requests(std::mt19937_64& rng, std::size_t n) {
  Requests out;
  std::map<std::vector<int>, std::uint64_t> ids;
  for (std::size_t r = 0; r < n; ++r) {
    const int len = 1 + static_cast<int>(rng() % 4);
    std::vector<int> path;
    std::vector<SequenceHash> req;
    for (int d = 0; d < len; ++d) {
      path.push_back(static_cast<int>(rng() % (d == 0 ? 2 : 2)));
      auto [it, inserted] = ids.try_emplace(path, ids.size() + 1);
      req.push_back(SequenceHash{it->second});
    }
    out.push_back(std::move(req));
  }
  return out;
}

TEST(OptimalReplayTest, EqualsExhaustiveSearchOnSmallTraces) {
  std::mt19937_64 rng(7);
  int compared = 0;
  for (int t = 0; t < 300; ++t) {
    const Requests reqs = random_requests(rng, 3 + rng() % 6);
    for (std::size_t capacity : {1, 2, 3, 4}) {
      BruteForce brute(reqs, capacity);
      const std::uint64_t want = brute.best();
      EXPECT_EQ(optimal_block_hits(reqs, capacity), want) << "trace " << t << " capacity " << capacity;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 1200);
}

TEST(OptimalReplayTest, NeverBelowLruAndReachesUnlimited) {
  std::mt19937_64 rng(11);
  for (int t = 0; t < 20; ++t) {
    const Requests reqs = random_requests(rng, 40);
    std::vector<TraceRequest> trace;
    for (const auto& r : reqs) {
      TraceRequest tr;
      tr.blocks = r;
      tr.input_tokens = r.size();
      trace.push_back(tr);
    }
    for (std::uint64_t capacity : {2, 4, 8, 64}) {
      ReplayOptions o;
      o.data = false;
      o.block_tokens = 1;
      o.config.g1 = TierConfig{.num_blocks = capacity, .eviction = EvictionPolicyKind::kLru};
      auto lru_trace = make_vector_trace(trace);
      auto lru = run_replay(*lru_trace, o);
      ASSERT_TRUE(lru.ok()) << lru.status();
      o.optimal = true;
      auto opt_trace = make_vector_trace(trace);
      auto opt = run_replay(*opt_trace, o);
      ASSERT_TRUE(opt.ok()) << opt.status();
      EXPECT_EQ(opt->eviction, "optimal");
      EXPECT_GE(opt->blocks_hit, lru->blocks_hit) << "trace " << t << " capacity " << capacity;
      EXPECT_EQ(opt->blocks_hit, optimal_block_hits(reqs, capacity));
      if (capacity == 64) EXPECT_EQ(opt->blocks_hit, lru->blocks_hit);  // ≥ distinct blocks: nothing evicted
    }
  }
}

// Eviction optimal takes every G1 capacity the g1.num_blocks key takes (it was capped at 2^31 while the key
// allowed 4294967294), and refuses more with the key's message.
TEST(OptimalReplayTest, AcceptsTheConfigKeysRangeOfG1) {
  std::vector<TraceRequest> trace(2);
  trace[0].blocks = {SequenceHash{1}, SequenceHash{2}};
  trace[1].blocks = {SequenceHash{1}, SequenceHash{3}};
  for (auto& r : trace) r.input_tokens = r.blocks.size();
  ReplayOptions o;
  o.data = false;
  o.block_tokens = 1;
  o.optimal = true;
  for (std::uint64_t capacity : {std::uint64_t{3'000'000'000}, TierConfig::kMaxBlocks}) {
    o.config.g1 = TierConfig{.num_blocks = capacity};
    auto t = make_vector_trace(trace);
    auto report = run_replay(*t, o);
    ASSERT_TRUE(report.ok()) << capacity << ": " << report.status();
    EXPECT_EQ(report->blocks_hit, 1u);
    EXPECT_EQ(report->tiers[0].capacity_blocks, capacity);
  }
  o.config.g1 = TierConfig{.num_blocks = TierConfig::kMaxBlocks + 1};
  auto t = make_vector_trace(trace);
  auto report = run_replay(*t, o);
  EXPECT_TRUE(absl::IsInvalidArgument(report.status()));
  EXPECT_EQ(report.status().message(), "g1 capacity must be in [1, 4294967294] blocks, got 4294967295");
}

}  // namespace
}  // namespace kvbm
