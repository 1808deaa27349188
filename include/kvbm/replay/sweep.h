// Capacity sweeps (`kvbm replay --sweep g2=1GiB,4GiB`): the same trace replayed at several capacities of
// one tier, written as a CSV and an SVG chart of hit rate against capacity.
#pragma once

#include <absl/status/statusor.h>

#include <string>
#include <vector>

#include "kvbm/core/types.h"
#include "kvbm/replay/replay.h"

namespace kvbm {

// One tier and the capacities to try, each as blocks ("4000") or bytes ("4GiB").
struct SweepSpec {
  CacheLevel level = CacheLevel::kG1;
  std::vector<std::string> values;
};

// Parses "g1=1000,2000" / "g2=1GiB,4GiB". InvalidArgument naming what was wrong.
[[nodiscard]] absl::StatusOr<SweepSpec> parse_sweep(const std::string& text);

struct SweepPoint {
  std::string value;                  // as given
  std::uint64_t capacity_blocks = 0;  // the tier's capacity as resolved
  ReplayReport report;
};

// Replays `trace` once per value (rewinding in between) with `base` and the tier's capacity set.
[[nodiscard]] absl::StatusOr<std::vector<SweepPoint>> run_sweep(TraceReader& trace, const ReplayOptions& base,
                                                                const SweepSpec& spec);

// capacity,blocks,requests,blocks_total,blocks_hit,hit_rate,token_hit_rate,mean_request_hit_rate,g1_hits,...
[[nodiscard]] std::string sweep_csv(const SweepSpec& spec, const std::vector<SweepPoint>& points);
// A self-contained SVG: hit rate (0–100 %) against capacity (log scale), one polyline and marker per
// series (block, token, mean per request; each tier's share when more than one tier is on), titled with the
// trace, the model and the tiers held fixed; ticks as given with the other unit below; a legend.
[[nodiscard]] std::string sweep_svg(const SweepSpec& spec, const std::vector<SweepPoint>& points);
// The report header (trace, model, settings, the tiers held fixed) and a fixed-width table, for stdout.
[[nodiscard]] std::string sweep_table(const SweepSpec& spec, const std::vector<SweepPoint>& points);

}  // namespace kvbm
