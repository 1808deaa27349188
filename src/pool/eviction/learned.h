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
// class's success rate shrunk towards the overall rate (prior weight 8 trials) and G the mean gap from
// release to reuse over all classes: the log-odds that it is still to be used again, if gaps were
// exponential. Each class is an LRU list, so only the oldest block of each is a candidate, and the victim
// is the candidate of least score (victim_class: O(1) while the last scan's two best classes stay ahead of
// the rest, O(kClasses) for a new scan). When all classes look alike this is LRU. Two cases take the
// globally oldest block (the oldest class front, LRU's victim) instead: (1) when that block is stale,
// older than kStaleGaps mean gaps — there the e^(−a/G) model has no support (reuses that late are too rare
// to fit) and age order predicts better than the class; (2) while the cache holds less than kSmallCache
// mean release batches (a running mean of blocks per batch, over about kBatchWindow batches): a request
// then evicts most of what the others left, and class odds do not help. The p_c count at most one
// success per trial, and are made monotone along chains (a class an ancestor can be in is worth at least
// as much as its descendants' classes that have seen a trial or hold a block); a request releases a
// parent no earlier than its children, so a parent is not evicted before its own cached children (for
// requests of up to kBatchMemory new blocks released whole, as replay and BlockPool::release do) without
// the pool tracking lineage.
//
// Ghost: the fate of recently evicted blocks, 7 × capacity entries in 32-way set-associative buckets
// (FIFO within a bucket), each a 16-bit fingerprint of the sequence hash (the bucket index supplies the
// other bits), its class and a coarse release tick. A bucket is two cache lines, fingerprints in the
// first, so a probe costs one miss. Without the ghost a class evicted early could never show that its
// blocks come back.
//
// Cost: an eviction reads two candidate classes' keys (each class's oldest tick sits in its list's
// sentinel record) and then the victim's record, prefetched two evictions of its class ahead, and up to
// eight ahead by the calls between runs of evictions (walk); an erase finds its block's record prefetched
// when the pool looked the block up (prefetch); an insert of a new block probes one ghost line (inserts
// are queued, up to 16, and their lines prefetched, so a release batch's probes overlap); an eviction
// writes one ghost entry. A batch's new blocks start in their final class (start_deferred), and logits
// are computed only for classes that hold blocks.
//
// Memory per cached block: a 32 B record (ghost key, tick, list links, the next block's tick, the block
// two ahead, class, level, history) and 7 ghost entries × 4 B = 28 B (+ 1 B FIFO cursor per 32 entries):
// 60.2 B, plus kClasses sentinel records and O(kClasses) fixed state (60.6 B per block at the 16,384
// blocks of tests/pool/eviction_policies_test.cc, which checks it against the 64 B budget with
// memory_bytes()).

#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "pool/eviction/policies.h"

namespace kvbm::eviction {
namespace learned_detail {

constexpr std::uint32_t kDepthBuckets = 7;
// Reuse levels: 0–2 a new block of a request whose cached prefix was 0, 1–3 or 4+ blocks long (a long
// prefix is a conversation going on; a short one a shared system prompt); 3–5 a block used again once,
// twice, three or more times.
constexpr std::uint32_t kNewLevels = 3;
constexpr std::uint32_t kReuseLevels = kNewLevels + 3;
constexpr std::uint32_t kClasses = 2 * kReuseLevels * kDepthBuckets;

inline std::uint32_t depth_bucket(std::uint32_t depth) {
  if (depth == 0) return 0;
  return std::min<std::uint32_t>(kDepthBuckets - 1, static_cast<std::uint32_t>(std::bit_width(depth)));
}

inline std::uint8_t class_of(bool tail, std::uint32_t reuse, std::uint32_t depth) {
  return static_cast<std::uint8_t>((tail ? kReuseLevels * kDepthBuckets : 0) + reuse * kDepthBuckets +
                                   depth_bucket(depth));
}

}  // namespace learned_detail

// See the top of this file. AdaptivePolicy (adaptive.cc) runs one as its main policy and one as a
// miniature; both use the two hooks below, which plain `learned` leaves at their defaults.
class LearnedPolicy final : public EvictionPolicy {
 public:
  static constexpr std::uint32_t kDepthBuckets = learned_detail::kDepthBuckets;
  static constexpr std::uint32_t kNewLevels = learned_detail::kNewLevels;
  static constexpr std::uint32_t kReuseLevels = learned_detail::kReuseLevels;
  static constexpr std::uint32_t kClasses = learned_detail::kClasses;
  static std::uint8_t class_of(bool tail, std::uint32_t reuse, std::uint32_t depth) {
    return learned_detail::class_of(tail, reuse, depth);
  }

