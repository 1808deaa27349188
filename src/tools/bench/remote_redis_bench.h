// `kvbm bench remote` (Redis half): G4 put and get throughput through RedisStore next to redis-benchmark's
// SET and GET against the same server in the same run (issue 7/8, "Benchmark").
//
// The server is one the benchmark starts itself (redis-server on a free 127.0.0.1 port, no persistence,
// killed at the end) or the one named by `endpoint`. kvbm's figures: `blocks` blocks of `block_bytes` put
// in batches of `batch` (one pipeline per batch, one connection, at most 4 batches queued), then read back
// the same way, every value verified (header + xxh3 checksum) and counted. Bytes are payload bytes (the
// 64-byte header is not counted). The baseline: `redis-benchmark -t set,get -d block_bytes -P batch
// -n blocks -c 1 -q` — the same value size, pipeline depth, request count and one connection; GB/s =
// requests per second × block_bytes. Ratios are kvbm / redis-benchmark.
//
// Thread-safety: none; one call at a time.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <string>

namespace kvbm::bench {

struct RemoteBenchOptions {
  std::string endpoint;                      // "host:port"; empty = start a redis-server here
  std::uint64_t block_bytes = 256ull << 10;  // payload bytes per block (redis-benchmark -d)
  std::uint32_t batch = 32;                  // blocks per call (redis-benchmark -P)
  std::uint32_t blocks = 1024;               // blocks put and got (redis-benchmark -n)
  std::string redis_server = "/usr/bin/redis-server";
  std::string redis_benchmark = "/usr/bin/redis-benchmark";
};

struct RemoteBenchReport {
  std::string endpoint;
  bool own_server = false;
  std::uint64_t block_bytes = 0;
  std::uint32_t batch = 0;
  std::uint32_t blocks = 0;
  double g4_put_gbps = 0;  // GB/s (1e9 bytes/s) of payload
  double g4_get_gbps = 0;
  std::uint64_t verified = 0;  // blocks read back and verified
  double redis_set_rps = 0, redis_get_rps = 0;
  double redis_set_gbps = 0, redis_get_gbps = 0;
  double put_ratio = 0, get_ratio = 0;  // kvbm / redis-benchmark
  std::string redis_benchmark_command;
  double wall_seconds = 0;
  // UCX peer transfer (issue 7/8, second half): the lead adds its figures here.
};

// An error when the server cannot be started or reached, a block fails to round-trip, or redis-benchmark
// fails or prints nothing parseable.
[[nodiscard]] absl::StatusOr<RemoteBenchReport> run_remote_redis_bench(const RemoteBenchOptions& options);

}  // namespace kvbm::bench
