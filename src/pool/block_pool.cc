// PoolCore: the untyped state of one tier's block pool. See include/kvbm/pool/block_pool.h for the
// contract and the slot state machine.
#include "kvbm/pool/block_pool.h"

#include <absl/container/flat_hash_map.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "kvbm/core/model_config.h"
#include "kvbm/core/mutex.h"
#include "pool/pool_internal.h"

namespace kvbm::detail {
namespace {

enum class SlotState : std::uint8_t { kFree, kOwned, kRegistered };

constexpr std::uint32_t kNoSlot = 0xFFFFFFFFu;
// Slot::origin once reported (or never set).
constexpr std::uint8_t kNoOrigin = 0xFF;
// Victims chosen before the first of them is unregistered (PoolCore::allocate).
constexpr std::size_t kVictimBatch = 16;
// Hashes looked up before the first of them is retained (PoolCore::match).
constexpr std::size_t kMatchBatch = 16;

// One slot's bookkeeping. Registered slots are active when refcount > 0 and inactive otherwise. 32 B and
// aligned, so a slot never straddles two cache lines (the full identity is in registered_).
struct alignas(32) Slot {
  SequenceHash sequence_hash{};
  SequenceHash parent_hash{};
  std::uint32_t refcount = 0;  // ImmutableBlock references
  std::uint32_t depth = 0;     // position in its chain (for policies): parent's depth + 1, root 0
  std::uint8_t priority = kDefaultRetentionPriority;
  SlotState state = SlotState::kFree;
  bool has_parent = false;
  bool copy_pinned = false;  // left the inactive set through pin_for_copy() (a copy), not used since
  bool discarded = false;    // active, out of the registry (discard()): free, not inactive, at its last release
  // CacheLevel the bytes came from at registration, until reported at the first release (kNoOrigin after).
  std::uint8_t origin = kNoOrigin;
};
static_assert(sizeof(Slot) == 32);

}  // namespace

class PoolCore {
 public:
  PoolCore(const BlockPoolConfig& config, const EvictionPolicyFactory& policy_factory)
      : PoolCore(config, policy_factory(config.num_blocks), policy_factory) {}

  ~PoolCore() {
    MutexLock lock(&mu_);
    if (owned_ + active_ > 0) {
      std::fprintf(stderr, "kvbm: %s block pool destroyed while %u block(s) are still held by handles\n",
                   label_.c_str(), owned_ + active_);
#ifndef NDEBUG
      std::abort();  // DESIGN.md §6: handles must not outlive their manager
#endif
    }
  }

  const BlockPoolConfig& config() const { return config_; }
  bool pins_keep_state() const { return pins_keep_state_; }
  std::uint64_t policy_violations() const {
    MutexLock lock(&mu_);
    return eviction_policy_violations(*policy_);
  }

  absl::StatusOr<std::vector<BlockId>> allocate(std::size_t count, std::vector<EvictedBlock>* evicted) {
    std::vector<BlockId> ids;
    BlocksRemoved removed{config_.level, {}};
    {
      MutexLock lock(&mu_);
      if (absl::Status s = allocate_locked(count, evicted, ids, removed); !s.ok()) return s;
    }
    if (!removed.block_hashes.empty()) config_.events->on_removed(std::move(removed));
    return ids;
  }

