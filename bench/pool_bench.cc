// kvbm_bench_pool: the block pool and hashing workloads of issue 2 under Google Benchmark. The
// workloads are those of `kvbm bench pool` (src/tools/bench/pool_workloads.h); items/s counts blocks, and
// ns_per_block is wall-clock time over the timed loop divided by the blocks it handled.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <string>

#include "tools/bench/pool_workloads.h"

namespace kvbm::bench {
namespace {

// Google Benchmark calls a benchmark function several times while it sizes the iteration count; the
// workload (and its large pre-populated pool) is built once per kind and kept for those calls.
Workload* workload_for(WorkloadKind kind, std::string* error) {
  static WorkloadKind cached_kind{};
  static std::unique_ptr<Workload> cached;
  if (cached == nullptr || cached_kind != kind) {
    cached.reset();  // free the previous pool before building the next
    auto made = make_workload(kind);
    if (!made.ok()) {
      *error = made.status().ToString();
      return nullptr;
    }
    cached = *std::move(made);
    cached_kind = kind;
  }
  return cached.get();
}

void run_workload(benchmark::State& state, WorkloadKind kind) {
  std::string error;
  Workload* workload = workload_for(kind, &error);
  if (workload == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (absl::Status s = workload->step(); !s.ok()) {
      error = s.ToString();
      state.SkipWithError(error.c_str());
      break;
    }
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  const auto blocks = static_cast<std::int64_t>(state.iterations() * workload->blocks_per_step());
  state.SetItemsProcessed(blocks);
  if (workload->bytes_per_step() > 0) {
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * workload->bytes_per_step()));
  }
  state.counters["ns_per_block"] = blocks > 0 ? ns / static_cast<double>(blocks) : 0.0;
  if (std::string summary = workload->summary(); !summary.empty() && kind == WorkloadKind::kRequestCycle) {
    state.SetLabel(summary);
  }
}

BENCHMARK_CAPTURE(run_workload, allocate_free_16, WorkloadKind::kAllocateFree16);
BENCHMARK_CAPTURE(run_workload, allocate_free_64, WorkloadKind::kAllocateFree64);
BENCHMARK_CAPTURE(run_workload, register_new, WorkloadKind::kRegisterNew);
BENCHMARK_CAPTURE(run_workload, register_dedup, WorkloadKind::kRegisterDedup);
BENCHMARK_CAPTURE(run_workload, match_hit_cold, WorkloadKind::kMatchHitCold);
BENCHMARK_CAPTURE(run_workload, match_hit_hot, WorkloadKind::kMatchHitHot);
BENCHMARK_CAPTURE(run_workload, match_miss, WorkloadKind::kMatchMiss);
BENCHMARK_CAPTURE(run_workload, request_cycle, WorkloadKind::kRequestCycle);
BENCHMARK_CAPTURE(run_workload, request_cycle_zmq, WorkloadKind::kRequestCycleZmq);
BENCHMARK_CAPTURE(run_workload, hash_token_block_sequence, WorkloadKind::kHashSequence);
BENCHMARK_CAPTURE(run_workload, hash_xxh3_one_call, WorkloadKind::kHashXxh3OneCall);
BENCHMARK_CAPTURE(run_workload, hash_xxh3_per_block, WorkloadKind::kHashXxh3PerBlock);
BENCHMARK_CAPTURE(run_workload, hash_xxh3_chained, WorkloadKind::kHashXxh3Chained);

}  // namespace
}  // namespace kvbm::bench

BENCHMARK_MAIN();
