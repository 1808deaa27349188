// BlockPool: the block slots of one tier, their state machine, and the prefix registry (DESIGN.md §3).
//
// Slot states (every slot is in exactly one):
//   Free        Reset and unowned; in the free list. Allocation takes these first.
//   Owned       held by exactly one MutableBlock. The handle tracks the sub-state:
//                 Reset ──init(salt, parent)──▶ Partial ──append to page_size + commit()──▶ Complete
//                 Reset ──apply(token block or identity)──────────────────────────────────▶ Complete
//               Dropping the handle (in any sub-state) resets the slot and returns it to Free.
//   Active      Registered, in the registry, held by ≥ 1 ImmutableBlock. Never evicted.
//   Inactive    Registered, in the registry, held by none. Still matchable; owned by the
//               EvictionPolicy, which may evict it (→ Free, registration dropped, Removed event).
//   Discarded   Active but out of the registry (discard(): its bytes are damaged). No longer matchable;
//               → Free when its last holder releases it.
// Transitions: Free → Owned (allocate); Owned → Active (register_blocks; or → Free when the hash is
// already registered: the existing block is returned instead); Active ⇄ Inactive (last holder released /
// matched, touched no, upgraded); Inactive → Free (evicted, reset, discard); Active → Discarded (discard)
// → Free (last holder released). Illegal requests are errors, never
// silent: registering an incomplete block, appending past page_size, a foreign handle.
//
// Handles are typed by tier: ImmutableBlock<CacheLevel::kG1> is not an ImmutableBlock<CacheLevel::kG2>.
// No raw slot pointer leaves the pool. Handles must not outlive their pool (checked in debug builds).
//
// Thread-safety: every method may be called from any thread. One mutex guards the pool's state; the
// event sink is called only after it is released. A single handle object is not itself thread-safe
// (as with std::shared_ptr, distinct copies of an ImmutableBlock may be used from distinct threads).
//
// Cost: allocate, register, match, touch and release are O(1) per block plus one lock per call.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "kvbm/core/event_sink.h"
#include "kvbm/core/token_block_sequence.h"
#include "kvbm/core/types.h"
#include "kvbm/pool/eviction_policy.h"
#include "kvbm/storage/storage.h"

