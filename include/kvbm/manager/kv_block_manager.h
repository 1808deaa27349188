// KvBlockManager: the facade an inference engine calls (DESIGN.md §2 "manager").
//
// Owns the tiers — G1 (device memory, or system memory on a machine without a GPU), optional G2 (host
// memory) and G3 (local disk) — each a Storage + Layout + BlockPool, the TransferEngine that copies
// between them and the OffloadManager that moves blocks down in the background and back up on demand.
//
// Typical request cycle:
//   auto seq = kvbm->make_sequence(prompt_tokens, salt);
//   auto hits = kvbm->match_and_onboard(seq->sequence_hashes());   // cached prefix, made resident in G1
//   auto fresh = kvbm->allocate(seq->num_full_blocks() - hits->size());
//   ... compute KV into fresh[i].chunk(layer, outer); fresh[i].apply(seq->block(hits->size() + i)) ...
//   auto registered = kvbm->register_blocks(*fresh);   // now matchable
//   kvbm->release(std::move(*registered)); kvbm->release(std::move(*hits));  // tail first; now written
//                                                       // down the tier chain (G2, G3) in the background
//
// Custom backends: create(config, parts) builds the same manager around user-supplied pieces — a tier's
// Storage (memory the user owns or maps), its Layout (LayoutKind::kCustom), and the G4 RemoteStore in place
// of Redis. Everything else (pools, chain, metrics, events) is what the configuration gives.
//
// Thread-safety: every method may be called concurrently. Handles must not outlive the manager
// (a debug build aborts when they do).
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "kvbm/core/event_sink.h"
#include "kvbm/core/job_scheduler.h"
#include "kvbm/core/token_block_sequence.h"
#include "kvbm/manager/kvbm_config.h"
#include "kvbm/manager/manager_metrics.h"
#include "kvbm/offload/offload_manager.h"
#include "kvbm/offload/persistent_g3.h"
#include "kvbm/offload/tier.h"
#include "kvbm/remote/remote_store.h"
#include "kvbm/transfer/transfer_engine.h"

namespace kvbm {

// User-supplied pieces of one local tier (G1-G3); a null piece is built from the configuration as usual.
// The tier itself must be on in the configuration (its capacity decides the block count).
//   layout   REQUIRES: model() == config.model, num_blocks() == the tier's configured blocks.
//   storage  REQUIRES: regions that hold the tier's layout (count and sizes, Layout::check_storage). The
//            manager owns the Storage object; memory it merely points at must outlive the manager. G2's must
//            be host-addressable when G4 is on (values are packed from it); G3's replaces the disk file
//            (not with g3.persist). Whatever copies the chain makes must have a path (TransferEngine).
struct TierParts {
  std::unique_ptr<Layout> layout;
  std::unique_ptr<Storage> storage;
  [[nodiscard]] bool empty() const { return layout == nullptr && storage == nullptr; }
};

// What KvBlockManager::create(config, parts) builds around. Every piece is optional.
struct ManagerParts {
  TierParts g1;
  TierParts g2;
  TierParts g3;
  // The remote tier's store instead of Redis: G4 is on with it (g4.endpoints must then be empty) and needs
  // G2. REQUIRES: payload_bytes() == config.model.bytes_per_block(), fingerprint() ==
  // model_fingerprint(config.model). g4.deadline_ms and g4.max_batch_blocks apply; the manager calls
  // shutdown() when it goes.
  std::shared_ptr<RemoteStore> g4;
};

class KvBlockManager {
 public:
  struct Options {
    EventSink* events = nullptr;  // not owned, may be null; must outlive the manager
    // Replaces the disk I/O backend (tests inject faults through it); null = io_uring or POSIX.
    std::shared_ptr<IoBackend> io;
    // Where offload and onboarding jobs run; not owned, must outlive the manager. Null = one thread per
    // tier link and one for onboarding, owned by the manager. An InlineScheduler makes every call finish
    // its background work before it returns (kvbm replay: same input, same answer).
    JobScheduler* scheduler = nullptr;
    // Tiers hold identities only: no memory, no disk file, no copies; the chain follows the same steps.
    // Handles then have no bytes (chunk() is empty). kvbm replay --no-data.
    bool identities_only = false;
  };

