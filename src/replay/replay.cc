// The replay engines (see kvbm/replay/replay.h for the semantics they follow).
#include "kvbm/replay/replay.h"

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/str_join.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "kvbm/core/size.h"
#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/pool/block_pool.h"
#include "kvbm/replay/bandwidth.h"

namespace kvbm {
namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t stream_seed(SequenceHash hash, std::uint32_t chunk_index) {
  return hash.value() ^ (std::uint64_t{chunk_index} * 0xd6e8feb86659fd93ull);
}

// A progress bar with ETA on stderr, redrawn at most ten times a second.
class ProgressBar {
 public:
  ProgressBar(bool enabled, std::uint64_t total) : enabled_(enabled), total_(total), start_(Clock::now()) {}
  void update(std::uint64_t done, bool force = false) {
    if (!enabled_) return;
    const auto now = Clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    std::string line;
    if (total_ > 0) {
      const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(frac * kWidth);
      const double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
      line = absl::StrFormat("\r[%s%s] %5.1f%% %d/%d requests  %.1fs elapsed  ETA %.1fs ", std::string(filled, '#'),
                             std::string(kWidth - filled, '.'), frac * 100, done, total_, elapsed, eta);
    } else {
      line = absl::StrFormat("\r%d requests  %.1fs elapsed ", done, elapsed);
    }
    std::fputs(line.c_str(), stderr);
    drawn_ = true;
  }
  void finish(std::uint64_t done) {
    if (!enabled_) return;
    update(done, true);
    if (drawn_) std::fputs("\n", stderr);
  }

 private:
  bool enabled_;
  std::uint64_t total_;
  Clock::time_point start_;
  Clock::time_point last_{};
  bool drawn_ = false;
};

// G1 of a KvBlockManager: allocation and registration go through the manager, so evictions and releases
// reach the tier chain. Blocks are filled from their hash when the tiers hold bytes.
class ManagerCache {
 public:
  explicit ManagerCache(KvBlockManager& kv) : kv_(kv), model_(kv.model()), bytes_(!kv.identities_only()) {}
  bool contains(SequenceHash h) const { return kv_.g1().contains(h); }
  void contains_each(std::span<const SequenceHash> hashes, std::vector<std::uint8_t>& out) const {
    out.resize(hashes.size());
    kv_.g1().contains_each(hashes, out);
  }
  std::optional<G1Block> find(SequenceHash h) { return kv_.g1().find(h); }
  absl::StatusOr<std::vector<G1MutableBlock>> allocate(std::size_t n) { return kv_.allocate(n); }
  absl::StatusOr<std::vector<G1Block>> register_blocks(std::span<G1MutableBlock> blocks) {
    return kv_.register_blocks(blocks);
  }
  PoolStatus status() const { return kv_.status(); }
  void fill(G1MutableBlock& block, SequenceHash h) {
    if (!bytes_) return;
    for (const ChunkCoord c : canonical_chunks(model_)) fill_chunk_bytes(h, c.index, block.chunk(c.layer, c.outer));
  }

