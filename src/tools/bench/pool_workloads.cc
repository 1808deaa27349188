#include "tools/bench/pool_workloads.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <thread>
#include <utility>
#include <vector>

#include "kvbm/core/token_block_sequence.h"
#include "kvbm/events/event_manager.h"
#include "kvbm/events/zmq_publisher.h"
#include "kvbm/pool/block_pool.h"

// The raw baselines call XXH3 itself, inlined, exactly as src/core/hashing.cc compiles it.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kvbm::bench {
namespace {

using Pool = BlockPool<CacheLevel::kG1>;
using Mutable = MutableBlock<CacheLevel::kG1>;
using Immutable = ImmutableBlock<CacheLevel::kG1>;

constexpr std::uint32_t kPageSize = 16;
constexpr std::size_t kRequestBlocks = 16;

// The end of one request after its prefix matched (`held`): allocates the blocks that missed, gives block i
// the identity `identity_at(i)`, registers them and releases the whole request.
template <typename IdentityAt>
absl::Status finish_request(Pool& pool, std::vector<Immutable> held, const IdentityAt& identity_at) {
  const std::size_t hits = held.size();
  auto fresh = pool.allocate(kRequestBlocks - hits);
  if (!fresh.ok()) return fresh.status();
  for (std::size_t i = 0; i < fresh->size(); ++i) {
    if (absl::Status s = (*fresh)[i].apply(identity_at(hits + i)); !s.ok()) return s;
  }
  auto registered = pool.register_blocks(*fresh);
  if (!registered.ok()) return registered.status();
  held.insert(held.end(), std::make_move_iterator(registered->begin()), std::make_move_iterator(registered->end()));
  pool.release(std::move(held));
  return absl::OkStatus();
}

constexpr std::string_view kBatchRelease = "release(vector): one lock per request";
constexpr std::string_view kHandleRelease = "MutableBlock destructors: one lock per block (no batch API)";

constexpr std::array<WorkloadInfo, 13> kWorkloads = {{
    {WorkloadKind::kAllocateFree16, "allocate_free_16", "allocate+free (16)", kHandleRelease, 30.0},
    {WorkloadKind::kAllocateFree64, "allocate_free_64", "allocate+free (64)", kHandleRelease, 30.0},
    {WorkloadKind::kRegisterNew, "register_new", "register (new)", kBatchRelease, std::nullopt},
    {WorkloadKind::kRegisterDedup, "register_dedup", "register (dedup)", kBatchRelease, std::nullopt},
    {WorkloadKind::kMatchHitCold, "match_hit_cold", "match hit, cold (100k cached)", kBatchRelease, 100.0},
    {WorkloadKind::kMatchHitHot, "match_hit_hot", "match hit, hot prefix", kBatchRelease, 30.0},
    {WorkloadKind::kMatchMiss, "match_miss", "match miss (per hash asked)", "nothing held", std::nullopt},
    {WorkloadKind::kRequestCycle, "request_cycle", "request cycle (16 blocks)", kBatchRelease, 200.0},
    {WorkloadKind::kRequestCycleZmq, "request_cycle_zmq", "request cycle, ZMQ events on", kBatchRelease, std::nullopt},
    {WorkloadKind::kHashSequence, "hash_token_block_sequence", "hash: TokenBlockSequence", "-", std::nullopt},
    {WorkloadKind::kHashXxh3OneCall, "hash_xxh3_one_call", "hash: XXH3, one call", "-", std::nullopt},
    {WorkloadKind::kHashXxh3PerBlock, "hash_xxh3_per_block", "hash: XXH3, per block", "-", std::nullopt},
    {WorkloadKind::kHashXxh3Chained, "hash_xxh3_chained", "hash: XXH3, per block + chain", "-", std::nullopt},
}};

// splitmix64: cheap, well-mixed 64-bit values for hashes and choices.
class SplitMix {
 public:
  explicit SplitMix(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) by multiply-shift (no division on the timed path).
  std::size_t below(std::size_t n) {
    return static_cast<std::size_t>(((next() >> 32) * static_cast<std::uint64_t>(n)) >> 32);
  }

