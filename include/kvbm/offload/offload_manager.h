// OffloadManager: background copies down the tiers (G1 → G2 → G3) and onboarding back up (DESIGN.md §4).
//
// Offload. Each tier pair (G1→G2, G2→G3) has a bounded priority queue (higher retention priority first,
// then older) and one worker thread. Queue entries hold only sequence hashes: a source block is pinned
// (an ImmutableBlock) just while its copy reads it, so a backlog never stops the engine from evicting.
// A worker takes a batch (≤ batch_blocks, ≤ max_bytes_in_flight), skips blocks the target already holds
// or that were evicted meanwhile, allocates target blocks, copies with the TransferEngine, and registers a
// target block only after its copy completed (and, for disk, was checksummed). When the queue is full a
// new entry is dropped and counted. Policies per pair:
//   write-through  enqueue on registration in the tier above (G2→G3: also when a block's frequency
//                  reaches g3_min_frequency later, e.g. through hits)
//   write-back     copy when the tier above evicts the block, synchronously, before its slot is reused
// A frequency filter (count-min sketch, 4 × u8 counters per slot, halved every frequency_decay_events
// sightings) keeps blocks seen fewer than g3_min_frequency times off the disk.
//
// Onboarding. onboard(match) copies the match's G2/G3 blocks into fresh G1 blocks (G3 through G2, or
// directly when onboard_direct) on the onboarding thread and registers them in G1. A block that fails
// (I/O error, checksum mismatch) ends the prefix there: later blocks are dropped, never handed out.
//
// Thread-safety: all methods are thread-safe. Shutdown (or destruction) drains or cancels the queues
// and joins every thread.
#pragma once

#include <absl/status/statusor.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "kvbm/core/mutex.h"
#include "kvbm/metrics/metrics.h"
#include "kvbm/offload/g4_path.h"
#include "kvbm/offload/offload_config.h"
#include "kvbm/offload/tier.h"
#include "kvbm/transfer/transfer_engine.h"

namespace kvbm {

struct OffloadStats {
  // Blocks copied and registered below, per direction.
  std::uint64_t g1_to_g2 = 0, g2_to_g3 = 0;
  // Blocks onboarded into G1 from each tier; G3 blocks staged into G2 on their way.
  std::uint64_t g2_to_g1 = 0, g3_to_g1 = 0, g3_to_g2 = 0;
  std::uint64_t bytes_down = 0, bytes_up = 0;
  std::uint64_t skipped_present = 0;  // target already held the block
  std::uint64_t skipped_evicted = 0;  // source gone before its turn
  std::uint64_t dropped_queue_full = 0;
  std::uint64_t filtered_frequency = 0;  // kept off G3 by the frequency filter
  std::uint64_t no_space = 0;            // target had no free or evictable block
  std::uint64_t transfer_failures = 0;   // blocks whose copy failed (I/O error, short transfer)
  std::uint64_t checksum_failures = 0;   // blocks read back damaged (DataLoss): treated as misses
  std::uint64_t onboard_truncated = 0;   // onboardings cut short by a failed block or no G1 space
  std::uint64_t queue_peak_g1_g2 = 0, queue_peak_g2_g3 = 0;
  std::uint64_t write_back_blocks = 0;  // copied down at eviction (write-back)
  // Now (metrics, issue 8/8): offloads queued per tier pair, onboardings waiting for the onboard thread.
  std::uint64_t queue_depth_g1_g2 = 0, queue_depth_g2_g3 = 0, onboard_queue_depth = 0;
  // G4, the remote tier (issue 7/8): all zero when it is off.
  std::uint64_t g4_to_g1 = 0;  // blocks onboarded into G1 from G4 (through G2: also in g2_to_g1)
  G4Stats g4;
};

// The result of one onboarding: G1 blocks for the longest prefix that could be made resident.
class OnboardOperation {
 public:
  [[nodiscard]] bool done() const;
  // Blocks until done. The vector holds the match's G1 blocks followed by the onboarded ones.
  [[nodiscard]] absl::StatusOr<std::vector<G1Block>> wait();
  // Seconds from onboard() to completion (valid once done).
  [[nodiscard]] double latency_seconds() const;

  // Used by the OffloadManager.
  void finish(absl::StatusOr<std::vector<G1Block>> result, double latency);

 private:
  mutable Mutex mu_;
  mutable std::condition_variable_any cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool taken_ ABSL_GUARDED_BY(mu_) = false;
  double latency_ ABSL_GUARDED_BY(mu_) = 0;
  absl::StatusOr<std::vector<G1Block>> result_ ABSL_GUARDED_BY(mu_);
};

// Latency recording for metrics (issue 8/8); null histograms are not recorded. Not owned: they must
// outlive the OffloadManager. Batch latency = one worker batch (write-through) or one write-back copy,
// from dequeue to registration; onboarding = onboard() to completion, for matches that needed G2/G3.
struct OffloadObservers {
  metrics::Histogram* g1_to_g2_batch_seconds = nullptr;
  metrics::Histogram* g2_to_g3_batch_seconds = nullptr;
  metrics::Histogram* onboard_seconds = nullptr;
};

class OffloadManager {
 public:
  // `tiers` and `engine` must outlive the manager. Starts the worker threads.
  // `g4` (may be null): the remote tier under G2, owned from here on (issue 7/8).
  OffloadManager(TierStack* tiers, TransferEngine* engine, const OffloadConfig& config, OffloadObservers observers = {},
                 std::unique_ptr<G4Path> g4 = nullptr);
  ~OffloadManager();
  OffloadManager(const OffloadManager&) = delete;
  OffloadManager& operator=(const OffloadManager&) = delete;

  // Write-through: blocks just registered in G1.
  void on_g1_registered(std::span<const G1Block> blocks);
  // Write-back: G1 blocks evicted by an allocation whose slots (now the caller's MutableBlocks) still hold
  // their bytes. Copies them to G2 before returning.
  void write_back_g1(std::span<const EvictedBlock> evicted);
  // The request's blocks were seen (registered or matched) — feeds the frequency filter.
  void record_sightings(std::span<const SequenceHash> hashes);

  // G4: the leading `hashes` the remote tier holds, waiting at most g4.deadline_ms; empty without G4.
  [[nodiscard]] std::vector<SequenceHash> match_g4(std::span<const SequenceHash> hashes);
  [[nodiscard]] bool has_g4() const;

  // Starts copying the match's G2/G3 (and G4, through G2) blocks into G1.
  [[nodiscard]] std::shared_ptr<OnboardOperation> onboard(MatchResult match);

  // Waits until every queued offload and onboarding has finished.
  void flush();
  // Stops the workers: drain = finish what is queued first; otherwise queued work is dropped.
  void shutdown(bool drain);

  [[nodiscard]] OffloadStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