  // allocate(), register_inactive() of the blocks as `identities` (no tokens), under one lock: a copy of
  // identities into a tier that holds no bytes. The same evictions, registrations and releases, in the
  // same order, as the three calls.
  std::size_t admit(std::span<const BlockIdentity> identities, std::span<const std::uint8_t> priorities,
                    std::span<std::uint8_t> inserted, std::vector<EvictedBlock>* evicted) {
    std::size_t admitted = 0;
    BlocksRemoved removed{config_.level, {}};
    std::vector<BlocksStored> stored;
    std::vector<bool> stored_without_tokens;
    std::vector<ReleasedBlock> released;
    {
      MutexLock lock(&mu_);
      // The pool's own scratch vectors (under the lock): no allocation per call once they have grown.
      admit_ids_.clear();
      (void)allocate_locked(std::min(identities.size(), available_locked()), evicted, admit_ids_, removed);
      admitted = admit_ids_.size();
      admit_requests_.resize(admitted);
      for (std::size_t i = 0; i < admitted; ++i) {
        row_has_tokens_[admit_ids_[i].value()] = 0;
        admit_requests_[i] = RegisterRequest{this, admit_ids_[i], MutableState::kComplete, identities[i], priorities[i],
                                             0,    config_.level};
      }
      register_locked(admit_requests_, /*then_release=*/true, stored, stored_without_tokens, released, admit_out_);
      for (std::size_t i = 0; i < admitted; ++i) inserted[i] = admit_out_[i] == admit_ids_[i] ? 1 : 0;
    }
    if (!removed.block_hashes.empty()) config_.events->on_removed(std::move(removed));
    emit(stored, stored_without_tokens, released);
    return admitted;
  }

  // Up to `count` slots, fewer when fewer are free or evictable, taken under one lock.
  std::vector<BlockId> allocate_up_to(std::size_t count, std::vector<EvictedBlock>* evicted) {
    std::vector<BlockId> ids;
    BlocksRemoved removed{config_.level, {}};
    {
      MutexLock lock(&mu_);
      (void)allocate_locked(std::min(count, available_locked()), evicted, ids, removed);
    }
    if (!removed.block_hashes.empty()) config_.events->on_removed(std::move(removed));
    return ids;
  }

  // Slots an allocation can have now: free ones and evictable (inactive) ones.
  std::size_t available_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return free_list_.size() + policy_->size();
  }

  // Takes `count` slots (free ones first, then evicted inactive blocks) into `ids`, owned by the caller.
  absl::Status allocate_locked(std::size_t count, std::vector<EvictedBlock>* evicted, std::vector<BlockId>& ids,
                               BlocksRemoved& removed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (count > available_locked()) {
      return absl::ResourceExhaustedError(absl::StrCat("pool ", label_, ": cannot allocate ", count,
                                                       " block(s): ", free_list_.size(), " free + ", policy_->size(),
                                                       " evictable of ", config_.num_blocks));
    }
    ids.reserve(count);
    if (config_.events != nullptr) removed.block_hashes.reserve(count);
    while (ids.size() < count && !free_list_.empty()) {
      const std::uint32_t id = free_list_.back();
      free_list_.pop_back();
      slots_[id].state = SlotState::kOwned;
      ids.push_back(BlockId{id});
    }
    // Victims (available ≥ count guarantees them). When the policy reads no lineage, unregistering cannot
    // change its next choice, so up to kVictimBatch victims are chosen before any is unregistered: their
    // slot reads, and then their registry probes, are in flight together instead of one after another
    // (each a cache miss when the policy's victims are scattered over the pool). With lineage: one at a time.
    const std::size_t batch = track_lineage_ ? 1 : kVictimBatch;
    for (std::size_t begin = ids.size(); begin < count; begin = ids.size()) {
      const std::size_t end = std::min(count, begin + batch);
      for (std::size_t i = begin; i < end; ++i) {
        const BlockId victim = *policy_->evict();
        ids.push_back(victim);
        __builtin_prefetch(&slots_[victim.value()]);
        // register_blocks writes the slot's identity next: its lines arrive meanwhile.
        __builtin_prefetch(&registered_[victim.value()], 1);
        __builtin_prefetch(reinterpret_cast<const char*>(&registered_[victim.value()] + 1) - 1, 1);
      }
      if (batch > 1) {
        for (std::size_t i = begin; i < end; ++i) registry_.prefetch(slots_[ids[i].value()].sequence_hash.value());
      }
      for (std::size_t i = begin; i < end; ++i) {
        const std::uint32_t id = ids[i].value();
        --inactive_;
        if (config_.events != nullptr) removed.block_hashes.push_back(slots_[id].sequence_hash);
        if (evicted != nullptr)
          evicted->push_back(EvictedBlock{BlockId{id}, registered_[id].identity, slots_[id].priority});
        unregister(id);
        slots_[id].state = SlotState::kOwned;
      }
    }
    owned_ += static_cast<std::uint32_t>(count);
    return absl::OkStatus();
  }

