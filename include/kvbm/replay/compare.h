// Policy comparisons (`kvbm replay --compare lru,learned,optimal --sweep g1=1000,2000`): the same trace
// replayed metadata-only under several eviction policies at several G1 capacities, as one table, one CSV
// and one SVG chart (hit rate against capacity, one line per policy).
#pragma once

#include <absl/status/statusor.h>

#include <string>
#include <vector>

#include "kvbm/replay/replay.h"
#include "kvbm/replay/sweep.h"

namespace kvbm {

struct PolicyComparison {
  std::vector<std::string> policies;    // as given: eviction policy names or "optimal"
  std::vector<std::string> capacities;  // as given in the sweep
  std::vector<std::uint64_t> capacity_blocks;
  // reports[p][c]: policy p at capacity c.
  std::vector<std::vector<ReplayReport>> reports;
};

// Splits "lru,s3fifo,optimal" and checks each name (an eviction policy or "optimal"). InvalidArgument
// naming the bad one.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> parse_policy_list(const std::string& text);

// Replays `trace` (rewinding in between) once per policy and G1 capacity of `spec` (which must be g1),
// metadata only, with `base`'s other options.
[[nodiscard]] absl::StatusOr<PolicyComparison> run_comparison(TraceReader& trace, const ReplayOptions& base,
                                                              const std::vector<std::string>& policies,
                                                              const SweepSpec& spec);

// The report header (trace, model, settings), then block hit rate per capacity (rows) and policy (columns,
// five at a time so that no line is wider than kReportColumns), then each policy's ratio to the first column
// and, when "optimal" is among them, its share of the optimum.
[[nodiscard]] std::string comparison_table(const PolicyComparison& c);
// One JSON object on one line: trace, block_tokens, model, bytes_per_block, stored_bytes_per_block,
// settings (as format_report_json), policies, and results: one {policy, capacity, capacity_blocks,
// capacity_bytes, requests, blocks_total, blocks_hit, hit_rate, token_hit_rate} per policy and capacity.
[[nodiscard]] std::string comparison_json(const PolicyComparison& c);
// policy,capacity,capacity_blocks,requests,blocks_total,blocks_hit,hit_rate,token_hit_rate
[[nodiscard]] std::string comparison_csv(const PolicyComparison& c);
// Hit rate against G1 capacity (log scale), one polyline and marker per policy, titled with the trace and
// the model.
[[nodiscard]] std::string comparison_svg(const PolicyComparison& c);

}  // namespace kvbm