 private:
  std::uint64_t state_;
};

absl::StatusOr<std::unique_ptr<Pool>> make_pool(std::uint32_t num_blocks, bool keep_tokens,
                                                EventSink* events = nullptr) {
  BlockPoolConfig config;
  config.num_blocks = num_blocks;
  config.page_size = kPageSize;
  config.keep_tokens = keep_tokens;
  config.events = events;
  return Pool::create(config);
}

// A chain of `n` fresh identities: first block has no parent, each later one chains to the previous.
template <std::size_t N>
void fresh_chain(SplitMix& rng, std::array<BlockIdentity, N>& out) {
  std::optional<SequenceHash> parent;
  for (BlockIdentity& id : out) {
    const std::uint64_t h = rng.next();
    id = BlockIdentity{BlockHash{h}, SequenceHash{h}, parent};
    parent = id.sequence_hash;
  }
}

// allocate → apply(identity) → register → release(vector): what every identity-only workload does.
absl::Status register_identities(Pool& pool, std::span<const BlockIdentity> identities) {
  auto blocks = pool.allocate(identities.size());
  if (!blocks.ok()) return blocks.status();
  for (std::size_t i = 0; i < identities.size(); ++i) {
    if (absl::Status s = (*blocks)[i].apply(identities[i]); !s.ok()) return s;
  }
  auto registered = pool.register_blocks(*blocks);
  if (!registered.ok()) return registered.status();
  pool.release(std::move(*registered));
  return absl::OkStatus();
}

// `num_chains` fresh chains of kRequestBlocks blocks, registered and released (inactive, matchable).
// Returns their sequence hashes, chain after chain.
absl::StatusOr<std::vector<SequenceHash>> register_chains(Pool& pool, SplitMix& rng, std::size_t num_chains) {
  std::vector<SequenceHash> hashes;
  hashes.reserve(num_chains * kRequestBlocks);
  std::array<BlockIdentity, kRequestBlocks> chain;
  for (std::size_t c = 0; c < num_chains; ++c) {
    fresh_chain(rng, chain);
    if (absl::Status s = register_identities(pool, chain); !s.ok()) return s;
    for (const BlockIdentity& id : chain) hashes.push_back(id.sequence_hash);
  }
  return hashes;
}

class AllocateFree final : public Workload {
 public:
  AllocateFree(std::unique_ptr<Pool> pool, std::size_t count) : pool_(std::move(pool)), count_(count) {}
  std::size_t blocks_per_step() const override { return count_; }
  absl::Status step() override {
    auto blocks = pool_->allocate(count_);
    return blocks.status();  // the handles drop here: each frees its slot
  }

 private:
  std::unique_ptr<Pool> pool_;
  std::size_t count_;
};

// Fresh hashes every request. The pool is pre-filled so that steady state is measured: every
// allocation evicts an inactive block (as in a warm server), not a free-list pop.
class RegisterNew final : public Workload {
 public:
  explicit RegisterNew(std::unique_ptr<Pool> pool) : pool_(std::move(pool)) {}
  absl::Status prefill() {
    auto hashes = register_chains(*pool_, rng_, pool_->num_blocks() / kRequestBlocks);
    return hashes.status();
  }
  std::size_t blocks_per_step() const override { return kRequestBlocks; }
  absl::Status step() override {
    fresh_chain(rng_, chain_);
    return register_identities(*pool_, chain_);
  }

