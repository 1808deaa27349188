// Prefix-aware wrapper: a block with a cached child is never evicted while some chain tail (a block with
// no cached child) could be: evicting it would leave its children unreachable by prefix match. Tails are
// ranked by the inner policy; blocks with cached children wait in an LRU list of their own. A block that
// becomes a tail (its last child was evicted) enters the inner policy as if just released, and one that
// gains a child leaves it (erase) — so the inner policy may count that as a use; accepted for O(1).
//
// Memory: the inner policy's, plus 8 B links + 1 B flag per slot.
#include <vector>

#include "pool/eviction/intrusive_list.h"
#include "pool/eviction/policies.h"

namespace kvbm::eviction {
namespace {

class PrefixAwarePolicy final : public EvictionPolicy {
 public:
  PrefixAwarePolicy(EvictionPolicyKind kind, std::unique_ptr<EvictionPolicy> inner, std::uint32_t capacity)
      : kind_(kind), inner_(std::move(inner)), interior_(capacity, 1), is_interior_(capacity, 0) {}
  std::string_view name() const override { return eviction_policy_name(kind_); }
  bool uses_lineage() const override { return true; }

  void insert(BlockId id, const InactiveBlockInfo& info) override {
    if (info.is_leaf) {
      inner_->insert(id, info);
    } else {
      is_interior_[id.value()] = 1;
      interior_.push_back(0, id.value());
      ++interior_count_;
    }
  }
  void erase(BlockId id) override {
    if (is_interior_[id.value()] != 0) {
      drop_interior(id.value());
    } else {
      inner_->erase(id);
    }
  }
  void touch(BlockId id) override {
    if (is_interior_[id.value()] != 0) {
      interior_.remove(id.value());
      interior_.push_back(0, id.value());
    } else {
      inner_->touch(id);
    }
  }
  void set_leaf(BlockId id, bool is_leaf) override {
    const bool interior = is_interior_[id.value()] != 0;
    if (is_leaf && interior) {
      drop_interior(id.value());
      InactiveBlockInfo info;
      info.is_leaf = true;
      inner_->insert(id, info);
    } else if (!is_leaf && !interior) {
      inner_->erase(id);
      is_interior_[id.value()] = 1;
      interior_.push_back(0, id.value());
      ++interior_count_;
    }
  }
  std::optional<BlockId> evict() override {
    if (inner_->size() > 0) return inner_->evict();
    if (interior_count_ == 0) return std::nullopt;
    const std::uint32_t v = interior_.front(0);
    drop_interior(v);
    return BlockId{v};
  }
  std::size_t size() const override { return inner_->size() + interior_count_; }
  std::size_t memory_bytes() const override {
    return sizeof(*this) + inner_->memory_bytes() + interior_.memory_bytes() + bytes_of(is_interior_);
  }

 private:
  void drop_interior(std::uint32_t v) {
    interior_.remove(v);
    is_interior_[v] = 0;
    --interior_count_;
  }

  EvictionPolicyKind kind_;
  std::unique_ptr<EvictionPolicy> inner_;
  IntrusiveLists interior_;
  std::vector<std::uint8_t> is_interior_;
  std::size_t interior_count_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_prefix_aware(EvictionPolicyKind kind, std::unique_ptr<EvictionPolicy> inner,
                                                  std::uint32_t capacity) {
  return std::make_unique<PrefixAwarePolicy>(kind, std::move(inner), capacity);
}

}  // namespace kvbm::eviction
