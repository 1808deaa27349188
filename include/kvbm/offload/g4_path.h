// G4Path: the remote tier (G4) as the tier chain reaches it — puts, deadline-bounded lookups, fetches
// (DESIGN.md §4: remoteness is a property of a tier). The OffloadManager owns one when g4.endpoints is set
// (Redis) or a user RemoteStore is given (ManagerParts::g4); its G2 → G4 link calls put() on the link's
// lane, match() and fetch() serve matching and onboarding.
//
//   put     the caller hands blocks whose bytes sit in slots of a host tier it keeps stable meanwhile; each
//           becomes a value (canonical order, header with identity and checksum: kvbm/remote/remote_store.h)
//           and the batch is put and waited for. While the store is Unavailable the batch is dropped at once
//           (counted): write-through to G4 is best effort, never a backlog.
//   match   asks `exists` for the hashes and returns the found prefix. It waits at most deadline_ms; nodes
//           that did not answer by then are marked slow (their keys fail fast until they answer again), and
//           their keys end the prefix.
//   fetch   gets the blocks (waiting at most deadline_ms), verifies each value (header + checksum) and
//           returns the longest intact prefix. A missing, damaged, late or unavailable block ends the prefix
//           there: a miss, never wrong bytes.
//
// Events (issue 26), with Options::events: a BlockStored (medium of G4, "REMOTE") for the blocks each put
// stored, with the tokens the caller gives; a BlockRemoved for a key this path put that match() or fetch()
// then finds gone (NotFound: expired, evicted by Redis, deleted); a node that is down or late tells
// nothing. The hashes this path put are kept (a hash set of 8-byte keys) to tell a key it put from one
// another worker put, until they are found gone.
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <absl/container/flat_hash_set.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kvbm/core/event_sink.h"
#include "kvbm/core/mutex.h"
#include "kvbm/pool/block_pool.h"
#include "kvbm/remote/remote_config.h"
#include "kvbm/remote/remote_store.h"
#include "kvbm/storage/storage.h"

namespace kvbm {

// G4 counters as the tier chain sees them (blocks unless named), plus the store's own.
struct G4Stats {
  std::uint64_t g2_to_g4 = 0;             // blocks put (write-through from G2)
  std::uint64_t g4_to_g2 = 0;             // blocks fetched and verified (onboarding)
  std::uint64_t put_bytes = 0;            // value bytes put
  std::uint64_t fetch_bytes = 0;          // payload bytes fetched
  std::uint64_t put_failed = 0;           // blocks whose put failed (node down, error reply)
  std::uint64_t put_dropped = 0;          // blocks not put: store Unavailable
  std::uint64_t put_skipped_evicted = 0;  // gone from G2 before their turn
  std::uint64_t lookups = 0;              // hashes asked in match()
  std::uint64_t hits = 0;                 // hashes match() found (the prefix it returned)
  std::uint64_t misses = 0;               // match() calls whose prefix ended before the hashes did
  std::uint64_t unavailable = 0;          // match()/fetch calls answered without asking (store Unavailable)
  std::uint64_t deadline_missed = 0;      // match()/fetch calls cut at deadline_ms
  std::uint64_t fetch_truncated = 0;      // fetches that ended early (miss, damage, late)
  std::uint64_t fetch_corrupt = 0;        // fetched values that failed verification
  RemoteHealth health = RemoteHealth::kUnavailable;
  RemoteStats store;
};

class G4Path {
 public:
  struct Options {
    std::uint32_t deadline_ms = 20;
    std::uint32_t max_batch_blocks = 64;
    EventSink* events = nullptr;  // not owned, must outlive the path; null = no events
    std::uint32_t page_size = 0;  // block_size of the Stored events
  };
  // A block to put: its identity and the slot of the host tier (put()'s `memory`) holding its bytes.
  struct PutBlock {
    BlockIdentity identity;
    BlockId slot;
    // Its tokens, for the Stored event; empty when the host tier keeps none (the event manager then
    // synthesizes them).
    std::span<const std::uint32_t> tokens = {};
  };
  // A fetched block: its identity and payload (the block's bytes in canonical order).
  struct Fetched {
    BlockIdentity identity;
    std::span<const std::byte> payload;
  };
  // What fetch() returns: the blocks, viewing the values it owns.
  struct FetchResult {
    std::vector<Fetched> blocks;
    RemoteResult values;
  };

  // `store` may also be held by its creator (a user backend, KvBlockManager::create with parts); shutdown()
  // shuts it down for everyone.
  G4Path(std::shared_ptr<RemoteStore> store, Options options);
  ~G4Path();
  G4Path(const G4Path&) = delete;
  G4Path& operator=(const G4Path&) = delete;

  struct PutResult {
    std::uint64_t blocks = 0;  // put and acknowledged
    std::uint64_t bytes = 0;   // their value bytes
  };
  // Puts `blocks` from `memory` (host-addressable), in batches of ≤ max_batch_blocks, waiting for each.
  PutResult put(const TierMemory& memory, std::span<const PutBlock> blocks);
  // The leading hashes G4 holds (bounded by deadline_ms).
  [[nodiscard]] std::vector<SequenceHash> match(std::span<const SequenceHash> hashes);
  // The longest intact prefix of `hashes` (bounded by deadline_ms).
  [[nodiscard]] FetchResult fetch(std::span<const SequenceHash> hashes);
  void shutdown();

  [[nodiscard]] G4Stats stats() const;
  [[nodiscard]] RemoteStore& store() { return *store_; }

 private:
  void add(std::uint64_t G4Stats::*field, std::uint64_t n);
  // Events: the blocks of `part` that were stored; the keys of `hashes` this path put and found gone.
  void report_stored(std::span<const PutBlock> part, const RemoteResult& r);
  void report_gone(std::span<const SequenceHash> hashes, const RemoteResult& r);

  const std::shared_ptr<RemoteStore> store_;
  const Options options_;

  mutable Mutex stats_mu_;
  G4Stats stats_ ABSL_GUARDED_BY(stats_mu_);

  Mutex put_mu_;
  absl::flat_hash_set<std::uint64_t> put_ ABSL_GUARDED_BY(put_mu_);  // with events: hashes put, not seen gone
};

// A G4Path on Redis for `config` (validated), values sized and fingerprinted for `model`.
[[nodiscard]] absl::StatusOr<std::unique_ptr<G4Path>> make_redis_g4_path(const G4Config& config,
                                                                         const ModelConfig& model,
                                                                         EventSink* events = nullptr);

}  // namespace kvbm
