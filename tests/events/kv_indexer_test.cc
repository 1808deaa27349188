#include "kvbm/events/kv_indexer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <thread>

namespace kvbm {
namespace {

constexpr std::uint32_t kG1 = 0, kG2 = 1, kG3 = 2, kG4 = 3;

BlockStoredEvent stored(std::vector<std::uint64_t> hashes, std::optional<std::string> medium) {
  BlockStoredEvent e;
  e.block_hashes = std::move(hashes);
  e.block_size = 16;
  e.medium = std::move(medium);
  return e;
}

BlockRemovedEvent removed(std::vector<std::uint64_t> hashes, std::optional<std::string> medium) {
  return BlockRemovedEvent{std::move(hashes), std::move(medium)};
}

EventBatch batch(std::vector<KvEvent> events) { return EventBatch{.timestamp = 1.0, .events = std::move(events)}; }

}  // namespace

void PrintTo(const WorkerMatch& m, std::ostream* os) {
  *os << "{worker " << m.worker.value() << ", matched " << m.matched_blocks << ", on [" << m.matched_on[0] << ' '
      << m.matched_on[1] << ' ' << m.matched_on[2] << ' ' << m.matched_on[3] << "]}";
}

namespace {

WorkerId W(std::uint64_t id) { return WorkerId(id); }

// The reference: worker → hash → medium mask, and a prefix walk per worker.
class Model {
 public:
  void apply(WorkerId w, const KvEvent& event) {
    if (std::holds_alternative<AllBlocksClearedEvent>(event)) {
      held_.erase(w);
      return;
    }
    if (const auto* s = std::get_if<BlockStoredEvent>(&event)) {
      const auto level = medium_level(s->medium);
      if (!level) return;
      for (std::uint64_t h : s->block_hashes) held_[w][h] |= 1u << static_cast<unsigned>(*level);
      return;
    }
    const auto& r = std::get<BlockRemovedEvent>(event);
    const auto level = medium_level(r.medium);
    if (!level) return;
    auto it = held_.find(w);
    if (it == held_.end()) return;
    for (std::uint64_t h : r.block_hashes) {
      auto hit = it->second.find(h);
      if (hit == it->second.end()) continue;
      hit->second &= ~(1u << static_cast<unsigned>(*level));
      if (hit->second == 0) it->second.erase(hit);
    }
    if (it->second.empty()) held_.erase(it);
  }
  void remove_worker(WorkerId w) { held_.erase(w); }

  std::vector<WorkerMatch> find(const std::vector<std::uint64_t>& q) const {
    std::vector<WorkerMatch> out;
    for (const auto& [w, hashes] : held_) {
      WorkerMatch m{.worker = w};
      std::array<bool, kNumCacheLevels> on{true, true, true, true};
      for (std::size_t i = 0; i < q.size(); ++i) {
        auto it = hashes.find(q[i]);
        const unsigned mask = it == hashes.end() ? 0 : it->second;
        if (mask == 0) break;
        m.matched_blocks = static_cast<std::uint32_t>(i + 1);
        for (int l = 0; l < kNumCacheLevels; ++l) {
          on[l] = on[l] && ((mask >> l) & 1u);
          if (on[l]) m.matched_on[l] = static_cast<std::uint32_t>(i + 1);
        }
      }
      if (m.matched_blocks > 0) out.push_back(m);
    }
    return out;  // std::map iterates in worker order
  }
  std::size_t entries() const {
    std::size_t n = 0;
    for (const auto& [w, hashes] : held_) n += hashes.size();
    return n;
  }
  std::size_t workers() const { return held_.size(); }

 private:
  std::map<WorkerId, std::map<std::uint64_t, unsigned>> held_;
};

TEST(KvIndexer, MediumNames) {
  EXPECT_EQ(medium_level(std::nullopt), CacheLevel::kG1);
  EXPECT_EQ(medium_level("GPU"), CacheLevel::kG1);
  EXPECT_EQ(medium_level("CPU"), CacheLevel::kG2);
  EXPECT_EQ(medium_level("DISK"), CacheLevel::kG3);
  EXPECT_EQ(medium_level("REMOTE"), CacheLevel::kG4);
  EXPECT_EQ(medium_level("gpu"), std::nullopt);
}

TEST(KvIndexer, EmptyIndexAndQuery) {
  KvIndexer index;
  EXPECT_TRUE(index.find_matches({}).empty());
  const std::vector<std::uint64_t> q{1, 2, 3};
  EXPECT_TRUE(index.find_matches(q).empty());
}

TEST(KvIndexer, LongestPrefixPerWorkerAndPerMedium) {
  KvIndexer index;
  ASSERT_TRUE(index.apply(W(7), batch({stored({1, 2, 3, 4}, "GPU"), stored({5}, "CPU")})).ok());
  ASSERT_TRUE(index.apply(W(3), batch({stored({1, 2}, "CPU"), stored({2, 3}, "GPU")})).ok());
  ASSERT_TRUE(index.apply(W(9), batch({stored({2, 3, 4, 5}, std::nullopt)})).ok());  // no block 1

  const std::vector<std::uint64_t> q{1, 2, 3, 4, 5, 6};
  const auto m = index.find_matches(q);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].worker, W(3));
  EXPECT_EQ(m[0].matched_blocks, 3u);
  EXPECT_EQ(m[0].matched_on[kG1], 0u);
  EXPECT_EQ(m[0].matched_on[kG2], 2u);
  EXPECT_EQ(m[1].worker, W(7));
  EXPECT_EQ(m[1].matched_blocks, 5u);
  EXPECT_EQ(m[1].matched_on[kG1], 4u);
  EXPECT_EQ(m[1].matched_on[kG2], 0u);
  EXPECT_EQ(m[1].matched_on[kG3], 0u);
  EXPECT_EQ(m[1].matched_on[kG4], 0u);