  // With `then_release`, the blocks are registered last to first (so that a batch written tail first is
  // registered parent before child) and then released first to last, under the same lock: exactly
  // registering them in that order and then releasing each result.
  absl::StatusOr<std::vector<BlockId>> register_blocks(std::span<const RegisterRequest> requests, bool then_release) {
    std::vector<BlockId> out;
    std::vector<BlocksStored> stored;
    std::vector<bool> stored_without_tokens;
    std::vector<ReleasedBlock> released;
    {
      MutexLock lock(&mu_);
      // Validate everything first: registration is all or nothing.
      for (std::size_t i = 0; i < requests.size(); ++i) {
        const RegisterRequest& r = requests[i];
        if (r.owner == nullptr) {
          return absl::FailedPreconditionError(
              absl::StrCat("pool ", label_, ": register_blocks: block #", i, " is an empty (moved-from) handle"));
        }
        if (r.owner != this) {
          return absl::InvalidArgumentError(
              absl::StrCat("pool ", label_, ": register_blocks: block #", i, " belongs to another pool"));
        }
        if (r.state != MutableState::kComplete) {
          return absl::FailedPreconditionError(absl::StrCat("pool ", label_, ": register_blocks: block #", i, " is ",
                                                            r.state == MutableState::kReset ? "Reset" : "Partial", " (",
                                                            r.num_tokens, "/", config_.page_size,
                                                            " tokens); only Complete blocks can be registered"));
        }
      }
      register_locked(requests, then_release, stored, stored_without_tokens, released, out);
    }
    emit(stored, stored_without_tokens, released);
    return out;
  }

  // Registers valid requests (see register_blocks); what to report once the lock is dropped goes to the
  // out-parameters: one Stored event per run of blocks that continue one another's chain (a router indexes
  // a block under the parent its event names), and the released blocks.
  void register_locked(std::span<const RegisterRequest> requests, bool then_release, std::vector<BlocksStored>& stored,
                       std::vector<bool>& stored_without_tokens, std::vector<ReleasedBlock>& released,
                       std::vector<BlockId>& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    out.assign(requests.size(), BlockId{});
    const auto stored_block = [&](const Slot& s, std::uint32_t id) {
      if (stored.empty() || !s.has_parent || stored.back().block_hashes.back() != s.parent_hash) {
        stored.push_back(BlocksStored{config_.level, {}, std::nullopt, {}, config_.page_size});
        if (s.has_parent) stored.back().parent_hash = s.parent_hash;
        stored_without_tokens.push_back(false);
      }
      stored.back().block_hashes.push_back(s.sequence_hash);
      if (row_has_tokens_[id] != 0) {
        const auto row = token_row(id);
        stored.back().token_ids.insert(stored.back().token_ids.end(), row.begin(), row.end());
      } else {
        stored_without_tokens.back() = true;
      }
    };
    const Slot* prev = nullptr;  // the block this call handed out last (registered or de-duplicated)
    for (std::size_t n = 0; n < requests.size(); ++n) {
      const std::size_t i = then_release ? requests.size() - 1 - n : n;
      const RegisterRequest& r = requests[i];
      const std::uint32_t id = r.id.value();
      auto [it, inserted] = registry_.try_emplace(r.identity.sequence_hash.value(), id);
      if (!inserted) {
        // De-duplication: hand out the block already registered; the duplicate slot becomes free.
        const std::uint32_t existing = it->second;
        retain_locked(existing);
        slots_[id].state = SlotState::kFree;
        free_list_.push_back(id);
        --owned_;
        out[i] = BlockId{existing};
        prev = &slots_[existing];
        continue;
      }
      Slot& s = slots_[id];
      s.sequence_hash = r.identity.sequence_hash;
      s.has_parent = r.identity.parent.has_value();
      s.parent_hash = r.identity.parent.value_or(SequenceHash{0});
      s.refcount = 1;
      s.priority = r.priority;
      s.origin = static_cast<std::uint8_t>(r.origin);
      s.depth = 0;
      if (s.has_parent && track_depth_) {
        if (prev != nullptr && prev->sequence_hash == s.parent_hash) {
          s.depth = prev->depth + 1;  // the usual case: the parent is the block registered just before
        } else {
          // An unregistered parent (evicted, or never seen here) leaves the depth unknown: 1 is a guess.
          auto p = registry_.find(s.parent_hash.value());
          s.depth = p == registry_.end() ? 1 : slots_[p->second].depth + 1;
        }
      }
      prev = &s;
      s.state = SlotState::kRegistered;
      registered_[id] = RegisteredInfo{r.identity, r.priority};
      if (s.has_parent && track_lineage_) add_cached_child(s.parent_hash);
      --owned_;
      ++active_;
      out[i] = r.id;
      if (config_.events != nullptr) stored_block(s, id);
    }
    if (then_release) release_locked(out, &released);
  }

