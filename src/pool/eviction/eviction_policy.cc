// The eviction policies of DESIGN.md §3: LRU, priority-then-LRU, lineage-aware; the name registry and the
// factory for all policies (the others live in their own files).
#include "kvbm/pool/eviction_policy.h"

#include <absl/strings/str_cat.h>

#include <array>
#include <bit>
#include <utility>
#include <vector>

#include "pool/eviction/intrusive_list.h"
#include "pool/eviction/policies.h"

namespace kvbm {
namespace {

using eviction::IntrusiveLists;

// Least recently released (or touched) first. A block pinned for a copy keeps its place in the list and is
// passed over by evict() until unpinned, so a copy changes nothing in the order (the tier chain's replay
// semantics rely on it: specs/replay-semantics.md).
class LruPolicy final : public EvictionPolicy {
 public:
  explicit LruPolicy(std::uint32_t capacity) : lists_(capacity, 1), pinned_(capacity, 0) {}
  std::string_view name() const override { return eviction_policy_name(EvictionPolicyKind::kLru); }
  void insert(BlockId id, const InactiveBlockInfo&) override {
    if (std::exchange(pinned_[id.value()], 0) != 0) {
      --pinned_count_;  // used while pinned: it moves to the back like any released block
      lists_.remove(id.value());
    }
    lists_.push_back(0, id.value());
    ++size_;
  }
  void erase(BlockId id) override {
    lists_.remove(id.value());
    --size_;
  }
  void touch(BlockId id) override {
    lists_.remove(id.value());
    lists_.push_back(0, id.value());
  }
  void pin(BlockId id) override {
    pinned_[id.value()] = 1;
    ++pinned_count_;
    --size_;
  }
  void unpin(BlockId id, const InactiveBlockInfo&) override {
    pinned_[id.value()] = 0;
    --pinned_count_;
    ++size_;
  }
  bool pins_keep_state() const override { return true; }
  void set_leaf(BlockId, bool) override {}
  std::optional<BlockId> evict() override {
    if (size_ == 0) return std::nullopt;
    std::uint32_t victim = lists_.front(0);
    // Pinned blocks are few (copies in flight) and sit near the back (recently released): usually none is
    // passed over.
    while (pinned_count_ != 0 && pinned_[victim] != 0) victim = lists_.after(victim);
    lists_.remove(victim);
    --size_;
    return BlockId{victim};
  }
  std::size_t size() const override { return size_; }
  std::size_t memory_bytes() const override {
    return sizeof(*this) + lists_.memory_bytes() + pinned_.capacity() * sizeof(std::uint8_t);
  }

 private:
  IntrusiveLists lists_;
  std::vector<std::uint8_t> pinned_;  // 1 while pinned for a copy (still in lists_, not in size_)
  std::size_t size_ = 0;
  std::size_t pinned_count_ = 0;
};

// One LRU list per retention priority; the lowest non-empty priority is found in a 128-bit bitmap.
class PriorityLruPolicy final : public EvictionPolicy {
 public:
  explicit PriorityLruPolicy(std::uint32_t capacity)
      : lists_(capacity, kMaxRetentionPriority + 1), priority_(capacity, 0) {}
  std::string_view name() const override { return eviction_policy_name(EvictionPolicyKind::kPriorityLru); }
  void insert(BlockId id, const InactiveBlockInfo& info) override {
    const std::uint8_t p = info.priority > kMaxRetentionPriority ? kMaxRetentionPriority : info.priority;
    priority_[id.value()] = p;
    lists_.push_back(p, id.value());
    nonempty_[p / 64] |= std::uint64_t{1} << (p % 64);
    ++size_;
  }
  void erase(BlockId id) override {
    unlink(id.value());
    --size_;
  }
  void touch(BlockId id) override {
    const std::uint8_t p = priority_[id.value()];
    lists_.remove(id.value());
    lists_.push_back(p, id.value());
  }
  void set_leaf(BlockId, bool) override {}
  std::optional<BlockId> evict() override {
    for (std::size_t w = 0; w < nonempty_.size(); ++w) {
      if (nonempty_[w] == 0) continue;
      const std::uint32_t p = static_cast<std::uint32_t>(w * 64 + std::countr_zero(nonempty_[w]));
      const std::uint32_t victim = lists_.front(p);
      unlink(victim);
      --size_;
      return BlockId{victim};
    }
    return std::nullopt;
  }
  std::size_t size() const override { return size_; }
  std::size_t memory_bytes() const override { return memory_bytes_impl(); }

 private:
  void unlink(std::uint32_t id) {
    const std::uint8_t p = priority_[id];
    lists_.remove(id);
    if (lists_.empty(p)) nonempty_[p / 64] &= ~(std::uint64_t{1} << (p % 64));
  }

