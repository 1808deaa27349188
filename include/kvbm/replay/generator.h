// Synthetic request workloads for `kvbm gen` and for replay with no trace file.
//
// The workload mixes the three sources of prefix reuse seen in production traces:
//   - shared system prompts, chosen with Zipf popularity (a few are very popular);
//   - multi-turn sessions: each turn's prompt is the session's previous prompt plus new blocks
//     (the previous answer and the next user message), so it extends its own prefix;
//   - one-off prompts: a system prompt (or none) followed by blocks nobody has seen.
// Requests arrive as a Poisson process; a session's next turn waits for its think time.
//
// Blocks are real kvbm hashes: each synthetic block gets a block hash (hash-level) or block_tokens
// synthetic tokens (token-level, `tokens = true`), and sequence hashes are chained with
// compute_sequence_hash exactly as TokenBlockSequence does (no salt). Equal prefixes therefore get
// equal sequence hashes, and a token-level request re-hashed by TokenBlockSequence gives its blocks.
//
// The stream is deterministic for a seed (own distributions over std::mt19937_64, so it does not depend
// on the standard library) and lazy: only the active sessions' prompts are held, never the whole trace.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kvbm/core/model_config.h"
#include "kvbm/replay/trace.h"

namespace kvbm {

// Tokens per block when WorkloadOptions::block_tokens is 0: hash-level requests mirror Mooncake's
// 512-token blocks; token-level ones use 16 so that a written token trace stays small (a 2,000-request
// workload of ~20-block prompts is ~640 k tokens rather than ~20 M). Read a generated token trace with
// TraceOptions::block_tokens = the same value (kDefaultTokenBlockTokens unless set).
inline constexpr std::uint32_t kDefaultHashBlockTokens = 512;
inline constexpr std::uint32_t kDefaultTokenBlockTokens = 16;

// The most requests one generated workload has (`kvbm gen/replay/plan --requests`): ~40 GB of Mooncake JSONL
// for the default mix (385 bytes a request), ~190 GB for shared_documents; a bound, so that a typo (or
// 2^64 - 1) is refused instead of writing until the disk is full.
inline constexpr std::uint64_t kMaxWorkloadRequests = 100'000'000;

// An inclusive range [min, max] to draw uniformly from. REQUIRES: min <= max.
struct UniformRange {
  std::uint32_t min = 0;
  std::uint32_t max = 0;
};

struct WorkloadOptions {
  std::uint64_t seed = 1;
  std::uint64_t num_requests = 2000;  // <= kMaxWorkloadRequests
  double rate = 20.0;                 // mean arrivals per second (Poisson); > 0
  std::uint32_t block_tokens = 0;     // 0: kDefaultHashBlockTokens, or kDefaultTokenBlockTokens with tokens;
                                      // else <= ModelConfig::kMaxPageSize (a block is a model page)
  bool tokens = false;                // token-level requests (TraceRequest::tokens filled)

  // Shared system prompts.
  std::uint32_t num_system_prompts = 16;    // > 0
  double zipf_s = 1.0;                      // popularity of rank r is proportional to 1 / r^zipf_s; >= 0
  UniformRange system_prompt_blocks{2, 8};  // length of each system prompt
  double system_prompt_fraction = 0.9;      // chance that a session or one-off starts with one, in [0, 1]

  // Multi-turn sessions.
  std::uint32_t max_active_sessions = 64;  // sessions in progress at once; > 0
  UniformRange turns_per_session{2, 8};    // min >= 1
  UniformRange new_blocks_per_turn{1, 4};  // blocks each turn adds (the first turn too)
  double think_time_s = 3.0;               // mean (exponential) gap before a session's next turn; >= 0

  // One-off prompts.
  double one_off_fraction = 0.3;       // chance that a request is a one-off, in [0, 1]
  UniformRange one_off_blocks{2, 24};  // its blocks after the system prompt

  // Bursts of one-off prompts (a batch job, a crawler): of every burst_every requests, the last
  // burst_requests are one-offs of burst_blocks unique blocks with no system prompt. 0 = no bursts.
  std::uint64_t burst_every = 0;
  std::uint64_t burst_requests = 0;  // <= burst_every
  UniformRange burst_blocks{16, 48};

  // Drift of the popular set: every drift_every requests each system prompt falls one Zipf rank and the
  // last-ranked one comes in at the top (rank r names prompt (r − requests / drift_every) mod
  // num_system_prompts). 0 = a fixed ranking.
  std::uint64_t drift_every = 0;

  UniformRange output_tokens{50, 500};  // decode length reported per request
};

// Named mixes: "default", "system_prompt_heavy", "session_heavy", "one_off_heavy", and four of another
// structure: "shared_documents" (long documents read by many users), "agent_loop" (a few agents re-sending
// a growing context), "one_off_bursts" (bursts of unique prompts through a steady mix), "popularity_drift"
// (the popular system prompts change slowly). docs/eviction.md says which of them tuned the default policy.
[[nodiscard]] std::vector<std::string> workload_preset_names();
// The options of a named mix; InvalidArgument listing the names for an unknown one.
[[nodiscard]] absl::StatusOr<WorkloadOptions> workload_preset(const std::string& name);

// Checks the REQUIREs above; InvalidArgument naming the first bad field.
[[nodiscard]] absl::Status validate_workload(const WorkloadOptions& options);

// A lazy reader over the workload's num_requests requests. rewind() regenerates the same stream.
// REQUIRES: validate_workload(options).ok() (else the reader yields that error from next()).
[[nodiscard]] std::unique_ptr<TraceReader> generate_trace(const WorkloadOptions& options);

}  // namespace kvbm