 private:
  KvBlockManager& kv_;
  ModelConfig model_;
  bool bytes_;
};

BlockIdentity identity_at(std::span<const SequenceHash> hashes, std::size_t i) {
  BlockIdentity id{BlockHash{hashes[i].value()}, hashes[i], std::nullopt};
  if (i > 0) id.parent = hashes[i - 1];
  return id;
}

// Step 3 of the sequential semantics for hashes[k..]: appends the blocks it holds to `held` and returns
// how many misses were left uncached because every slot was held.
template <typename Cache>
absl::StatusOr<std::uint64_t> cache_suffix(Cache& cache, std::span<const SequenceHash> hashes, std::size_t k,
                                           bool k_known_uncached, std::vector<G1Block>& held,
                                           std::vector<std::uint64_t>& scratch,
                                           std::vector<std::uint8_t>& scratch_present) {
  const std::size_t n = hashes.size();
  if (k >= n) return 0;
  // Batch when no block of the suffix is cached and the suffix has no repeated hash: then taking n-k
  // blocks at once evicts exactly the blocks n-k single allocations would, in the same order.
  // k_known_uncached: the match that produced k stopped at hashes[k], so it need not be looked up again.
  bool batch = true;
  const std::size_t from = k_known_uncached ? k + 1 : k;
  if (from < n) {
    cache.contains_each(hashes.subspan(from), scratch_present);
    batch = std::find(scratch_present.begin(), scratch_present.end(), std::uint8_t{1}) == scratch_present.end();
  }
  if (batch && n - k > 1) {
    scratch.clear();
    for (std::size_t i = k; i < n; ++i) scratch.push_back(hashes[i].value());
    std::sort(scratch.begin(), scratch.end());
    batch = std::adjacent_find(scratch.begin(), scratch.end()) == scratch.end();
  }
  if (batch) {
    std::size_t count = n - k;
    auto blocks = cache.allocate(count);
    while (!blocks.ok()) {
      if (!absl::IsResourceExhausted(blocks.status())) return blocks.status();
      const PoolStatus st = cache.status();
      // Every slot held: the first single allocation that fails stops caching, so the request caches
      // exactly as many misses as there are free + evictable slots.
      count = std::min<std::size_t>(count - 1, std::size_t{st.free} + st.inactive);
      if (count == 0) return n - k;
      blocks = cache.allocate(count);
    }
    for (std::size_t j = 0; j < count; ++j) {
      if (absl::Status s = (*blocks)[j].apply(identity_at(hashes, k + j)); !s.ok()) return s;
      cache.fill((*blocks)[j], hashes[k + j]);
    }
    auto registered = cache.register_blocks(std::span<G1MutableBlock>(*blocks));
    if (!registered.ok()) return registered.status();
    for (G1Block& b : *registered) held.push_back(std::move(b));
    return n - k - count;
  }
  for (std::size_t i = k; i < n; ++i) {
    if (std::optional<G1Block> b = cache.find(hashes[i])) {
      held.push_back(*std::move(b));
      continue;
    }
    auto one = cache.allocate(1);
    if (!one.ok()) {
      if (!absl::IsResourceExhausted(one.status())) return one.status();
      return n - i;  // every slot held: stop caching this request
    }
    if (absl::Status s = (*one)[0].apply(identity_at(hashes, i)); !s.ok()) return s;
    cache.fill((*one)[0], hashes[i]);
    auto registered = cache.register_blocks(std::span<G1MutableBlock>(*one));
    if (!registered.ok()) return registered.status();
    held.push_back(std::move((*registered)[0]));
  }
  return 0;
}

void count_request(ReplayReport& r, const TraceRequest& req, std::uint64_t hits, std::uint32_t block_tokens) {
  const std::uint64_t n = req.blocks.size();
  r.requests += 1;
  r.blocks_total += n;
  r.blocks_hit += hits;
  // Saturating: a trace's input_length may be as large as kMaxTraceTokens on every line, and the sum must
  // not wrap to a small number of "prompt tokens".
  const auto add = [](std::uint64_t& sum, std::uint64_t v) {
    if (__builtin_add_overflow(sum, v, &sum)) sum = std::numeric_limits<std::uint64_t>::max();
  };
  add(r.input_tokens, req.input_tokens);
  add(r.hit_tokens, std::min<std::uint64_t>(hits * std::uint64_t{block_tokens}, req.input_tokens));
  if (n > 0) {
    r.requests_with_blocks += 1;
    r.sum_request_hit_rate += static_cast<double>(hits) / static_cast<double>(n);
  }
}

// Waits until the request's arrival time under --timing trace.
class Pacer {
 public:
  Pacer(ReplayTiming timing, double speed) : timing_(timing), speed_(speed) {}
  // Sleeps until the request's arrival time; returns the seconds slept. InvalidArgument, before any wait,
  // for an arrival more than kMaxTraceWaitMs after the first request's (at this speed): a timestamp of
  // 1e12 ms would otherwise wait for decades, and 1e15 ms overflow the clock into no wait at all.
  absl::StatusOr<double> wait_for(double timestamp_ms, std::uint64_t request) {
    if (timing_ != ReplayTiming::kTrace) return 0.0;
    if (!first_) {
      first_ = timestamp_ms;
      start_ = Clock::now();
      return 0.0;
    }
    const double offset_ms = (timestamp_ms - *first_) / speed_;
    if (offset_ms <= 0) return 0.0;
    if (offset_ms > kMaxTraceWaitMs) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--timing trace: request %d arrives %.0f ms after the first one at --speed %g, beyond the limit of %.0f ms "
          "(24 hours); use --timing fast, or a larger --speed",
          request, offset_ms, speed_, kMaxTraceWaitMs));
    }
    const auto before = Clock::now();
    std::this_thread::sleep_until(
        start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(offset_ms)));
    return std::chrono::duration<double>(Clock::now() - before).count();
  }

 private:
  ReplayTiming timing_;
  double speed_;
  std::optional<double> first_;
  Clock::time_point start_;
};

