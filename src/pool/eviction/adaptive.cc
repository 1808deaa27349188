// Adaptive: `learned` (learned.h) that falls back to plain LRU order whenever LRU would find more blocks on
// the trace the pool is serving.
//
// Which of the two is better depends on the workload: `learned` gains up to 1.8× LRU's hits on traces like
// the ones it was tuned on, and lost up to 17 % of LRU's on a trace of another family. So the policy runs
// two miniature caches beside the real one (miniature simulation, Waldspurger et al., "Cache Modeling and
// Optimization using Miniature Simulations", ATC '17): an LRU and a `learned`, each of capacity
// capacity × R, fed the blocks whose sequence hash falls in a fixed sample of R of the hash space
// (spatial sampling, SHARDS, FAST '15). Sampling by hash keeps every occurrence of a sampled block, so its
// reuse distances shrink by R, as the miniature's capacity does, and the miniature's hit ratio estimates
// the full cache's. R = 1 up to kMiniBlocks blocks (the miniatures are then exact replicas of the two
// policies), else kMiniBlocks / capacity. A miniature counts a block's release as its access: a release of
// a block it holds is a hit (erase, then insert, as a pool's match and release do), of one it does not
// is a miss that evicts its policy's victim. Hits are counted over a window (halved every kWindow ×
// miniature capacity sampled releases), and the real cache evicts in LRU order (LearnedPolicy's
// set_lru_mode) while the miniature LRU's hits are at least the miniature learned's (a tie, and so a cold
// start, goes to LRU); otherwise `learned`'s victim. The real policy keeps learning in both modes.
// kWindow and the tie rule were chosen on the tuning set of docs/eviction.md, never on its held-out one.
//
// A miniature sees only the sampled blocks of each release batch; the first of them starts a batch for
// its `learned` (LearnedPolicy::insert_block), whether or not it is the tail.
//
// Cost: one multiply and compare per insert; a sampled insert (R of them) costs two miniature accesses
// (a table probe and a policy operation each). Memory: the real `learned` plus two miniatures of
// min(capacity, kMiniBlocks) blocks (`learned` 61 B + LRU 8 B + a slot table of ~17 B per miniature block
// each): at 16,384 blocks 63.9 B per cached block (tests/pool/eviction_policies_test.cc); at or below
// kMiniBlocks blocks about 2.7 × learned's (under 100 KiB in all).
// Decisions depend on the request stream only (no clocks), so replays stay deterministic.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "pool/eviction/intrusive_list.h"
#include "pool/eviction/learned.h"
#include "pool/eviction/policies.h"

namespace kvbm::eviction {
namespace {

// Sequence hash → slot of a miniature: linear probing over slot indices (4 B per entry, ≥ 2 entries a
// slot), the hashes themselves per slot; backward-shift deletion, so no tombstones.
class SlotTable {
 public:
  static constexpr std::uint32_t kEmpty = 0xFFFFFFFFu;
  explicit SlotTable(std::uint32_t capacity)
      : hash_(capacity),
        bits_(std::bit_width(std::bit_ceil(2 * std::uint64_t{capacity})) - 1),
        index_(std::size_t{1} << bits_, kEmpty) {}
  [[nodiscard]] std::uint32_t find(std::uint64_t h) const {
    for (std::size_t i = home(h);; i = next(i)) {
      const std::uint32_t s = index_[i];
      if (s == kEmpty || hash_[s] == h) return s;
    }
  }
  void put(std::uint32_t slot, std::uint64_t h) {
    hash_[slot] = h;
    std::size_t i = home(h);
    while (index_[i] != kEmpty) i = next(i);
    index_[i] = slot;
  }
  void remove(std::uint32_t slot) {
    std::size_t i = home(hash_[slot]);
    while (index_[i] != slot) i = next(i);
    for (std::size_t j = next(i);; j = next(j)) {
      const std::uint32_t s = index_[j];
      if (s == kEmpty) break;
      // s may fill the hole at i unless its home lies cyclically in (i, j].
      const std::size_t k = home(hash_[s]);
      if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue;
      index_[i] = s;
      i = j;
    }
    index_[i] = kEmpty;
  }
  [[nodiscard]] std::size_t memory_bytes() const { return bytes_of(hash_) + bytes_of(index_); }

 private:
  std::size_t home(std::uint64_t h) const {
    return static_cast<std::size_t>((h * 0xD6E8FEB86659FD93ull) >> (64 - bits_));  // not the sampling multiplier
  }
  std::size_t next(std::size_t i) const { return (i + 1) & (index_.size() - 1); }
  std::vector<std::uint64_t> hash_;  // per slot
  int bits_;
  std::vector<std::uint32_t> index_;
};

// Plain LRU for a miniature: one intrusive list over its slots.
class MiniLru {
 public:
  explicit MiniLru(std::uint32_t capacity) : lists_(capacity, 1) {}
  void insert_block(BlockId id, const InactiveBlockInfo&, bool) { lists_.push_back(0, id.value()); }
  void erase(BlockId id) { lists_.remove(id.value()); }
  std::optional<BlockId> evict() {
    const std::uint32_t v = lists_.front(0);
    lists_.remove(v);
    return BlockId{v};
  }
  [[nodiscard]] std::size_t memory_bytes() const { return sizeof(*this) + lists_.memory_bytes(); }