namespace kvbm {

class ReleaseObserver;

struct BlockPoolConfig {
  CacheLevel level = CacheLevel::kG1;
  std::uint32_t num_blocks = 0;                            // > 0
  std::uint32_t page_size = 16;                            // tokens per block, > 0
  EvictionPolicySpec eviction = EvictionPolicyKind::kLru;  // a built-in or a registered user policy
  // Keep each block's token ids (page_size × 4 bytes per slot). Needed to build blocks token by token
  // and for Stored events to carry token ids; off for metadata-only pools.
  bool keep_tokens = true;
  EventSink* events = nullptr;         // not owned; must outlive the pool; null = no events
  const TierMemory* memory = nullptr;  // not owned; when set, handles expose their bytes
  // Not owned; must outlive the pool; null = none. Told of every block that becomes inactive.
  ReleaseObserver* on_release = nullptr;
};

struct PoolStatus {
  std::uint32_t active = 0;    // registered, held
  std::uint32_t inactive = 0;  // registered, evictable
  std::uint32_t free = 0;      // reset, unowned
  std::uint32_t owned = 0;     // held by a MutableBlock
  friend bool operator==(const PoolStatus&, const PoolStatus&) = default;
};

// Identity of a complete block: what registration and matching use.
struct BlockIdentity {
  BlockHash block_hash;
  SequenceHash sequence_hash;
  std::optional<SequenceHash> parent;
};

// A registered block that allocate() evicted to make room. Its slot is now one of the returned
// MutableBlocks, and its bytes (and tokens) are still there until that block is written: a write-back
// tier copies them down before handing the blocks on.
struct EvictedBlock {
  BlockId id;
  BlockIdentity identity;
  std::uint8_t priority = kDefaultRetentionPriority;
};

// A registered block that has just become inactive: its last holder released it (the end of a copy's pin,
// BlockPool::pin_for_copy, is not reported: it was not a use).
struct ReleasedBlock {
  BlockIdentity identity;
  std::uint8_t priority = kDefaultRetentionPriority;
  // Where the block's bytes came from when it was registered (MutableBlock::set_origin): this pool's own
  // tier, or the tier it was copied up from. Reported once, at the block's first release after its
  // registration; nullopt at every later release.
  std::optional<CacheLevel> origin;
};

// Told of blocks that became inactive, in release order (a batch release is tail first), on the thread
// that released them. The pool holds no lock during the call, so the observer may use the pool.
class ReleaseObserver {
 public:
  virtual ~ReleaseObserver() = default;
  virtual void on_released(CacheLevel level, std::span<const ReleasedBlock> blocks) = 0;
};

// Sub-state of an owned block.
enum class MutableState : std::uint8_t { kReset, kPartial, kComplete };

namespace detail {
class PoolCore;
// Untyped entry points the typed handles call. Defined in block_pool.cc.
void release_owned(PoolCore* core, BlockId id);
void retain_registered(PoolCore* core, BlockId id);
void release_registered(PoolCore* core, BlockId id);
std::span<std::uint32_t> token_row(PoolCore* core, BlockId id);
const TierMemory* tier_memory(const PoolCore* core);
std::optional<StorageKind> memory_kind(const PoolCore* core);
int memory_device(const PoolCore* core);
std::uint32_t page_size(const PoolCore* core);
std::span<const std::uint32_t> registered_tokens(const PoolCore* core, BlockId id);
struct RegisteredInfo {
  BlockIdentity identity;
  std::uint8_t priority = kDefaultRetentionPriority;
};
const RegisteredInfo& registered_info(const PoolCore* core, BlockId id);
}  // namespace detail

template <CacheLevel L>
class BlockPool;

// Exclusive ownership of one slot while it is being filled. Move-only. Dropping it frees the slot.
template <CacheLevel L>
class MutableBlock {
 public:
  MutableBlock() = default;
  MutableBlock(MutableBlock&& other) noexcept { *this = std::move(other); }
  MutableBlock& operator=(MutableBlock&& other) noexcept {
    if (this != &other) {
      reset_handle();
      core_ = std::exchange(other.core_, nullptr);
      id_ = other.id_;
      state_ = other.state_;
      num_tokens_ = other.num_tokens_;
      salt_ = other.salt_;
      identity_ = other.identity_;
      priority_ = other.priority_;
      origin_ = other.origin_;
    }
    return *this;
  }
  MutableBlock(const MutableBlock&) = delete;
  MutableBlock& operator=(const MutableBlock&) = delete;
  ~MutableBlock() { reset_handle(); }

  [[nodiscard]] bool valid() const { return core_ != nullptr; }
  [[nodiscard]] BlockId id() const { return id_; }
  [[nodiscard]] MutableState state() const { return state_; }
  [[nodiscard]] std::uint32_t num_tokens() const { return num_tokens_; }
  // Meaningful once Complete.
  [[nodiscard]] const BlockIdentity& identity() const { return identity_; }
  [[nodiscard]] std::uint8_t priority() const { return priority_; }
  // Retention priority used by the priority eviction policy once registered. Clamped to the maximum.
  void set_priority(std::uint8_t priority) {
    priority_ = priority > kMaxRetentionPriority ? kMaxRetentionPriority : priority;
  }
  // The tier the block's bytes were copied from (onboarding); by default its own tier (computed here).
  // Reported back once, when the block first becomes inactive (ReleaseObserver).
  void set_origin(CacheLevel origin) { origin_ = origin; }
  [[nodiscard]] CacheLevel origin() const { return origin_; }

