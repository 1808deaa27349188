// run_replay: drives a KV cache with a request trace and reports what happened (`kvbm replay`).
//
// Two engines:
//   metadata only (data = false): one BlockPool<kG1> of identities (no storage, no bytes), for fast
//     policy studies. With LRU eviction it follows exactly these sequential semantics, per request with
//     sequence hashes h0..h(n-1):
//       1. hits = the longest prefix k whose blocks are all cached;
//       2. hold those k blocks;
//       3. for i = k..n-1: if h_i is cached, hold it; otherwise take one block (a free slot first, else
//          evict the least recently released inactive block) and register h_i in it — if every slot is
//          held, stop caching this request;
//       4. release the held blocks last block first, each release making the block the most recently
//          released.
//     The pool's LRU policy and BlockPool::release (tail first) are exactly steps 3 and 4. The engine
//     batches: when none of h_k..h(n-1) is cached and they are distinct, one allocate + one register
//     call does step 3 (allocation order is eviction order, and no block changes state in between);
//     otherwise it goes block by block.
//   data (data = true): a real KvBlockManager (G1, optional G2 and G3, offload threads). Per request:
//     match across tiers, onboard the part below G1 (its latency recorded), then step 3 with real G1
//     blocks whose bytes are filled from their hash (fill_block_bytes), register (write-through offload
//     starts here), release. Every onboarded block's bytes are checked against its hash.
//
// Thread-safety: run_replay uses one thread of its own (plus the manager's background threads).
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
#include "kvbm/replay/report.h"
#include "kvbm/replay/trace.h"

namespace kvbm {

class KvBlockManager;

enum class ReplayTiming : std::uint8_t {
  kFast,   // as fast as possible (default)
  kTrace,  // request i starts at timestamp_ms / speed after the first
};

struct ReplayOptions {
  bool data = true;
  // Tiers, model (bytes per block), offload policy. Metadata mode uses only g1's capacity (blocks, or
  // bytes over the model's bytes per block) and g1.eviction.
  KvbmConfig config;
  // G1 as large as the number of distinct blocks in the trace (one extra pass over it): nothing is
  // ever evicted. Overrides config.g1's capacity.
  bool unlimited_g1 = false;
  std::uint32_t block_tokens = 512;  // tokens per trace block: token-weighted figures
  ReplayTiming timing = ReplayTiming::kFast;
  double speed = 1.0;  // kTrace: > 0; 2 = twice as fast as recorded
  // Waits for every background offload after each request: results independent of thread timing.
  bool flush_between = false;
  // Draws a progress bar with ETA on stderr. expected_requests (0 = unknown) gives the ETA.
  bool progress = false;
  std::uint64_t expected_requests = 0;
  std::string trace_name;  // for the report
  // Metadata mode only (forces it): replace g1.eviction by the offline optimum for the same sequential
  // semantics — `kvbm replay --eviction optimal`. Reads the whole trace first. See optimal_block_hits.
  bool optimal = false;
  // Data mode: receives the manager's events (not owned; must outlive the call). Null = none.
  EventSink* events = nullptr;
  // Data mode: called once the manager exists, before the first request (e.g. to add metrics collectors,
  // issue 8/8). The manager is destroyed when run_replay returns.
  std::function<void(KvBlockManager&)> on_manager;
};

// Replays `trace` from where it stands to its end (rewinding first only for the unlimited pre-pass).
// InvalidArgument for bad options (naming the field); trace errors as the reader gives them.
[[nodiscard]] absl::StatusOr<ReplayReport> run_replay(TraceReader& trace, const ReplayOptions& options);

// The offline optimum of the metadata engine (Belady): steps 1–4 above, but step 3 evicts the inactive
// block whose next use (the next request naming its hash) is farthest in the future, deepest in its request
// first on ties (so children go before parents: a child's next use is never before its parent's). Blocks
// never used again go first. Returns the blocks hit; `uncached` (optional) the misses left uncached.
// Under these semantics (every miss must be cached while a slot is evictable; hits count only as a
// prefix) Belady is optimal among eviction choices on the traces tests/replay/optimal_test.cc enumerates.
[[nodiscard]] std::uint64_t optimal_block_hits(std::span<const std::vector<SequenceHash>> requests,
                                               std::uint64_t capacity, std::uint64_t* uncached = nullptr,
                                               std::vector<std::uint64_t>* hits_per_request = nullptr);

// The bytes a block with sequence hash `hash` holds in replay: a splitmix64 stream seeded by the hash
// and the chunk index (layer × outer_dim + outer), 8 bytes per step (the tail takes the low bytes).
void fill_chunk_bytes(SequenceHash hash, std::uint32_t chunk_index, std::span<std::byte> out);
// Whether `bytes` are what fill_chunk_bytes writes for (hash, chunk_index).
[[nodiscard]] bool check_chunk_bytes(SequenceHash hash, std::uint32_t chunk_index, std::span<const std::byte> bytes);

// Model presets for --model: "Llama-3.1-8B", "Llama-3.1-70B", "Qwen3-8B", "DeepSeek-V3" (page_size set
// to block_tokens). InvalidArgument listing the names for an unknown one.
[[nodiscard]] absl::StatusOr<ModelConfig> model_preset(const std::string& name, std::uint32_t block_tokens);
[[nodiscard]] std::vector<std::string> model_preset_names();
// Shrinks `model` to about `bytes` per block, keeping num_layers, outer_dim and page_size: the bytes of
// one token of one (layer, outer) — inner_dim × dtype_bytes — become bytes / (layers × outer × page),
// with dtype_bytes = 1. When that is below 1 byte, page_size, then outer_dim, then num_layers are lowered
// (to 1) until it fits. InvalidArgument when bytes is 0 or above the model's limits.
[[nodiscard]] absl::StatusOr<ModelConfig> model_with_block_bytes(ModelConfig model, std::uint64_t bytes);

}  // namespace kvbm