 private:
  IntrusiveLists lists_;
};

// A cache of `capacity` slots run by Policy over the sampled releases.
template <typename Policy>
class Miniature {
 public:
  explicit Miniature(std::uint32_t capacity) : capacity_(capacity), policy_(capacity), table_(capacity) {}
  // The release of a sampled block: whether the miniature held it.
  bool access(std::uint64_t hash, const InactiveBlockInfo& info, bool starts_batch) {
    std::uint32_t s = table_.find(hash);
    const bool hit = s != SlotTable::kEmpty;
    if (hit) {
      policy_.erase(BlockId{s});
    } else {
      if (used_ < capacity_) {
        s = used_++;
      } else {
        s = policy_.evict()->value();
        table_.remove(s);
      }
      table_.put(s, hash);
    }
    policy_.insert_block(BlockId{s}, info, starts_batch);
    return hit;
  }
  [[nodiscard]] std::size_t memory_bytes() const {
    return sizeof(*this) - sizeof(policy_) + policy_.memory_bytes() + table_.memory_bytes();
  }

 private:
  std::uint32_t capacity_;
  std::uint32_t used_ = 0;
  Policy policy_;
  SlotTable table_;
};

class AdaptivePolicy final : public EvictionPolicy {
 public:
  static constexpr std::uint32_t kMiniBlocks = 448;  // miniature capacity (blocks) above which R < 1
  static constexpr std::uint64_t kWindow = 32;       // sampled releases per hit halving, × miniature capacity

  explicit AdaptivePolicy(std::uint32_t capacity)
      : main_(capacity),
        mini_capacity_(std::max<std::uint32_t>(1, std::min(capacity, kMiniBlocks))),
        // R × 2^32, R = mini / capacity (1 when the miniatures are full size)
        threshold_(capacity <= kMiniBlocks ? std::uint64_t{1} << 32 : (std::uint64_t{mini_capacity_} << 32) / capacity),
        lru_(mini_capacity_),
        learned_(mini_capacity_),
        window_(kWindow * std::uint64_t{mini_capacity_}) {}
  std::string_view name() const override { return eviction_policy_name(EvictionPolicyKind::kAdaptive); }
  bool uses_depth() const override { return true; }

  void insert(BlockId id, const InactiveBlockInfo& info) override {
    main_.insert(id, info);
    if (info.is_tail) batch_open_ = true;
    if (((info.sequence_hash * 0x9E3779B97F4A7C15ull) >> 32) < threshold_) observe(info);
  }
  void erase(BlockId id) override { main_.erase(id); }
  void touch(BlockId id) override { main_.touch(id); }
  void pin(BlockId id) override { main_.pin(id); }
  void unpin(BlockId id, const InactiveBlockInfo& info) override { main_.unpin(id, info); }
  bool pins_keep_state() const override { return main_.pins_keep_state(); }
  void set_leaf(BlockId id, bool is_leaf) override { main_.set_leaf(id, is_leaf); }
  bool wants_prefetch() const override { return main_.wants_prefetch(); }
  void prefetch(BlockId id) const override { main_.prefetch(id); }
  std::optional<BlockId> evict() override { return main_.evict(); }
  std::size_t size() const override { return main_.size(); }
  std::size_t memory_bytes() const override {
    return sizeof(*this) - sizeof(main_) - sizeof(lru_) - sizeof(learned_) + main_.memory_bytes() +
           lru_.memory_bytes() + learned_.memory_bytes();
  }

 private:
  [[gnu::noinline]] void observe(const InactiveBlockInfo& info) {
    const bool starts_batch = std::exchange(batch_open_, false);
    hits_lru_ += lru_.access(info.sequence_hash, info, starts_batch) ? 1 : 0;
    hits_learned_ += learned_.access(info.sequence_hash, info, starts_batch) ? 1 : 0;
    if (++since_halving_ == window_) {
      since_halving_ = 0;
      hits_lru_ /= 2;
      hits_learned_ /= 2;
    }
    main_.set_lru_mode(hits_lru_ >= hits_learned_);  // a tie (a cold start too) goes to LRU
  }

  LearnedPolicy main_;
  std::uint32_t mini_capacity_;
  std::uint64_t threshold_;
  Miniature<MiniLru> lru_;
  Miniature<LearnedPolicy> learned_;
  std::uint64_t window_;
  std::uint64_t since_halving_ = 0;
  double hits_lru_ = 0;
  double hits_learned_ = 0;
  bool batch_open_ = false;  // the next sampled block starts a miniature batch
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_adaptive(std::uint32_t capacity) {
  return std::make_unique<AdaptivePolicy>(capacity);
}

}  // namespace kvbm::eviction