  // Reset → Partial: starts a block of the sequence whose previous block is `parent` (nullopt = first).
  [[nodiscard]] absl::Status init(SaltHash salt, std::optional<SequenceHash> parent);
  // Partial: adds tokens. OutOfRange if they would exceed page_size (nothing is added then).
  [[nodiscard]] absl::Status append(std::span<const std::uint32_t> tokens);
  // Partial with exactly page_size tokens → Complete: hashes the block.
  [[nodiscard]] absl::Status commit();
  // Reset → Complete from a block of a TokenBlockSequence (its hashes are taken as computed there).
  [[nodiscard]] absl::Status apply(const TokenBlock& block);
  // Reset → Complete from an identity alone: no tokens (metadata-only use, e.g. trace replay).
  [[nodiscard]] absl::Status apply(const BlockIdentity& identity);
  // Reset → Complete from an identity and the block's tokens, as a copy from another tier brings them:
  // kept when this pool keeps tokens and there are exactly page_size of them (else as apply(identity)),
  // so that its Stored event carries them.
  [[nodiscard]] absl::Status apply(const BlockIdentity& identity, std::span<const std::uint32_t> tokens);

  // The block's bytes of (layer, outer); empty when the pool has no memory bound, the memory is not host
  // addressable (device memory: see device_chunk) or indices are out of range.
  [[nodiscard]] std::span<std::byte> chunk(std::uint32_t layer, std::uint32_t outer) const;
  // What the pool's memory is (system, pinned, device); nullopt for an empty handle or a pool without memory.
  [[nodiscard]] std::optional<StorageKind> memory_kind() const {
    return core_ == nullptr ? std::nullopt : detail::memory_kind(core_);
  }
  // The CUDA device the block's bytes are on; -1 unless memory_kind() is kDevice.
  [[nodiscard]] int device_id() const { return core_ == nullptr ? -1 : detail::memory_device(core_); }
  // Device address and size of (layer, outer) for device memory, to be written by the engine's kernels or
  // copies (never dereferenced on the host); empty for other memory or indices out of range.
  [[nodiscard]] DeviceChunk device_chunk(std::uint32_t layer, std::uint32_t outer) const;

 private:
  friend class BlockPool<L>;
  MutableBlock(detail::PoolCore* core, BlockId id) : core_(core), id_(id) {}
  void reset_handle() {
    if (core_ != nullptr) detail::release_owned(std::exchange(core_, nullptr), id_);
  }

  detail::PoolCore* core_ = nullptr;
  BlockId id_{};
  MutableState state_ = MutableState::kReset;
  std::uint32_t num_tokens_ = 0;
  SaltHash salt_{};
  BlockIdentity identity_{};
  std::uint8_t priority_ = kDefaultRetentionPriority;
  CacheLevel origin_ = L;
};

// Shared ownership of a registered block. Copyable (refcounted); the last copy dropped makes the block
// inactive (evictable, still matchable). Read-only: there is no way to write through it.
template <CacheLevel L>
class ImmutableBlock {
 public:
  ImmutableBlock() = default;
  ImmutableBlock(const ImmutableBlock& other) : core_(other.core_), id_(other.id_), hash_(other.hash_) {
    if (core_ != nullptr) detail::retain_registered(core_, id_);
  }
  ImmutableBlock& operator=(const ImmutableBlock& other) {
    if (this != &other) *this = ImmutableBlock(other);
    return *this;
  }
  ImmutableBlock(ImmutableBlock&& other) noexcept
      : core_(std::exchange(other.core_, nullptr)), id_(other.id_), hash_(other.hash_) {}
  ImmutableBlock& operator=(ImmutableBlock&& other) noexcept {
    if (this != &other) {
      reset();
      core_ = std::exchange(other.core_, nullptr);
      id_ = other.id_;
      hash_ = other.hash_;
    }
    return *this;
  }
  ~ImmutableBlock() { reset(); }

