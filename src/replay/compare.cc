// Policy comparisons (see kvbm/replay/compare.h).
#include "kvbm/replay/compare.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/str_split.h>

#include <algorithm>
#include <cmath>

#include "kvbm/core/json_escape.h"
#include "kvbm/core/size.h"
#include "replay/report_text.h"
#include "replay/svg_chart.h"

namespace kvbm {

absl::StatusOr<std::vector<std::string>> parse_policy_list(const std::string& text) {
  std::vector<std::string> out;
  for (const auto piece : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::string name(piece.data(), piece.size());
    if (name != "optimal") {
      auto kind = parse_eviction_policy_spec(name);
      if (!kind.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--compare: '", name, "' is not optimal, and ", kind.status().message()));
      }
    }
    out.push_back(std::move(name));
  }
  if (out.empty()) return absl::InvalidArgumentError("--compare needs at least one policy, e.g. lru,learned,optimal");
  return out;
}

absl::StatusOr<PolicyComparison> run_comparison(TraceReader& trace, const ReplayOptions& base,
                                                const std::vector<std::string>& policies, const SweepSpec& spec) {
  if (spec.level != CacheLevel::kG1) return absl::InvalidArgumentError("--compare: sweep g1 (G1 alone, metadata only)");
  PolicyComparison c;
  c.policies = policies;
  c.capacities = spec.values;
  for (const std::string& name : policies) {
    ReplayOptions o = base;
    o.data = false;
    o.progress = false;
    // A comparison of G1 eviction policies: G1 alone (the lower tiers would blur it, and the offline
    // optimum is defined for one tier).
    o.config.g2 = TierConfig{};
    o.config.g3 = TierConfig{};
    o.config.g4.endpoints.clear();
    o.optimal = name == "optimal";
    if (!o.optimal) {
      auto kind = parse_eviction_policy_spec(name);
      if (!kind.ok()) return kind.status();
      o.config.g1.eviction = *kind;
    }
    auto points = run_sweep(trace, o, spec);
    if (!points.ok()) return points.status();
    std::vector<ReplayReport> row;
    if (c.capacity_blocks.empty()) {
      for (const SweepPoint& p : *points) c.capacity_blocks.push_back(p.capacity_blocks);
    }
    for (SweepPoint& p : *points) row.push_back(std::move(p.report));
    c.reports.push_back(std::move(row));
  }
  return c;
}

std::string comparison_table(const PolicyComparison& c) {
  std::string out;
  if (!c.reports.empty() && !c.reports.front().empty()) {
    out =
        format_report_header(c.reports.front().front(), "kvbm replay --compare (block hit rate by G1 eviction policy)",
                             {.swept_tier = 0, .eviction_varies = true});
  }
  // A block of rows per group of policies that fits in kReportColumns.
  constexpr std::size_t kPerRow = 5;
  const auto table = [&](const std::string& caption, const auto& cell) {
    for (std::size_t from = 0; from < c.policies.size(); from += kPerRow) {
      const std::size_t to = std::min(c.policies.size(), from + kPerRow);
      absl::StrAppend(&out, "\n", caption,
                      to - from == c.policies.size() ? ""
                      : to - from == 1               ? absl::StrCat(" (policy ", to, ")")
                                                     : absl::StrCat(" (policies ", from + 1, "-", to, ")"),
                      "\n", absl::StrFormat("  %-10s %8s %10s", "g1 size", "blocks", "bytes"));
      for (std::size_t i = from; i < to; ++i) absl::StrAppend(&out, absl::StrFormat(" %12s", c.policies[i]));
      absl::StrAppend(&out, "\n");
      for (std::size_t j = 0; j < c.capacities.size(); ++j) {
        absl::StrAppend(&out, absl::StrFormat("  %-10s %8d %10s", c.capacities[j], c.capacity_blocks[j],
                                              format_size(c.reports[0][j].tiers[0].capacity_bytes)));
        for (std::size_t i = from; i < to; ++i) absl::StrAppend(&out, cell(i, j));
        absl::StrAppend(&out, "\n");
      }
    }
  };
  table("block hit rate",
        [&](std::size_t i, std::size_t j) { return absl::StrFormat(" %11.2f%%", c.reports[i][j].hit_rate() * 100); });
  if (c.policies.empty()) return out;
  table(absl::StrCat("ratio to ", c.policies[0]), [&](std::size_t i, std::size_t j) {
    const double base = c.reports[0][j].hit_rate();
    return base > 0 ? absl::StrFormat(" %11.3fx", c.reports[i][j].hit_rate() / base) : absl::StrFormat(" %12s", "-");
  });
  const auto opt = std::find(c.policies.begin(), c.policies.end(), "optimal");
  if (opt != c.policies.end()) {
    const std::size_t o = static_cast<std::size_t>(opt - c.policies.begin());
    table("share of optimal", [&](std::size_t i, std::size_t j) {
      const double best = c.reports[o][j].hit_rate();
      return best > 0 ? absl::StrFormat(" %11.1f%%", 100 * c.reports[i][j].hit_rate() / best)
                      : absl::StrFormat(" %12s", "-");
    });
  }
  return out;
}

std::string comparison_json(const PolicyComparison& c) {
  std::string out = "{";
  if (!c.reports.empty() && !c.reports.front().empty()) {
    const ReplayReport& first = c.reports.front().front();
    absl::StrAppend(&out, "\"trace\":", json_string(first.trace), ",\"block_tokens\":", first.block_tokens, ",",
                    format_settings_json(first), ",");
  }
  absl::StrAppend(&out, "\"policies\":[");
  for (std::size_t i = 0; i < c.policies.size(); ++i) absl::StrAppend(&out, i ? "," : "", json_string(c.policies[i]));
  absl::StrAppend(&out, "],\"results\":[");
  for (std::size_t i = 0; i < c.policies.size(); ++i) {
    for (std::size_t j = 0; j < c.capacities.size(); ++j) {
      const ReplayReport& r = c.reports[i][j];
      absl::StrAppend(&out, i + j ? "," : "", "{\"policy\":", json_string(c.policies[i]),
                      ",\"capacity\":", json_string(c.capacities[j]), ",\"capacity_blocks\":", c.capacity_blocks[j],
                      ",\"capacity_bytes\":", r.tiers[0].capacity_bytes, ",\"requests\":", r.requests,
                      ",\"blocks_total\":", r.blocks_total, ",\"blocks_hit\":", r.blocks_hit,
                      absl::StrFormat(",\"hit_rate\":%.9g,\"token_hit_rate\":%.9g}", r.hit_rate(), r.token_hit_rate()));
    }
  }
  absl::StrAppend(&out, "]}");
  return out;
}

std::string comparison_csv(const PolicyComparison& c) {
  std::string out = "policy,capacity,capacity_blocks,requests,blocks_total,blocks_hit,hit_rate,token_hit_rate\n";
  for (std::size_t i = 0; i < c.policies.size(); ++i) {
    for (std::size_t j = 0; j < c.capacities.size(); ++j) {
      const ReplayReport& r = c.reports[i][j];
      absl::StrAppend(&out, c.policies[i], ",", c.capacities[j], ",", c.capacity_blocks[j], ",", r.requests, ",",
                      r.blocks_total, ",", r.blocks_hit,
                      absl::StrFormat(",%.6f,%.6f\n", r.hit_rate(), r.token_hit_rate()));
    }
  }
  return out;
}

std::string comparison_svg(const PolicyComparison& c) {
  svg::LineChart chart;
  chart.title = "kvbm replay: block hit rate by G1 eviction policy (G1 alone)";
  chart.y_label = "block hit rate (% of blocks referenced)";
  chart.y_to_100 = false;
  chart.capacities = c.capacity_blocks;
  if (!c.reports.empty() && !c.reports.front().empty()) {
    const ReplayReport& first = c.reports.front().front();
    chart.subtitle = report_text::chart_subtitle(first, {.swept_tier = 0, .eviction_varies = true}, 110);
    report_text::CapacityTicks ticks =
        report_text::capacity_ticks("G1", c.capacities, c.capacity_blocks, first.bytes_per_block);
    chart.tick_labels = std::move(ticks.labels);
    chart.tick_sublabels = std::move(ticks.sublabels);
    chart.x_label = std::move(ticks.axis);
  }
  for (std::size_t i = 0; i < c.policies.size(); ++i) {
    // optimal dashed; policies past the eighth colour dotted, with other markers.
    const std::string dash = c.policies[i] == "optimal" ? "7,4" : (i >= svg::kStyles.size() ? "2,3" : "");
    svg::Series s{c.policies[i], svg::style_for(i), dash, {}};
    for (const ReplayReport& r : c.reports[i]) s.values.push_back(r.hit_rate());
    chart.series.push_back(std::move(s));
  }
  return svg::render(chart);
}

}  // namespace kvbm