 private:
  std::unique_ptr<Pool> pool_;
  SplitMix rng_{1};
  std::array<BlockIdentity, kRequestBlocks> chain_;
};

// Every registration finds its hash already registered: the existing block is returned and the
// duplicate slot goes back to the free list.
class RegisterDedup final : public Workload {
 public:
  static constexpr std::size_t kChains = 64;
  explicit RegisterDedup(std::unique_ptr<Pool> pool) : pool_(std::move(pool)) {}
  absl::Status populate() {
    std::array<BlockIdentity, kRequestBlocks> chain;
    for (auto& c : chains_) {
      fresh_chain(rng_, chain);
      c = chain;
      if (absl::Status s = register_identities(*pool_, chain); !s.ok()) return s;
    }
    // Check once that the workload measures what it says: registering again returns the existing block.
    const std::uint32_t registered = pool_->status().inactive;
    if (absl::Status s = step(); !s.ok()) return s;
    if (pool_->status().inactive != registered) {
      return absl::InternalError(absl::StrCat("register (dedup): ", pool_->status().inactive,
                                              " inactive blocks after re-registering, expected ", registered));
    }
    return absl::OkStatus();
  }
  std::size_t blocks_per_step() const override { return kRequestBlocks; }
  absl::Status step() override {
    next_ = (next_ + 1) % kChains;
    return register_identities(*pool_, chains_[next_]);
  }

 private:
  std::unique_ptr<Pool> pool_;
  SplitMix rng_{2};
  std::array<std::array<BlockIdentity, kRequestBlocks>, kChains> chains_;
  std::size_t next_ = 0;
};

// match(16 hashes) then release(vector). `chains` holds the registered chains back to back; a request
// picks one uniformly at random, so with ~100k blocks cached the lookups miss the CPU caches.
class MatchHit final : public Workload {
 public:
  MatchHit(std::unique_ptr<Pool> pool, std::vector<SequenceHash> chains)
      : pool_(std::move(pool)), chains_(std::move(chains)), num_chains_(chains_.size() / kRequestBlocks) {}
  std::size_t blocks_per_step() const override { return kRequestBlocks; }
  absl::Status step() override {
    const std::size_t c = num_chains_ == 1 ? 0 : rng_.below(num_chains_);
    std::span<const SequenceHash> request(chains_.data() + c * kRequestBlocks, kRequestBlocks);
    std::vector<Immutable> held = pool_->match(request);
    if (held.size() != kRequestBlocks) {
      return absl::InternalError(
          absl::StrCat("match hit: chain ", c, " matched ", held.size(), " of ", kRequestBlocks, " registered blocks"));
    }
    pool_->release(std::move(held));
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<Pool> pool_;
  std::vector<SequenceHash> chains_;
  std::size_t num_chains_;
  SplitMix rng_{3};
};

// Requests of 16 hashes none of which is registered, against the ~100k-block registry. match stops at
// the first miss, so this is the cost of one failed lookup (plus the call) spread over 16 hashes.
class MatchMiss final : public Workload {
 public:
  static constexpr std::size_t kRing = std::size_t{1} << 16;  // power of two
  explicit MatchMiss(std::unique_ptr<Pool> pool) : pool_(std::move(pool)), misses_(kRing + kRequestBlocks) {
    SplitMix rng(4);
    for (SequenceHash& h : misses_) h = SequenceHash{rng.next()};
  }
  std::size_t blocks_per_step() const override { return kRequestBlocks; }
  absl::Status step() override {
    std::span<const SequenceHash> request(misses_.data() + offset_, kRequestBlocks);
    offset_ = (offset_ + kRequestBlocks) & (kRing - 1);
    std::vector<Immutable> held = pool_->match(request);
    if (!held.empty()) return absl::InternalError("match miss: a random hash matched");
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<Pool> pool_;
  std::vector<SequenceHash> misses_;
  std::size_t offset_ = 0;
};

// The engine's request path, per issue 2: a 256-token prompt = one of kPrefixes popular 128-token
// prefixes (8 blocks, registered) + 128 fresh tokens (8 new blocks). Each request hashes all 16 blocks
// with a TokenBlockSequence, matches (8 hits), allocates 8, applies the 8 new TokenBlocks, registers
// them and releases all 16 with one release(vector).
//
// The pool is pre-filled with old registrations (oldest in LRU order) so that every allocation evicts,
// and is large enough that under LRU a prefix is almost never evicted between two uses of it: the 8
// new blocks per request push out ~(num_blocks - prefix blocks) / 8 requests' worth of history, about
// 7× the mean reuse interval of a prefix. When a prefix block was evicted nonetheless, the request
// re-registers it, as an engine would: hits per request are counted and reported.
// The pool is 131072 blocks, as for the cold match (~100k-block caches are the realistic G1 scale;
// bigger pools mostly measure DRAM latency); under LRU that bounds the popular set to ~2k prefixes:
// with 10k, prefixes would be evicted between uses and most requests would see fewer than 8 hits.
class RequestCycle final : public Workload {
 public:
  static constexpr std::size_t kPrefixes = 2048;
  static constexpr std::size_t kPrefixBlocks = 8;
  static constexpr std::size_t kPrefixTokens = kPrefixBlocks * kPageSize;
  static constexpr std::size_t kPromptTokens = kRequestBlocks * kPageSize;
  static constexpr std::size_t kSuffixTokens = kPromptTokens - kPrefixTokens;
  static constexpr std::uint32_t kPoolBlocks = std::uint32_t{1} << 17;
  static constexpr std::size_t kRing = std::size_t{1} << 20;  // fresh-token ring, power of two

