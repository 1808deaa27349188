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
// (FIFO within a bucket), each a 32-bit fingerprint of the sequence hash, its class and a coarse release
// tick. Without it a class evicted early could never show that its blocks come back.
//
// Memory per cached block: 8 B links + 4 B fingerprint + 4 B tick + 3 B class/level/history = 19 B, and
// 7 ghost entries × 6 B = 42 B: 61 B, within the 64 B budget (plus O(kClasses) fixed state).
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

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
        key_(capacity, 0),
        tick_(capacity, 0),
        class_(capacity, 0),
        reuse_(capacity, 0),
        history_(capacity, SlotHistory::kFresh),
        tick_unit_(std::max<std::uint32_t>(1, capacity_ / 16)),
        buckets_((static_cast<std::size_t>(capacity_) * kGhostPerBlock + kWays - 1) / kWays),
        ghost_key_(buckets_ * kWays, 0),
        ghost_tick_(buckets_ * kWays, 0),
        ghost_class_(buckets_ * kWays, 0),
        ghost_next_(buckets_, 0) {}
  EvictionPolicyKind kind() const override { return EvictionPolicyKind::kLearned; }

  void insert(BlockId id, const InactiveBlockInfo& info) override {
    const std::uint32_t v = id.value();
    if (history_[v] != SlotHistory::kReturning) {
      key_[v] = ghost_key(info.sequence_hash);
      reuse_[v] = batch_level_;
      if (const std::size_t g = ghost_find(key_[v]); g != kNoGhost) {
        const std::uint8_t c = ghost_class_[g];
        succeed(c, static_cast<std::uint8_t>(clock_ / tick_unit_ - ghost_tick_[g]) * tick_unit_);
        reuse_[v] = next_level(reuse_level(c));
        ghost_key_[g] = 0;
      }
    }
    if (info.is_tail) {
      batch_level_ = 0;
      batch_new_count_ = 0;
    }
    history_[v] = SlotHistory::kInactive;
    start_trial(v, info.is_tail, info.depth);
    if (reuse_[v] == 0 && batch_new_count_ < kBatchMemory) {
      batch_new_[batch_new_count_++] = v;
    } else if (reuse_[v] >= kNewLevels && batch_level_ == 0) {
      continue_batch(info.depth < 3 ? 1 : 2);  // the batch's first cached block: prefix of depth + 1
    }
    if (++since_decay_ >= kDecayPerBlock * capacity_) decay();
  }
  void erase(BlockId id) override {
    const std::uint32_t v = id.value();
    unlink(v);
    succeed(class_[v], clock_ - tick_[v]);
    reuse_[v] = next_level(reuse_[v]);
    history_[v] = SlotHistory::kReturning;
  }
  void touch(BlockId id) override {
    const std::uint32_t v = id.value();
    unlink(v);
    succeed(class_[v], clock_ - tick_[v]);
    reuse_[v] = next_level(reuse_[v]);
    start_trial(v, class_[v] >= kReuseLevels * kDepthBuckets, depth_of_class(class_[v]));
  }
  void set_leaf(BlockId, bool) override {}
  std::optional<BlockId> evict() override {
    if (size_ == 0) return std::nullopt;
    std::uint32_t best = 0;
    double best_value = std::numeric_limits<double>::infinity();
    if (refresh_-- == 0) refresh_logits();
    for (std::uint32_t w = 0; w < nonempty_.size(); ++w) {
      for (std::uint64_t bits = nonempty_[w]; bits != 0; bits &= bits - 1) {
        const std::uint32_t c = w * 64 + static_cast<std::uint32_t>(std::countr_zero(bits));
        const std::uint32_t v = lists_.front(c);
        const double value = logit_[c] - (clock_ - tick_[v]) * inv_gap_;
        if (value < best_value) best_value = value, best = v;
      }
    }
    unlink(best);
    remember(best);
    history_[best] = SlotHistory::kFresh;
    return BlockId{best};
  }
  std::size_t size() const override { return size_; }

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

  static std::uint8_t next_level(std::uint32_t level) {
    return static_cast<std::uint8_t>(std::min<std::uint32_t>(kReuseLevels - 1, std::max(level + 1, kNewLevels)));
  }
  // A batch is released tail first, so its new blocks arrive before the blocks it found cached. When the
  // first of those arrives, the new blocks already inserted move to `level` (they continue a prefix).
  void continue_batch(std::uint8_t level) {
    batch_level_ = level;
    for (std::uint32_t i = 0; i < batch_new_count_; ++i) {
      const std::uint32_t u = batch_new_[i];
      if (history_[u] != SlotHistory::kInactive || reuse_[u] != 0) continue;
      const std::uint8_t old = class_[u];
      const std::uint8_t c = static_cast<std::uint8_t>(old + level * kDepthBuckets);  // same tail and depth
      unlink(u);
      link(c, u);
      stats_[old].trials -= 1;
      stats_[c].trials += 1;
      class_[u] = c;
      reuse_[u] = level;
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
    const std::uint8_t c = class_of(tail, reuse_[v], depth);
    class_[v] = c;
    tick_[v] = ++clock_;
    stats_[c].trials += 1;
    link(c, v);
  }
  void link(std::uint8_t c, std::uint32_t v) {
    lists_.push_back(c, v);
    nonempty_[c / 64] |= std::uint64_t{1} << (c % 64);
    ++size_;
  }
  void unlink(std::uint32_t v) {
    lists_.remove(v);
    const std::uint8_t c = class_[v];
    if (lists_.empty(c)) nonempty_[c / 64] &= ~(std::uint64_t{1} << (c % 64));
    --size_;
  }
  void succeed(std::uint8_t c, std::uint32_t gap) {
    stats_[c].successes += 1;
    stats_[c].gap_sum += gap;
  }
  // The class scores (see the top of the file); every kRefreshEvery evictions.
  void refresh_logits() {
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
  std::size_t bucket_of(std::uint32_t key) const { return (std::size_t{key} * 0x9E3779B1u >> 7) % buckets_ * kWays; }
  std::size_t ghost_find(std::uint32_t key) const {
    const std::size_t b = bucket_of(key);
    for (std::size_t w = b; w < b + kWays; ++w) {
      if (ghost_key_[w] == key) return w;
    }
    return kNoGhost;
  }
  void remember(std::uint32_t v) {
    const std::size_t b = bucket_of(key_[v]);
    std::uint8_t& next = ghost_next_[b / kWays];
    const std::size_t slot = b + next;
    next = static_cast<std::uint8_t>((next + 1) % kWays);
    ghost_key_[slot] = key_[v];
    ghost_tick_[slot] = static_cast<std::uint8_t>(tick_[v] / tick_unit_);
    ghost_class_[slot] = class_[v];
  }

  std::uint32_t capacity_;
  IntrusiveLists lists_;
  std::vector<std::uint32_t> key_;  // ghost key of the block's sequence hash
  std::vector<std::uint32_t> tick_;
  std::vector<std::uint8_t> class_;
  std::vector<std::uint8_t> reuse_;
  std::vector<SlotHistory> history_;
  std::array<Stats, kClasses> stats_{};
  std::array<std::uint64_t, (kClasses + 63) / 64> nonempty_{};  // classes with a cached block
  std::uint32_t clock_ = 0;
  static constexpr std::uint32_t kRefreshEvery = 64;  // evictions between refresh_logits
  std::uint32_t refresh_ = 0;
  std::array<double, kClasses> logit_{};
  double inv_gap_ = 0;
  // The release batch in progress (see continue_batch).
  std::uint8_t batch_level_ = 0;
  std::uint32_t batch_new_count_ = 0;
  std::array<std::uint32_t, kBatchMemory> batch_new_{};
  std::uint64_t since_decay_ = 0;
  std::size_t size_ = 0;
  std::uint32_t tick_unit_;
  std::size_t buckets_;
  std::vector<std::uint32_t> ghost_key_;
  std::vector<std::uint8_t> ghost_tick_;  // release tick / tick_unit_, mod 256 (gaps up to 16 × capacity)
  std::vector<std::uint8_t> ghost_class_;
  std::vector<std::uint8_t> ghost_next_;  // per bucket: the way the next entry replaces (FIFO)
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_learned(std::uint32_t capacity) {
  return std::make_unique<LearnedPolicy>(capacity);
}

}  // namespace kvbm::eviction