  // Reports, after the lock: Stored events, then released blocks.
  void emit(std::vector<BlocksStored>& stored, const std::vector<bool>& stored_without_tokens,
            const std::vector<ReleasedBlock>& released) {
    for (std::size_t e = 0; e < stored.size(); ++e) {
      if (stored_without_tokens[e]) stored[e].token_ids.clear();
      config_.events->on_stored(std::move(stored[e]));
    }
    if (!released.empty()) config_.on_release->on_released(config_.level, released);
  }

  std::vector<BlockId> match(std::span<const SequenceHash> hashes) {
    std::vector<BlockId> out;
    out.reserve(hashes.size());
    MutexLock lock(&mu_);
    // The first hash alone (a miss there costs one lookup), then kMatchBatch at a time: prefetch their
    // registry entries, look them up (prefetching each found slot), then retain them, so that a cold
    // registry's and slot array's cache misses are in flight together instead of one after another.
    // Retaining changes neither the registry nor a slot's id.
    std::array<std::uint32_t, kMatchBatch> found;
    for (std::size_t begin = 0, end = 0; begin < hashes.size(); begin = end) {
      end = std::min(hashes.size(), begin == 0 ? 1 : begin + kMatchBatch);
      if (end - begin > 1) {
        for (std::size_t i = begin; i < end; ++i) registry_.prefetch(hashes[i].value());
      }
      std::size_t n = 0;
      for (std::size_t i = begin; i < end; ++i) {
        auto it = registry_.find(hashes[i].value());
        if (it == registry_.end()) break;
        found[n++] = it->second;
        __builtin_prefetch(&slots_[it->second]);
        if (prefetch_policy_) policy_->prefetch(BlockId{it->second});
      }
      for (std::size_t j = 0; j < n; ++j) {
        retain_locked(found[j]);
        out.push_back(BlockId{found[j]});
      }
      if (n < end - begin) break;  // a match stops at the first hash not cached
    }
    return out;
  }

  std::optional<BlockId> find(SequenceHash hash, bool for_copy) {
    MutexLock lock(&mu_);
    auto it = registry_.find(hash.value());
    if (it == registry_.end()) return std::nullopt;
    retain_locked(it->second, for_copy);
    return BlockId{it->second};
  }

  bool contains(SequenceHash hash) const {
    MutexLock lock(&mu_);
    return registry_.contains(hash.value());
  }

