// LFU with aging: a block's use count (0..15: uses after its first release, saturating) picks one of 16
// LRU lists; the victim is the oldest block of the lowest non-empty count. Aging: after every `capacity`
// insertions all counts halve (lists merged downward in order), so yesterday's popular blocks cannot
// stay forever — O(capacity) once per capacity insertions, amortised O(1).
//
// Memory: 8 B links + 1 B count + 1 B history per slot: ≤ 10 B per cached block.
#include <bit>
#include <vector>

#include "pool/eviction/intrusive_list.h"
#include "pool/eviction/policies.h"

namespace kvbm::eviction {
namespace {

class LfuPolicy final : public EvictionPolicy {
 public:
  explicit LfuPolicy(std::uint32_t capacity)
      : capacity_(capacity), lists_(capacity, kCounts), count_(capacity, 0), history_(capacity, SlotHistory::kFresh) {}
  std::string_view name() const override { return eviction_policy_name(EvictionPolicyKind::kLfu); }

  void insert(BlockId id, const InactiveBlockInfo&) override {
    const std::uint32_t v = id.value();
    if (history_[v] == SlotHistory::kReturning) {
      if (count_[v] + 1 < kCounts) ++count_[v];
    } else {
      count_[v] = 0;
    }
    history_[v] = SlotHistory::kInactive;
    push(v);
    ++size_;
    if (++inserts_ >= capacity_) age();
  }
  void erase(BlockId id) override {
    unlink(id.value());
    --size_;
    history_[id.value()] = SlotHistory::kReturning;
  }
  void touch(BlockId id) override {
    const std::uint32_t v = id.value();
    unlink(v);
    if (count_[v] + 1 < kCounts) ++count_[v];
    push(v);
  }
  void set_leaf(BlockId, bool) override {}
  std::optional<BlockId> evict() override {
    if (size_ == 0) return std::nullopt;
    const std::uint32_t c = static_cast<std::uint32_t>(std::countr_zero(nonempty_));
    const std::uint32_t v = lists_.front(c);
    unlink(v);
    --size_;
    history_[v] = SlotHistory::kFresh;
    return BlockId{v};
  }
  std::size_t size() const override { return size_; }
  std::size_t memory_bytes() const override {
    return sizeof(*this) + lists_.memory_bytes() + bytes_of(count_) + bytes_of(history_);
  }

 private:
  static constexpr std::uint32_t kCounts = 16;

  void push(std::uint32_t v) {
    lists_.push_back(count_[v], v);
    nonempty_ |= 1u << count_[v];
  }
  void unlink(std::uint32_t v) {
    lists_.remove(v);
    if (lists_.empty(count_[v])) nonempty_ &= ~(1u << count_[v]);
  }
  void age() {
    inserts_ = 0;
    for (std::uint32_t c = 1; c < kCounts; ++c) {
      while (!lists_.empty(c)) {
        const std::uint32_t v = lists_.front(c);
        unlink(v);
        count_[v] = static_cast<std::uint8_t>(c / 2);
        push(v);
      }
    }
  }

  std::uint32_t capacity_;
  IntrusiveLists lists_;
  std::vector<std::uint8_t> count_;
  std::vector<SlotHistory> history_;
  std::uint32_t nonempty_ = 0;
  std::size_t size_ = 0;
  std::uint32_t inserts_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_lfu(std::uint32_t capacity) { return std::make_unique<LfuPolicy>(capacity); }

}  // namespace kvbm::eviction
