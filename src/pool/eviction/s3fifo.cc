// S3-FIFO (Yang et al., SOSP'23) over a pool's inactive set.
//
// Blocks enter a small FIFO (target 10 % of the inactive set) unless the ghost remembers them, in which
// case they enter the main FIFO. A block that is used again (matched, then released; or touched) gains
// one unit of frequency (capped at 3) and re-enters the back of its queue — a pool block leaves the
// inactive set while it is used, so it cannot keep its place the way a cache object does. Eviction from
// small: a block used again moves to main, otherwise it is evicted and its hash goes to the ghost. From
// main: a block with frequency > 0 loses one and goes to the back (amortised O(1): every pass
// decrements), otherwise it is evicted.
//
// Memory: 8 B links + 1 B queue + 1 B freq + 1 B history + 8 B hash per slot; the ghost holds at most
// capacity / 2 hashes (8 B ring + ~10 B hash-set slot each): ≤ 30 B per cached block in all.
#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <vector>

#include "pool/eviction/intrusive_list.h"
#include "pool/eviction/policies.h"

namespace kvbm::eviction {
namespace {

class S3FifoPolicy final : public EvictionPolicy {
 public:
  explicit S3FifoPolicy(std::uint32_t capacity)
      : lists_(capacity, 2),
        queue_(capacity, kSmall),
        freq_(capacity, 0),
        history_(capacity, SlotHistory::kFresh),
        hash_(capacity, 0),
        ghost_ring_(std::max<std::uint32_t>(1, capacity / 2), 0) {}
  std::string_view name() const override { return eviction_policy_name(EvictionPolicyKind::kS3Fifo); }

  void insert(BlockId id, const InactiveBlockInfo& info) override {
    const std::uint32_t v = id.value();
    if (history_[v] == SlotHistory::kReturning) {
      freq_[v] = static_cast<std::uint8_t>(std::min(3, freq_[v] + 1));
    } else {
      freq_[v] = 0;
      hash_[v] = info.sequence_hash;
      auto g = ghost_.find(info.sequence_hash);
      queue_[v] = g == ghost_.end() ? kSmall : kMain;
      if (g != ghost_.end()) ghost_.erase(g);
    }
    history_[v] = SlotHistory::kInactive;
    push(queue_[v], v);
  }
  void erase(BlockId id) override {
    unlink(id.value());
    history_[id.value()] = SlotHistory::kReturning;
  }
  void touch(BlockId id) override {
    const std::uint32_t v = id.value();
    freq_[v] = static_cast<std::uint8_t>(std::min(3, freq_[v] + 1));
    unlink(v);
    push(queue_[v], v);
  }
  void set_leaf(BlockId, bool) override {}
  std::optional<BlockId> evict() override {
    while (size() > 0) {
      const bool from_small = count_[kSmall] > 0 && (count_[kMain] == 0 || count_[kSmall] * 10 >= size());
      if (from_small) {
        const std::uint32_t v = lists_.front(kSmall);
        unlink(v);
        if (freq_[v] > 0) {
          freq_[v] = 0;
          queue_[v] = kMain;
          push(kMain, v);
          continue;
        }
        remember(hash_[v]);
        history_[v] = SlotHistory::kFresh;
        return BlockId{v};
      }
      const std::uint32_t v = lists_.front(kMain);
      unlink(v);
      if (freq_[v] > 0) {
        --freq_[v];
        push(kMain, v);
        continue;
      }
      history_[v] = SlotHistory::kFresh;
      return BlockId{v};
    }
    return std::nullopt;
  }
  std::size_t size() const override { return count_[kSmall] + count_[kMain]; }
  // The ghost map: one control byte per slot besides the slot itself (absl's SwissTable).
  std::size_t memory_bytes() const override {
    return sizeof(*this) + lists_.memory_bytes() + bytes_of(queue_) + bytes_of(freq_) + bytes_of(history_) +
           bytes_of(hash_) + bytes_of(ghost_ring_) + ghost_.capacity() * (sizeof(decltype(ghost_)::value_type) + 1);
  }

 private:
  static constexpr std::uint8_t kSmall = 0;
  static constexpr std::uint8_t kMain = 1;

  void push(std::uint8_t q, std::uint32_t v) {
    lists_.push_back(q, v);
    ++count_[q];
  }
  void unlink(std::uint32_t v) {
    lists_.remove(v);
    --count_[queue_[v]];
  }
  // Ghost: a FIFO of the last capacity/2 hashes evicted from small. A hash evicted twice is counted so
  // that dropping its older ring entry keeps the newer one.
  void remember(std::uint64_t hash) {
    const std::uint64_t old = ghost_ring_[ghost_next_];
    if (ghost_filled_) {
      auto it = ghost_.find(old);
      if (it != ghost_.end() && --it->second == 0) ghost_.erase(it);
    }
    ghost_ring_[ghost_next_] = hash;
    ++ghost_[hash];
    if (++ghost_next_ == ghost_ring_.size()) ghost_next_ = 0, ghost_filled_ = true;
  }

  IntrusiveLists lists_;
  std::vector<std::uint8_t> queue_;
  std::vector<std::uint8_t> freq_;
  std::vector<SlotHistory> history_;
  std::vector<std::uint64_t> hash_;
  std::size_t count_[2] = {0, 0};
  std::vector<std::uint64_t> ghost_ring_;
  std::size_t ghost_next_ = 0;
  bool ghost_filled_ = false;
  absl::flat_hash_map<std::uint64_t, std::uint32_t> ghost_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_s3fifo(std::uint32_t capacity) { return std::make_unique<S3FifoPolicy>(capacity); }

}  // namespace kvbm::eviction