  void contains_each(std::span<const SequenceHash> hashes, std::span<std::uint8_t> out) const {
    MutexLock lock(&mu_);
    for (std::size_t i = 0; i < hashes.size(); ++i) out[i] = registry_.contains(hashes[i].value()) ? 1 : 0;
  }

  std::vector<std::optional<BlockId>> find_each_for_copy(std::span<const SequenceHash> hashes) {
    std::vector<std::optional<BlockId>> out(hashes.size());
    MutexLock lock(&mu_);
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      auto it = registry_.find(hashes[i].value());
      if (it == registry_.end()) continue;
      retain_locked(it->second, /*for_copy=*/true);
      out[i] = BlockId{it->second};
    }
    return out;
  }

  std::size_t touch(std::span<const SequenceHash> hashes) {
    std::size_t found = 0;
    MutexLock lock(&mu_);
    for (SequenceHash h : hashes) {
      auto it = registry_.find(h.value());
      if (it == registry_.end()) continue;
      ++found;
      if (slots_[it->second].refcount == 0) policy_->touch(BlockId{it->second});
    }
    return found;
  }

  absl::Status reset() {
    {
      MutexLock lock(&mu_);
      if (owned_ + active_ > 0) {
        return absl::FailedPreconditionError(absl::StrCat("pool ", label_, ": reset while ", owned_ + active_,
                                                          " block(s) are held (", active_, " registered, ", owned_,
                                                          " being filled); release them first"));
      }
      registry_.clear();
      cached_children_.clear();
      policy_ = policy_factory_(config_.num_blocks);
      free_list_.clear();
      for (std::uint32_t i = config_.num_blocks; i > 0; --i) {
        slots_[i - 1] = Slot{};
        free_list_.push_back(i - 1);
      }
      inactive_ = 0;
    }
    if (config_.events != nullptr) config_.events->on_cleared(config_.level);
    return absl::OkStatus();
  }

  // Drops the registration of the block in slot `id` held under `hash` (see BlockPool::discard).
  bool discard(BlockId id, SequenceHash hash) {
    {
      MutexLock lock(&mu_);
      Slot& s = slots_[id.value()];
      if (s.state != SlotState::kRegistered || s.discarded || s.sequence_hash != hash) return false;
      auto it = registry_.find(hash.value());
      if (it == registry_.end() || it->second != id.value()) return false;
      registry_.erase(it);
      if (s.has_parent && track_lineage_) remove_cached_child(s.parent_hash);
      s.discarded = true;  // held (the caller's handle): freed at the last release
    }
    if (config_.events != nullptr) config_.events->on_removed(BlocksRemoved{config_.level, {hash}});
    return true;
  }

  PoolStatus status() const {
    MutexLock lock(&mu_);
    return PoolStatus{active_, inactive_, static_cast<std::uint32_t>(free_list_.size()), owned_};
  }

  void release_owned(BlockId id) {
    MutexLock lock(&mu_);
    slots_[id.value()].state = SlotState::kFree;
    free_list_.push_back(id.value());
    --owned_;
  }

  // A copy of a held handle: not a use (a copy-pinned block stays copy-pinned).
  void retain(BlockId id) {
    MutexLock lock(&mu_);
    Slot& s = slots_[id.value()];
    if (s.refcount == 0) {
      retain_locked(id.value());
    } else {
      ++s.refcount;
    }
  }

  void release_registered(std::span<const BlockId> ids) {
    std::vector<ReleasedBlock> released;
    {
      MutexLock lock(&mu_);
      release_locked(ids, &released);
    }
    if (!released.empty()) config_.on_release->on_released(config_.level, released);
  }

  // Token rows are owned by whoever owns the slot (a MutableBlock while filling; read-only while
  // registered), so they need no lock: the pool mutex orders every hand-over of a slot.
  std::span<std::uint32_t> token_row(std::uint32_t id) {
    if (tokens_.empty()) return {};
    return std::span<std::uint32_t>(tokens_).subspan(std::size_t{id} * config_.page_size, config_.page_size);
  }
  std::vector<std::uint8_t>& row_has_tokens() { return row_has_tokens_; }
  // Identity and priority of a registered slot: written once at registration (under the lock), then
  // read by holders of the block, who obtained their handle under the same lock.
  const RegisteredInfo& registered_info(std::uint32_t id) const { return registered_[id]; }

 private:
  // The flags are read from the pool's own policy (declared before policy_, so initialised before the
  // policy moves in).
  PoolCore(const BlockPoolConfig& config, std::unique_ptr<EvictionPolicy> policy,
           const EvictionPolicyFactory& policy_factory)
      : config_(config),
        label_(cache_level_name(config.level)),
        track_lineage_(policy->uses_lineage()),
        track_depth_(policy->uses_depth()),
        prefetch_policy_(policy->wants_prefetch()),
        pins_keep_state_(policy->pins_keep_state()),
        tokens_(config.keep_tokens ? std::size_t{config.num_blocks} * config.page_size : 0),
        row_has_tokens_(config.num_blocks, 0),
        registered_(config.num_blocks),
        slots_(config.num_blocks),
        policy_factory_(policy_factory),
        policy_(std::move(policy)) {
    MutexLock lock(&mu_);
    free_list_.reserve(config.num_blocks);
    // Stack order: slot 0 is handed out first.
    for (std::uint32_t i = config.num_blocks; i > 0; --i) free_list_.push_back(i - 1);
    registry_.reserve(config.num_blocks);
  }

  // Drops one reference of each block, in order; a batch is released tail first (BlockPool::release), so its
  // first block ended the request. Blocks that become inactive go to the policy and, with an observer, to
  // `released` (to be reported once the lock is dropped).
  void release_locked(std::span<const BlockId> ids, std::vector<ReleasedBlock>* released)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (config_.on_release != nullptr) released->reserve(released->size() + ids.size());
    bool first = true;
    for (BlockId id : ids) {
      Slot& s = slots_[id.value()];
      const bool is_tail = std::exchange(first, false);
      if (--s.refcount != 0) continue;
      --active_;
      if (s.discarded) {  // out of the registry already: the slot is free now
        if (s.copy_pinned) {
          // A pinning policy may still track the block (pins_keep_state): give it back, then take it out.
          policy_->unpin(id, InactiveBlockInfo{s.priority, true, is_tail, s.depth, s.sequence_hash.value()});
          policy_->erase(id);
        }
        s = Slot{};
        free_list_.push_back(id.value());
        continue;
      }
      ++inactive_;
      const bool is_leaf = !track_lineage_ || !cached_children_.contains(s.sequence_hash.value());
      const InactiveBlockInfo info{s.priority, is_leaf, is_tail, s.depth, s.sequence_hash.value()};
      if (std::exchange(s.copy_pinned, false)) {
        policy_->unpin(id, info);
        continue;  // the end of a copy, not a use: nothing to report
      }
      policy_->insert(id, info);
      if (config_.on_release != nullptr) {
        const std::uint8_t origin = std::exchange(s.origin, kNoOrigin);
        released->push_back(
            ReleasedBlock{registered_[id.value()].identity, s.priority,
                          origin == kNoOrigin ? std::nullopt : std::optional(static_cast<CacheLevel>(origin))});
      }
    }
  }

  // Takes a registered block for a use (match, find, a duplicate's registration) or, for_copy, for a
  // copy to another tier (pin_for_copy), which the policy is told is not a use.
  void retain_locked(std::uint32_t id, bool for_copy = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Slot& s = slots_[id];
    if (!for_copy) s.copy_pinned = false;  // a use: the policy gets insert() at the release
    if (s.refcount++ != 0) return;
    --inactive_;
    ++active_;
    if (for_copy) {
      policy_->pin(BlockId{id});
      s.copy_pinned = true;
    } else {
      policy_->erase(BlockId{id});
    }
  }

  // Cached children are counted by the parent's sequence hash, not its slot: a parent evicted while a
  // child stayed, then registered again, must find that child still counted (it is not a leaf).
  void add_cached_child(SequenceHash parent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (cached_children_[parent.value()]++ != 0) return;
    auto p = registry_.find(parent.value());
    if (p != registry_.end() && slots_[p->second].refcount == 0) policy_->set_leaf(BlockId{p->second}, false);
  }
  void remove_cached_child(SequenceHash parent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto c = cached_children_.find(parent.value());
    if (--c->second != 0) return;
    cached_children_.erase(c);
    auto p = registry_.find(parent.value());
    if (p != registry_.end() && slots_[p->second].refcount == 0) policy_->set_leaf(BlockId{p->second}, true);
  }

  // Drops the registration of an evicted slot: registry entry and its parent's child count.
  void unregister(std::uint32_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Slot& s = slots_[id];
    registry_.erase(s.sequence_hash.value());
    if (s.has_parent && track_lineage_) remove_cached_child(s.parent_hash);
    s = Slot{};
  }

  const BlockPoolConfig config_;
  const std::string label_;
  const bool track_lineage_;
  const bool track_depth_;
  const bool prefetch_policy_;
  const bool pins_keep_state_;
  std::vector<std::uint32_t> tokens_;
  std::vector<std::uint8_t> row_has_tokens_;
  std::vector<RegisteredInfo> registered_;

  mutable Mutex mu_;
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);
  std::vector<std::uint32_t> free_list_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::uint64_t, std::uint32_t> registry_ ABSL_GUARDED_BY(mu_);
  const EvictionPolicyFactory policy_factory_;  // reset() makes a fresh policy with it
  std::unique_ptr<EvictionPolicy> policy_ ABSL_GUARDED_BY(mu_);
  std::uint32_t active_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint32_t inactive_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint32_t owned_ ABSL_GUARDED_BY(mu_) = 0;
  // admit()'s scratch: kept between calls so that admitting a few blocks allocates nothing.
  std::vector<BlockId> admit_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<RegisterRequest> admit_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<BlockId> admit_out_ ABSL_GUARDED_BY(mu_);
  // parent sequence hash → registered blocks naming it as their parent (only non-zero counts kept).
  absl::flat_hash_map<std::uint64_t, std::uint32_t> cached_children_ ABSL_GUARDED_BY(mu_);
};

