// `kvbm bench offload`: what "no silent loss" costs the engine. One thread runs requests as an engine does
// (allocate G1 blocks, register, release) faster than G1 → G2 can copy them, so the offload queue is
// saturated and G1 keeps evicting blocks whose copy is still queued. Measured in the same run, the same
// workload three times:
//   g1 only   no G2: the allocation cost with nothing to write down (the baseline)
//   wait      offload.backlog = wait: such an eviction makes the copy first (and a full queue makes the
//             producer copy): the allocation stalls, nothing is lost
//   drop      offload.backlog = drop: those copies are dropped and counted; the allocation never waits
// For each: allocate() latency p50 / p99 / max (ns), blocks per second, and what happened to the copies.
//
// Thread-safety: none; one call at a time.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kvbm::bench {

struct OffloadBenchOptions {
  double seconds = 0.5;                      // measured seconds per row
  std::uint64_t block_bytes = 256ull << 10;  // bytes per block
  std::uint32_t g1_blocks = 256;
  std::uint32_t request_blocks = 16;  // blocks per request
};

struct OffloadBenchRow {
  std::string backlog;  // "g1 only", "wait", "drop"
  std::uint64_t allocations = 0;
  double alloc_p50_ns = 0, alloc_p99_ns = 0, alloc_max_ns = 0;
  double blocks_per_second = 0;
  std::uint64_t written = 0;        // blocks copied into G2
  std::uint64_t at_eviction = 0;    // of them: made by the eviction of their source (wait)
  std::uint64_t producer_runs = 0;  // of them: made by a producer that found the queue full (wait)
  std::uint64_t dropped = 0;        // dropped: queue full or source evicted first (drop)
};

struct OffloadBenchReport {
  std::vector<OffloadBenchRow> rows;
  std::uint64_t block_bytes = 0;
  std::uint32_t queue_capacity = 0;
};

[[nodiscard]] absl::StatusOr<OffloadBenchReport> run_offload_bench(const OffloadBenchOptions& options);

}  // namespace kvbm::bench
