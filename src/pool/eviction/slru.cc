// Segmented LRU: blocks released for the first time wait in a probation LRU; a block used again
// (matched then released, or touched) moves to a protected LRU, which holds at most 80 % of the inactive
// set — its oldest blocks fall back to probation. Victims come from probation first.
//
// Memory: 8 B links + 1 B segment + 1 B history per slot (+ counters): ≤ 10 B per cached block.
#include <vector>

#include "pool/eviction/intrusive_list.h"
#include "pool/eviction/policies.h"

namespace kvbm::eviction {
namespace {

class SlruPolicy final : public EvictionPolicy {
 public:
  explicit SlruPolicy(std::uint32_t capacity)
      : lists_(capacity, 2), segment_(capacity, kProbation), history_(capacity, SlotHistory::kFresh) {}
  std::string_view name() const override { return eviction_policy_name(EvictionPolicyKind::kSlru); }

  void insert(BlockId id, const InactiveBlockInfo&) override {
    const std::uint32_t v = id.value();
    const bool reused = history_[v] == SlotHistory::kReturning;
    history_[v] = SlotHistory::kInactive;
    push(reused ? kProtected : kProbation, v);
    rebalance();
  }
  void erase(BlockId id) override {
    unlink(id.value());
    history_[id.value()] = SlotHistory::kReturning;
  }
  void touch(BlockId id) override {
    unlink(id.value());
    push(kProtected, id.value());
    rebalance();
  }
  void set_leaf(BlockId, bool) override {}
  std::optional<BlockId> evict() override {
    for (std::uint8_t s : {kProbation, kProtected}) {
      if (count_[s] == 0) continue;
      const std::uint32_t v = lists_.front(s);
      unlink(v);
      history_[v] = SlotHistory::kFresh;
      return BlockId{v};
    }
    return std::nullopt;
  }
  std::size_t size() const override { return count_[0] + count_[1]; }
  std::size_t memory_bytes() const override {
    return sizeof(*this) + lists_.memory_bytes() + bytes_of(segment_) + bytes_of(history_);
  }

 private:
  static constexpr std::uint8_t kProbation = 0;
  static constexpr std::uint8_t kProtected = 1;

  void push(std::uint8_t s, std::uint32_t v) {
    segment_[v] = s;
    lists_.push_back(s, v);
    ++count_[s];
  }
  void unlink(std::uint32_t v) {
    lists_.remove(v);
    --count_[segment_[v]];
  }
  // Protected ≤ 80 %: demoted blocks become the newest of probation.
  void rebalance() {
    while (count_[kProtected] * 5 > size() * 4) {
      const std::uint32_t v = lists_.front(kProtected);
      unlink(v);
      push(kProbation, v);
    }
  }

  IntrusiveLists lists_;
  std::vector<std::uint8_t> segment_;
  std::vector<SlotHistory> history_;
  std::size_t count_[2] = {0, 0};
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_slru(std::uint32_t capacity) { return std::make_unique<SlruPolicy>(capacity); }

}  // namespace kvbm::eviction