  // Drops this reference now.
  void reset() {
    if (core_ != nullptr) detail::release_registered(std::exchange(core_, nullptr), id_);
  }
  [[nodiscard]] bool valid() const { return core_ != nullptr; }
  [[nodiscard]] BlockId id() const { return id_; }
  [[nodiscard]] SequenceHash sequence_hash() const { return hash_; }
  // Block hash, sequence hash and parent, as registered; all zero for an empty handle.
  [[nodiscard]] const BlockIdentity& identity() const { return detail::registered_info(core_, id_).identity; }
  // Retention priority given at registration; the default for an empty handle.
  [[nodiscard]] std::uint8_t priority() const { return detail::registered_info(core_, id_).priority; }
  // Token ids of the block; empty when the pool keeps no tokens or the block was registered without them.
  [[nodiscard]] std::span<const std::uint32_t> tokens() const { return detail::registered_tokens(core_, id_); }
  // The block's bytes of (layer, outer), read-only; empty when no memory is bound, the memory is not host
  // addressable (device memory: see device_chunk) or out of range.
  [[nodiscard]] std::span<const std::byte> chunk(std::uint32_t layer, std::uint32_t outer) const;
  // As MutableBlock's: the pool's memory kind (nullopt for an empty handle or no memory) and CUDA device.
  [[nodiscard]] std::optional<StorageKind> memory_kind() const {
    return core_ == nullptr ? std::nullopt : detail::memory_kind(core_);
  }
  [[nodiscard]] int device_id() const { return core_ == nullptr ? -1 : detail::memory_device(core_); }
  // Device address and size of (layer, outer) for device memory; the block is registered, so its bytes must
  // only be read through it. Empty for other memory or indices out of range.
  [[nodiscard]] DeviceChunk device_chunk(std::uint32_t layer, std::uint32_t outer) const;

 private:
  friend class BlockPool<L>;
  // Adopts a reference the pool already counted.
  ImmutableBlock(detail::PoolCore* core, BlockId id, SequenceHash hash) : core_(core), id_(id), hash_(hash) {}

  detail::PoolCore* core_ = nullptr;
  BlockId id_{};
  SequenceHash hash_{};
};

// A non-pinning reference: a sequence hash and its pool. upgrade() re-finds the block while it is
// still registered there.
template <CacheLevel L>
class WeakBlock {
 public:
  WeakBlock() = default;
  [[nodiscard]] SequenceHash sequence_hash() const { return hash_; }
  // The block if still registered (it becomes or stays active), else nullopt.
  [[nodiscard]] std::optional<ImmutableBlock<L>> upgrade() const;

 private:
  friend class BlockPool<L>;
  WeakBlock(BlockPool<L>* pool, SequenceHash hash) : pool_(pool), hash_(hash) {}
  BlockPool<L>* pool_ = nullptr;
  SequenceHash hash_{};
};

// Untyped implementation shared by every tier. Not for direct use: see BlockPool<L>.
namespace detail {
class PoolCore;
struct PoolCoreDeleter {
  void operator()(PoolCore* core) const;
};
using PoolCorePtr = std::unique_ptr<PoolCore, PoolCoreDeleter>;
absl::StatusOr<PoolCorePtr> make_pool_core(const BlockPoolConfig& config);
// Each returns slot ids; handles are built by the typed pool.
absl::StatusOr<std::vector<BlockId>> allocate(PoolCore* core, std::size_t count, std::vector<EvictedBlock>* evicted);
struct RegisterRequest {
  PoolCore* owner;
  BlockId id;
  MutableState state;
  BlockIdentity identity;
  std::uint8_t priority;
  std::uint32_t num_tokens;
  CacheLevel origin;
};
// On success: for each request, the registered slot (the request's own slot or the deduplicated one).
std::size_t admit(PoolCore* core, std::span<const BlockIdentity> identities, std::span<const std::uint8_t> priorities,
                  std::span<std::uint8_t> inserted, std::vector<EvictedBlock>* evicted);
std::vector<BlockId> allocate_up_to(PoolCore* core, std::size_t count, std::vector<EvictedBlock>* evicted);
// With then_release: registered last to first, then each released first to last, under the same lock.
absl::StatusOr<std::vector<BlockId>> register_blocks(PoolCore* core, std::span<const RegisterRequest> requests,
                                                     bool then_release);
std::vector<BlockId> match(PoolCore* core, std::span<const SequenceHash> hashes);
std::optional<BlockId> find(PoolCore* core, SequenceHash hash, bool for_copy);
bool contains(const PoolCore* core, SequenceHash hash);
void contains_each(const PoolCore* core, std::span<const SequenceHash> hashes, std::span<std::uint8_t> out);
std::vector<std::optional<BlockId>> find_each_for_copy(PoolCore* core, std::span<const SequenceHash> hashes);
std::size_t touch(PoolCore* core, std::span<const SequenceHash> hashes);
absl::Status reset(PoolCore* core);
PoolStatus status(const PoolCore* core);
bool discard(PoolCore* core, BlockId id, SequenceHash hash);
void release_registered_batch(PoolCore* core, std::span<const BlockId> ids);
const BlockPoolConfig& config(const PoolCore* core);
bool pins_keep_state(const PoolCore* core);
std::uint64_t policy_violations(const PoolCore* core);
}  // namespace detail

// The pool of one tier. See the contract at the top of this file.
template <CacheLevel L>
class BlockPool {
 public:
  // InvalidArgument naming the field for a bad config (num_blocks, page_size, memory/layout mismatch).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<BlockPool>> create(BlockPoolConfig config) {
    config.level = L;
    auto core = detail::make_pool_core(config);
    if (!core.ok()) return core.status();
    return std::unique_ptr<BlockPool>(new BlockPool(*std::move(core)));
  }