  // `events` (may be null) is the pool's sink; the workload keeps it alive and destroys it after the pool.
  explicit RequestCycle(std::unique_ptr<Pool> pool, std::unique_ptr<EventManager> events = nullptr)
      : events_(std::move(events)),
        pool_(std::move(pool)),
        prefix_tokens_(kPrefixes * kPrefixTokens),
        fresh_tokens_(kRing + kSuffixTokens) {
    SplitMix rng(5);
    // Token ids of a 150k-entry vocabulary.
    for (std::uint32_t& t : prefix_tokens_) t = static_cast<std::uint32_t>(rng.below(150000));
    for (std::uint32_t& t : fresh_tokens_) t = static_cast<std::uint32_t>(rng.below(150000));
  }

  absl::Status populate() {
    // Old history first (evicted first), then the popular prefixes.
    SplitMix rng(6);
    const std::size_t filler_chains = (pool_->num_blocks() - kPrefixes * kPrefixBlocks) / kRequestBlocks;
    if (auto hashes = register_chains(*pool_, rng, filler_chains); !hashes.ok()) return hashes.status();
    for (std::size_t p = 0; p < kPrefixes; ++p) {
      auto seq = TokenBlockSequence::create(kPageSize, SaltHash{0}, prefix(p));
      if (!seq.ok()) return seq.status();
      auto blocks = pool_->allocate(kPrefixBlocks);
      if (!blocks.ok()) return blocks.status();
      for (std::size_t i = 0; i < kPrefixBlocks; ++i) {
        if (absl::Status s = (*blocks)[i].apply(seq->block(i)); !s.ok()) return s;
      }
      auto registered = pool_->register_blocks(*blocks);
      if (!registered.ok()) return registered.status();
      pool_->release(std::move(*registered));
    }
    return absl::OkStatus();
  }

  std::size_t blocks_per_step() const override { return kRequestBlocks; }

  absl::Status step() override {
    // The prompt as the engine receives it: one token array.
    std::memcpy(prompt_.data(), prefix(rng_.below(kPrefixes)).data(), kPrefixTokens * sizeof(std::uint32_t));
    std::memcpy(prompt_.data() + kPrefixTokens, fresh_tokens_.data() + offset_, kSuffixTokens * sizeof(std::uint32_t));
    offset_ = (offset_ + 1) & (kRing - 1);  // a new window of fresh tokens each request

    auto seq = TokenBlockSequence::create(kPageSize, SaltHash{0}, prompt_);
    if (!seq.ok()) return seq.status();
    std::vector<Immutable> held = pool_->match(seq->sequence_hashes());
    const std::size_t hits = held.size();
    hits_ += hits;
    ++requests_;
    return finish_request(*pool_, std::move(held), [&](std::size_t i) { return seq->block(i); });
  }

  std::string summary() const override {
    if (requests_ == 0) return {};
    return absl::StrFormat("%.3f hits per request (8 expected), %u-block pool, %u popular prefixes",
                           static_cast<double>(hits_) / static_cast<double>(requests_), kPoolBlocks, kPrefixes);
  }