absl::StatusOr<std::uint64_t> count_distinct_blocks(TraceReader& trace) {
  if (absl::Status s = trace.rewind(); !s.ok()) return s;
  absl::flat_hash_set<std::uint64_t> seen;
  while (true) {
    auto next = trace.next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) break;
    for (SequenceHash h : (*next)->blocks) seen.insert(h.value());
  }
  if (absl::Status s = trace.rewind(); !s.ok()) return s;
  return seen.size();
}

// Memory one block slot of a pool takes for its bookkeeping (slot state, registry entry, eviction policy
// state), rounded up from what `kvbm replay --no-data` uses per G1 block with 10^7 blocks: 87 bytes (lru),
// 137 bytes (adaptive, learned).
constexpr std::uint64_t kBookkeepingBytesPerBlock = 160;

// What this process may allocate: its address-space limit (RLIMIT_AS) or the machine's memory, the smaller.
std::uint64_t memory_available(std::string* what) {
  const std::uint64_t physical =
      static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  *what = absl::StrCat(format_size(physical), " of physical memory");
  std::uint64_t available = physical;
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < available) {
    available = limit.rlim_cur;
    *what = absl::StrCat("the address-space limit (ulimit -v) of ", format_size(available));
  }
  return available;
}

// Refuses, before any allocation, tiers whose pools (and, in data mode, memory tiers' bytes) need more memory
// than the process may have: `--g1-blocks 2000000000` once died in std::bad_alloc after 34 s.
absl::Status check_memory(const KvbmConfig& config, bool data) {
  std::uint64_t blocks = 0;
  std::uint64_t data_bytes = 0;
  for (CacheLevel level : {CacheLevel::kG1, CacheLevel::kG2, CacheLevel::kG3}) {
    const TierConfig& t = config.tier(level);
    if (!t.enabled()) continue;
    const std::uint64_t n = config.tier_blocks(level);
    blocks += n;
    if (data && level != CacheLevel::kG3) data_bytes += n * config.model.bytes_per_block();
  }
  const std::uint64_t need = blocks * kBookkeepingBytesPerBlock + data_bytes;
  std::string what;
  const std::uint64_t available = memory_available(&what);
  if (need <= available) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the tiers' ", blocks, " blocks need about ", format_size(need), " of memory (", kBookkeepingBytesPerBlock,
      " bytes of bookkeeping per block", data ? " + the G1/G2 blocks' stored bytes" : "", "), more than ", what,
      "; give smaller capacities (--g1-blocks, --g2-bytes, ...)"));
}

absl::Status check_options(const ReplayOptions& o) {
  if (o.block_tokens == 0) return absl::InvalidArgumentError("block_tokens must be >= 1, got 0");
  if (o.timing == ReplayTiming::kTrace && !(o.speed > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("speed must be > 0, got ", o.speed));
  }
  return absl::OkStatus();
}

// Belady for the sequential semantics; see optimal_block_hits.
class OptimalCache {
 public:
  explicit OptimalCache(std::uint64_t capacity) : capacity_(capacity) {}

