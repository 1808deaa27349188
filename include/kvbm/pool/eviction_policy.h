// EvictionPolicy: which inactive block a pool gives up when it needs a free slot (DESIGN.md §3).
//
// A policy sees only the pool's *inactive* set: registered blocks no handle holds. The pool tells it
// when a block enters that set (released by its last holder), leaves it without eviction (matched or
// reset), is used again (touch), and when a block's lineage changes (it gained its first or lost its
// last cached child). The pool asks it for a victim when allocation runs out of free slots.
//
// Thread-safety: none of its own. A policy belongs to one pool and is only called under that pool's
// lock. Every operation is O(1); memory is fixed at construction (per-slot arrays for `capacity`).
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "kvbm/core/types.h"

namespace kvbm {

enum class EvictionPolicyKind : std::uint8_t {
  kLru,          // least recently released first (default)
  kPriorityLru,  // lowest retention priority first, LRU within a priority
  kLineage,      // chain tails (no cached child) first, LRU among them; then LRU among the rest
};

// "lru", "priority_lru", "lineage".
[[nodiscard]] std::string_view eviction_policy_name(EvictionPolicyKind kind);
// InvalidArgument listing the allowed names when `name` is not one of them.
[[nodiscard]] absl::StatusOr<EvictionPolicyKind> parse_eviction_policy(std::string_view name);

// Retention priority a block carries from registration: 0 (evict first) .. kMaxRetentionPriority.
inline constexpr std::uint8_t kMaxRetentionPriority = 100;
inline constexpr std::uint8_t kDefaultRetentionPriority = 35;

struct InactiveBlockInfo {
  std::uint8_t priority = kDefaultRetentionPriority;
  bool is_leaf = true;  // no cached child depends on this block
};

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  [[nodiscard]] virtual EvictionPolicyKind kind() const = 0;

  // `id` became inactive; it is now the most recently released. REQUIRES: id not already held.
  virtual void insert(BlockId id, const InactiveBlockInfo& info) = 0;
  // `id` left the inactive set without being evicted. REQUIRES: id is held.
  virtual void erase(BlockId id) = 0;
  // `id` was used while inactive: it becomes the most recently used. REQUIRES: id is held.
  virtual void touch(BlockId id) = 0;
  // An inactive block's leaf state changed (its first child arrived or its last child left).
  virtual void set_leaf(BlockId id, bool is_leaf) = 0;
  // Whether the policy reads lineage (is_leaf, set_leaf). The pool tracks cached children — one hash
  // map update per registration and eviction — only for policies that do.
  [[nodiscard]] virtual bool uses_lineage() const { return false; }
  // Chooses a victim and removes it; nullopt when the set is empty.
  [[nodiscard]] virtual std::optional<BlockId> evict() = 0;
  [[nodiscard]] virtual std::size_t size() const = 0;
};

// A policy with per-slot state for block ids [0, capacity).
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_eviction_policy(EvictionPolicyKind kind, std::uint32_t capacity);

}  // namespace kvbm