void PoolCoreDeleter::operator()(PoolCore* core) const { delete core; }

absl::StatusOr<PoolCorePtr> make_pool_core(const BlockPoolConfig& config) {
  const std::string where = absl::StrCat("BlockPoolConfig (", std::string(cache_level_name(config.level)), ")");
  if (config.num_blocks == 0 || config.num_blocks == kNoSlot) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".num_blocks must be in [1, ", kNoSlot - 1, "], got ", config.num_blocks));
  }
  if (config.page_size == 0 || config.page_size > ModelConfig::kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".page_size must be in [1, ", ModelConfig::kMaxPageSize, "], got ", config.page_size));
  }
  constexpr std::uint64_t kMaxTokenArena = std::uint64_t{1} << 32;
  if (config.keep_tokens && std::uint64_t{config.num_blocks} * config.page_size > kMaxTokenArena) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": keep_tokens needs num_blocks × page_size ≤ 2^32 tokens, got ",
        std::uint64_t{config.num_blocks} * config.page_size, "; set keep_tokens = false for a pool this large"));
  }
  if (config.memory != nullptr) {
    const Layout& layout = config.memory->layout();
    if (layout.num_blocks() != config.num_blocks) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".num_blocks is ", config.num_blocks,
                                                     " but its memory layout holds ", layout.num_blocks()));
    }
    if (layout.model().page_size != config.page_size) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".page_size is ", config.page_size,
                                                     " but its memory layout has page_size ",
                                                     layout.model().page_size));
    }
  }
  auto policy = eviction_policy_factory(config.eviction);
  if (!policy.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ".eviction: ", policy.status().message()));
  return PoolCorePtr(new PoolCore(config, *std::move(policy)));
}