  // Runs request `r` whose i-th block is next named by request next_use[i] (kNever: never). Returns hits.
  std::uint64_t run(std::span<const SequenceHash> hashes, std::span<const std::uint64_t> next_use,
                    std::uint64_t* uncached) {
    const std::size_t n = hashes.size();
    std::size_t k = 0;
    while (k < n && blocks_.contains(hashes[k].value())) ++k;
    held_.clear();
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t h = hashes[i].value();
      auto it = blocks_.find(h);
      if (it == blocks_.end()) {
        if (i < k) continue;
        if (blocks_.size() >= capacity_) {
          if (evictable_.empty()) {  // every slot held: stop caching this request
            if (uncached != nullptr) *uncached += n - i;
            break;
          }
          auto victim = std::prev(evictable_.end());
          blocks_.erase(std::get<2>(*victim));
          evictable_.erase(victim);
        }
        it = blocks_.emplace(h, Entry{}).first;
      } else if (!it->second.held) {
        evictable_.erase(it->second.key);
      }
      if (!it->second.held) {
        it->second.held = true;
        it->second.key = Key{next_use[i], static_cast<std::uint32_t>(i), h};
        held_.push_back(h);
      }
    }
    for (std::uint64_t h : held_) {
      Entry& e = blocks_.find(h)->second;
      e.held = false;
      evictable_.insert(e.key);
    }
    return k;
  }

 private:
  // (next use, depth, hash): the largest is evicted first.
  using Key = std::tuple<std::uint64_t, std::uint32_t, std::uint64_t>;
  struct Entry {
    bool held = false;
    Key key{};
  };
  std::uint64_t capacity_;
  absl::flat_hash_map<std::uint64_t, Entry> blocks_;
  std::set<Key> evictable_;
  std::vector<std::uint64_t> held_;
};

constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();

// next_use[r][i]: the first request after r naming requests[r][i], or kNever.
std::vector<std::vector<std::uint64_t>> next_uses(std::span<const std::vector<SequenceHash>> requests) {
  std::vector<std::vector<std::uint64_t>> next(requests.size());
  absl::flat_hash_map<std::uint64_t, std::uint64_t> seen;
  for (std::size_t r = requests.size(); r > 0; --r) {
    const auto& req = requests[r - 1];
    next[r - 1].resize(req.size());
    for (std::size_t i = 0; i < req.size(); ++i) {
      auto it = seen.find(req[i].value());
      next[r - 1][i] = it == seen.end() ? kNever : it->second;
    }
    for (SequenceHash h : req) seen[h.value()] = r - 1;
  }
  return next;
}