  [[nodiscard]] const BlockPoolConfig& config() const { return detail::config(core_.get()); }
  [[nodiscard]] std::uint32_t num_blocks() const { return config().num_blocks; }
  [[nodiscard]] std::uint32_t page_size() const { return config().page_size; }

  // `count` Reset blocks: free slots first, then evicted inactive ones. All or nothing:
  // ResourceExhausted (nothing allocated) when fewer than `count` can be had.
  // With `evicted`, also reports the registered blocks evicted to make room (see EvictedBlock).
  [[nodiscard]] absl::StatusOr<std::vector<MutableBlock<L>>> allocate(std::size_t count,
                                                                      std::vector<EvictedBlock>* evicted = nullptr) {
    auto ids = detail::allocate(core_.get(), count, evicted);
    if (!ids.ok()) return ids.status();
    return owned(*ids);
  }

  // allocate() of as many as fit: up to `count` blocks, fewer (possibly none) when fewer are free or
  // evictable; taken under one lock, so no other allocation can shrink the room in between.
  [[nodiscard]] std::vector<MutableBlock<L>> allocate_up_to(std::size_t count,
                                                            std::vector<EvictedBlock>* evicted = nullptr) {
    return owned(detail::allocate_up_to(core_.get(), count, evicted));
  }

  // Registers Complete blocks, in order (parents before children). All or nothing: if any block is not
  // Complete or not from this pool, nothing changes and the error names its index. On success every
  // handle in `blocks` is consumed (left invalid) and the result holds one ImmutableBlock per input: the
  // block itself, or the block already registered under its sequence hash (the duplicate slot is freed).
  [[nodiscard]] absl::StatusOr<std::vector<ImmutableBlock<L>>> register_blocks(std::span<MutableBlock<L>> blocks) {
    auto ids = detail::register_blocks(core_.get(), requests_of(blocks), /*then_release=*/false);
    if (!ids.ok()) return ids.status();
    std::vector<ImmutableBlock<L>> out;
    out.reserve(ids->size());
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      blocks[i].core_ = nullptr;  // ownership passed to the pool by register_blocks
      out.push_back(ImmutableBlock<L>(core_.get(), (*ids)[i], blocks[i].identity_.sequence_hash));
    }
    return out;
  }

  // Registers `blocks` last to first (a batch written tail first is registered parent before child, as its
  // Stored events say) and then releases each, first to last (the last is the most recent), under one lock:
  // for blocks nobody needs to hold, such as copies into a lower tier. Returns, per block, the slot now
  // registered under its hash: its own, or the one registered before (de-duplication).
  [[nodiscard]] absl::StatusOr<std::vector<BlockId>> register_inactive(std::span<MutableBlock<L>> blocks) {
    auto ids = detail::register_blocks(core_.get(), requests_of(blocks), /*then_release=*/true);
    if (!ids.ok()) return ids.status();
    for (MutableBlock<L>& b : blocks) b.core_ = nullptr;  // ownership passed to the pool
    return ids;
  }

  // The leading identities that fit (as many as there are free or evictable slots) allocated, applied with
  // priorities[i] and registered as by register_inactive(): the same evictions, registrations and releases
  // in the same order as those calls, under one lock and without handles — a copy into a tier that holds
  // identities only. Returns how many were admitted (the rest did not fit); for each admitted identity,
  // inserted[i] is 1 when it was newly registered, 0 when another block held its hash already
  // (de-duplication). REQUIRES: priorities.size() == identities.size() <= inserted.size().
  [[nodiscard]] std::size_t admit(std::span<const BlockIdentity> identities, std::span<const std::uint8_t> priorities,
                                  std::span<std::uint8_t> inserted, std::vector<EvictedBlock>* evicted = nullptr) {
    return detail::admit(core_.get(), identities, priorities, inserted, evicted);
  }

  // The longest prefix of `hashes` registered here, as held blocks (matched inactive blocks become active).
  [[nodiscard]] std::vector<ImmutableBlock<L>> match(std::span<const SequenceHash> hashes) {
    std::vector<BlockId> ids = detail::match(core_.get(), hashes);
    std::vector<ImmutableBlock<L>> out;
    out.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) out.push_back(ImmutableBlock<L>(core_.get(), ids[i], hashes[i]));
    return out;
  }

  // Marks registered inactive blocks as just used (eviction order). Returns how many were found.
  std::size_t touch(std::span<const SequenceHash> hashes) { return detail::touch(core_.get(), hashes); }

  // Drops every registration (Cleared event). FailedPrecondition, changing nothing, while any block is
  // held (owned or active): those would otherwise dangle.
  [[nodiscard]] absl::Status reset() { return detail::reset(core_.get()); }

  [[nodiscard]] PoolStatus status() const { return detail::status(core_.get()); }

  // Drops the registration of a block whose bytes turned out damaged (a failed checksum): it stops being
  // matchable now (Removed event), and its slot goes to Free — not Inactive — when its last handle is
  // released. Returns false, changing nothing, for an empty or foreign handle or a block already dropped.
  bool discard(const ImmutableBlock<L>& block) {
    if (block.core_ != core_.get()) return false;
    return detail::discard(core_.get(), block.id_, block.hash_);
  }

  // Releases many held blocks under one lock, last block first, so that a chain's tail becomes
  // evictable before its parents. Equivalent to dropping each handle in reverse order.
  void release(std::vector<ImmutableBlock<L>>&& blocks) {
    std::vector<BlockId> ids;
    ids.reserve(blocks.size());
    for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
      if (it->core_ == core_.get()) {
        ids.push_back(it->id_);
        it->core_ = nullptr;
      }
    }
    blocks.clear();  // handles of another pool release themselves
    detail::release_registered_batch(core_.get(), ids);
  }

  [[nodiscard]] WeakBlock<L> downgrade(const ImmutableBlock<L>& block) { return WeakBlock<L>(this, block.hash_); }

  // Whether `hash` is registered here, without holding it or changing its eviction order.
  [[nodiscard]] bool contains(SequenceHash hash) const { return detail::contains(core_.get(), hash); }
  // For each of `hashes`, whether it is registered here (out[i] = 1 or 0), under one lock; like contains().
  // REQUIRES: out.size() == hashes.size().
  void contains_each(std::span<const SequenceHash> hashes, std::span<std::uint8_t> out) const {
    detail::contains_each(core_.get(), hashes, out);
  }
  // Whether `block` is a handle of this pool (false for an empty handle or one of another pool).
  [[nodiscard]] bool owns(const ImmutableBlock<L>& block) const { return block.core_ == core_.get(); }

  // The block registered under `hash`, held; nullopt when absent.
  [[nodiscard]] std::optional<ImmutableBlock<L>> find(SequenceHash hash) {
    std::optional<BlockId> id = detail::find(core_.get(), hash, /*for_copy=*/false);
    if (!id) return std::nullopt;
    return ImmutableBlock<L>(core_.get(), *id, hash);
  }
  // As find(), for a copy to another tier (an offload's source): not a use. The eviction policy gets the
  // block back as it was (EvictionPolicy::pin / unpin) unless a match or find() uses it meanwhile.
  [[nodiscard]] std::optional<ImmutableBlock<L>> pin_for_copy(SequenceHash hash) {
    std::optional<BlockId> id = detail::find(core_.get(), hash, /*for_copy=*/true);
    if (!id) return std::nullopt;
    return ImmutableBlock<L>(core_.get(), *id, hash);
  }
  // The token ids of slot `id`: a block registered here (e.g. pinned for a copy), or an EvictedBlock's
  // slot whose new MutableBlock has not been written yet. Empty when the pool keeps no tokens or the block
  // was stored without them.
  [[nodiscard]] std::span<const std::uint32_t> slot_tokens(BlockId id) const {
    return detail::registered_tokens(core_.get(), id);
  }
  // Whether a pin_for_copy() and its release leave the eviction policy exactly as it was (EvictionPolicy::
  // pins_keep_state): a copy that needs no pin may then skip it without changing a later decision.
  [[nodiscard]] bool pins_keep_state() const { return detail::pins_keep_state(core_.get()); }
  // How often a user eviction policy named a victim that was not evictable and was overruled (0 for the
  // built-in policies): see register_eviction_policy().
  [[nodiscard]] std::uint64_t policy_violations() const { return detail::policy_violations(core_.get()); }
  // pin_for_copy() of each hash under one lock: one handle per hash, an empty one where it is absent.
  [[nodiscard]] std::vector<ImmutableBlock<L>> pin_for_copy(std::span<const SequenceHash> hashes) {
    std::vector<std::optional<BlockId>> ids = detail::find_each_for_copy(core_.get(), hashes);
    std::vector<ImmutableBlock<L>> out(hashes.size());
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      if (ids[i]) out[i] = ImmutableBlock<L>(core_.get(), *ids[i], hashes[i]);
    }
    return out;
  }

 private:
  explicit BlockPool(detail::PoolCorePtr core) : core_(std::move(core)) {}
  // Handles for slots an allocation just took.
  std::vector<MutableBlock<L>> owned(std::span<const BlockId> ids) {
    std::vector<MutableBlock<L>> blocks;
    blocks.reserve(ids.size());
    for (BlockId id : ids) blocks.push_back(MutableBlock<L>(core_.get(), id));
    return blocks;
  }
  static std::vector<detail::RegisterRequest> requests_of(std::span<const MutableBlock<L>> blocks) {
    std::vector<detail::RegisterRequest> requests;
    requests.reserve(blocks.size());
    for (const MutableBlock<L>& b : blocks) {
      requests.push_back({b.core_, b.id_, b.state_, b.identity_, b.priority_, b.num_tokens_, b.origin_});
    }
    return requests;
  }
  detail::PoolCorePtr core_;
};

