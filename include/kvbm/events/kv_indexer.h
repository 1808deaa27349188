// KvIndexer: the router's index of which worker holds which KV blocks, on which medium (DESIGN.md §5).
//
// A router consumes every worker's event batches (apply) and, for an incoming request, asks which
// worker already holds the longest prefix of it (find_matches). kvbm's block hashes are sequence hashes:
// each names its whole prefix, so the index needs no parent links — hash → {(worker, media)} is enough.
//
// State: for every hash some worker reports, a small list of (worker, medium mask) sorted by worker;
// for every worker, the set of hashes it holds (so AllBlocksCleared and remove_worker are O(its blocks)).
// A (hash, worker) entry is in one of two states:
//   absent      the worker holds the hash on no medium (never stored, or removed from every medium);
//   present     the worker holds it on the media of a non-empty mask. Stored adds a medium bit,
//               Removed clears one (the entry goes when the mask is empty), AllBlocksCleared and
//               remove_worker drop all of that worker's entries.
// Memory is proportional to the (hash, worker) pairs currently reported; nothing is kept for a removed
// block. Removing what was never stored is ignored (routers join streams late).
//
// Media: "GPU", "CPU", "DISK", "REMOTE" (G1..G4). A nil medium means "GPU", as in vLLM (which omitted
// the field before it had other media). An unknown medium is an error for that event only.
//
// Thread-safety: every method may be called from any thread; one mutex guards the index.
// Cost: find_matches is O(prefix length × workers still matching): one hash lookup per block and a merge
// of two sorted lists; the walk stops as soon as no worker matches. apply is O(blocks in the batch) (amortized),
// except AllBlocksCleared: O(blocks of that worker).
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/container/inlined_vector.h>
#include <absl/status/status.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "kvbm/core/mutex.h"
#include "kvbm/core/types.h"
#include "kvbm/events/kv_event.h"

namespace kvbm {

struct WorkerIdTag {};
// The id a router gives one worker's event stream (Dynamo's worker id, a ZMQ endpoint's index, ...).
using WorkerId = StrongId<WorkerIdTag, std::uint64_t>;

// The medium of an event ("GPU" → G1, "CPU" → G2, "DISK" → G3, "REMOTE" → G4; nil → G1); nullopt for
// any other string.
[[nodiscard]] std::optional<CacheLevel> medium_level(const std::optional<std::string>& medium);

// One worker's answer to a query.
struct WorkerMatch {
  WorkerId worker;
  // Longest prefix of the query the worker holds, each block on at least one medium. > 0.
  std::uint32_t matched_blocks = 0;
  // Per medium (indexed by CacheLevel): the longest prefix held entirely on that medium.
  std::array<std::uint32_t, kNumCacheLevels> matched_on{};
  friend bool operator==(const WorkerMatch&, const WorkerMatch&) = default;
};

struct KvIndexerStats {
  std::uint64_t workers = 0;          // workers holding at least one block
  std::uint64_t hashes = 0;           // distinct hashes held by some worker
  std::uint64_t entries = 0;          // (hash, worker) pairs
  std::uint64_t events_applied = 0;   // events applied (all kinds)
  std::uint64_t events_rejected = 0;  // events with an unknown medium (ignored)
};

class KvIndexer {
 public:
  KvIndexer() = default;
  KvIndexer(const KvIndexer&) = delete;
  KvIndexer& operator=(const KvIndexer&) = delete;

  // Applies one batch of `worker`'s events, in order. Every valid event is applied even when another is
  // not; InvalidArgument naming the first bad event (its index and medium) if any had an unknown medium.
  [[nodiscard]] absl::Status apply(WorkerId worker, const EventBatch& batch);
  [[nodiscard]] absl::Status apply(WorkerId worker, const KvEvent& event);

  // Forgets everything `worker` reported (the worker left, or its stream must be resynchronized).
  void remove_worker(WorkerId worker);

  // For every worker holding at least the first block of `sequence_hashes` (a request's sequence hashes
  // in order): its longest matched prefix, overall and per medium. Sorted by worker id.
  [[nodiscard]] std::vector<WorkerMatch> find_matches(std::span<const std::uint64_t> sequence_hashes) const;

  [[nodiscard]] KvIndexerStats stats() const;

 private:
  struct Holder {
    WorkerId worker;
    std::uint8_t media = 0;  // bit i: held on CacheLevel(i); never 0 while in the index
  };
  // Sorted by worker id, so a query intersects it with the candidate list by a merge.
  using Holders = absl::InlinedVector<Holder, 2>;

  [[nodiscard]] absl::Status apply_locked(WorkerId worker, const KvEvent& event, std::size_t index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void store_locked(WorkerId worker, std::uint64_t hash, std::uint8_t bit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void remove_locked(WorkerId worker, std::uint64_t hash, std::uint8_t bit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void clear_worker_locked(WorkerId worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops (hash, worker) from index_ only; the caller keeps worker_blocks_ in step.
  void erase_holder_locked(std::uint64_t hash, WorkerId worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  absl::flat_hash_map<std::uint64_t, Holders> index_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<WorkerId, absl::flat_hash_set<std::uint64_t>> worker_blocks_ ABSL_GUARDED_BY(mu_);
  std::uint64_t entries_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t events_applied_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t events_rejected_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kvbm