absl::StatusOr<ReplayReport> run_optimal(TraceReader& trace, const ReplayOptions& o, std::uint64_t g1_blocks) {
  auto read = read_requests(trace);
  if (!read.ok()) return read.status();
  const std::vector<TraceRequest>& requests = *read;
  const auto start = Clock::now();
  std::vector<std::vector<SequenceHash>> blocks;
  blocks.reserve(requests.size());
  for (const TraceRequest& req : requests) blocks.push_back(req.blocks);
  ReplayReport r;
  r.tiers[0].enabled = true;
  r.tiers[0].capacity_blocks = g1_blocks;
  r.tiers[0].eviction = "optimal";
  std::vector<std::uint64_t> hits;
  (void)optimal_block_hits(blocks, g1_blocks, &r.blocks_uncached, &hits);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    count_request(r, requests[i], hits[i], o.block_tokens);
    r.tiers[0].hits += hits[i];
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

bool verify_block(const G1Block& block, const ModelConfig& model) {
  for (const ChunkCoord c : canonical_chunks(model)) {
    if (!check_chunk_bytes(block.sequence_hash(), c.index, block.chunk(c.layer, c.outer))) return false;
  }
  return true;
}

// The chain semantics of specs/replay-semantics.md, in both modes: a KvBlockManager whose background work
// runs inline (every copy a request orders is done before the next request), with tiers that hold bytes
// (data) or identities only (--no-data). Per request: match across the tiers (step 1), onboard what is
// below G1 and cache the rest in G1 (step 2), release tail first (step 3), which starts the chain's work in
// G2 and G3 (steps 4 and 5).
// `real` is the block every size is of; config.model may be a smaller stored copy of it (data mode).
absl::StatusOr<ReplayReport> run_chain(TraceReader& trace, const ReplayOptions& o, const KvbmConfig& config,
                                       const ModelSpec& real) {
  InlineScheduler scheduler;
  KvBlockManager::Options manager_options;
  manager_options.events = o.events;
  manager_options.scheduler = &scheduler;
  manager_options.identities_only = !o.data;
  auto kv = KvBlockManager::create(config, manager_options);
  if (!kv.ok()) return kv.status();
  KvBlockManager& m = **kv;
  if (o.on_manager) o.on_manager(m);
  ManagerCache cache(m);
  const ModelConfig model = m.model();

  ReplayReport r;
  r.data = o.data;
  r.model = real;
  r.bytes_per_block = real.bytes_per_block();
  r.stored_bytes_per_block = o.data ? model.bytes_per_block() : 0;
  r.settings = config.offload;
  for (int t = 0; t < kNumCacheLevels; ++t) {
    const auto level = static_cast<CacheLevel>(t);
    r.tiers[t].enabled = m.has_tier(level);
    r.tiers[t].capacity_blocks = r.tiers[t].enabled ? config.tier_blocks(level) : 0;
    r.tiers[t].capacity_bytes = r.tiers[t].capacity_blocks * r.bytes_per_block;
    if (level != CacheLevel::kG4) r.tiers[t].eviction = std::string(config.tier(level).eviction.name());
  }
  ProgressBar bar(o.progress, o.expected_requests);
  Pacer pacer(o.timing, o.speed);
  std::vector<G1Block> held;
  std::vector<CacheLevel> tiers;
  std::vector<std::uint64_t> scratch;
  std::vector<std::uint8_t> scratch_present;
  std::vector<double> latencies_ms;
  // Bandwidth: the chain's move counters after the previous request; what a request adds to them is its own
  // (the inline scheduler finishes every copy it orders before the next request).
  BandwidthMeter bandwidth;
  BlocksByPair moved_before = blocks_moved_by_pair(m.offload_stats());
  double last_timestamp_ms = 0;
  auto credit_moves = [&](double timestamp_ms) {
    const BlocksByPair moved = blocks_moved_by_pair(m.offload_stats());
    BlocksByPair delta{};
    for (int p = 0; p < kNumTierPairs; ++p) delta[p] = moved[p] - moved_before[p];
    bandwidth.add(timestamp_ms, delta);
    moved_before = moved;
  };
  const auto start = Clock::now();
  while (true) {
    const auto read_start = Clock::now();
    auto next = trace.next();
    r.trace_seconds += std::chrono::duration<double>(Clock::now() - read_start).count();
    if (!next.ok()) return next.status();
    if (!next->has_value()) break;
    const TraceRequest& req = **next;
    auto paced = pacer.wait_for(req.timestamp_ms, r.requests + 1);
    if (!paced.ok()) return paced.status();
    r.paced_seconds += *paced;
    const std::span<const SequenceHash> hashes(req.blocks);
    MatchResult match = m.match(hashes);
    const std::size_t k = match.size();  // step 1: the hits, each credited to the first tier holding it
    for (CacheLevel level : match.tiers) r.tiers[static_cast<int>(level)].hits += 1;
    bool stopped = false;  // step 2 found every G1 slot held
    if (match.resident()) {
      held = std::move(match.g1);
    } else {
      tiers = match.tiers;
      std::shared_ptr<OnboardOperation> op = m.onboard(std::move(match));
      auto blocks = op->wait();
      if (!blocks.ok()) return blocks.status();
      held = *std::move(blocks);
      latencies_ms.push_back(op->latency_seconds() * 1e3);
      r.onboards += 1;
      if (o.data) {
        for (std::size_t i = 0; i < held.size(); ++i) {
          if (tiers[i] == CacheLevel::kG1) continue;
          r.verified_blocks += 1;
          if (!verify_block(held[i], model)) r.verification_failures += 1;
        }
      }
      if (held.size() < k) {
        r.onboard_truncated += k - held.size();
        stopped = op->out_of_slots();
      }
    }
    if (stopped) {
      r.blocks_uncached += hashes.size() - held.size();
    } else {
      // A block that could not be read up is computed again, like a miss.
      const std::size_t from = held.size();
      auto uncached = cache_suffix(cache, hashes, from, /*k_known_uncached=*/from == k, held, scratch, scratch_present);
      if (!uncached.ok()) return uncached.status();
      r.blocks_uncached += *uncached;
    }
    m.release(std::move(held));  // step 3, which starts steps 4 and 5
    held.clear();
    count_request(r, req, k, o.block_tokens);
    credit_moves(req.timestamp_ms);
    last_timestamp_ms = req.timestamp_ms;
    bar.update(r.requests);
  }
  m.flush();
  // Inline, flush finds nothing left to copy; were anything left, it would be the last request's.
  if (r.requests > 0) credit_moves(last_timestamp_ms);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  bar.finish(r.requests);
  for (int t = 0; t < kNumCacheLevels; ++t) {
    r.tiers[t].final_status = m.status(static_cast<CacheLevel>(t));
    r.tiers[t].policy_violations = m.policy_violations(static_cast<CacheLevel>(t));
  }
  r.offload = m.offload_stats();
  r.transfers = m.transfer_stats();
  r.onboard_p50_ms = quantile(latencies_ms, 0.5);
  r.onboard_p99_ms = quantile(latencies_ms, 0.99);
  r.onboard_max_ms = quantile(latencies_ms, 1.0);
  r.bandwidth = bandwidth.finish(r.bytes_per_block);
  return r;
}

}  // namespace