  // Validates `config` and allocates every tier up front (a G3 directory without room is an error here).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KvBlockManager>> create(const KvbmConfig& config,
                                                                              Options options);
  // The same, around user-supplied pieces (ManagerParts). A piece that does not fit the configuration —
  // storage too small for the tier's blocks, a layout of another geometry or block count, a store of
  // another block size — is InvalidArgument naming the tier and both values; nothing is kept.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KvBlockManager>> create(const KvbmConfig& config,
                                                                              ManagerParts parts, Options options);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KvBlockManager>> create(const KvbmConfig& config,
                                                                              ManagerParts parts);
  // `events` (not owned, may be null) must outlive the manager; `io` replaces the disk I/O backend.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KvBlockManager>> create(const KvbmConfig& config,
                                                                              EventSink* events = nullptr,
                                                                              std::shared_ptr<IoBackend> io = nullptr) {
    return create(config, Options{events, std::move(io), nullptr, false});
  }
  // Cancels queued offloads, finishes those in flight, joins every thread.
  ~KvBlockManager();
  KvBlockManager(const KvBlockManager&) = delete;
  KvBlockManager& operator=(const KvBlockManager&) = delete;

  [[nodiscard]] const KvbmConfig& config() const { return config_; }
  [[nodiscard]] const ModelConfig& model() const { return config_.model; }
  [[nodiscard]] std::uint32_t page_size() const { return config_.model.page_size; }

  // A new token sequence for this manager's page size.
  [[nodiscard]] absl::StatusOr<TokenBlockSequence> make_sequence(std::span<const std::uint32_t> tokens,
                                                                 SaltHash salt = SaltHash{0}) const;

  // `count` fresh G1 blocks (all or nothing). Blocks evicted to make room are written down first where
  // the chain says so (write-back, or a write-through copy still queued), before this returns.
  [[nodiscard]] absl::StatusOr<std::vector<G1MutableBlock>> allocate(std::size_t count);
  // Registers Complete G1 blocks (see BlockPool::register_blocks). When they are released, write-through
  // copies them down (G2, then G3 / G4).
  [[nodiscard]] absl::StatusOr<std::vector<G1Block>> register_blocks(std::span<G1MutableBlock> blocks);
  // The longest prefix of `hashes` cached in any tier, each block credited to the first tier holding it.
  [[nodiscard]] MatchResult match(std::span<const SequenceHash> hashes);
  // Only G1.
  [[nodiscard]] std::vector<G1Block> match_g1(std::span<const SequenceHash> hashes) {
    std::vector<G1Block> hits = tiers_.g1->pool->match(hashes);
    metrics_->record_match(hashes.size(), hits.size(), 0, 0, false, false);
    return hits;
  }
  // Copies a match's G2/G3/G4 blocks into G1 in the background; wait() yields G1 blocks for the prefix.
  [[nodiscard]] std::shared_ptr<OnboardOperation> onboard(MatchResult match);
  // match + onboard + wait.
  [[nodiscard]] absl::StatusOr<std::vector<G1Block>> match_and_onboard(std::span<const SequenceHash> hashes);

  std::size_t touch(std::span<const SequenceHash> hashes) { return tiers_.g1->pool->touch(hashes); }
  // Releases a request's blocks, last first (see BlockPool::release); blocks that become inactive for the
  // first time since their registration start down the tier chain.
  void release(std::vector<G1Block>&& blocks) { tiers_.g1->pool->release(std::move(blocks)); }
  // Drops every registration in every tier once background copies are done. FailedPrecondition while
  // blocks are held.
  [[nodiscard]] absl::Status reset();
  // Waits until queued offloads and onboardings are done (tests, orderly shutdown).
  void flush();

  [[nodiscard]] PoolStatus status() const { return tiers_.g1->pool->status(); }
  // Status of one tier; all zero for a tier that is not configured.
  [[nodiscard]] PoolStatus status(CacheLevel level) const;
  [[nodiscard]] bool has_tier(CacheLevel level) const;
  // Victims of the tier's user eviction policy that its pool overruled (BlockPool::policy_violations());
  // 0 for a built-in policy and for a tier that is not configured.
  [[nodiscard]] std::uint64_t policy_violations(CacheLevel level) const;
  // Whether the tiers hold identities only (Options::identities_only).
  [[nodiscard]] bool identities_only() const { return identities_only_; }
  [[nodiscard]] OffloadStats offload_stats() const;
  [[nodiscard]] TransferStats transfer_stats() const;
  // Metrics (issue 8/8), always recorded; served as Prometheus text on GET /metrics when metrics.port != 0.
  // Other components add their values with metrics().add_collector() (and remove them before they go).
  [[nodiscard]] metrics::Registry& metrics() { return metrics_->registry(); }
  // The port GET /metrics is served on; 0 when metrics.port is 0.
  [[nodiscard]] std::uint16_t metrics_port() const { return metrics_->port(); }

  [[nodiscard]] G1Pool& g1() { return *tiers_.g1->pool; }
  [[nodiscard]] const Layout& g1_layout() const { return *tiers_.g1->layout; }
  [[nodiscard]] const TierMemory& g1_memory() const { return *tiers_.g1->memory; }

  // Narrow, read-only views of one local tier (G1-G3) for the layers above (peer) and for tests. Each is
  // null / false / nullopt for a tier this manager does not have, and for G4 (no local tier). Pointers
  // stay valid for the manager's lifetime.
  [[nodiscard]] const TierMemory* tier_memory(CacheLevel level) const;
  [[nodiscard]] const Layout* tier_layout(CacheLevel level) const;
  [[nodiscard]] const Storage* tier_storage(CacheLevel level) const;
  // Whether `hash` is registered (active or inactive) in the tier's pool.
  [[nodiscard]] bool tier_contains(CacheLevel level, SequenceHash hash) const;
  // The persistent G3 index's counters; nullopt without G3 or without g3.persist.
  [[nodiscard]] std::optional<PersistentG3Stats> g3_persist_stats() const;

 private:
  // Hands G1's releases to the offload manager once it exists (G1's pool is built before it).
  class ReleaseRelay final : public ReleaseObserver {
   public:
    void on_released(CacheLevel level, std::span<const ReleasedBlock> blocks) override {
      if (ReleaseObserver* to = to_.load(std::memory_order_acquire); to != nullptr) to->on_released(level, blocks);
    }
    void set(ReleaseObserver* to) { to_.store(to, std::memory_order_release); }

   private:
    std::atomic<ReleaseObserver*> to_{nullptr};
  };

  explicit KvBlockManager(const KvbmConfig& config) : config_(config) {}

  KvbmConfig config_;
  bool identities_only_ = false;
  ReleaseRelay release_relay_;  // before tiers_: the G1 pool points at it
  TierStack tiers_;
  PersistentG3* g3_persist_ = nullptr;  // owned by tiers_.g3 (its hooks)
  // Before engine_/offload_: its histograms outlive their threads. Its server is stopped first (destructor).
  std::unique_ptr<ManagerMetrics> metrics_ = std::make_unique<ManagerMetrics>();
  std::unique_ptr<JobScheduler> own_scheduler_;  // when Options::scheduler is null and there is a G2
  std::unique_ptr<TransferEngine> engine_;       // when G2 exists and tiers hold bytes
  std::unique_ptr<OffloadManager> offload_;      // when G2 exists; declared last: stopped first
};

}  // namespace kvbm