  bool uses_depth() const override { return true; }
  explicit LearnedPolicy(std::uint32_t capacity)
      : capacity_(std::max<std::uint32_t>(1, capacity)),
        slot_(std::size_t{capacity_} + kClasses),
        tick_unit_(std::max<std::uint32_t>(1, capacity_ / 16)),
        buckets_((static_cast<std::size_t>(capacity_) * kGhostPerBlock + kWays - 1) / kWays),
        ghost_(buckets_),
        ghost_next_(buckets_, 0) {
    for (std::uint32_t c = 0; c < kClasses; ++c) {
      slot_[sentinel(c)].prev = slot_[sentinel(c)].next = slot_[sentinel(c)].next2 = sentinel(c);
    }
  }
  std::string_view name() const override { return eviction_policy_name(EvictionPolicyKind::kLearned); }

  // Inserts are queued (applied in order when kPending are queued or before any other call, so the order
  // of effects is unchanged) and the ghost bucket each will probe is prefetched at once: a release batch's
  // probes then overlap instead of each waiting for its own cache miss.
  void insert(BlockId id, const InactiveBlockInfo& info) override { insert_block(id, info, info.is_tail); }
  // insert() with the start of a release batch named apart from the tail: a miniature that sees a sample
  // of each batch starts one at the first block it sees of it, whether or not that is the tail.
  void insert_block(BlockId id, const InactiveBlockInfo& info, bool starts_batch) {
    const std::uint32_t v = id.value();
    if (pending_count_ == 0) walk();
    Pending& p = pending_[pending_count_++];
    // A block used while cached (returning) keeps its key and probes no ghost.
    const bool returning = slot_[v].history == SlotHistory::kReturning;
    p = Pending{v, info.depth, returning ? 0 : ghost_key(info.sequence_hash), info.is_tail, starts_batch};
    if (!returning) __builtin_prefetch(&ghost_[bucket_of(p.key)]);
    if (pending_count_ == kPending) apply_pending();  // last, so that the common path needs no frame
  }
  // Most calls find nothing queued: only then is the out-of-line apply loop entered.
  void flush() {
    if (pending_count_ != 0) apply_pending();
  }
  [[gnu::noinline]] void apply_pending() {
    for (std::uint32_t i = 0; i < pending_count_; ++i) {
      const Pending& p = pending_[i];
      apply_insert(p.v, p.key, p.tail, p.starts_batch, p.depth);
    }
    pending_count_ = 0;
    start_deferred(0);
  }
  void apply_insert(std::uint32_t v, std::uint32_t key, bool is_tail, bool starts_batch, std::uint32_t depth) {
    if (starts_batch) {
      start_deferred(0);  // the previous batch's
      batch_level_ = 0;
      batch_new_count_ = 0;
      if (batch_size_ != 0) {  // the previous batch ended: fold its size into the running mean
        batches_ = std::min(batches_ + 1, kBatchWindow);
        batch_mean_ += (batch_size_ - batch_mean_) / batches_;
      }
      batch_size_ = 0;
    }
    if (slot_[v].history == SlotHistory::kPinned) {  // used while pinned for a copy: as erase() then
      count_use(v);
      slot_[v].history = SlotHistory::kReturning;
    }
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
    ++batch_size_;
    slot_[v].history = SlotHistory::kInactive;
    if (slot_[v].reuse == 0 && batch_new_count_ + deferred_count_ < kBatchMemory) {
      deferred_[deferred_count_++] = Deferred{v, depth, is_tail};
      slot_[v].deferred = true;
    } else {
      if (slot_[v].reuse >= kNewLevels && batch_level_ == 0) {
        const std::uint8_t level = depth < 3 ? 1 : 2;  // the batch's first cached block: prefix of depth + 1
        continue_batch(level);
        start_deferred(level);
      } else {
        start_deferred(0);
      }
      start_trial(v, is_tail, depth);
    }
    if (++since_decay_ >= decay_every_) {
      start_deferred(0);  // their trials count before the halving, as for every block inserted before it
      decay();
    }
  }
  // A batch's new blocks wait in deferred_ (within one apply_pending) until its first cached block shows
  // their level, and then start their trials in that level's class: the same ticks, list order and counts
  // as starting them at level 0 and moving them (continue_batch), without the move. Level 0 (the batch
  // or the queue ended first): they start at level 0 and are remembered in batch_new_ for continue_batch.
  void start_deferred(std::uint8_t level) {
    if (deferred_count_ != 0) start_deferred_blocks(level);  // most calls find none: no call made
  }
  [[gnu::noinline]] void start_deferred_blocks(std::uint8_t level) {
    for (std::uint32_t i = 0; i < deferred_count_; ++i) {
      const Deferred& d = deferred_[i];
      slot_[d.v].deferred = false;
      slot_[d.v].reuse = level;
      start_trial(d.v, d.tail, d.depth);
      if (level == 0) batch_new_[batch_new_count_++] = d.v;
    }
    deferred_count_ = 0;
  }
  void erase(BlockId id) override {
    flush();
    walk();
    const std::uint32_t v = id.value();
    unlink(v);
    count_use(v);
    slot_[v].history = SlotHistory::kReturning;
  }
  void touch(BlockId id) override {
    flush();
    const std::uint32_t v = id.value();
    unlink(v);
    count_use(v);
    start_trial(v, slot_[v].cls >= kReuseLevels * kDepthBuckets, depth_of_class(slot_[v].cls));
  }
  // A copy's pin is not a use: the block leaves its list without a success and comes back to its place
  // (by tick) in the same class — found by walking from the back, where a block pinned soon after its
  // release sits; past kUnpinWalk blocks it goes to the back as the newest instead.
  void pin(BlockId id) override {
    flush();
    const std::uint32_t v = id.value();
    unlink(v);
    slot_[v].history = SlotHistory::kPinned;
  }
  void unpin(BlockId id, const InactiveBlockInfo&) override {
    flush();
    const std::uint32_t v = id.value();
    slot_[v].history = SlotHistory::kInactive;
    const std::uint8_t c = slot_[v].cls;
    const std::uint32_t s = sentinel(c);
    std::uint32_t after = slot_[s].prev;  // the block v goes after: the last one older than v
    for (std::uint32_t steps = 0; after != s && static_cast<std::int32_t>(slot_[after].tick - slot_[v].tick) > 0;
         ++steps) {
      if (steps == kUnpinWalk) {
        after = slot_[s].prev;
        slot_[v].tick = ++clock_;
        break;
      }
      after = slot_[after].prev;
    }
    link_after(c, after, v);
    if (after == s) {  // v is its class's front with an old tick: the class's key fell, and it may be oldest
      if (!is_candidate(c)) bound_ = std::min(bound_, key_of(c));
      oldest_ = kNoClass;
    }
  }
  void set_leaf(BlockId, bool) override {}
  // BlockPool::match looks a run of blocks up before it erases any: their records load meanwhile.
  bool wants_prefetch() const override { return true; }
  void prefetch(BlockId id) const override { __builtin_prefetch(&slot_[id.value()], 1); }
  std::optional<BlockId> evict() override {
    flush();
    if (size_ == 0) return std::nullopt;
    if (refresh_-- == 0) refresh_logits();
    const std::uint32_t stale = stale_class();
    const std::uint32_t best = front(stale != kNoClass ? stale : victim_class());
    __builtin_prefetch(&ghost_[bucket_of(slot_[best].key)], 1);  // remember() writes there; overlap with unlink
    unlink(best);
    walk_ = slot_[sentinel(slot_[best].cls)].next2;  // the class's second oldest, prefetched by unlink
    walk_left_ = kWalkSteps;
    remember(best);
    slot_[best].history = SlotHistory::kFresh;
    return BlockId{best};
  }
  std::size_t size() const override { return size_ + pending_count_; }
  // While set, every eviction takes the globally oldest block (the oldest class front): LRU's victim, as
  // in a cache under kSmallCache batches. The classes, odds and ghost go on learning meanwhile.
  void set_lru_mode(bool on) { lru_mode_ = on; }
  [[nodiscard]] bool lru_mode() const { return lru_mode_; }
  std::size_t memory_bytes() const override {
    return sizeof(*this) + bytes_of(slot_) + bytes_of(ghost_) + bytes_of(ghost_next_);
  }

