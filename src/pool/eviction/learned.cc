// Learned: evicts the inactive block least likely to be asked for again, with the odds learned online
// from the pool's own request stream.
//
// Every release of a block starts a *trial* in one of kClasses classes, from what the pool knows:
//   - tail: whether the block ended its request (first of its release batch) — a prompt's last block is
//     usually partial and its continuation hashes differently, so it rarely returns;
//   - level: for a block used before, how often (1, 2, 3+; ghost hits included); for a new block, how
//     long a cached prefix its request continued (0, 1–3, 4+ blocks: nothing, a shared system prompt, a
//     conversation going on) — known when the batch's first cached block is released, just after its
//     new blocks (tail first), which then move to their level;
//   - depth bucket: its position in its chain (0, 1, 2–3, 4–7, 8–15, 16–31, 32+) — shared prefixes are
//     shallow.
// A trial succeeds when the block is used again (matched or touched while cached, or registered again
// while the ghost still remembers its eviction). Per class the policy keeps counts of trials and
// successes, halved every 8 × capacity releases so that they follow the workload.
//
// Value: a block of class c and age a (releases since its own) scores logit(p_c) − a / G, where p_c is the
// class's success rate shrunk towards the overall rate (prior weight 16 trials) and G the mean gap from
// release to reuse over all classes: the log-odds that it is still to be used again, if gaps were
// exponential. Each class is an LRU list, so only the oldest block of each is a candidate, and the victim
// is the candidate of least score: O(kClasses) per eviction, O(1) otherwise. When all classes look alike
// this is LRU. The p_c are made monotone along chains (a class an ancestor can be in is worth at least as
// much as its descendants' classes), and a request releases a parent no earlier than its children, so a
// parent is not evicted before its own cached children (for requests of up to kBatchMemory new blocks
// released whole, as replay and BlockPool::release do) without the pool tracking lineage.
//
// Ghost: the fate of recently evicted blocks, 7 × capacity entries in 32-way set-associative buckets
// (FIFO within a bucket), each a 16-bit fingerprint of the sequence hash (the bucket index supplies the
// other bits), its class and a coarse release tick. A bucket is two cache lines, fingerprints in the
// first, so a probe costs one miss. Without the ghost a class evicted early could never show that its
// blocks come back.
//
// Cost: an eviction reads only per-class arrays (each class's oldest tick is cached in front_tick_) and
// then the victim; an insert of a new block probes one ghost line (inserts are queued, up to 16, and
// their lines prefetched, so a release batch's probes overlap); an eviction writes one ghost entry.
//
// Memory per cached block: 8 B links + a 12 B record (hash key, tick, class, level, history) = 20 B, and
// 7 ghost entries × 4 B = 28 B (+ 1 B FIFO cursor per 32 entries): 48.5 B, within the 64 B budget (plus
// O(kClasses) fixed state). tests/pool/eviction_policies_test.cc measures it with memory_bytes().

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "pool/eviction/intrusive_list.h"
#include "pool/eviction/policies.h"

namespace kvbm::eviction {
namespace {

constexpr std::uint32_t kDepthBuckets = 7;
// Reuse levels: 0–2 a new block of a request whose cached prefix was 0, 1–3 or 4+ blocks long (a long
// prefix is a conversation going on; a short one a shared system prompt); 3–5 a block used again once,
// twice, three or more times.
constexpr std::uint32_t kNewLevels = 3;
constexpr std::uint32_t kReuseLevels = kNewLevels + 3;
constexpr std::uint32_t kClasses = 2 * kReuseLevels * kDepthBuckets;

std::uint32_t depth_bucket(std::uint32_t depth) {
  if (depth == 0) return 0;
  return std::min<std::uint32_t>(kDepthBuckets - 1, static_cast<std::uint32_t>(std::bit_width(depth)));
}

std::uint8_t class_of(bool tail, std::uint32_t reuse, std::uint32_t depth) {
  return static_cast<std::uint8_t>((tail ? kReuseLevels * kDepthBuckets : 0) + reuse * kDepthBuckets +
                                   depth_bucket(depth));
}

class LearnedPolicy final : public EvictionPolicy {
 public:
  bool uses_depth() const override { return true; }
  explicit LearnedPolicy(std::uint32_t capacity)
      : capacity_(std::max<std::uint32_t>(1, capacity)),
        lists_(capacity, kClasses),
        slot_(capacity),
        tick_unit_(std::max<std::uint32_t>(1, capacity_ / 16)),
        buckets_((static_cast<std::size_t>(capacity_) * kGhostPerBlock + kWays - 1) / kWays),
        ghost_(buckets_),
        ghost_next_(buckets_, 0) {}
  EvictionPolicyKind kind() const override { return EvictionPolicyKind::kLearned; }

