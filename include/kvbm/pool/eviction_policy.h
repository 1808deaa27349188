// EvictionPolicy: which inactive block a pool gives up when it needs a free slot (DESIGN.md §3).
//
// A policy sees only the pool's *inactive* set: registered blocks no handle holds. The pool tells it
// when a block enters that set (released by its last holder), leaves it without eviction (matched or
// reset), is used again (touch), and when a block's lineage changes (it gained its first or lost its
// last cached child). The pool asks it for a victim when allocation runs out of free slots.
//
// Thread-safety: none of its own. A policy belongs to one pool and is only called under that pool's
// lock. Every operation is O(1) (amortised); memory is fixed at construction (per-slot arrays for
// `capacity`, plus ghost histories bounded by a fraction of it). Policy state per cached block, as
// memory_bytes() / capacity reports it (tests/pool/eviction_policies_test.cc checks every policy ≤ 64 B):
//   lru 9 B · priority_lru 9 B · lineage 17 B · slru 10 B · lfu 10 B · s3fifo 40 B (19 B per slot + a
//   ghost ring and hash map of capacity/2 hashes) · learned 60.6 B (32 B per slot + a ghost of
//   7 × capacity 4-byte entries) · adaptive 63.9 B at 16,384 blocks (learned + two miniatures of 448
//   blocks) · a *_prefix form adds 9 B to its policy.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/core/types.h"

namespace kvbm {

enum class EvictionPolicyKind : std::uint8_t {
  kLru,           // least recently released first (BlockPoolConfig's default)
  kPriorityLru,   // lowest retention priority first, LRU within a priority
  kLineage,       // chain tails (no cached child) first, LRU among them; then LRU among the rest
  kS3Fifo,        // S3-FIFO: small FIFO (10 %) filters one-hit blocks, main FIFO with reinsertion, ghost
  kSlru,          // segmented LRU: probation (blocks used once) then protected (used again, 80 %)
  kLfu,           // least frequently used with aging (counts halve every `capacity` insertions), LRU on ties
  kS3FifoPrefix,  // s3fifo on chain tails only: a block with a cached child is never evicted before a leaf
  kSlruPrefix,    // slru, same prefix rule
  kLfuPrefix,     // lfu, same prefix rule
  kLearned,       // per-class reuse odds learned online (depth, tail, reuse), prefix order kept; learned.h
  kAdaptive,      // learned, in LRU order while miniature simulations say LRU finds more; adaptive.cc.
                  // TierConfig's default (kvbm_config.h); BlockPoolConfig keeps kLru
};

// "lru", "priority_lru", "lineage", "s3fifo", "slru", "lfu", "s3fifo_prefix", "slru_prefix", "lfu_prefix",
// "learned", "adaptive".
[[nodiscard]] std::string_view eviction_policy_name(EvictionPolicyKind kind);
// InvalidArgument listing the allowed names when `name` is not one of them.
[[nodiscard]] absl::StatusOr<EvictionPolicyKind> parse_eviction_policy(std::string_view name);
// Every kind, in declaration order.
[[nodiscard]] std::span<const EvictionPolicyKind> all_eviction_policy_kinds();

// Retention priority a block carries from registration: 0 (evict first) .. kMaxRetentionPriority.
inline constexpr std::uint8_t kMaxRetentionPriority = 100;
inline constexpr std::uint8_t kDefaultRetentionPriority = 35;

// What the pool knows about a block entering the inactive set, for any policy to use or ignore.
struct InactiveBlockInfo {
  std::uint8_t priority = kDefaultRetentionPriority;
  bool is_leaf = true;  // no cached child depends on this block (only tracked when uses_lineage())
  // Released first in its release batch: BlockPool::release releases a request's blocks tail first, so
  // this is the block that ended its request.
  bool is_tail = false;
  std::uint32_t depth = 0;  // 0 for a chain root; parent's depth + 1 (only tracked when uses_depth())
  std::uint64_t sequence_hash = 0;
};

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  // The policy's name in reports: a built-in's eviction_policy_name(), a user policy's registered name.
  [[nodiscard]] virtual std::string_view name() const = 0;

  // `id` became inactive; it is now the most recently released. REQUIRES: id not already held.
  virtual void insert(BlockId id, const InactiveBlockInfo& info) = 0;
  // `id` left the inactive set without being evicted. REQUIRES: id is held.
  virtual void erase(BlockId id) = 0;
  // `id` was used while inactive: it becomes the most recently used. REQUIRES: id is held.
  virtual void touch(BlockId id) = 0;
  // `id` left the inactive set to be copied (BlockPool::pin_for_copy: an offload pins its source), which
  // is not a use. unpin() puts it back when the copy released it, unless it was used meanwhile (then the
  // pool calls insert() at the release, as after any use). The defaults are erase and insert; a policy
  // that learns from uses or keeps an order overrides them so that a copy changes neither. REQUIRES as
  // erase / insert.
  virtual void pin(BlockId id) { erase(id); }
  virtual void unpin(BlockId id, const InactiveBlockInfo& info) { insert(id, info); }
  // Whether pin() then unpin() leave the policy exactly as it was (no order, count or class changes), so
  // that a copy that needs no pin (its tier holds no bytes) may skip it and still decide the same.
  [[nodiscard]] virtual bool pins_keep_state() const { return false; }
  // An inactive block's leaf state changed (its first child arrived or its last child left).
  virtual void set_leaf(BlockId id, bool is_leaf) = 0;
  // Whether the policy reads lineage (is_leaf, set_leaf). The pool tracks cached children — one hash
  // map update per registration and eviction — only for policies that do.
  [[nodiscard]] virtual bool uses_lineage() const { return false; }
  // Whether the policy reads InactiveBlockInfo::depth (one registry lookup per registration to track).
  [[nodiscard]] virtual bool uses_depth() const { return false; }
  // A hint, no effect on behaviour: the pool has just found `id` for a match and will erase (or pin) it
  // shortly, so the policy may start loading that block's state. Only called when wants_prefetch().
  virtual void prefetch(BlockId id) const { (void)id; }
  [[nodiscard]] virtual bool wants_prefetch() const { return false; }
  // Chooses a victim and removes it; nullopt when the set is empty.
  [[nodiscard]] virtual std::optional<BlockId> evict() = 0;
  [[nodiscard]] virtual std::size_t size() const = 0;
  // Bytes of policy state: the object and every array, ghost and hash map it owns (allocated capacity,
  // not just what is in use). Divided by the pool's capacity this is the per-block figure above.
  [[nodiscard]] virtual std::size_t memory_bytes() const = 0;
};