 private:
  static constexpr std::size_t kWays = 32;
  static constexpr std::uint64_t kDecayPerBlock = 8;
  static constexpr std::uint32_t kUnpinWalk = 64;    // see unpin()
  static constexpr std::uint32_t kWalkSteps = 3;     // see walk()
  static constexpr std::uint32_t kBatchMemory = 64;  // new blocks of one batch that can move level
  static constexpr double kPrior = 8;                // trials' weight of the overall rate in p_c
  static constexpr double kStaleGaps = 10;           // older than this many mean gaps: evicted in LRU order
  static constexpr double kSmallCache = 1.5;         // capacity in mean release batches below which: LRU
  static constexpr double kBatchWindow = 256;        // release batches in the running mean of their size
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
      // Skipped: blocks evicted or matched since, and a slot released again into this batch (while a tail
      // is held elsewhere no tail closes a batch) that waits in deferred_: start_deferred places it.
      if (slot_[u].history != SlotHistory::kInactive || slot_[u].reuse != 0 || slot_[u].deferred) continue;
      const std::uint8_t old = slot_[u].cls;
      const std::uint8_t c = static_cast<std::uint8_t>(old + level * kDepthBuckets);  // same tail and depth
      unlink(u);
      link(c, u);
      trials_[old] -= 1;
      trials_[c] += 1;
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