template <CacheLevel L>
std::optional<ImmutableBlock<L>> WeakBlock<L>::upgrade() const {
  if (pool_ == nullptr) return std::nullopt;
  return pool_->find(hash_);
}

// ---- MutableBlock / ImmutableBlock methods (inline, tier-independent logic in block_handles.cc) ----
namespace detail {
absl::Status mutable_init(MutableState& state, std::uint32_t& num_tokens, SaltHash& salt_out, BlockIdentity& identity,
                          SaltHash salt, std::optional<SequenceHash> parent);
absl::Status mutable_append(PoolCore* core, BlockId id, MutableState state, std::uint32_t& num_tokens,
                            std::span<const std::uint32_t> tokens);
absl::Status mutable_commit(PoolCore* core, BlockId id, MutableState& state, std::uint32_t num_tokens, SaltHash salt,
                            BlockIdentity& identity);
absl::Status mutable_apply_tokens(PoolCore* core, BlockId id, MutableState& state, std::uint32_t& num_tokens,
                                  BlockIdentity& identity, const TokenBlock& block);
absl::Status mutable_apply_identity(PoolCore* core, BlockId id, MutableState& state, BlockIdentity& identity,
                                    const BlockIdentity& from, std::span<const std::uint32_t> tokens = {});
std::span<std::byte> chunk_bytes(const PoolCore* core, BlockId id, std::uint32_t layer, std::uint32_t outer);
DeviceChunk device_chunk_of(const PoolCore* core, BlockId id, std::uint32_t layer, std::uint32_t outer);
}  // namespace detail

