// KvIndexer: find_matches cost per query block with many workers, and apply cost per stored block.
//
// Workload: a tree of requests like a router sees — 64 system prompts (8 blocks each), 512 shared
// conversation prefixes below them (8 more blocks), then 16 blocks unique to each of 4096 requests.
// Every worker holds 100 random requests, each up to a random prefix length, on GPU or CPU. A query is
// one request's 32 sequence hashes. Figures are printed, never asserted.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kvbm/events/kv_indexer.h"

namespace kvbm {
namespace {

constexpr int kPrompts = 64, kConversations = 512, kRequests = 4096, kBlocks = 32, kHeldPerWorker = 100;

std::uint64_t mix(std::uint64_t x) {  // splitmix64: distinct, well-spread hashes per tree node
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::vector<std::vector<std::uint64_t>> make_requests() {
  std::vector<std::vector<std::uint64_t>> requests(kRequests);
  for (int r = 0; r < kRequests; ++r) {
    const int conversation = r % kConversations, prompt = conversation % kPrompts;
    for (int b = 0; b < kBlocks; ++b) {
      const std::uint64_t node = b < 8    ? (1ull << 40) | (static_cast<std::uint64_t>(prompt) << 8) | b
                                 : b < 16 ? (2ull << 40) | (static_cast<std::uint64_t>(conversation) << 8) | b
                                          : (3ull << 40) | (static_cast<std::uint64_t>(r) << 8) | b;
      requests[static_cast<std::size_t>(r)].push_back(mix(node));
    }
  }
  return requests;
}

void fill(KvIndexer& index, int workers, const std::vector<std::vector<std::uint64_t>>& requests) {
  std::mt19937_64 rng(1);
  for (int w = 0; w < workers; ++w) {
    EventBatch batch;
    for (int i = 0; i < kHeldPerWorker; ++i) {
      const auto& request = requests[rng() % requests.size()];
      BlockStoredEvent e;
      e.block_hashes.assign(request.begin(), request.begin() + 1 + static_cast<long>(rng() % kBlocks));
      e.block_size = 16;
      e.medium = rng() % 4 == 0 ? "CPU" : "GPU";
      batch.events.emplace_back(std::move(e));
    }
    (void)index.apply(WorkerId(static_cast<std::uint64_t>(w)), batch);
  }
}

void BM_FindMatches(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  const auto requests = make_requests();
  KvIndexer index;
  fill(index, workers, requests);
  std::mt19937_64 rng(2);
  std::uint64_t matched_workers = 0, matched_blocks = 0;
  for (auto _ : state) {
    const auto& request = requests[rng() % requests.size()];
    const auto matches = index.find_matches(request);
    matched_workers += matches.size();
    for (const WorkerMatch& m : matches) matched_blocks += m.matched_blocks;
    benchmark::DoNotOptimize(matches.data());
  }
  const auto stats = index.stats();
  const double queries = static_cast<double>(state.iterations());
  state.counters["per_block"] =
      benchmark::Counter(kBlocks, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert,
                         benchmark::Counter::kIs1000);
  state.counters["workers_matched"] = static_cast<double>(matched_workers) / queries;
  state.counters["mean_match_len"] =
      matched_workers == 0 ? 0 : static_cast<double>(matched_blocks) / static_cast<double>(matched_workers);
  state.counters["index_entries"] = static_cast<double>(stats.entries);
  state.counters["index_hashes"] = static_cast<double>(stats.hashes);
}
BENCHMARK(BM_FindMatches)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

// A query whose first block nobody holds: the common miss, one hash lookup.
void BM_FindMatchesMiss(benchmark::State& state) {
  const auto requests = make_requests();
  KvIndexer index;
  fill(index, 1000, requests);
  std::vector<std::uint64_t> query(kBlocks);
  std::uint64_t n = 0;
  for (auto _ : state) {
    query[0] = mix(++n);
    benchmark::DoNotOptimize(index.find_matches(query).size());
  }
}
BENCHMARK(BM_FindMatchesMiss);

// Applying one worker's Stored + Removed events of a 32-block request.
void BM_ApplyStoredRemoved(benchmark::State& state) {
  const auto requests = make_requests();
  KvIndexer index;
  fill(index, 1000, requests);
  std::mt19937_64 rng(3);
  for (auto _ : state) {
    const auto& request = requests[rng() % requests.size()];
    const WorkerId worker(rng() % 1000);
    BlockStoredEvent stored;
    stored.block_hashes = request;
    stored.medium = "GPU";
    (void)index.apply(worker, KvEvent(std::move(stored)));
    (void)index.apply(worker, KvEvent(BlockRemovedEvent{request, "GPU"}));
  }
  state.counters["per_block_event"] =
      benchmark::Counter(2 * kBlocks, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert,
                         benchmark::Counter::kIs1000);
}
BENCHMARK(BM_ApplyStoredRemoved);

}  // namespace
}  // namespace kvbm

BENCHMARK_MAIN();