  // The class lists: circular, doubly linked through the records, oldest first.
  std::uint32_t sentinel(std::uint32_t c) const { return capacity_ + c; }
  bool empty(std::uint32_t c) const { return slot_[sentinel(c)].next == sentinel(c); }
  std::uint32_t front(std::uint32_t c) const { return slot_[sentinel(c)].next; }
  // Links v into class c's list after `after` (a block of c, or its sentinel for the front).
  void insert_after(std::uint32_t after, std::uint32_t v) {
    const std::uint32_t before = slot_[after].next;
    slot_[v].prev = after;
    slot_[v].next = before;
    slot_[v].next_tick = slot_[before].tick;
    slot_[after].next = v;
    slot_[after].next_tick = slot_[v].tick;
    slot_[before].prev = v;
    // next2 after the links above: in a list that was empty (after = before = the sentinel) v's next2 is v.
    slot_[v].next2 = slot_[before].next;
    slot_[after].next2 = before;
    slot_[slot_[after].prev].next2 = v;
  }
  void remove(std::uint32_t v) {
    const std::uint32_t p = slot_[v].prev;
    const std::uint32_t n = slot_[v].next;
    SlotState& prev = slot_[p];
    prev.next = n;
    prev.next_tick = slot_[v].next_tick;
    slot_[n].prev = p;
    // From v's record, not n's (a load of n's line would wait for it); v alone in its list: its next2 is v.
    prev.next2 = slot_[v].next2 == v ? n : slot_[v].next2;
    slot_[prev.prev].next2 = n;
  }
  // The tick of class c's oldest block (REQUIRES: c non-empty), kept in its sentinel.
  std::uint32_t front_tick(std::uint32_t c) const { return slot_[sentinel(c)].next_tick; }

