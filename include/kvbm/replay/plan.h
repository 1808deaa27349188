// Capacity planning (`kvbm plan`): how large G2 (host memory) must be, behind a given G1, to reach a
// share of the prefix hits an unlimited cache would get, and what a G3 (disk) tier adds behind it.
//
// Every figure is what `kvbm replay --no-data` computes at that configuration (README.md "Replay
// semantics"), exactly, never an estimate. How it is computed (docs/planning.md):
//   - LRU in G1 and G2 with write-through (the default of a plan): the G2 curve comes from one stack pass
//     (kvbm/replay/stack_distance.h), with the capacities the pass cannot answer re-simulated exactly;
//   - any other policy or offload mode, and every G3 curve: `--no-data` replays, several at a time on a
//     thread pool, each with its own manager (one replay uses one thread).
// Hit rate is blocks hit / blocks referenced: a request's hits are its cached prefix.
//
// Thread-safety: run_plan uses its own threads and returns when they are done; the format functions are
// pure.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kvbm/replay/replay.h"
#include "kvbm/replay/trace.h"

namespace kvbm {

struct PlanOptions {
  // The model (bytes per block), G1 (fixed), eviction policies, offload modes and filter; block_tokens and
  // trace_name. G2 and G3 capacities in it are ignored; `data` is forced off.
  ReplayOptions base;
  std::string model_name;        // for the report
  double target = 0.8;           // share of the attainable hit rate to reach, in (0, 1]
  bool g3 = false;               // also the G3 curve behind the recommended G2
  std::uint32_t points = 30;     // G2 curve points, >= 2
  std::uint32_t g3_points = 10;  // G3 curve points, >= 2
  std::uint32_t threads = 0;     // replays (and re-simulations) at once; 0 = the hardware's threads
};

// One configuration of a curve: the varied tier's capacity and what the chain hit there.
struct PlanPoint {
  std::uint64_t blocks = 0;  // capacity of the varied tier (G2 or G3)
  std::uint64_t bytes = 0;   // blocks × bytes per block
  std::uint64_t blocks_hit = 0;
  std::uint64_t g1_hits = 0, g2_hits = 0, g3_hits = 0;
  std::string source;  // "stack pass", "re-simulated" or "replay"
};

struct PlanReport {
  std::string trace, model;
  std::string model_formula;  // "32 layers × 2 (K, V) × ... = 64.0 MiB"; "" for a block size alone
  std::uint64_t bytes_per_block = 0;
  std::uint32_t block_tokens = 0;
  std::uint64_t requests = 0, blocks_total = 0, distinct_blocks = 0;
  std::uint64_t g1_blocks = 0;
  KvbmConfig config;  // as planned (G2/G3 off; each point sets its own)

  std::uint64_t attainable_hits = 0;  // unlimited cache (`kvbm replay --g1-blocks unlimited`)
  std::uint64_t g1_alone_hits = 0;    // G2 = G3 = 0
  double target = 0.8;

  std::string method;                 // how the G2 curve was computed: "stack pass" or "replays"
  std::string method_reason;          // why replays, when they were used
  std::uint64_t pass_deviations = 0;  // stack pass: touches that break LRU inclusion (see stack_distance.h)
  std::vector<PlanPoint> curve;       // G2, ascending
  bool recommended_found = false;     // some G2 reaches target × attainable
  bool recommended_exact = false;     // the smallest G2 in blocks (else: the smallest curve point)
  PlanPoint recommended;              // G2; the largest curve point when none reaches the target
  PlanPoint g2_saturated;             // G2 from which the curve no longer grows (the largest curve point)
  std::vector<PlanPoint> g3_curve;    // G3 behind the recommended G2, ascending; empty without g3

  double load_seconds = 0;              // reading the trace into memory
  double plan_seconds = 0;              // everything after loading, the reference replay excluded
  double pass_seconds = 0;              // of which the stack pass (0 with replays)
  double replay_seconds = 0;            // one `--no-data` replay at the recommended G2, run after the plan
  std::uint64_t replay_blocks_hit = 0;  // its blocks_hit, equal to recommended.blocks_hit
  std::uint32_t threads = 0;

  [[nodiscard]] double rate(std::uint64_t hits) const {
    return blocks_total == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(blocks_total);
  }
  [[nodiscard]] double goal_rate() const { return target * rate(attainable_hits); }
};

// Reads `trace` to its end into memory, then plans. InvalidArgument for bad options (naming the field);
// trace errors as the reader gives them; Internal when the reference replay disagrees with the plan.
[[nodiscard]] absl::StatusOr<PlanReport> run_plan(TraceReader& trace, const PlanOptions& options);

// The readable report: lines of at most 100 columns, ending in a newline.
[[nodiscard]] std::string format_plan_text(const PlanReport& report);
// One JSON object: model, bytes_per_block, attainable_hit_rate, curve [{g2_bytes, g2_blocks, hit_rate,
// blocks_hit, ...}], recommended {g2_bytes, hit_rate, ...}, g3_curve, settings, timings.
[[nodiscard]] std::string format_plan_json(const PlanReport& report);
// A self-contained SVG chart: hit rate against G2 size (and against G3 size, with a G3 curve).
[[nodiscard]] std::string plan_svg(const PlanReport& report);

}  // namespace kvbm
