// Cost of recording a metric (issue 8/8), against a plain relaxed atomic add measured in the same run:
// Counter::inc, Gauge::set, Histogram::observe (19 latency buckets), single-threaded and with 2 threads
// hitting the same metric, and the cost of rendering a manager-sized registry (a scrape).
//
//   build/bin/kvbm_bench_metrics --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>

#include "kvbm/metrics/metrics.h"

namespace {

using kvbm::metrics::Registry;

std::atomic<std::uint64_t> g_plain{0};

void BM_PlainRelaxedAtomicAdd(benchmark::State& state) {
  for (auto _ : state) g_plain.fetch_add(1, std::memory_order_relaxed);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PlainRelaxedAtomicAdd);
BENCHMARK(BM_PlainRelaxedAtomicAdd)->Threads(2);

Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

void BM_CounterInc(benchmark::State& state) {
  kvbm::metrics::Counter& c = registry().counter("kvbm_bench_total", "bench", {{"tier", "g1"}});
  for (auto _ : state) c.inc();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CounterInc);
BENCHMARK(BM_CounterInc)->Threads(2);

void BM_GaugeSet(benchmark::State& state) {
  kvbm::metrics::Gauge& g = registry().gauge("kvbm_bench_gauge", "bench");
  double v = 0;
  for (auto _ : state) g.set(v += 1);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GaugeSet);

void BM_HistogramObserve(benchmark::State& state) {
  kvbm::metrics::Histogram& h =
      registry().histogram("kvbm_bench_seconds", "bench", kvbm::metrics::latency_buckets_seconds());
  // Values spread over the buckets, as latencies are.
  static constexpr double kValues[8] = {3e-6, 4e-5, 2e-4, 9e-4, 4e-3, 3e-2, 0.3, 4.0};
  std::size_t i = 0;
  for (auto _ : state) h.observe(kValues[i++ & 7]);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramObserve);
BENCHMARK(BM_HistogramObserve)->Threads(2);

// A scrape of a registry shaped like a manager's: 9 counters, 3 histograms, 2 collectors writing ~45 samples.
void BM_Render(benchmark::State& state) {
  Registry r;
  for (const char* tier : {"g1", "g2", "g3"}) {
    r.counter("kvbm_match_hit_blocks_total", "h", {{"tier", tier}}).inc(12345);
    r.counter("kvbm_match_miss_blocks_total", "m", {{"tier", tier}}).inc(678);
    r.histogram("kvbm_offload_batch_seconds", "b", kvbm::metrics::latency_buckets_seconds(), {{"tier", tier}})
        .observe(1e-3);
  }
  r.add_collector([](kvbm::metrics::Exposition& e) {
    for (const char* tier : {"g1", "g2", "g3"}) {
      for (const char* st : {"active", "inactive", "free", "owned"}) {
        e.gauge("kvbm_pool_blocks", "p", {{"tier", tier}, {"state", st}}, 1000);
      }
    }
  });
  r.add_collector([](kvbm::metrics::Exposition& e) {
    for (int i = 0; i < 33; ++i) e.counter("kvbm_other_total", "o", {{"i", std::to_string(i)}}, i * 1e6);
  });
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string text = r.render();
    bytes = text.size();
    benchmark::DoNotOptimize(text);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Render);

}  // namespace

BENCHMARK_MAIN();