  [[gnu::always_inline]] void start_trial(std::uint32_t v, bool tail, std::uint32_t depth) {
    const std::uint8_t c = class_of(tail, slot_[v].reuse, depth);
    slot_[v].cls = c;
    slot_[v].tick = ++clock_;
    trials_[c] += 1;
    link(c, v);
  }
  [[gnu::always_inline]] void link(std::uint8_t c, std::uint32_t v) { link_after(c, slot_[sentinel(c)].prev, v); }
  [[gnu::always_inline]] void link_after(std::uint8_t c, std::uint32_t after, std::uint32_t v) {
    const bool was_empty = empty(c);
    insert_after(after, v);
    if (was_empty) {
      if ((logit_stale_[c / 64] >> (c % 64)) & 1) {
        logit_[c] = std::log(p_[c] / (1 - p_[c]));
        logit_stale_[c / 64] &= ~(std::uint64_t{1} << (c % 64));
      }
      if (!is_candidate(c)) bound_ = std::min(bound_, key_of(c));  // the only way another class's key falls
      nonempty_[c / 64] |= std::uint64_t{1} << (c % 64);
    }
    ++size_;
  }
  void unlink(std::uint32_t v) {
    const std::uint8_t c = slot_[v].cls;
    const bool was_front = front(c) == v;
    remove(v);
    if (empty(c)) {
      nonempty_[c / 64] &= ~(std::uint64_t{1} << (c % 64));
      // An emptied candidate leaves the candidates; the others and bound_ stay valid (see victim_class).
      if (auto it = std::find(cand_.begin(), cand_.end(), c); it != cand_.end()) *it = kNoClass;
      if (c == oldest_) oldest_ = kNoClass;
    } else if (was_front) {
      // The class's next two victims: evictions come in runs (BlockPool chooses a batch of victims before it
      // unregisters any), so the next one is asked for too soon for its record to arrive in time.
      __builtin_prefetch(&slot_[front(c)]);
      __builtin_prefetch(&slot_[slot_[sentinel(c)].next2]);
    }
    --size_;
  }
  // After an eviction, the next kWalkSteps calls that choose no victim (a match's erases, the first insert
  // of a release) walk the victim's class list on, two blocks a step, prefetching records, so that the
  // next run of evictions finds more than the two records unlink prefetches. A step reads one record, the
  // one the step before prefetched, with a call's worth of the pool's work in between for it to arrive.
  // Any id it reads is an index into slot_, so a block moved or evicted meanwhile misleads only the
  // prefetches.
  void walk() {
    if (walk_left_ == 0) return;
    --walk_left_;
    const SlotState& w = slot_[walk_];
    __builtin_prefetch(&slot_[w.next]);
    __builtin_prefetch(&slot_[w.next2]);
    walk_ = w.next2;
  }
  // Class c's score without the term every class shares: logit_c − (clock − front_c)/G ranks the classes
  // as logit_c + (front_c − base)/G does for any base; the base is the clock at the last refresh_logits
  // (ticks are compared modulo 2^32, as ages are, so within 2^31 releases of it).
  double key_of(std::uint32_t c) const {
    return logit_[c] + static_cast<double>(static_cast<std::int32_t>(front_tick(c) - key_base_)) * inv_gap_;
  }
  // The class to evict from: the class of least key, the lower class on ties (as a scan of every class in
  // order would choose). A scan keeps the kCandidates classes of least keys and, in bound_, the least key
  // of the others. Until the next scan, the others' keys only rise (a list loses its front, so a newer
  // block is the front) except when a class becomes non-empty (link lowers bound_), and logits and G
  // change only in refresh_logits (which forces a scan). A candidate whose class empties leaves the
  // candidates (unlink) and the rest stay as they are. So while a candidate's key is below bound_, the least
  // candidate is the answer, and most evictions read a few candidates' keys instead of every class's.
  std::uint32_t victim_class() {
    double best = std::numeric_limits<double>::infinity();
    std::uint32_t best_class = 0;
    for (std::uint32_t i = 0; i < kCandidates; ++i) {
      const std::uint32_t c = cand_[i];
      if (c == kNoClass) continue;
      const double key = key_of(c);
      if (key < best || (key == best && c < best_class)) best = key, best_class = c;
    }
    if (best < bound_) return best_class;
    scan();
    return cand_[0];
  }
  // The class of the globally oldest block (the oldest class front: the block LRU would evict) when that
  // block is older than lru_age_, else kNoClass. scan_oldest() finds the oldest front, oldest_, and the
  // oldest tick among the other fronts; fronts only get newer (a class that becomes non-empty starts
  // with the newest tick), so until the next scan that tick bounds every other front's age.
  std::uint32_t stale_class() {
    if (oldest_ == kNoClass) scan_oldest();
    const std::uint32_t age = clock_ - front_tick(oldest_);
    const std::uint32_t others = clock_ - others_oldest_tick_;  // ≥ the age of every other front
    const std::uint32_t limit = lru_mode_ ? 0 : lru_age_;
    if (std::max(age, others) <= limit) return kNoClass;
    if (age > others) return oldest_;
    scan_oldest();
    return clock_ - front_tick(oldest_) > limit ? oldest_ : kNoClass;
  }
  [[gnu::noinline]] void scan_oldest() {
    std::uint32_t oldest = 0, second = 0;  // ages
    for_each_nonempty([&](std::uint32_t c) {
      const std::uint32_t age = clock_ - front_tick(c);
      if (age >= oldest) {
        second = oldest, oldest = age, oldest_ = static_cast<std::uint8_t>(c);
      } else if (age > second) {
        second = age;
      }
    });
    others_oldest_tick_ = clock_ - second;
  }
  // Calls f(c) for every class holding blocks, in class order.
  template <typename F>
  void for_each_nonempty(F&& f) const {
    for (std::uint32_t w = 0; w < nonempty_.size(); ++w) {
      for (std::uint64_t bits = nonempty_[w]; bits != 0; bits &= bits - 1) {
        f(w * 64 + static_cast<std::uint32_t>(std::countr_zero(bits)));
      }
    }
  }
  bool is_candidate(std::uint32_t c) const { return std::find(cand_.begin(), cand_.end(), c) != cand_.end(); }
  // Every non-empty class: the kCandidates least (key, class) pairs in order, and the next key in bound_.
  // Reads only per-class arrays, no per-block memory.
  [[gnu::noinline]] void scan() {
    // Sorted into locals, not members: a byte store to a member may alias any member for the compiler,
    // which would then reload key_of's inputs on every class.
    std::array<double, kCandidates + 1> keys;
    keys.fill(std::numeric_limits<double>::infinity());
    std::array<std::uint8_t, kCandidates + 1> cand;
    cand.fill(kNoClass);
    for_each_nonempty([&](std::uint32_t c) {
      const double key = key_of(c);
      if (!(key < keys[kCandidates])) return;  // classes come in order: a tie stays behind
      std::uint32_t i = kCandidates;
      for (; i > 0 && key < keys[i - 1]; --i) {
        keys[i] = keys[i - 1];
        cand[i] = cand[i - 1];
      }
      keys[i] = key;
      cand[i] = static_cast<std::uint8_t>(c);
    });
    std::copy_n(cand.begin(), kCandidates, cand_.begin());
    bound_ = keys[kCandidates];
  }
  // Block v was used again: its trial succeeded, and it moves up a reuse level.
  void count_use(std::uint32_t v) {
    succeed(slot_[v].cls, clock_ - slot_[v].tick);
    slot_[v].reuse = next_level(slot_[v].reuse);
  }
  void succeed(std::uint8_t c, std::uint32_t gap) {
    successes_[c] += 1;
    gap_sum_[c] += gap;
  }
  // The class scores (see the top of the file); every kRefreshEvery evictions.
  [[gnu::noinline]] void refresh_logits() {
    refresh_ = kRefreshEvery;
    double succ = 0, gaps = 0;
    double trials = 0;
    for (std::uint32_t c = 0; c < kClasses; ++c) succ += successes_[c], gaps += gap_sum_[c], trials += trials_[c];
    const double mean = (succ + 0.5) / (trials + 1.0);
    inv_gap_ = (succ + 1.0) / (gaps + capacity_);
    // Before a batch has ended, the one in progress stands for the mean.
    const double batch = batches_ == 0 ? batch_size_ : batch_mean_;
    lru_age_ = capacity_ < kSmallCache * batch ? 0 : static_cast<std::uint32_t>(std::min(kStaleGaps / inv_gap_, 4e9));
    std::array<double, kClasses>& p = p_;
    for (std::uint32_t c = 0; c < kClasses; ++c) {
      // A class can be credited more successes than it has trials left (a success long after its trial,
      // across halvings, or after the trial moved in continue_batch): at most one success per trial.
      const double n = std::max(0.0, trials_[c]);
      p[c] = std::clamp((std::min(successes_[c], n) + mean * kPrior) / (n + kPrior), 1e-4, 1 - 1e-4);
    }
    // Each class takes the max over the classes its descendants can be in: a tail's (a non-tail block's
    // child may end the request), deeper buckets', and lower levels' as below. Only classes with evidence
    // pass their odds on — a trial or a cached block; a class no block has been in would pass on the bare
    // prior (the overall rate), which hides what its ancestors' own counts say.
    std::array<double, kClasses> passed;
    for (std::uint32_t c = 0; c < kClasses; ++c) passed[c] = trials_[c] >= 1 ? p[c] : 0;
    for_each_nonempty([&](std::uint32_t c) { passed[c] = p[c]; });
    auto at = [&](std::uint32_t t, std::uint32_t l, std::uint32_t d) -> double& {
      return passed[t * kReuseLevels * kDepthBuckets + l * kDepthBuckets + d];
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
    for (std::uint32_t c = 0; c < kClasses; ++c) p[c] = std::max(p[c], passed[c]);
    // The logits of the classes with blocks now; the others' when a block arrives (link), if one does
    // before the next refresh — most do not, and a log is most of this function's cost.
    for_each_nonempty([&](std::uint32_t c) { logit_[c] = std::log(p[c] / (1 - p[c])); });
    for (std::uint32_t w = 0; w < nonempty_.size(); ++w) logit_stale_[w] = ~nonempty_[w];
    key_base_ = clock_;
    bound_ = -std::numeric_limits<double>::infinity();  // every key changed: the next evict scans
  }
  void decay() {
    since_decay_ = 0;
    for (std::uint32_t c = 0; c < kClasses; ++c) trials_[c] /= 2, successes_[c] /= 2, gap_sum_[c] /= 2;
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
    bool starts_batch = false;
  };
  struct Deferred {
    std::uint32_t v = 0;
    std::uint32_t depth = 0;
    bool tail = false;
  };
  static constexpr std::uint32_t kPending = 16;
  std::array<Pending, kPending> pending_{};
  std::uint32_t pending_count_ = 0;
  std::array<Deferred, kPending> deferred_{};
  std::uint32_t deferred_count_ = 0;
  std::uint32_t capacity_;
  // Per-slot state and the links of its class list in one 32-byte record (two to a cache line), so that
  // an operation on a block touches one line, and unlinking it one line per neighbour. The records of
  // ids capacity_ + c are the sentinels of the class lists (prev, next and next_tick used): a sentinel's
  // next_tick is its class's oldest tick, so choosing a class reads no block's record.
  struct alignas(32) SlotState {
    std::uint32_t key = 0;  // ghost key of the block's sequence hash
    std::uint32_t tick = 0;
    std::uint32_t prev = 0;
    std::uint32_t next = 0;
    std::uint32_t next_tick = 0;  // the tick of the block after this one in its list (see front_tick)
    std::uint32_t next2 = 0;      // the block two after this one (for a sentinel: its class's second oldest)
    std::uint8_t cls = 0;
    std::uint8_t reuse = 0;
    SlotHistory history = SlotHistory::kFresh;
    bool deferred = false;  // in deferred_, not in a list yet
  };
  static_assert(sizeof(SlotState) == 32);
  std::vector<SlotState> slot_;
  // See walk(): the block whose record the next step reads (a prefetched one), and the steps left.
  std::uint32_t walk_ = 0;
  std::uint32_t walk_left_ = 0;
  // Per class, decayed: trials started, successes, and the sum of the successes' gaps (releases).
  std::array<double, kClasses> trials_{};
  std::array<double, kClasses> successes_{};
  std::array<double, kClasses> gap_sum_{};
  std::array<std::uint64_t, (kClasses + 63) / 64> nonempty_{};  // classes with a cached block
  std::uint32_t clock_ = 0;
  static constexpr std::uint32_t kRefreshEvery = 64;  // evictions between refresh_logits
  std::uint32_t refresh_ = 0;
  std::array<double, kClasses> p_{};      // each class's odds as of the last refresh_logits
  std::array<double, kClasses> logit_{};  // log(p_ / (1 − p_)), for classes not marked in logit_stale_
  std::array<std::uint64_t, (kClasses + 63) / 64> logit_stale_{};
  std::uint32_t key_base_ = 0;  // key_of's base
  static constexpr std::uint32_t kCandidates = 2;
  static constexpr std::uint8_t kNoClass = 0xFF;
  // See victim_class(). Any number of candidates gives the same victims; 2 (the classes a run of
  // evictions alternates between, typically) makes the fewest instructions in the pool benchmark.
  std::array<std::uint8_t, kCandidates> cand_ = {kNoClass, kNoClass};
  static_assert(kCandidates == 2, "initialise every candidate to kNoClass");
  double bound_ = -std::numeric_limits<double>::infinity();
  double inv_gap_ = 0;
  std::uint32_t lru_age_ = 0;       // a class front older than this (releases) is evicted first, oldest first
  bool lru_mode_ = false;           // see set_lru_mode
  std::uint8_t oldest_ = kNoClass;  // see stale_class()
  std::uint32_t others_oldest_tick_ = 0;
  // Running mean of the blocks per release batch (a batch starts with its tail).
  std::uint32_t batch_size_ = 0;
  double batches_ = 0;
  double batch_mean_ = 0;
  // The release batch in progress (see continue_batch).
  std::uint8_t batch_level_ = 0;
  std::uint32_t batch_new_count_ = 0;
  std::array<std::uint32_t, kBatchMemory> batch_new_{};
  std::uint64_t since_decay_ = 0;
  const std::uint64_t decay_every_ = kDecayPerBlock * capacity_;
  std::size_t size_ = 0;
  std::uint32_t tick_unit_;
  std::size_t buckets_;
  std::vector<GhostBucket> ghost_;
  std::vector<std::uint8_t> ghost_next_;  // per bucket: the way the next entry replaces (FIFO)
};

}  // namespace kvbm::eviction
