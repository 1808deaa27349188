// Pool and hashing workloads shared by the Google Benchmark program (bench/pool_bench.cc) and
// `kvbm bench pool` (src/tools/bench_command.cc), so that both measure exactly the same thing.
//
// A Workload owns its pool and its precomputed inputs (built once, outside any timing); step() is one
// request's worth of work and handles blocks_per_step() blocks, the unit every figure is quoted in.
// The workloads and their targets are those of issue 2 ("Benchmarks"). Outside reference figures (vLLM's
// pool) are not printed, since a benchmark prints only what it measured: docs/benchmarks.md cites them.
//
// Thread-safety: none; a Workload is driven by one thread (the targets are single-thread figures).
#pragma once

#include <absl/status/statusor.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kvbm/pool/eviction_policy.h"

namespace kvbm::bench {

enum class WorkloadKind : std::uint8_t {
  kAllocateFree16,    // allocate(16), drop the handles
  kAllocateFree64,    // allocate(64), drop the handles
  kRegisterNew,       // allocate 16, apply fresh identities, register, release
  kRegisterDedup,     // the same with hashes already registered: every block deduplicates
  kMatchHitCold,      // ~100k blocks cached, a uniformly random registered 16-block chain per request
  kMatchHitHot,       // one 16-block prefix matched over and over
  kMatchMiss,         // 16 hashes that are not registered (match stops at the first)
  kRequestCycle,      // hash 16 blocks → match (8 hits) → allocate 8 → apply → register → release 16
  kRequestCycleZmq,   // the same with an EventManager + ZMQ publisher (loopback) as the pool's event sink
  kHashSequence,      // TokenBlockSequence over 4096 tokens, page 16
  kHashXxh3OneCall,   // baseline: one XXH3 call over the same 16 KiB
  kHashXxh3PerBlock,  // baseline: one XXH3 call per 64-byte block, no chaining
  kHashXxh3Chained,   // bound: raw XXH3 per block + the 16-byte chain hash, as the Dynamo scheme requires
};

// What a workload is and what it is measured against.
struct WorkloadInfo {
  WorkloadKind kind;
  std::string_view key;                       // stable identifier: JSON key, Google Benchmark name
  std::string_view name;                      // for people
  std::string_view release_path;              // how the workload hands blocks back to the pool
  std::optional<double> target_ns_per_block;  // issue 2's single-thread target, if it sets one
};

// Every workload, in the order the table prints them.
[[nodiscard]] std::span<const WorkloadInfo> all_workloads();
[[nodiscard]] const WorkloadInfo& workload_info(WorkloadKind kind);

class Workload {
 public:
  virtual ~Workload() = default;
  // Blocks handled by one step(): the unit of ns/block.
  [[nodiscard]] virtual std::size_t blocks_per_step() const = 0;
  // Bytes hashed by one step(); 0 for pool workloads.
  [[nodiscard]] virtual std::size_t bytes_per_step() const { return 0; }
  // One request. An error means the pool did not behave as the workload expects (e.g. a hit missed).
  [[nodiscard]] virtual absl::Status step() = 0;
  // A line about what the steps saw so far (e.g. hits per request); empty when there is nothing to say.
  [[nodiscard]] virtual std::string summary() const { return {}; }
};

// Builds the workload and its pool (untimed set-up: registration of the cached population, pre-fill).
[[nodiscard]] absl::StatusOr<std::unique_ptr<Workload>> make_workload(WorkloadKind kind);

// Issue 5/8: what an eviction policy costs. One operation mix for every policy — a request of 16 blocks
// matches one of 1024 popular 8-block prefixes (8 hits when cached: the pool erases them from the policy),
// allocates the rest (each allocation evicts: the policy picks a victim), registers them and releases all
// 16 (the policy inserts 16) — on a 65536-block pool pre-filled so that every allocation evicts. Hashes
// are precomputed, so the pool and its policy are all that is timed. Only `policy` varies between runs.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Workload>> make_policy_workload(EvictionPolicyKind policy);

struct Measurement {
  double ns_per_block = 0;
  // The measuring thread's CPU time per block: steadier than wall time on a shared machine (it leaves
  // out time the thread spent descheduled), for single-thread workloads.
  double cpu_ns_per_block = 0;
  double gb_per_s = 0;  // 0 unless the workload hashes bytes
  std::uint64_t steps = 0;
  double seconds = 0;
};

// Runs `workload` for about `seconds` of steady_clock time (after a short warm-up) and reports ns per
// block. REQUIRES: seconds > 0.
[[nodiscard]] absl::StatusOr<Measurement> measure(Workload& workload, double seconds);

// The CPU model and hardware thread count, for printing beside the figures.
[[nodiscard]] std::string machine_description();

}  // namespace kvbm::bench