 private:
  std::span<const std::uint32_t> prefix(std::size_t p) const {
    return std::span<const std::uint32_t>(prefix_tokens_).subspan(p * kPrefixTokens, kPrefixTokens);
  }

  std::unique_ptr<EventManager> events_;  // declared before pool_: outlives it
  std::unique_ptr<Pool> pool_;
  std::vector<std::uint32_t> prefix_tokens_;
  std::vector<std::uint32_t> fresh_tokens_;
  std::array<std::uint32_t, kPromptTokens> prompt_{};
  std::size_t offset_ = 0;
  SplitMix rng_{7};
  std::uint64_t hits_ = 0;
  std::uint64_t requests_ = 0;
};

// Hashing a 4096-token sequence (16 KiB of u32 tokens), page 16, salt 0, three ways.
class Hashing final : public Workload {
 public:
  static constexpr std::size_t kTokens = 4096;
  explicit Hashing(WorkloadKind kind) : kind_(kind), tokens_(kTokens) {
    SplitMix rng(8);
    for (std::uint32_t& t : tokens_) t = static_cast<std::uint32_t>(rng.below(150000));
  }
  std::size_t blocks_per_step() const override { return kTokens / kPageSize; }
  std::size_t bytes_per_step() const override { return kTokens * sizeof(std::uint32_t); }
  absl::Status step() override {
    switch (kind_) {
      case WorkloadKind::kHashSequence: {
        auto seq = TokenBlockSequence::create(kPageSize, SaltHash{0}, tokens_);
        if (!seq.ok()) return seq.status();
        sink_ ^= seq->sequence_hashes().back().value();
        break;
      }
      case WorkloadKind::kHashXxh3OneCall:
        sink_ ^= XXH3_64bits_withSeed(tokens_.data(), bytes_per_step(), 0);
        break;
      case WorkloadKind::kHashXxh3PerBlock:
        for (std::size_t i = 0; i < kTokens; i += kPageSize) {
          sink_ ^= XXH3_64bits_withSeed(tokens_.data() + i, kPageSize * sizeof(std::uint32_t), 0);
        }
        break;
      default: {
        // Little-endian host assumed, as for the other raw baselines: the parent and block hash are
        // laid out as the two u64 the chain hash is defined over.
        std::uint64_t chain[2] = {0, 0};
        for (std::size_t i = 0; i < kTokens; i += kPageSize) {
          chain[1] = XXH3_64bits_withSeed(tokens_.data() + i, kPageSize * sizeof(std::uint32_t), 0);
          chain[0] = i == 0 ? chain[1] : XXH3_64bits_withSeed(chain, sizeof(chain), 0);
        }
        sink_ ^= chain[0];
        break;
      }
    }
    return absl::OkStatus();
  }
  // Keeps the hashes observable so that the compiler cannot drop them.
  std::string summary() const override { return absl::StrCat("checksum ", sink_ & 0xFF); }

 private:
  WorkloadKind kind_;
  std::vector<std::uint32_t> tokens_;
  std::uint64_t sink_ = 0;
};

// make_policy_workload: see pool_workloads.h.
class PolicyCycle final : public Workload {
 public:
  static constexpr std::size_t kPrefixes = 1024;
  static constexpr std::size_t kPrefixBlocks = 8;
  static constexpr std::uint32_t kPoolBlocks = std::uint32_t{1} << 16;

  explicit PolicyCycle(std::unique_ptr<Pool> pool) : pool_(std::move(pool)), prefixes_(kPrefixes) {}

