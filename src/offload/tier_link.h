// TierLink: one link of the tier chain — the copies from one tier into the tier it feeds, with the link's
// policy, admission filter, queue and scheduler lane. The chain itself (which links exist, what a G1
// release starts, onboarding) is the OffloadManager: include/kvbm/offload/offload_manager.h.
//
// A link receives ops — blocks named by identity — from the chain (G1 releases, G1 evictions) or from the
// link above it, and turns each into one action on its lower tier, decided by the op's kind, the link's
// policy and where the block came from:
//
//   op kind      what happened                          action at link U → D
//   kWrite       D's feeder U newly holds the block     write-through: insert (filter permitting); else none
//   kEvicted     U evicts it now (write-back, or a      insert (filter permitting); the source is the
//                queued copy performed by the eviction)  evicted slot
//   kOnboarded   it was onboarded into G1 from origin    origin == D: touch; D on the way from origin up:
//                                                       stage (insert, not passed on as a write); else none
//   kPromote     it just became frequent enough          D filtered, write-through: insert if absent;
//                                                       not filtered: pass it on to D's links
//
// An insert of a block D already holds touches it instead. A block D newly took by kWrite/kEvicted/
// kPromote goes on to each link out of D as kWrite; a staged block's op goes on to the link toward its
// origin (where it is touched). Ops are processed strictly in the order they arrive: runs of inserts are
// batched only as far as that changes nothing (distinct blocks absent from D, no more than D can take
// without evicting one of them).
//
// Queued work (a threaded scheduler): every op that needs U's block waits in a bounded priority queue
// (higher retention priority first, then older). When U evicts a block whose op is queued or taken but
// not yet pinned, on_upper_evicted() makes that copy from the evicted slot before the slot is reused
// (backlog = wait), or drops it (backlog = drop). With an inline scheduler nothing is ever queued.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <vector>

#include "kvbm/core/job_scheduler.h"
#include "kvbm/core/mutex.h"
#include "kvbm/offload/offload_manager.h"
#include "offload/frequency_sketch.h"

namespace kvbm::offload {

enum class OpKind : std::uint8_t { kWrite, kEvicted, kOnboarded, kPromote };

struct LinkOp {
  BlockIdentity identity;
  std::uint8_t priority = kDefaultRetentionPriority;
  OpKind kind = OpKind::kWrite;
  CacheLevel origin = CacheLevel::kG1;  // kOnboarded: the tier the block came up from
  std::uint64_t order = 0;              // arrival in the queue: older first within a priority
  [[nodiscard]] SequenceHash hash() const { return identity.sequence_hash; }
};

// What every link and the onboarding path of one OffloadManager share.
struct ChainContext {
  ChainContext(TierStack* tiers_in, TransferEngine* engine_in, const OffloadConfig& config_in,
               JobScheduler* scheduler_in, OffloadObservers observers_in);

  TierStack* const tiers;
  TransferEngine* const engine;  // null when no tier holds bytes
  const OffloadConfig config;
  JobScheduler* const scheduler;
  const OffloadObservers observers;
  const std::uint64_t bytes_per_block;
  const std::size_t batch_limit;  // blocks per batch: ≤ batch_blocks, ≤ max_bytes_in_flight
  const bool queued;              // the scheduler does not run jobs inline: work waits in queues

  // The G3 admission filter: sightings of G1 blocks as they are released. Per op, whether its block was
  // seen often enough (out[i] = 1 or 0), read under one lock. REQUIRES: out.size() == ops.size().
  void frequent_enough_each(std::span<const LinkOp> ops, std::span<std::uint8_t> out);
  // Counts a sighting of each block, in order, under one lock: crossed[i] = 1 when it brings the block
  // exactly to the filter's threshold. REQUIRES: crossed.size() == blocks.size().
  void sight_each(std::span<const ReleasedBlock> blocks, std::span<std::uint8_t> crossed);
  [[nodiscard]] bool filter_on() const { return config.g3_min_frequency > 1; }

