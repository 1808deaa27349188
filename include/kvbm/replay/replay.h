// run_replay: drives a KV cache with a request trace and reports what happened (`kvbm replay`).
//
// One engine, two modes: a KvBlockManager whose background work runs on an InlineScheduler (every copy a
// request orders is done before the next request), with tiers that hold bytes (data = true: G1, G2, G3
// and G4 as configured, block bytes filled from their hash, every onboarded block verified) or identities
// only (data = false: the same tiers as pools of identities, no bytes; fast). Both follow the sequential
// semantics of README.md "Replay semantics" (../shared/specs/replay-semantics.md) and give the same hits,
// tier by tier, on every run, whatever the machine's speed. Per request: match across the tiers (step 1),
// onboard what is below G1 and cache the rest in G1 (step 2), release tail first (step 3), which starts
// the tier chain's work in G2 and G3 (steps 4 and 5).
//
// Step 2 for the blocks past the match (cache_suffix in replay.cc): when none of them is cached and they
// are distinct, one allocate + one register does them all (allocation order is eviction order, and no
// block changes state in between); otherwise block by block.
//
// Thread-safety: run_replay uses one thread of its own.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kvbm/core/event_sink.h"
#include "kvbm/manager/kvbm_config.h"
#include "kvbm/replay/model_spec.h"
#include "kvbm/replay/report.h"
#include "kvbm/replay/trace.h"

namespace kvbm {

class KvBlockManager;

// --timing trace waits at most this long for one request (24 hours after the first request, at --speed);
// a later arrival is an error before any wait, never an overflowed or decades-long sleep.
inline constexpr double kMaxTraceWaitMs = 24.0 * 3600 * 1000;

enum class ReplayTiming : std::uint8_t {
  kFast,   // as fast as possible (default)
  kTrace,  // request i starts at timestamp_ms / speed after the first (at most kMaxTraceWaitMs after it)
};

struct ReplayOptions {
  bool data = true;
  // Tiers, model (bytes per block), offload policy. config.model is the real block: every capacity given in
  // bytes is resolved into blocks with it, and every size the report gives is of it.
  KvbmConfig config;
  // The model by name and dimensions, for the report; its geometry should be config.model (when it is not,
  // e.g. config.model was set alone, the report describes config.model as an unnamed model).
  ModelSpec model;
  // Data mode: the bytes stored of each block (0, or at least the real block's: the whole block). A
  // smaller figure makes the tiers hold config.model's geometry shrunk to about this many bytes
  // (model_with_block_bytes) after their capacities are resolved in real blocks, so no hit changes.
  std::uint64_t stored_bytes_per_block = 0;
  // G1 as large as the number of distinct blocks in the trace (one extra pass over it): nothing is
  // ever evicted. Overrides config.g1's capacity.
  bool unlimited_g1 = false;
  std::uint32_t block_tokens = 512;  // tokens per trace block: token-weighted figures
  ReplayTiming timing = ReplayTiming::kFast;
  double speed = 1.0;  // kTrace: > 0; 2 = twice as fast as recorded
  // Accepted for old callers and ignored: every request's copies are always done before the next.
  bool flush_between = false;
  // Draws a progress bar with ETA on stderr. expected_requests (0 = unknown) gives the ETA.
  bool progress = false;
  std::uint64_t expected_requests = 0;
  std::string trace_name;  // for the report
  // Metadata mode only (forces it): replace g1.eviction by the offline optimum for the same sequential
  // semantics — `kvbm replay --eviction optimal`. Reads the whole trace first. See optimal_block_hits.
  bool optimal = false;
  // Receives the manager's events (not owned; must outlive the call). Null = none.
  EventSink* events = nullptr;
  // Called once the manager exists, before the first request (e.g. to add metrics collectors,
  // issue 8/8). The manager is destroyed when run_replay returns.
  std::function<void(KvBlockManager&)> on_manager;
};

// Replays `trace` from where it stands to its end (rewinding first only for the unlimited pre-pass).
// InvalidArgument for bad options (naming the field); trace errors as the reader gives them.
[[nodiscard]] absl::StatusOr<ReplayReport> run_replay(TraceReader& trace, const ReplayOptions& options);

// The offline optimum of G1 alone (Belady): the single-tier replay semantics (G2 = G3 = 0), but step 2
// evicts the inactive block whose next use (the next request naming its hash) is farthest in the future, deepest in its
// request first on ties (so children go before parents: a child's next use is never before its parent's). Blocks never
// used again go first. Returns the blocks hit; `uncached` (optional) the misses left uncached. Under these semantics
// (every miss must be cached while a slot is evictable; hits count only as a prefix) Belady is optimal among eviction
// choices on the traces tests/replay/optimal_test.cc enumerates.
[[nodiscard]] std::uint64_t optimal_block_hits(std::span<const std::vector<SequenceHash>> requests,
                                               std::uint64_t capacity, std::uint64_t* uncached = nullptr,
                                               std::vector<std::uint64_t>* hits_per_request = nullptr);

// The bytes a block with sequence hash `hash` holds in replay: a splitmix64 stream seeded by the hash
// and the chunk index (layer × outer_dim + outer), 8 bytes per step (the tail takes the low bytes).
void fill_chunk_bytes(SequenceHash hash, std::uint32_t chunk_index, std::span<std::byte> out);
// Whether `bytes` are what fill_chunk_bytes writes for (hash, chunk_index).
[[nodiscard]] bool check_chunk_bytes(SequenceHash hash, std::uint32_t chunk_index, std::span<const std::byte> bytes);

// Shrinks `model` to about `bytes` per block, keeping num_layers, outer_dim and page_size: the bytes of
// one token of one (layer, outer) — inner_dim × dtype_bytes — become bytes / (layers × outer × page),
// with dtype_bytes = 1. When that is below 1 byte, page_size, then outer_dim, then num_layers are lowered
// (to 1) until it fits. InvalidArgument when bytes is 0 or above the model's limits.
[[nodiscard]] absl::StatusOr<ModelConfig> model_with_block_bytes(ModelConfig model, std::uint64_t bytes);

}  // namespace kvbm