  // Inserts are queued (up to kPending, applied in order before any other call, so the order of effects
  // is unchanged) and the ghost bucket each will probe is prefetched at once: a release batch's probes
  // then overlap instead of each waiting for its own cache miss.
  void insert(BlockId id, const InactiveBlockInfo& info) override {
    if (pending_count_ == kPending) flush();
    const std::uint32_t v = id.value();
    Pending& p = pending_[pending_count_++];
    p = Pending{v, info.depth, ghost_key(info.sequence_hash), info.is_tail};
    if (slot_[v].history != SlotHistory::kReturning) __builtin_prefetch(&ghost_[bucket_of(p.key)]);
  }
  // Most calls find nothing queued: only then is the out-of-line apply loop entered.
  void flush() {
    if (pending_count_ != 0) apply_pending();
  }
  [[gnu::noinline]] void apply_pending() {
    for (std::uint32_t i = 0; i < pending_count_; ++i) {
      const Pending& p = pending_[i];
      apply_insert(p.v, p.key, p.tail, p.depth);
    }
    pending_count_ = 0;
  }
  void apply_insert(std::uint32_t v, std::uint32_t key, bool is_tail, std::uint32_t depth) {
    if (slot_[v].history != SlotHistory::kReturning) {
      slot_[v].key = key;
      slot_[v].reuse = batch_level_;
      GhostBucket& bucket = ghost_[bucket_of(slot_[v].key)];
      if (const std::size_t g = ghost_find(bucket, slot_[v].key); g != kNoGhost) {
        const std::uint8_t c = bucket.cls[g];
        succeed(c, static_cast<std::uint8_t>(clock_ / tick_unit_ - bucket.tick[g]) * tick_unit_);
        slot_[v].reuse = next_level(reuse_level(c));
        bucket.key[g] = 0;
      }
    }
    if (is_tail) {
      batch_level_ = 0;
      batch_new_count_ = 0;
    }
    slot_[v].history = SlotHistory::kInactive;
    start_trial(v, is_tail, depth);
    if (slot_[v].reuse == 0 && batch_new_count_ < kBatchMemory) {
      batch_new_[batch_new_count_++] = v;
    } else if (slot_[v].reuse >= kNewLevels && batch_level_ == 0) {
      continue_batch(depth < 3 ? 1 : 2);  // the batch's first cached block: prefix of depth + 1
    }
    if (++since_decay_ >= kDecayPerBlock * capacity_) decay();
  }
  void erase(BlockId id) override {
    flush();
    const std::uint32_t v = id.value();
    unlink(v);
    succeed(slot_[v].cls, clock_ - slot_[v].tick);
    slot_[v].reuse = next_level(slot_[v].reuse);
    slot_[v].history = SlotHistory::kReturning;
  }
  void touch(BlockId id) override {
    flush();
    const std::uint32_t v = id.value();
    unlink(v);
    succeed(slot_[v].cls, clock_ - slot_[v].tick);
    slot_[v].reuse = next_level(slot_[v].reuse);
    start_trial(v, slot_[v].cls >= kReuseLevels * kDepthBuckets, depth_of_class(slot_[v].cls));
  }
  void set_leaf(BlockId, bool) override {}
  std::optional<BlockId> evict() override {
    flush();
    if (size_ == 0) return std::nullopt;
    std::uint32_t best_class = 0;
    double best_value = std::numeric_limits<double>::infinity();
    if (refresh_-- == 0) refresh_logits();
    resolve_fronts();
    // Reads only the small per-class arrays: no per-block memory until the victim is known.
    for (std::uint32_t w = 0; w < nonempty_.size(); ++w) {
      for (std::uint64_t bits = nonempty_[w]; bits != 0; bits &= bits - 1) {
        const std::uint32_t c = w * 64 + static_cast<std::uint32_t>(std::countr_zero(bits));
        const double value = logit_[c] - (clock_ - front_tick_[c]) * inv_gap_;
        if (value < best_value) best_value = value, best_class = c;
      }
    }
    const std::uint32_t best = lists_.front(best_class);
    __builtin_prefetch(&ghost_[bucket_of(slot_[best].key)], 1);  // remember() writes there; overlap with unlink
    unlink(best);
    remember(best);
    slot_[best].history = SlotHistory::kFresh;
    return BlockId{best};
  }
  std::size_t size() const override { return size_ + pending_count_; }
  std::size_t memory_bytes() const override {
    return sizeof(*this) + lists_.memory_bytes() + bytes_of(slot_) + bytes_of(ghost_) + bytes_of(ghost_next_);
  }

