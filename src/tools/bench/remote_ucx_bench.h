// UCX pull benchmark: worker B reads blocks from worker A's tier with UcxAgent::read_blocks, two
// processes on loopback, and in the same run ucx_perftest's ucp_get bandwidth between two processes
// over the same transport and message size — the figure a hand-written UCX program reaches here.
//
// The peer (worker A) is a forked child of the calling process: call this from a process that has no
// other threads running (the `kvbm` CLI, kvbm_bench_ucx). Blocks are pulled in a shuffled order so that
// no two blocks merge into one operation: each UCX get is one block, as each perftest get is one message.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <string>

namespace kvbm {

struct UcxPullBenchOptions {
  std::uint64_t block_bytes = 1 << 20;     // bytes per block: a multiple of 32, at most 32 MiB
  std::uint32_t blocks = 256;              // blocks in A's tier (and in B's)
  std::uint32_t batch = 32;                // blocks per read_blocks call (waited for before the next)
  std::uint64_t total_bytes = 1ull << 30;  // bytes to pull (whole passes over the blocks, at least one)
  std::string tls = "tcp";                 // UCX_TLS for both sides and for ucx_perftest
  std::string perftest = "ucx_perftest";   // looked up on PATH; empty = skip the baseline
  std::uint32_t timeout_s = 120;           // for each process, then it is killed
};

struct UcxPullBenchResult {
  std::string tls;
  std::uint64_t block_bytes = 0;
  std::uint32_t blocks = 0;
  std::uint32_t batch = 0;
  std::string mode = "two processes (forked peer)";
  std::uint64_t pulled_bytes = 0;
  std::uint64_t operations = 0;  // UCX gets issued
  double seconds = 0;
  double pull_gbps = 0;      // 1e9 bytes per second
  double perftest_gbps = 0;  // ucx_perftest -t ucp_get -s block_bytes, "overall" bandwidth, in 1e9 bytes/s
  std::uint64_t perftest_iters = 0;
  double ratio = 0;            // pull_gbps / perftest_gbps (0 without a baseline)
  std::string perftest_error;  // why there is no baseline, if there is none
  bool verified = false;       // every pulled block was byte-checked after the timed passes
};

// InvalidArgument naming the option for a bad one; Unavailable when the peer or UCX cannot start;
// DataLoss when a pulled block is not byte-exact.
[[nodiscard]] absl::StatusOr<UcxPullBenchResult> run_ucx_pull_bench(const UcxPullBenchOptions& options);

// One line of JSON with every field.
[[nodiscard]] std::string ucx_pull_bench_json(const UcxPullBenchResult& result);

}  // namespace kvbm