template <CacheLevel L>
absl::Status MutableBlock<L>::init(SaltHash salt, std::optional<SequenceHash> parent) {
  if (core_ == nullptr) return absl::FailedPreconditionError("MutableBlock::init: handle is empty");
  return detail::mutable_init(state_, num_tokens_, salt_, identity_, salt, parent);
}
template <CacheLevel L>
absl::Status MutableBlock<L>::append(std::span<const std::uint32_t> tokens) {
  if (core_ == nullptr) return absl::FailedPreconditionError("MutableBlock::append: handle is empty");
  return detail::mutable_append(core_, id_, state_, num_tokens_, tokens);
}
template <CacheLevel L>
absl::Status MutableBlock<L>::commit() {
  if (core_ == nullptr) return absl::FailedPreconditionError("MutableBlock::commit: handle is empty");
  return detail::mutable_commit(core_, id_, state_, num_tokens_, salt_, identity_);
}
template <CacheLevel L>
absl::Status MutableBlock<L>::apply(const TokenBlock& block) {
  if (core_ == nullptr) return absl::FailedPreconditionError("MutableBlock::apply: handle is empty");
  return detail::mutable_apply_tokens(core_, id_, state_, num_tokens_, identity_, block);
}
template <CacheLevel L>
absl::Status MutableBlock<L>::apply(const BlockIdentity& identity) {
  if (core_ == nullptr) return absl::FailedPreconditionError("MutableBlock::apply: handle is empty");
  return detail::mutable_apply_identity(core_, id_, state_, identity_, identity);
}
template <CacheLevel L>
absl::Status MutableBlock<L>::apply(const BlockIdentity& identity, std::span<const std::uint32_t> tokens) {
  if (core_ == nullptr) return absl::FailedPreconditionError("MutableBlock::apply: handle is empty");
  return detail::mutable_apply_identity(core_, id_, state_, identity_, identity, tokens);
}
template <CacheLevel L>
std::span<std::byte> MutableBlock<L>::chunk(std::uint32_t layer, std::uint32_t outer) const {
  return core_ == nullptr ? std::span<std::byte>{} : detail::chunk_bytes(core_, id_, layer, outer);
}
template <CacheLevel L>
std::span<const std::byte> ImmutableBlock<L>::chunk(std::uint32_t layer, std::uint32_t outer) const {
  return core_ == nullptr ? std::span<const std::byte>{} : detail::chunk_bytes(core_, id_, layer, outer);
}
template <CacheLevel L>
DeviceChunk MutableBlock<L>::device_chunk(std::uint32_t layer, std::uint32_t outer) const {
  return core_ == nullptr ? DeviceChunk{} : detail::device_chunk_of(core_, id_, layer, outer);
}
template <CacheLevel L>
DeviceChunk ImmutableBlock<L>::device_chunk(std::uint32_t layer, std::uint32_t outer) const {
  return core_ == nullptr ? DeviceChunk{} : detail::device_chunk_of(core_, id_, layer, outer);
}

}  // namespace kvbm