 private:
  struct Stats {
    double trials = 0;
    double successes = 0;
    double gap_sum = 0;
  };
  static constexpr std::size_t kWays = 32;
  static constexpr std::uint64_t kDecayPerBlock = 8;
  static constexpr std::uint32_t kBatchMemory = 64;  // new blocks of one batch that can move level
  static constexpr double kPrior = 16;               // trials' weight of the overall rate in p_c
  static constexpr std::size_t kGhostPerBlock = 7;
  static constexpr std::size_t kNoGhost = ~std::size_t{0};
  // One bucket of the ghost: two cache lines, fingerprints first, so a probe reads one line and an
  // entry's tick and class sit next to it. 0 = an empty way.
  struct alignas(64) GhostBucket {
    std::array<std::uint16_t, kWays> key{};
    std::array<std::uint8_t, kWays> tick{};  // release tick / tick_unit_, mod 256 (gaps up to 16 × capacity)
    std::array<std::uint8_t, kWays> cls{};
  };
  static_assert(sizeof(GhostBucket) == 128);

  static std::uint8_t next_level(std::uint32_t level) {
    return static_cast<std::uint8_t>(std::min<std::uint32_t>(kReuseLevels - 1, std::max(level + 1, kNewLevels)));
  }
  // A batch is released tail first, so its new blocks arrive before the blocks it found cached. When the
  // first of those arrives, the new blocks already inserted move to `level` (they continue a prefix).
  void continue_batch(std::uint8_t level) {
    batch_level_ = level;
    for (std::uint32_t i = 0; i < batch_new_count_; ++i) {
      const std::uint32_t u = batch_new_[i];
      if (slot_[u].history != SlotHistory::kInactive || slot_[u].reuse != 0) continue;
      const std::uint8_t old = slot_[u].cls;
      const std::uint8_t c = static_cast<std::uint8_t>(old + level * kDepthBuckets);  // same tail and depth
      unlink(u);
      link(c, u);
      stats_[old].trials -= 1;
      stats_[c].trials += 1;
      slot_[u].cls = c;
      slot_[u].reuse = level;
    }
    batch_new_count_ = 0;
  }
  static std::uint32_t reuse_level(std::uint8_t c) { return (c % (kReuseLevels * kDepthBuckets)) / kDepthBuckets; }
  // A representative depth of the class's bucket (touch keeps the class's bucket).
  static std::uint32_t depth_of_class(std::uint8_t c) {
    const std::uint32_t b = c % kDepthBuckets;
    return b == 0 ? 0 : 1u << (b - 1);
  }