  const auto stats = index.stats();
  EXPECT_EQ(stats.workers, 3u);
  EXPECT_EQ(stats.hashes, 5u);
  EXPECT_EQ(stats.entries, 5u + 3u + 4u);
  EXPECT_EQ(stats.events_applied, 5u);
}

TEST(KvIndexer, RemovedIsPerMediumAndClearedDropsAllMedia) {
  KvIndexer index;
  ASSERT_TRUE(index.apply(W(1), batch({stored({1, 2, 3}, "GPU"), stored({1, 2, 3}, "DISK")})).ok());
  ASSERT_TRUE(index.apply(W(2), batch({stored({1, 2, 3}, "CPU")})).ok());
  const std::vector<std::uint64_t> q{1, 2, 3};

  ASSERT_TRUE(index.apply(W(1), batch({removed({2}, "GPU")})).ok());
  auto m = index.find_matches(q);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].matched_blocks, 3u);  // still on disk
  EXPECT_EQ(m[0].matched_on[kG1], 1u);
  EXPECT_EQ(m[0].matched_on[kG3], 3u);

  ASSERT_TRUE(index.apply(W(1), batch({removed({2}, "DISK")})).ok());
  m = index.find_matches(q);
  EXPECT_EQ(m[0].matched_blocks, 1u);
  // Removing what is not held (another medium, another hash) is ignored.
  ASSERT_TRUE(index.apply(W(1), batch({removed({2}, "REMOTE"), removed({99}, "GPU")})).ok());

  ASSERT_TRUE(index.apply(W(1), batch({AllBlocksClearedEvent{}})).ok());
  m = index.find_matches(q);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].worker, W(2));
  EXPECT_EQ(m[0].matched_on[kG2], 3u);

  index.remove_worker(W(2));
  EXPECT_TRUE(index.find_matches(q).empty());
  const auto stats = index.stats();
  EXPECT_EQ(stats.workers, 0u);
  EXPECT_EQ(stats.hashes, 0u);
  EXPECT_EQ(stats.entries, 0u);
}

TEST(KvIndexer, UnknownMediumRejectsOnlyThatEvent) {
  KvIndexer index;
  const absl::Status s = index.apply(W(4), batch({stored({1}, "GPU"), stored({2}, "NVME"), stored({2}, "CPU")}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), testing::HasSubstr("NVME"));
  EXPECT_THAT(std::string(s.message()), testing::HasSubstr("event 1"));
  const std::vector<std::uint64_t> q{1, 2};
  const auto m = index.find_matches(q);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].matched_blocks, 2u);
  EXPECT_EQ(index.stats().events_rejected, 1u);
  EXPECT_EQ(index.stats().events_applied, 2u);
}

TEST(KvIndexer, HashesAboveTwoToTheSixtyThree) {
  KvIndexer index;
  const std::vector<std::uint64_t> q{0xFFFFFFFFFFFFFFFFull, 0x8000000000000000ull};
  ASSERT_TRUE(index.apply(W(0), batch({stored(q, "GPU")})).ok());
  ASSERT_EQ(index.find_matches(q).size(), 1u);
  EXPECT_EQ(index.find_matches(q)[0].matched_blocks, 2u);
}

// Chains of hashes that share prefixes, like requests sharing a system prompt.
std::vector<std::vector<std::uint64_t>> make_chains(std::mt19937_64& rng, int count, int length) {
  std::vector<std::vector<std::uint64_t>> chains;
  for (int c = 0; c < count; ++c) {
    std::vector<std::uint64_t> chain;
    if (c > 0) {
      const auto& parent = chains[rng() % chains.size()];
      chain.assign(parent.begin(), parent.begin() + static_cast<long>(rng() % (parent.size() + 1)));
    }
    while (static_cast<int>(chain.size()) < length) chain.push_back(rng());
    chains.push_back(std::move(chain));
  }
  return chains;
}

