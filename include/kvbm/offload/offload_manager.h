// OffloadManager: the tier chain (DESIGN.md §4) — blocks move down G1 → G2 → G3 (and G2 → G4) in the
// background and come back up on demand.
//
// The chain is a set of links, one into each tier below G1, each from the tier it is fed by: G1 → G2,
// G2 → G3, G2 → G4. Every link has its policy (write-through, write-back or none), an optional admission
// filter (frequency, in front of G3), a bounded queue, a cap on bytes in flight and a lane of the job
// scheduler. What is specific to a tier kind — persistence (G3), remoteness (G4) — is a hook of that
// tier (TierHooks, the remote store), not a branch of the chain.
//
// Offload. When a G1 block becomes inactive for the first time after its registration (the engine
// released it; ReleaseObserver), its origin decides what the chain does, link by link, in release order
// (a request's blocks tail first):
//   computed in G1          written through: inserted into G2, and each tier that newly took it passes it
//                           on to the tiers it feeds (G3 behind the frequency filter, G4)
//   onboarded from tier T   inserted into each tier on the way from T up (G3 → G2 → G1: into G2), and
//                           touched (made most recent) in T
// Inserting a block a tier already holds only touches it; inserting into a full tier evicts its least
// valuable block (its eviction policy). A link copies a batch at a time (≤ batch_blocks, ≤
// max_bytes_in_flight), registers a target only once its copy arrived intact (checksummed for disk),
// and never lets a copy change the source tier's eviction order.
// Write-back: a link in write-back copies a block when the tier above evicts it, before the slot is
// reused (the evicting allocation waits). No silent loss: with backlog = wait (default) a block whose
// copy is still queued when its tier evicts it is copied by the eviction first, and a full queue makes
// its producer do the oldest queued copies; with backlog = drop both are dropped and counted.
// Replay semantics (specs/replay-semantics.md) are what this gives with an InlineScheduler: every link's
// work for a release is done, in order, before the release returns.
//
// Onboarding. match() finds the longest prefix across the tiers; onboard() makes it resident in G1:
// fresh G1 blocks (evicting as allocation does), filled from G2, G3 (read straight into G1) or G4
// (fetched), registered in G1 with their origin. A block that fails (I/O error, checksum mismatch) ends
// the prefix: later blocks are dropped, never handed out. G3 reads have until Options::g3_deadline (from
// onboard()): one still running then is a miss like a failed read (DeadlineExceeded, counted in
// deadline_misses) and its G1 slots are held back until it ends. Onboardings that need only G2 copies run
// on their own lane, and host copies on their own transfer workers, so a slow or hung disk never delays
// them. A G3 block that fails its checksum leaves G3
// at once (BlockPool::discard, and its persistent record): the next match does not find it again.
//
// Thread-safety: all methods are thread-safe. shutdown() (or destruction) drains or cancels every queue
// and waits for every job this manager posted.
#pragma once

#include <absl/status/statusor.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kvbm/core/job_scheduler.h"
#include "kvbm/core/mutex.h"
#include "kvbm/metrics/metrics.h"
#include "kvbm/offload/g4_path.h"
#include "kvbm/offload/offload_config.h"
#include "kvbm/offload/tier.h"
#include "kvbm/transfer/transfer_engine.h"

namespace kvbm {

// What one link did, blocks unless named.
struct LinkStats {
  std::uint64_t written = 0;             // copied in and registered: write-through and write-back
  std::uint64_t staged = 0;              // copied in on their way up from a lower tier (onboarding path)
  std::uint64_t bytes = 0;               // bytes of written + staged
  std::uint64_t touched = 0;             // blocks touched because they were hits in this tier
  std::uint64_t present = 0;             // inserts of blocks the tier already held (touched instead)
  std::uint64_t write_back = 0;          // of written: copied when the tier above evicted them (write-back)
  std::uint64_t at_eviction = 0;         // queued copies made by the eviction of their source (backlog = wait)
  std::uint64_t producer_runs = 0;       // queued copies made by a producer that found the queue full (wait)
  std::uint64_t dropped_queue_full = 0;  // backlog = drop: not queued, the queue was full
  std::uint64_t dropped_evicted = 0;     // backlog = drop: the source was evicted before its turn
  std::uint64_t filtered = 0;            // kept out by the admission filter (frequency)
  std::uint64_t no_space = 0;            // every block of the target tier was held
  std::uint64_t transfer_failures = 0;   // copies that failed (I/O error, short transfer)
  std::uint64_t checksum_failures = 0;   // copies read back damaged
  std::uint64_t queue_depth = 0;         // now
  std::uint64_t queue_peak = 0;
};

struct OffloadStats {
  // Per link, indexed by the tier it feeds (links[2] is G2 → G3); links[0] is unused.
  std::array<LinkStats, kNumCacheLevels> links{};
  // Blocks onboarded into G1, by the tier they came from (onboarded_from[0] is unused).
  std::array<std::uint64_t, kNumCacheLevels> onboarded_from{};