  // Posts a job that flush() waits for. Once close() has run, a job the scheduler still holds does nothing
  // when it runs, so the scheduler may outlive the manager with jobs of it queued.
  void post(JobLane lane, JobScheduler::Job job);
  // Waits until no posted job is queued or running.
  void wait_idle();
  // Stops jobs from running: waits for those running; later ones are skipped.
  void close();

  Mutex sketch_mu;
  FrequencySketch sketch ABSL_GUARDED_BY(sketch_mu);

  // Shared with every posted job, which may outlive the context.
  struct JobGate {
    Mutex mu;
    std::condition_variable_any cv;
    std::uint64_t queued ABSL_GUARDED_BY(mu) = 0;
    std::uint64_t running ABSL_GUARDED_BY(mu) = 0;
    bool open ABSL_GUARDED_BY(mu) = true;
  };
  const std::shared_ptr<JobGate> gate = std::make_shared<JobGate>();
};

class TierLink {
 public:
  TierLink(ChainContext& ctx, CacheLevel upper, CacheLevel lower, OffloadMode mode, bool filtered);
  virtual ~TierLink() = default;
  TierLink(const TierLink&) = delete;
  TierLink& operator=(const TierLink&) = delete;

  [[nodiscard]] CacheLevel upper() const { return upper_; }
  [[nodiscard]] CacheLevel lower() const { return lower_; }
  void add_child(TierLink* child) { children_.push_back(child); }
  [[nodiscard]] const std::vector<TierLink*>& children() const { return children_; }
  // Whether the upper tier's evictions must be reported (on_upper_evicted): in write-back, or while work
  // can wait in the queue.
  [[nodiscard]] bool wants_evictions() const { return ctx_.queued || mode_ == OffloadMode::kWriteBack; }
  // Whether `level` is this link's lower tier or below it.
  [[nodiscard]] bool reaches(CacheLevel level) const;

  // Takes `ops` in order: processes them now (inline scheduler) or queues them for the link's lane.
  void push(std::vector<LinkOp> ops);
  // U evicted `evicted` for an allocation whose slots still hold their bytes: their queued copies and,
  // in write-back, the blocks themselves are copied into D now. Returns when done.
  void on_upper_evicted(std::span<const EvictedBlock> evicted);
  // Stops: later pushes are ignored; without `drain`, queued ops are dropped (counted as dropped).
  void stop(bool drain);
  // Whether nothing is queued or in progress.
  [[nodiscard]] bool idle() const;
  [[nodiscard]] LinkStats stats() const;

 protected:
  enum class Action : std::uint8_t { kNothing, kFiltered, kPassOn, kTouch, kInsert, kStage, kInsertIfAbsent };

  // Processes `ops` in order (see the top of this file). `sources` is empty, or holds for each op the
  // slot of U to copy from (an evicted slot) instead of the block registered in U.
  virtual void process(std::span<const LinkOp> ops, std::span<const BlockId> sources) = 0;

  // Ops on their way to the links out of D, one list per link, in order.
  using Outbox = std::vector<std::vector<LinkOp>>;

  // The action of each op (see the top of this file), the admission filter read under one lock.
  void classify_each(std::span<const LinkOp> ops, std::span<Action> actions);
  // Collects what an op leaves behind for the links out of D: `inserted` = D newly took the block.
  void pass_on(Outbox& out, const LinkOp& op, Action action, bool inserted) const;
  // Pushes what pass_on() collected to the links out of D (with an inline scheduler they run now, before
  // D's next allocation can evict what they copy).
  void send(Outbox& out);
  [[nodiscard]] Outbox make_outbox() const { return Outbox(children_.size()); }
  // The end of a batch of inserts: counts what D newly took (inserted[i]) and collects what each op leaves
  // behind for the links out of D. `bytes`: the batch moved bytes (counted in LinkStats::bytes).
  void finish_batch(Outbox& out, std::span<const LinkOp> ops, std::span<const Action> actions,
                    std::span<const bool> inserted, bool bytes);
  // U evicted `evicted`: the links out of D make their copies first (D's allocations call this).
  void tell_children_evicted(std::span<const EvictedBlock> evicted);
  // The source of an op in progress is gone from U: whether that is a loss (backlog = drop, or no eviction
  // made the copy), rather than an eviction having made the copy already.
  [[nodiscard]] bool lost_source(SequenceHash hash);