absl::StatusOr<std::vector<BlockId>> allocate(PoolCore* core, std::size_t count, std::vector<EvictedBlock>* evicted) {
  return core->allocate(count, evicted);
}
std::size_t admit(PoolCore* core, std::span<const BlockIdentity> identities, std::span<const std::uint8_t> priorities,
                  std::span<std::uint8_t> inserted, std::vector<EvictedBlock>* evicted) {
  return core->admit(identities, priorities, inserted, evicted);
}
std::vector<BlockId> allocate_up_to(PoolCore* core, std::size_t count, std::vector<EvictedBlock>* evicted) {
  return core->allocate_up_to(count, evicted);
}
absl::StatusOr<std::vector<BlockId>> register_blocks(PoolCore* core, std::span<const RegisterRequest> requests,
                                                     bool then_release) {
  return core->register_blocks(requests, then_release);
}
std::vector<BlockId> match(PoolCore* core, std::span<const SequenceHash> hashes) { return core->match(hashes); }
std::optional<BlockId> find(PoolCore* core, SequenceHash hash, bool for_copy) { return core->find(hash, for_copy); }
bool contains(const PoolCore* core, SequenceHash hash) { return core->contains(hash); }
void contains_each(const PoolCore* core, std::span<const SequenceHash> hashes, std::span<std::uint8_t> out) {
  core->contains_each(hashes, out);
}
std::vector<std::optional<BlockId>> find_each_for_copy(PoolCore* core, std::span<const SequenceHash> hashes) {
  return core->find_each_for_copy(hashes);
}
std::size_t touch(PoolCore* core, std::span<const SequenceHash> hashes) { return core->touch(hashes); }
absl::Status reset(PoolCore* core) { return core->reset(); }
PoolStatus status(const PoolCore* core) { return core->status(); }
bool discard(PoolCore* core, BlockId id, SequenceHash hash) { return core->discard(id, hash); }
void release_registered_batch(PoolCore* core, std::span<const BlockId> ids) { core->release_registered(ids); }
const BlockPoolConfig& config(const PoolCore* core) { return core->config(); }
bool pins_keep_state(const PoolCore* core) { return core->pins_keep_state(); }
std::uint64_t policy_violations(const PoolCore* core) { return core->policy_violations(); }