  // The figures the report, metrics and Python have always shown, derived from the above.
  std::uint64_t g1_to_g2 = 0, g2_to_g3 = 0;                // written into G2 / G3
  std::uint64_t g2_to_g1 = 0, g3_to_g1 = 0, g3_to_g2 = 0;  // onboarded; G3 blocks staged into G2
  std::uint64_t bytes_down = 0, bytes_up = 0;
  std::uint64_t skipped_present = 0;  // inserts of blocks the target already held (touched instead)
  std::uint64_t skipped_evicted = 0;  // backlog = drop: sources evicted before their turn
  std::uint64_t dropped_queue_full = 0;
  std::uint64_t filtered_frequency = 0;
  std::uint64_t no_space = 0;
  std::uint64_t transfer_failures = 0;  // copies down, and reads up, that failed
  std::uint64_t checksum_failures = 0;  // blocks read back damaged (DataLoss): treated as misses
  std::uint64_t dropped_damaged = 0;    // of those, G3 blocks dropped from G3 at once (never read again)
  std::uint64_t deadline_misses = 0;    // G3 blocks whose read missed g3.deadline_ms: misses, like failed reads
  std::uint64_t onboard_truncated = 0;  // onboardings cut short by a failed block or no G1 space
  std::uint64_t queue_peak_g1_g2 = 0, queue_peak_g2_g3 = 0;
  std::uint64_t write_back_blocks = 0;
  std::uint64_t copied_at_eviction = 0;  // backlog = wait: queued copies made by their source's eviction
  std::uint64_t copied_by_producer = 0;  // backlog = wait: queued copies made by a producer (queue full)
  std::uint64_t queue_depth_g1_g2 = 0, queue_depth_g2_g3 = 0, onboard_queue_depth = 0;
  std::uint64_t g4_to_g1 = 0;
  G4Stats g4;
};

class OffloadManager;

// The result of one onboarding: G1 blocks for the longest prefix that could be made resident.
class OnboardOperation {
 public:
  // An operation that is already done with `result` (no copy was needed, or the request was refused).
  [[nodiscard]] static std::shared_ptr<OnboardOperation> finished(absl::StatusOr<std::vector<G1Block>> result);

  [[nodiscard]] bool done() const;
  // Blocks until done. The vector holds the prefix's G1 blocks in order (matched and onboarded).
  [[nodiscard]] absl::StatusOr<std::vector<G1Block>> wait();
  // Blocks until done or `deadline`; whether it is done (then wait() returns at once). For callers that
  // must stay responsive while they wait (the Python binding checks for signals between calls).
  [[nodiscard]] bool wait_until(std::chrono::steady_clock::time_point deadline) const;
  // Seconds from onboard() to completion (valid once done).
  [[nodiscard]] double latency_seconds() const;
  // Blocks the match found that could not be made resident (no G1 slot, a failed read); valid once done.
  [[nodiscard]] std::size_t truncated() const;
  // Whether the prefix was cut because every G1 block was held (no slot could be had); valid once done.
  [[nodiscard]] bool out_of_slots() const;

 private:
  friend class OffloadManager;
  void finish(absl::StatusOr<std::vector<G1Block>> result, double latency, std::size_t truncated = 0,
              bool out_of_slots = false);

  mutable Mutex mu_;
  mutable std::condition_variable_any cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool taken_ ABSL_GUARDED_BY(mu_) = false;
  double latency_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t truncated_ ABSL_GUARDED_BY(mu_) = 0;
  bool out_of_slots_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusOr<std::vector<G1Block>> result_ ABSL_GUARDED_BY(mu_);
};

// Latency recording for metrics; null histograms are not recorded. Not owned: they must outlive the
// OffloadManager. Batch latency = one link batch (write-through, write-back or at eviction), from its
// start to registration; onboarding = onboard() to completion, for matches that needed G2/G3/G4.
struct OffloadObservers {
  metrics::Histogram* g1_to_g2_batch_seconds = nullptr;
  metrics::Histogram* g2_to_g3_batch_seconds = nullptr;
  metrics::Histogram* onboard_seconds = nullptr;
};

class OffloadManager {
 public:
  struct Options {
    // Where link and onboarding jobs run; not owned, must outlive the manager. REQUIRES: non-null.
    JobScheduler* scheduler = nullptr;
    OffloadObservers observers;
    std::unique_ptr<G4Path> g4;  // the remote tier under G2 (may be null); owned from here on
    // Longest an onboarding waits for its G3 reads, from onboard(); past it they are misses (0: no bound).
    std::chrono::milliseconds g3_deadline{0};
  };

  // `tiers` and `engine` must outlive the manager; `engine` may be null when no tier holds bytes.
  // G1 must exist; every lower tier must have bytes exactly when G1 has.
  OffloadManager(TierStack* tiers, TransferEngine* engine, const OffloadConfig& config, Options options);
  ~OffloadManager();
  OffloadManager(const OffloadManager&) = delete;
  OffloadManager& operator=(const OffloadManager&) = delete;

  // G1's pool reports its releases here (BlockPoolConfig::on_release of G1).
  [[nodiscard]] ReleaseObserver* g1_release_observer();
  // Whether G1's allocations must report what they evict (on_g1_evicted): with write-back G1 → G2, or while
  // copies can wait in a queue. Otherwise an eviction has nothing to write down.
  [[nodiscard]] bool wants_g1_evictions() const;
  // G1 evicted these blocks for an allocation whose slots (now the caller's MutableBlocks) still hold their
  // bytes: their queued copies are made now (or dropped, backlog = drop), and with write-back G1 → G2 they
  // are copied down. Returns once done: only then may the caller write the slots.
  void on_g1_evicted(std::span<const EvictedBlock> evicted);

  // The longest prefix of `hashes` across the tiers (see MatchResult).
  [[nodiscard]] MatchResult match(std::span<const SequenceHash> hashes);
  // Starts making the match resident in G1 (on the onboarding lane).
  [[nodiscard]] std::shared_ptr<OnboardOperation> onboard(MatchResult match);
  [[nodiscard]] bool has_g4() const;

  // Waits until every queued copy and onboarding has finished.
  void flush();
  // Stops taking work: drain = finish what is queued first; otherwise it is dropped and waiting
  // onboardings end Cancelled. Waits for every job already running. Idempotent.
  void shutdown(bool drain);

  [[nodiscard]] OffloadStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