  void add(std::uint64_t LinkStats::*field, std::uint64_t n = 1);
  [[nodiscard]] bool has_children() const { return !children_.empty(); }

  ChainContext& ctx_;
  const CacheLevel upper_;
  const CacheLevel lower_;
  const OffloadMode mode_;
  const bool filtered_;

 private:
  struct EntryOrder {
    bool operator()(const LinkOp& a, const LinkOp& b) const {
      if (a.priority != b.priority) return a.priority < b.priority;
      return a.order > b.order;
    }
  };
  // Queued ops of one hash that need U's block, and what became of them.
  struct Pending {
    std::uint32_t queued = 0;   // in the queue
    std::uint32_t taken = 0;    // popped for a batch, source not pinned yet
    std::uint32_t skip = 0;     // queued ones an eviction copied already: drop them when popped
    std::uint32_t covered = 0;  // taken ones an eviction copied already
    std::optional<LinkOp> op;   // the first of them (what the eviction performs)
  };

  [[nodiscard]] static bool needs_source(const LinkOp& op, CacheLevel lower);
  // The action of `op`; `frequent`: whether its block passes the admission filter (read by a filtered link).
  [[nodiscard]] Action classify(const LinkOp& op, bool frequent) const;
  // Inline scheduler: processes `ops` now, unless the link is stopping.
  void process_now(std::span<const LinkOp> ops);
  void enqueue_locked(LinkOp op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pops up to batch_limit ops, marking them taken; ops an eviction already copied are left out.
  [[nodiscard]] std::vector<LinkOp> take_batch_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void run_batch(std::vector<LinkOp> batch);
  // A taken batch has been processed: its pending entries are closed.
  void done_taking(std::span<const LinkOp> batch);
  void job();

  std::vector<TierLink*> children_;  // links out of D, set before any work arrives
  JobLane lane_;

  mutable Mutex mu_;
  std::priority_queue<LinkOp, std::vector<LinkOp>, EntryOrder> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::uint64_t order_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t queue_peak_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;  // batches being processed (lane job or a producer)
  bool scheduled_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  mutable Mutex stats_mu_;
  LinkStats stats_ ABSL_GUARDED_BY(stats_mu_);
};

// A link between two pool tiers (G1 → G2, G2 → G3): allocates in D, copies with the TransferEngine
// (nothing to copy when the tiers hold identities only), runs D's hooks, registers in D.
template <CacheLevel U, CacheLevel D>
class PoolLink final : public TierLink {
 public:
  PoolLink(ChainContext& ctx, Tier<U>& up, Tier<D>& down, OffloadMode mode, bool filtered)
      : TierLink(ctx, U, D, mode, filtered), up_(up), down_(down) {}

 private:
  void process(std::span<const LinkOp> ops, std::span<const BlockId> sources) override;
  // A run of inserts and stages (consecutive ops): batched as far as order allows.
  void insert_run(Outbox& out, std::span<const LinkOp> ops, std::span<const Action> actions,
                  std::span<const BlockId> sources);
  // Copies `ops` (distinct, absent from D, no more than D can take) into D and registers them.
  void write_batch(Outbox& out, std::span<const LinkOp> ops, std::span<const Action> actions,
                   std::span<const BlockId> sources);

  // write_batch() for tiers without bytes: the `go` ops admitted into D in one pool call.
  void admit_batch(Outbox& out, std::span<const LinkOp> ops, std::span<const Action> actions,
                   std::span<const std::uint32_t> go, bool report);

  Tier<U>& up_;
  Tier<D>& down_;
};

}  // namespace kvbm::offload