const std::optional<std::string> kMedia[] = {"GPU", "CPU", "DISK", "REMOTE", std::nullopt};

// A random event of one worker over `chains`: stored/removed ranges of a chain, occasionally a clear or
// an unknown medium.
KvEvent random_event(std::mt19937_64& rng, const std::vector<std::vector<std::uint64_t>>& chains) {
  const auto& chain = chains[rng() % chains.size()];
  const std::size_t a = rng() % chain.size();
  const std::size_t b = a + 1 + rng() % (chain.size() - a);
  std::vector<std::uint64_t> hashes(chain.begin() + static_cast<long>(a), chain.begin() + static_cast<long>(b));
  std::optional<std::string> medium = kMedia[rng() % 5];
  const unsigned op = rng() % 100;
  if (op < 2) return AllBlocksClearedEvent{};
  if (op < 4) medium = "TAPE";
  if (op < 55) return stored(std::move(hashes), std::move(medium));
  // Remove a random subset of the range: holes in the middle of prefixes.
  std::vector<std::uint64_t> some;
  for (std::uint64_t h : hashes) {
    if (rng() % 2 == 0) some.push_back(h);
  }
  return removed(std::move(some), std::move(medium));
}

class KvIndexerRandom : public testing::TestWithParam<int> {};

TEST_P(KvIndexerRandom, MatchesBruteForceModelAfterEveryStep) {
  const int workers = GetParam();
  std::mt19937_64 rng(0x5eed + static_cast<std::uint64_t>(workers));
  const auto chains = make_chains(rng, 12, 10);
  KvIndexer index;
  Model model;
  std::size_t answers = 0;
  for (int step = 0; step < 3000; ++step) {
    const WorkerId w(rng() % static_cast<std::uint64_t>(workers) * 1000 + 17);  // sparse ids
    if (rng() % 200 == 0) {
      index.remove_worker(w);
      model.remove_worker(w);
    } else {
      const KvEvent event = random_event(rng, chains);
      (void)index.apply(w, batch({event}));
      model.apply(w, event);
    }
    for (int q = 0; q < 4; ++q) {
      const auto& chain = chains[rng() % chains.size()];
      std::vector<std::uint64_t> query(chain.begin(), chain.begin() + 1 + static_cast<long>(rng() % chain.size()));
      if (rng() % 4 == 0) query.push_back(rng());  // a block nobody holds
      const auto expected = model.find(query);
      ASSERT_EQ(index.find_matches(query), expected) << "step " << step << " query " << q;
      answers += expected.size();
    }
    const auto stats = index.stats();
    ASSERT_EQ(stats.entries, model.entries()) << "step " << step;
    ASSERT_EQ(stats.workers, model.workers()) << "step " << step;
  }
  EXPECT_GT(answers, 3000u) << "the stream should leave workers holding prefixes most of the time";
}

INSTANTIATE_TEST_SUITE_P(Workers, KvIndexerRandom, testing::Values(2, 3, 8, 40));

// Writers (one worker each) and readers at once; run under TSan. Afterwards the index equals the model
// of each writer's stream applied alone.
TEST(KvIndexerConcurrency, WritersAndReaders) {
  constexpr int kWriters = 4, kReaders = 3, kSteps = 2000;
  std::mt19937_64 chain_rng(99);
  const auto chains = make_chains(chain_rng, 16, 12);
  KvIndexer index;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> queries{0};

  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(1000 + static_cast<std::uint64_t>(w));
      for (int i = 0; i < kSteps; ++i) (void)index.apply(W(static_cast<std::uint64_t>(w)), random_event(rng, chains));
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(2000 + static_cast<std::uint64_t>(r));
      // At least some queries per reader even when the writers finish before readers get scheduled.
      for (int n = 0; n < 200 || !done.load(); ++n) {
        const auto& chain = chains[rng() % chains.size()];
        for (const WorkerMatch& m : index.find_matches(chain)) {
          ASSERT_LE(m.matched_blocks, chain.size());
          ASSERT_GT(m.matched_blocks, 0u);
          for (std::uint32_t on : m.matched_on) ASSERT_LE(on, m.matched_blocks);
        }
        (void)index.stats();
        queries.fetch_add(1);
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[static_cast<std::size_t>(w)].join();
  done.store(true);
  for (std::size_t t = kWriters; t < threads.size(); ++t) threads[t].join();
  EXPECT_GT(queries.load(), 0u);

  Model model;
  for (int w = 0; w < kWriters; ++w) {
    std::mt19937_64 rng(1000 + static_cast<std::uint64_t>(w));
    for (int i = 0; i < kSteps; ++i) model.apply(W(static_cast<std::uint64_t>(w)), random_event(rng, chains));
  }
  for (const auto& chain : chains) EXPECT_EQ(index.find_matches(chain), model.find(chain));
  EXPECT_EQ(index.stats().entries, model.entries());
}

}  // namespace
}  // namespace kvbm