// A built-in policy with per-slot state for block ids [0, capacity).
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_eviction_policy(EvictionPolicyKind kind, std::uint32_t capacity);

// ---- User policies (docs/custom_eviction.md) ----
//
// A user policy is an EvictionPolicy written outside kvbm and registered under a name; a pool or a tier
// selects it by that name (BlockPoolConfig::eviction, `g1.eviction = "name"`). The contract:
//   - Hooks are called under the owning pool's lock, from whichever thread calls into the pool (the
//     engine's threads, the tier chain's lanes): one call at a time per policy object, but not always from
//     the same thread. A hook must not block, must not call back into any kvbm pool or manager, and must
//     not throw.
//   - evict() names a block that is in its set (inserted or unpinned, not erased, pinned or evicted since).
//     A pool never trusts it: a victim outside the set, or none while the set is not empty, is overruled —
//     the pool evicts its least recently released block instead, tells the policy (erase), logs the first
//     violation and counts them all (src/pool/eviction/user_policy.cc) — so a wrong policy costs hits,
//     never data.
//   - size() is not asked of a user policy (the guard counts the set itself); memory_bytes() is reported
//     as the policy's plus the guard's 9 B per slot.
// The factory gets the pool's capacity and is called once per pool (and again at BlockPool::reset()); a
// factory that returns no policy makes the pool fall back to LRU, logged.
using EvictionPolicyFactory = std::function<std::unique_ptr<EvictionPolicy>(std::uint32_t capacity)>;

// Registers `factory` under `name` ([a-z0-9_.:-]{1,64}, not a built-in name). InvalidArgument for a bad or
// built-in name or an empty factory, AlreadyExists when the name is registered. Thread-safe.
absl::Status register_eviction_policy(std::string_view name, EvictionPolicyFactory factory);
// Removes a registration (NotFound when absent). Pools made with it keep their policy.
absl::Status unregister_eviction_policy(std::string_view name);
// The registered user policy names, sorted.
[[nodiscard]] std::vector<std::string> registered_eviction_policies();

// Which policy a pool uses: a built-in kind, or a user policy by its registered name. Implicitly made from a
// kind, so `config.eviction = EvictionPolicyKind::kLru` reads as before.
class EvictionPolicySpec {
 public:
  EvictionPolicySpec(EvictionPolicyKind kind = EvictionPolicyKind::kLru)  // NOLINT(google-explicit-constructor)
      : kind_(kind) {}
  // A registered user policy (looked up when a pool is made).
  [[nodiscard]] static EvictionPolicySpec user(std::string name) {
    EvictionPolicySpec s;
    s.kind_.reset();
    s.user_ = std::move(name);
    return s;
  }
  [[nodiscard]] std::string_view name() const;
  // The built-in kind; nullopt for a user policy.
  [[nodiscard]] std::optional<EvictionPolicyKind> builtin() const { return kind_; }
  friend bool operator==(const EvictionPolicySpec& a, const EvictionPolicySpec& b) {
    return a.kind_ == b.kind_ && a.user_ == b.user_;
  }

 private:
  std::optional<EvictionPolicyKind> kind_;
  std::string user_;
};

// The names parse_eviction_policy_spec() takes, for error messages: "lru, ..., learned" and the registered
// ones ("... or a registered policy: a, b"; "... or a name registered with register_eviction_policy").
[[nodiscard]] std::string eviction_policy_choices();
// A built-in name or a registered one; InvalidArgument "eviction policy must be one of <choices>; got '<name>'".
[[nodiscard]] absl::StatusOr<EvictionPolicySpec> parse_eviction_policy_spec(std::string_view name);

// What a pool makes its policy with (now, and again at BlockPool::reset()): a built-in's constructor, or the
// registered factory whose policies come behind a guard (see above). NotFound for an unregistered name.
[[nodiscard]] absl::StatusOr<EvictionPolicyFactory> eviction_policy_factory(const EvictionPolicySpec& spec);
// The violations a guarded user policy made (victims overruled); 0 for a built-in policy.
[[nodiscard]] std::uint64_t eviction_policy_violations(const EvictionPolicy& policy);

}  // namespace kvbm