  std::size_t memory_bytes_impl() const {
    return sizeof(*this) + lists_.memory_bytes() + eviction::bytes_of(priority_);
  }
  IntrusiveLists lists_;
  std::vector<std::uint8_t> priority_;
  std::array<std::uint64_t, 2> nonempty_{};
  std::size_t size_ = 0;
};

// Chain tails first: blocks with no cached child (leaves) in LRU order, and only when there is no leaf,
// blocks that still have cached children (interior), also in LRU order. A block that becomes a leaf joins
// the leaf list at the end its recency puts it nearer to, judged against the current oldest leaf: exact
// placement would need an ordered structure, and this keeps the O(1) bound while a freshly uncovered
// parent of an old chain is still evicted before recently used leaves.
class LineagePolicy final : public EvictionPolicy {
 public:
  explicit LineagePolicy(std::uint32_t capacity) : lists_(capacity, 2), list_of_(capacity, 0), tick_(capacity, 0) {}
  std::string_view name() const override { return eviction_policy_name(EvictionPolicyKind::kLineage); }
  bool uses_lineage() const override { return true; }
  void insert(BlockId id, const InactiveBlockInfo& info) override {
    const std::uint32_t list = info.is_leaf ? kLeaves : kInterior;
    list_of_[id.value()] = static_cast<std::uint8_t>(list);
    tick_[id.value()] = ++clock_;
    lists_.push_back(list, id.value());
    ++size_;
  }
  void erase(BlockId id) override {
    lists_.remove(id.value());
    --size_;
  }
  void touch(BlockId id) override {
    tick_[id.value()] = ++clock_;
    lists_.remove(id.value());
    lists_.push_back(list_of_[id.value()], id.value());
  }
  void set_leaf(BlockId id, bool is_leaf) override {
    const std::uint32_t v = id.value();
    const std::uint32_t list = is_leaf ? kLeaves : kInterior;
    if (list_of_[v] == list) return;
    lists_.remove(v);
    list_of_[v] = static_cast<std::uint8_t>(list);
    if (is_leaf && !lists_.empty(kLeaves) && tick_[v] <= tick_[lists_.front(kLeaves)]) {
      lists_.push_front(list, v);
    } else {
      lists_.push_back(list, v);
    }
  }
  std::optional<BlockId> evict() override {
    for (std::uint32_t list : {kLeaves, kInterior}) {
      if (lists_.empty(list)) continue;
      const std::uint32_t victim = lists_.front(list);
      lists_.remove(victim);
      --size_;
      return BlockId{victim};
    }
    return std::nullopt;
  }
  std::size_t size() const override { return size_; }
  std::size_t memory_bytes() const override { return memory_bytes_impl(); }

 private:
  static constexpr std::uint32_t kLeaves = 0;
  static constexpr std::uint32_t kInterior = 1;
  std::size_t memory_bytes_impl() const {
    return sizeof(*this) + lists_.memory_bytes() + eviction::bytes_of(list_of_) + eviction::bytes_of(tick_);
  }
  IntrusiveLists lists_;
  std::vector<std::uint8_t> list_of_;
  std::vector<std::uint64_t> tick_;
  std::uint64_t clock_ = 0;
  std::size_t size_ = 0;
};

}  // namespace

std::string_view eviction_policy_name(EvictionPolicyKind kind) {
  switch (kind) {
    case EvictionPolicyKind::kLru:
      return "lru";
    case EvictionPolicyKind::kPriorityLru:
      return "priority_lru";
    case EvictionPolicyKind::kLineage:
      return "lineage";
    case EvictionPolicyKind::kS3Fifo:
      return "s3fifo";
    case EvictionPolicyKind::kSlru:
      return "slru";
    case EvictionPolicyKind::kLfu:
      return "lfu";
    case EvictionPolicyKind::kS3FifoPrefix:
      return "s3fifo_prefix";
    case EvictionPolicyKind::kSlruPrefix:
      return "slru_prefix";
    case EvictionPolicyKind::kLfuPrefix:
      return "lfu_prefix";
    case EvictionPolicyKind::kLearned:
      return "learned";
    case EvictionPolicyKind::kAdaptive:
      return "adaptive";
  }
  return "unknown";
}

std::span<const EvictionPolicyKind> all_eviction_policy_kinds() {
  static constexpr std::array kKinds = {
      EvictionPolicyKind::kLru,          EvictionPolicyKind::kPriorityLru, EvictionPolicyKind::kLineage,
      EvictionPolicyKind::kS3Fifo,       EvictionPolicyKind::kSlru,        EvictionPolicyKind::kLfu,
      EvictionPolicyKind::kS3FifoPrefix, EvictionPolicyKind::kSlruPrefix,  EvictionPolicyKind::kLfuPrefix,
      EvictionPolicyKind::kLearned,      EvictionPolicyKind::kAdaptive};
  return kKinds;
}

absl::StatusOr<EvictionPolicyKind> parse_eviction_policy(std::string_view name) {
  std::string names;
  for (EvictionPolicyKind kind : all_eviction_policy_kinds()) {
    if (name == eviction_policy_name(kind)) return kind;
    absl::StrAppend(&names, names.empty() ? "" : ", ", std::string(eviction_policy_name(kind)));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("eviction policy must be one of ", names, "; got '", std::string(name), "'"));
}

std::unique_ptr<EvictionPolicy> make_eviction_policy(EvictionPolicyKind kind, std::uint32_t capacity) {
  switch (kind) {
    case EvictionPolicyKind::kLru:
      return std::make_unique<LruPolicy>(capacity);
    case EvictionPolicyKind::kPriorityLru:
      return std::make_unique<PriorityLruPolicy>(capacity);
    case EvictionPolicyKind::kLineage:
      return std::make_unique<LineagePolicy>(capacity);
    case EvictionPolicyKind::kS3Fifo:
      return eviction::make_s3fifo(capacity);
    case EvictionPolicyKind::kSlru:
      return eviction::make_slru(capacity);
    case EvictionPolicyKind::kLfu:
      return eviction::make_lfu(capacity);
    case EvictionPolicyKind::kS3FifoPrefix:
      return eviction::make_prefix_aware(kind, eviction::make_s3fifo(capacity), capacity);
    case EvictionPolicyKind::kSlruPrefix:
      return eviction::make_prefix_aware(kind, eviction::make_slru(capacity), capacity);
    case EvictionPolicyKind::kLfuPrefix:
      return eviction::make_prefix_aware(kind, eviction::make_lfu(capacity), capacity);
    case EvictionPolicyKind::kLearned:
      return eviction::make_learned(capacity);
    case EvictionPolicyKind::kAdaptive:
      return eviction::make_adaptive(capacity);
  }
  return nullptr;
}

}  // namespace kvbm