  void start_trial(std::uint32_t v, bool tail, std::uint32_t depth) {
    const std::uint8_t c = class_of(tail, slot_[v].reuse, depth);
    slot_[v].cls = c;
    slot_[v].tick = ++clock_;
    stats_[c].trials += 1;
    link(c, v);
  }
  void link(std::uint8_t c, std::uint32_t v) {
    if (lists_.empty(c)) front_tick_[c] = slot_[v].tick;
    lists_.push_back(c, v);
    nonempty_[c / 64] |= std::uint64_t{1} << (c % 64);
    ++size_;
  }
  void unlink(std::uint32_t v) {
    const std::uint8_t c = slot_[v].cls;
    const bool was_front = lists_.front(c) == v;
    lists_.remove(v);
    if (lists_.empty(c)) {
      nonempty_[c / 64] &= ~(std::uint64_t{1} << (c % 64));
    } else if (was_front) {
      // The new oldest block's tick is read at the next evict() (resolve_fronts), not now: its record is
      // likely a cache miss, which the prefetch overlaps with the work in between.
      stale_front_[c / 64] |= std::uint64_t{1} << (c % 64);
      __builtin_prefetch(&slot_[lists_.front(c)]);
    }
    --size_;
  }
  // front_tick_[c] is the tick of class c's oldest block whenever c is non-empty and not marked stale;
  // a block's tick only changes while it is in no list, so reading it late gives the same value.
  void resolve_fronts() {
    for (std::uint32_t w = 0; w < stale_front_.size(); ++w) {
      for (std::uint64_t bits = stale_front_[w] & nonempty_[w]; bits != 0; bits &= bits - 1) {
        const std::uint32_t c = w * 64 + static_cast<std::uint32_t>(std::countr_zero(bits));
        front_tick_[c] = slot_[lists_.front(c)].tick;
      }
      stale_front_[w] = 0;
    }
  }
  void succeed(std::uint8_t c, std::uint32_t gap) {
    stats_[c].successes += 1;
    stats_[c].gap_sum += gap;
  }
  // The class scores (see the top of the file); every kRefreshEvery evictions.
  [[gnu::noinline]] void refresh_logits() {
    refresh_ = kRefreshEvery;
    double succ = 0, gaps = 0;
    double trials = 0;
    for (const Stats& s : stats_) succ += s.successes, gaps += s.gap_sum, trials += s.trials;
    const double mean = (succ + 0.5) / (trials + 1.0);
    inv_gap_ = (succ + 1.0) / (gaps + capacity_);
    std::array<double, kClasses> p{};
    for (std::uint32_t c = 0; c < kClasses; ++c) {
      p[c] = std::clamp((stats_[c].successes + mean * kPrior) / (std::max(0.0, stats_[c].trials) + kPrior), 1e-4,
                        1 - 1e-4);
    }
    // Each class takes the max over the classes its descendants can be in: a tail's (a non-tail block's
    // child may end the request), deeper buckets', and lower levels' as below.
    auto at = [&](std::uint32_t t, std::uint32_t l, std::uint32_t d) -> double& {
      return p[t * kReuseLevels * kDepthBuckets + l * kDepthBuckets + d];
    };
    for (std::uint32_t t = 2; t-- > 0;) {
      for (std::uint32_t l = 0; l < kReuseLevels; ++l) {
        for (std::uint32_t d = kDepthBuckets; d-- > 0;) {
          double& x = at(t, l, d);
          if (t == 0) x = std::max(x, at(1, l, d));
          // Descendants of level l: 0, 1, 2 (new blocks) only their own level; 3 (used again once) levels
          // 1–3; 4 and 5 also the level below.
          if (l == kNewLevels) x = std::max({x, at(t, 1, d), at(t, 2, d)});
          if (l > kNewLevels) x = std::max(x, at(t, l - 1, d));
          if (d + 1 < kDepthBuckets) x = std::max(x, at(t, l, d + 1));
        }
      }
    }
    for (std::uint32_t c = 0; c < kClasses; ++c) logit_[c] = std::log(p[c] / (1 - p[c]));
  }
  void decay() {
    since_decay_ = 0;
    for (Stats& s : stats_) s.trials /= 2, s.successes /= 2, s.gap_sum /= 2;
  }
  // Ghost keys: 32-bit fingerprints of the sequence hash (0 = empty).
  static std::uint32_t ghost_key(std::uint64_t hash) {
    std::uint64_t z = hash + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const auto key = static_cast<std::uint32_t>(z);
    return key == 0 ? 1 : key;
  }
  // The bucket from the key's high bits (multiply-shift), the 16-bit fingerprint from its low bits.
  std::size_t bucket_of(std::uint32_t key) const {
    return static_cast<std::size_t>((std::uint64_t{key} * buckets_) >> 32);
  }
  static std::uint16_t fingerprint(std::uint32_t key) {
    const auto f = static_cast<std::uint16_t>(key);
    return f == 0 ? 1 : f;
  }
  static std::size_t ghost_find(const GhostBucket& bucket, std::uint32_t key) {
#if defined(__SSE2__)
    // The first way holding the fingerprint: 4 SSE2 compares of 8 ways, 2 mask bits per way.
    const __m128i f = _mm_set1_epi16(static_cast<short>(fingerprint(key)));
    const auto* keys = reinterpret_cast<const __m128i*>(bucket.key.data());
    std::uint64_t mask = 0;
    for (std::size_t i = 0; i < kWays / 8; ++i) {
      const auto m = static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_load_si128(keys + i), f)));
      mask |= std::uint64_t{m} << (16 * i);
    }
    if (mask == 0) return kNoGhost;
    return static_cast<std::size_t>(std::countr_zero(mask)) / 2;
#else
    const std::uint16_t f = fingerprint(key);
    for (std::size_t w = 0; w < kWays; ++w) {
      if (bucket.key[w] == f) return w;
    }
    return kNoGhost;
#endif
  }
  void remember(std::uint32_t v) {
    const std::size_t b = bucket_of(slot_[v].key);
    std::uint8_t& next = ghost_next_[b];
    const std::size_t slot = next;
    next = static_cast<std::uint8_t>((next + 1) % kWays);
    GhostBucket& bucket = ghost_[b];
    bucket.key[slot] = fingerprint(slot_[v].key);
    bucket.tick[slot] = static_cast<std::uint8_t>(slot_[v].tick / tick_unit_);
    bucket.cls[slot] = slot_[v].cls;
  }

  struct Pending {
    std::uint32_t v = 0;
    std::uint32_t depth = 0;
    std::uint32_t key = 0;
    bool tail = false;
  };
  static constexpr std::uint32_t kPending = 16;
  std::array<Pending, kPending> pending_{};
  std::uint32_t pending_count_ = 0;
  std::uint32_t capacity_;
  IntrusiveLists lists_;
  // Per-slot state in one 12-byte record, so that an operation on a block touches one cache line.
  struct SlotState {
    std::uint32_t key = 0;  // ghost key of the block's sequence hash
    std::uint32_t tick = 0;
    std::uint8_t cls = 0;
    std::uint8_t reuse = 0;
    SlotHistory history = SlotHistory::kFresh;
  };
  static_assert(sizeof(SlotState) == 12);
  std::vector<SlotState> slot_;
  std::array<Stats, kClasses> stats_{};
  std::array<std::uint64_t, (kClasses + 63) / 64> nonempty_{};     // classes with a cached block
  std::array<std::uint64_t, (kClasses + 63) / 64> stale_front_{};  // front_tick_ to re-read (resolve_fronts)
  std::uint32_t clock_ = 0;
  static constexpr std::uint32_t kRefreshEvery = 64;  // evictions between refresh_logits
  std::uint32_t refresh_ = 0;
  std::array<double, kClasses> logit_{};
  std::array<std::uint32_t, kClasses> front_tick_{};  // tick_ of each class list's oldest block
  double inv_gap_ = 0;
  // The release batch in progress (see continue_batch).
  std::uint8_t batch_level_ = 0;
  std::uint32_t batch_new_count_ = 0;
  std::array<std::uint32_t, kBatchMemory> batch_new_{};
  std::uint64_t since_decay_ = 0;
  std::size_t size_ = 0;
  std::uint32_t tick_unit_;
  std::size_t buckets_;
  std::vector<GhostBucket> ghost_;
  std::vector<std::uint8_t> ghost_next_;  // per bucket: the way the next entry replaces (FIFO)
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_learned(std::uint32_t capacity) {
  return std::make_unique<LearnedPolicy>(capacity);
}

}  // namespace kvbm::eviction