  absl::Status populate() {
    SplitMix rng(10);
    const std::size_t filler_chains = (pool_->num_blocks() - kPrefixes * kPrefixBlocks) / kRequestBlocks;
    if (auto hashes = register_chains(*pool_, rng, filler_chains); !hashes.ok()) return hashes.status();
    for (auto& prefix : prefixes_) {
      fresh_chain(rng, prefix);
      if (absl::Status s = register_identities(*pool_, prefix); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  std::size_t blocks_per_step() const override { return kRequestBlocks; }

  absl::Status step() override {
    const auto& prefix = prefixes_[rng_.below(kPrefixes)];
    std::array<SequenceHash, kRequestBlocks> hashes;
    for (std::size_t i = 0; i < kPrefixBlocks; ++i) hashes[i] = prefix[i].sequence_hash;
    std::optional<SequenceHash> parent = prefix[kPrefixBlocks - 1].sequence_hash;
    for (std::size_t i = kPrefixBlocks; i < kRequestBlocks; ++i) {
      const std::uint64_t h = rng_.next();
      request_[i] = BlockIdentity{BlockHash{h}, SequenceHash{h}, parent};
      parent = request_[i].sequence_hash;
      hashes[i] = request_[i].sequence_hash;
    }
    for (std::size_t i = 0; i < kPrefixBlocks; ++i) request_[i] = prefix[i];
    std::vector<Immutable> held = pool_->match(hashes);
    const std::size_t hits = held.size();
    hits_ += hits;
    ++requests_;
    return finish_request(*pool_, std::move(held), [&](std::size_t i) { return request_[i]; });
  }

  std::string summary() const override {
    if (requests_ == 0) return {};
    return absl::StrFormat("%.3f hits per request", static_cast<double>(hits_) / static_cast<double>(requests_));
  }

 private:
  std::unique_ptr<Pool> pool_;
  std::vector<std::array<BlockIdentity, kPrefixBlocks>> prefixes_;
  std::array<BlockIdentity, kRequestBlocks> request_;
  SplitMix rng_{11};
  std::uint64_t hits_ = 0;
  std::uint64_t requests_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Workload>> make_policy_workload(EvictionPolicyKind policy) {
  BlockPoolConfig config;
  config.num_blocks = PolicyCycle::kPoolBlocks;
  config.page_size = kPageSize;
  config.keep_tokens = false;
  config.eviction = policy;
  auto pool = Pool::create(config);
  if (!pool.ok()) return pool.status();
  auto w = std::make_unique<PolicyCycle>(*std::move(pool));
  if (absl::Status s = w->populate(); !s.ok()) return s;
  return w;
}

std::span<const WorkloadInfo> all_workloads() { return kWorkloads; }

const WorkloadInfo& workload_info(WorkloadKind kind) {
  for (const WorkloadInfo& info : kWorkloads) {
    if (info.kind == kind) return info;
  }
  return kWorkloads.front();  // unreachable: every kind is listed
}

absl::StatusOr<std::unique_ptr<Workload>> make_workload(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::kAllocateFree16:
    case WorkloadKind::kAllocateFree64: {
      auto pool = make_pool(4096, /*keep_tokens=*/true);
      if (!pool.ok()) return pool.status();
      return std::make_unique<AllocateFree>(*std::move(pool), kind == WorkloadKind::kAllocateFree16 ? 16 : 64);
    }
    case WorkloadKind::kRegisterNew: {
      auto pool = make_pool(16384, /*keep_tokens=*/false);
      if (!pool.ok()) return pool.status();
      auto w = std::make_unique<RegisterNew>(*std::move(pool));
      if (absl::Status s = w->prefill(); !s.ok()) return s;
      return w;
    }
    case WorkloadKind::kRegisterDedup: {
      auto pool = make_pool(4096, /*keep_tokens=*/false);
      if (!pool.ok()) return pool.status();
      auto w = std::make_unique<RegisterDedup>(*std::move(pool));
      if (absl::Status s = w->populate(); !s.ok()) return s;
      return w;
    }
    case WorkloadKind::kMatchHitCold:
    case WorkloadKind::kMatchHitHot:
    case WorkloadKind::kMatchMiss: {
      // ~100k blocks cached (6250 chains of 16) in a 131072-block pool, except for the hot prefix.
      const bool hot = kind == WorkloadKind::kMatchHitHot;
      auto pool = make_pool(hot ? 4096 : 131072, /*keep_tokens=*/false);
      if (!pool.ok()) return pool.status();
      SplitMix rng(9);
      auto chains = register_chains(**pool, rng, hot ? 1 : 6250);
      if (!chains.ok()) return chains.status();
      if (kind == WorkloadKind::kMatchMiss) return std::make_unique<MatchMiss>(*std::move(pool));
      return std::make_unique<MatchHit>(*std::move(pool), *std::move(chains));
    }
    case WorkloadKind::kRequestCycle:
    case WorkloadKind::kRequestCycleZmq: {
      std::unique_ptr<EventManager> events;
      if (kind == WorkloadKind::kRequestCycleZmq) {
        // What a deployment runs: events batched on kvbm's own thread, published on loopback.
        ZmqPublisherOptions zmq;
        zmq.endpoint = "tcp://127.0.0.1:*";
        auto publisher = ZmqPublisher::create(zmq);
        if (!publisher.ok()) return publisher.status();
        std::vector<std::unique_ptr<EventPublisher>> publishers;
        publishers.push_back(*std::move(publisher));
        auto manager = EventManager::create(EventManagerOptions{}, std::move(publishers));
        if (!manager.ok()) return manager.status();
        events = *std::move(manager);
      }
      auto pool = make_pool(RequestCycle::kPoolBlocks, /*keep_tokens=*/true, events.get());
      if (!pool.ok()) return pool.status();
      auto w = std::make_unique<RequestCycle>(*std::move(pool), std::move(events));
      if (absl::Status s = w->populate(); !s.ok()) return s;
      return w;
    }
    case WorkloadKind::kHashSequence:
    case WorkloadKind::kHashXxh3OneCall:
    case WorkloadKind::kHashXxh3PerBlock:
    case WorkloadKind::kHashXxh3Chained:
      return std::make_unique<Hashing>(kind);
  }
  return absl::InvalidArgumentError("make_workload: unknown workload kind");
}

namespace {
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
}  // namespace

absl::StatusOr<Measurement> measure(Workload& workload, double seconds) {
  if (!(seconds > 0)) return absl::InvalidArgumentError(absl::StrCat("measure: seconds must be > 0, got ", seconds));
  using Clock = std::chrono::steady_clock;
  const auto run = [&workload](std::uint64_t steps) -> absl::Status {
    for (std::uint64_t i = 0; i < steps; ++i) {
      if (absl::Status s = workload.step(); !s.ok()) return s;
    }
    return absl::OkStatus();
  };
  // Warm-up (a tenth of the budget, at least one step): caches, branch predictors, allocator.
  const auto warm_until = Clock::now() + std::chrono::duration<double>(seconds / 10);
  do {
    if (absl::Status s = run(1); !s.ok()) return s;
  } while (Clock::now() < warm_until);

  // Batches grow until one takes ~1 ms, so that reading the clock costs nothing measurable.
  const std::chrono::duration<double> budget(seconds);
  std::uint64_t batch = 1;
  std::uint64_t steps = 0;
  const auto start = Clock::now();
  const double cpu_start = thread_cpu_seconds();
  auto now = start;
  while (now - start < budget) {
    const auto before = Clock::now();
    if (absl::Status s = run(batch); !s.ok()) return s;
    steps += batch;
    now = Clock::now();
    if (now - before < std::chrono::milliseconds(1)) batch *= 2;
  }
  Measurement m;
  m.steps = steps;
  m.seconds = std::chrono::duration<double>(now - start).count();
  const double blocks = static_cast<double>(steps) * static_cast<double>(workload.blocks_per_step());
  m.ns_per_block = m.seconds * 1e9 / blocks;
  m.cpu_ns_per_block = (thread_cpu_seconds() - cpu_start) * 1e9 / blocks;
  if (workload.bytes_per_step() > 0) {
    m.gb_per_s = static_cast<double>(steps) * static_cast<double>(workload.bytes_per_step()) / m.seconds / 1e9;
  }
  return m;
}

std::string machine_description() {
  std::string cpu = "unknown CPU";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos && colon + 2 <= line.size()) cpu = line.substr(colon + 2);
      break;
    }
  }
  return absl::StrCat(cpu, ", ", std::thread::hardware_concurrency(), " hardware threads");
}

}  // namespace kvbm::bench