std::uint64_t optimal_block_hits(std::span<const std::vector<SequenceHash>> requests, std::uint64_t capacity,
                                 std::uint64_t* uncached, std::vector<std::uint64_t>* hits_per_request) {
  const auto next = next_uses(requests);
  OptimalCache cache(capacity);
  std::uint64_t total = 0;
  if (hits_per_request != nullptr) hits_per_request->clear();
  for (std::size_t r = 0; r < requests.size(); ++r) {
    const std::uint64_t hits = cache.run(requests[r], next[r], uncached);
    total += hits;
    if (hits_per_request != nullptr) hits_per_request->push_back(hits);
  }
  return total;
}

void fill_chunk_bytes(SequenceHash hash, std::uint32_t chunk_index, std::span<std::byte> out) {
  std::uint64_t state = stream_seed(hash, chunk_index);
  std::size_t i = 0;
  for (; i + 8 <= out.size(); i += 8) {
    const std::uint64_t v = splitmix64(state);
    std::memcpy(out.data() + i, &v, 8);
  }
  if (i < out.size()) {
    const std::uint64_t v = splitmix64(state);
    std::memcpy(out.data() + i, &v, out.size() - i);
  }
}

bool check_chunk_bytes(SequenceHash hash, std::uint32_t chunk_index, std::span<const std::byte> bytes) {
  std::uint64_t state = stream_seed(hash, chunk_index);
  std::size_t i = 0;
  std::uint64_t diff = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    const std::uint64_t v = splitmix64(state);
    std::uint64_t got;
    std::memcpy(&got, bytes.data() + i, 8);
    diff |= v ^ got;
  }
  if (i < bytes.size()) {
    const std::uint64_t v = splitmix64(state);
    std::uint64_t got = 0, want = 0;
    std::memcpy(&got, bytes.data() + i, bytes.size() - i);
    std::memcpy(&want, &v, bytes.size() - i);
    diff |= want ^ got;
  }
  return diff == 0;
}

absl::StatusOr<ModelConfig> model_with_block_bytes(ModelConfig m, std::uint64_t bytes) {
  if (bytes == 0) return absl::InvalidArgumentError("bytes per block must be >= 1, got 0");
  const std::uint64_t max_row = std::uint64_t{ModelConfig::kMaxInnerDim} * ModelConfig::kMaxDtypeBytes;
  auto rows = [&] { return std::uint64_t{m.num_layers} * m.outer_dim * m.page_size; };
  if (rows() > bytes)
    m.page_size =
        static_cast<std::uint32_t>(std::max<std::uint64_t>(1, bytes / (std::uint64_t{m.num_layers} * m.outer_dim)));
  if (rows() > bytes) m.outer_dim = 1;
  if (rows() > bytes) m.num_layers = static_cast<std::uint32_t>(bytes);
  const std::uint64_t row = bytes / rows();
  if (row > max_row) {
    return absl::InvalidArgumentError(
        absl::StrCat("bytes per block ", bytes, " is too large for ", m.to_string(), ": at most ", max_row * rows()));
  }
  m.dtype_bytes = 1;
  while (row / m.dtype_bytes > ModelConfig::kMaxInnerDim) m.dtype_bytes *= 2;
  m.inner_dim = static_cast<std::uint32_t>(row / m.dtype_bytes);
  if (absl::Status s = m.validate(); !s.ok()) return s;
  return m;
}