void release_owned(PoolCore* core, BlockId id) { core->release_owned(id); }
void retain_registered(PoolCore* core, BlockId id) { core->retain(id); }
void release_registered(PoolCore* core, BlockId id) { core->release_registered(std::span<const BlockId>(&id, 1)); }
std::span<std::uint32_t> token_row(PoolCore* core, BlockId id) { return core->token_row(id.value()); }
const TierMemory* tier_memory(const PoolCore* core) { return core->config().memory; }
std::uint32_t page_size(const PoolCore* core) { return core->config().page_size; }
std::span<const std::uint32_t> registered_tokens(const PoolCore* core, BlockId id) {
  if (core == nullptr) return {};
  auto* c = const_cast<PoolCore*>(core);
  if (c->row_has_tokens()[id.value()] == 0) return {};
  return c->token_row(id.value());
}
const RegisteredInfo& registered_info(const PoolCore* core, BlockId id) {
  static const RegisteredInfo kEmptyHandle{};  // identity() / priority() of an empty handle: no dereference
  if (core == nullptr) return kEmptyHandle;
  return core->registered_info(id.value());
}
void set_row_has_tokens(PoolCore* core, BlockId id, bool has) { core->row_has_tokens()[id.value()] = has ? 1 : 0; }

}  // namespace kvbm::detail
