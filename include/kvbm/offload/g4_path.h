// G4Path: the remote tier (G4) under G2 — write-through puts, deadline-bounded lookups, fetches into G2
// (issue 7/8). The OffloadManager owns one when g4.endpoints is set; it needs a G2 tier.
//
//   put     G2 registration → on_g2_registered() queues the hashes (bounded: beyond queue_capacity they
//           are dropped and counted); one G4 worker thread takes batches of ≤ max_batch_blocks, pins
//           each block in G2 just while it copies the bytes into a value (canonical order, header with
//           identity and checksum: kvbm/remote/remote_store.h), then puts the batch and waits for it.
//           Blocks evicted from G2 before their turn are skipped. While the store is Unavailable the
//           batch is dropped at once (counted): write-through is best effort, never a backlog.
//   match   match() asks exists for the hashes G1–G3 did not have, and returns the found prefix. It
//           waits at most deadline_ms; nodes that did not answer by then are marked slow (their keys
//           fail fast until they answer again), and their keys end the prefix.
//   fetch   fetch_into_g2() gets the blocks (waiting at most deadline_ms), verifies each value
//           (header + checksum), copies the longest intact prefix into fresh G2 blocks, applies each
//           block's identity and registers them. A missing, damaged, late or unavailable block ends the
//           prefix there: a miss, never wrong bytes. The OffloadManager then onboards them G2 → G1.
//
// Thread-safety: all methods are thread-safe. shutdown() (or the destructor) joins the worker.
#pragma once

#include <absl/status/statusor.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "kvbm/core/mutex.h"
#include "kvbm/offload/tier.h"
#include "kvbm/remote/remote_config.h"
#include "kvbm/remote/remote_store.h"

namespace kvbm {

using G2MutableBlock = MutableBlock<CacheLevel::kG2>;

// G4 counters as the tier stack sees them (blocks unless named), plus the store's own.
struct G4Stats {
  std::uint64_t g2_to_g4 = 0;             // blocks put (write-through from G2)
  std::uint64_t g4_to_g2 = 0;             // blocks fetched, verified and registered in G2 (onboarding)
  std::uint64_t put_bytes = 0;            // value bytes put
  std::uint64_t fetch_bytes = 0;          // payload bytes fetched into G2
  std::uint64_t put_failed = 0;           // blocks whose put failed (node down, error reply)
  std::uint64_t put_dropped = 0;          // blocks not put: queue full, or store Unavailable
  std::uint64_t put_skipped_evicted = 0;  // gone from G2 before their turn
  std::uint64_t lookups = 0;              // hashes asked in match()
  std::uint64_t hits = 0;                 // hashes match() found (the prefix it returned)
  std::uint64_t misses = 0;               // match() calls whose prefix ended before the hashes did
  std::uint64_t unavailable = 0;          // match()/fetch calls answered without asking (store Unavailable)
  std::uint64_t deadline_missed = 0;      // match()/fetch calls cut at deadline_ms
  std::uint64_t fetch_truncated = 0;      // fetches that ended early (miss, damage, late, no G2 space)
  std::uint64_t fetch_corrupt = 0;        // fetched values that failed verification
  RemoteHealth health = RemoteHealth::kUnavailable;
  RemoteStats store;
};

class G4Path {
 public:
  struct Options {
    std::uint32_t deadline_ms = 20;
    std::uint32_t max_batch_blocks = 64;
    std::uint32_t queue_capacity = 65536;
  };
  // Allocates up to n G2 blocks (fewer when G2 is short), as the OffloadManager does (write-back below).
  using Allocator = std::function<std::vector<G2MutableBlock>(std::size_t n)>;

  // `g2` must outlive the path. Starts the worker.
  G4Path(std::unique_ptr<RemoteStore> store, Tier<CacheLevel::kG2>* g2, Options options);
  ~G4Path();
  G4Path(const G4Path&) = delete;
  G4Path& operator=(const G4Path&) = delete;

  void on_g2_registered(std::span<const ImmutableBlock<CacheLevel::kG2>> blocks);
  // The leading hashes G4 holds (bounded by deadline_ms).
  [[nodiscard]] std::vector<SequenceHash> match(std::span<const SequenceHash> hashes);
  // The registered G2 blocks of the longest intact prefix of `hashes` (bounded by deadline_ms).
  [[nodiscard]] std::vector<ImmutableBlock<CacheLevel::kG2>> fetch_into_g2(std::span<const SequenceHash> hashes,
                                                                           const Allocator& allocate);
  // Waits until every queued put is done.
  void flush();
  // drain = put what is queued first; otherwise it is dropped. Idempotent.
  void shutdown(bool drain);

  [[nodiscard]] G4Stats stats() const;
  [[nodiscard]] RemoteStore& store() { return *store_; }

 private:
  void run();
  void put_batch(std::span<const SequenceHash> hashes);
  void add(std::uint64_t G4Stats::*field, std::uint64_t n);

  const std::unique_ptr<RemoteStore> store_;
  Tier<CacheLevel::kG2>* const g2_;
  const Options options_;

  mutable Mutex mu_;
  std::condition_variable_any cv_;
  std::condition_variable_any idle_cv_;
  std::deque<SequenceHash> queue_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  mutable Mutex stats_mu_;
  G4Stats stats_ ABSL_GUARDED_BY(stats_mu_);

  std::thread worker_;
};

// A G4Path on Redis for `config` (validated), values sized and fingerprinted for `model`.
[[nodiscard]] absl::StatusOr<std::unique_ptr<G4Path>> make_redis_g4_path(const G4Config& config,
                                                                         const ModelConfig& model,
                                                                         Tier<CacheLevel::kG2>* g2,
                                                                         std::uint32_t queue_capacity);

}  // namespace kvbm