absl::StatusOr<ReplayReport> run_replay(TraceReader& trace, const ReplayOptions& options) {
  if (absl::Status s = check_options(options); !s.ok()) return s;
  KvbmConfig config = options.config;
  config.keep_tokens = false;  // replay registers identities, not tokens
  if (options.unlimited_g1) {
    auto distinct = count_distinct_blocks(trace);
    if (!distinct.ok()) return distinct.status();
    if (*distinct > TierConfig::kMaxBlocks) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unlimited G1: the trace has ", *distinct,
          " distinct blocks, more than one tier holds (g1.num_blocks is in [1, ", TierConfig::kMaxBlocks, "])"));
    }
    config.g1.num_blocks = std::max<std::uint64_t>(1, *distinct);
    config.g1.bytes = 0;
  }
  ModelSpec real = options.model;
  if (real.name.empty() || real.geometry != config.model) {
    real = ModelSpec::from_geometry(config.model, "unnamed", "configuration");
  }
  absl::StatusOr<ReplayReport> report;
  if (!options.optimal) {
    if (absl::Status s = config.validate(); !s.ok()) return s;
    if (options.data && options.stored_bytes_per_block != 0 &&
        options.stored_bytes_per_block < config.model.bytes_per_block()) {
      // Capacities in real blocks first; then the tiers hold a smaller copy of each block.
      for (TierConfig* t : {&config.g1, &config.g2, &config.g3}) {
        if (!t->enabled()) continue;
        t->num_blocks = t->num_blocks != 0 ? t->num_blocks : t->bytes / config.model.bytes_per_block();
        t->bytes = 0;
      }
      if (config.g4.num_blocks == 0 && config.g4.bytes != 0) {
        config.g4.num_blocks = config.g4.bytes / config.model.bytes_per_block();
        config.g4.bytes = 0;
      }
      auto stored = model_with_block_bytes(config.model, options.stored_bytes_per_block);
      if (!stored.ok()) return stored.status();
      // A link batches min(batch_blocks, max_bytes_in_flight / bytes per block) blocks, and batches decide
      // the order some policies (learned) see blocks in: keep the real block's batches.
      const std::uint64_t batch = std::max<std::uint64_t>(
          1, std::min<std::uint64_t>(config.offload.batch_blocks,
                                     config.offload.max_bytes_in_flight / config.model.bytes_per_block()));
      config.offload.max_bytes_in_flight = batch * stored->bytes_per_block();
      config.model = *stored;
      if (absl::Status s = config.validate(); !s.ok()) return s;
    }
    if (absl::Status s = check_memory(config, options.data); !s.ok()) return s;
    report = run_chain(trace, options, config, real);
  } else {
    if (config.g2.enabled() || config.g3.enabled() || config.g4.enabled()) {
      return absl::InvalidArgumentError(
          "eviction optimal is the offline optimum of G1 alone: set g2 and g3 to 0 blocks (--g2-blocks 0 "
          "--g3-blocks 0) and leave g4 off");
    }
    if (absl::Status s = config.model.validate(); !s.ok()) return s;
    std::uint64_t blocks = config.g1.num_blocks;
    if (blocks == 0 && config.g1.bytes != 0) blocks = config.g1.bytes / config.model.bytes_per_block();
    if (absl::Status s = check_tier_blocks("g1", blocks); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          s.message(), config.g1.bytes != 0 ? absl::StrCat(" (", config.g1.bytes, " bytes / ",
                                                           config.model.bytes_per_block(), " bytes per block)")
                                            : std::string()));
    }
    report = run_optimal(trace, options, blocks);
    if (report.ok()) {
      report->model = real;
      report->bytes_per_block = real.bytes_per_block();
      report->tiers[0].capacity_bytes = blocks * report->bytes_per_block;
      report->settings = config.offload;
    }
  }
  if (!report.ok()) return report;
  report->trace = options.trace_name;
  report->block_tokens = options.block_tokens;
  report->eviction = options.optimal ? "optimal" : std::string(config.g1.eviction.name());
  return report;
}

}  // namespace kvbm
