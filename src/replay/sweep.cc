// Capacity sweeps: several replays of one trace, a CSV and a hand-written SVG chart.
#include "kvbm/replay/sweep.h"

#include <absl/status/status.h>
#include <absl/strings/ascii.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/str_split.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kvbm/core/size.h"
#include "kvbm/manager/kvbm_config.h"
#include "replay/report_text.h"
#include "replay/svg_chart.h"

namespace kvbm {
namespace {

TierConfig& tier_of(KvbmConfig& c, CacheLevel level) {
  switch (level) {
    case CacheLevel::kG2:
      return c.g2;
    case CacheLevel::kG3:
      return c.g3;
    default:
      return c.g1;
  }
}

std::string tier_key(CacheLevel level) { return absl::AsciiStrToLower(std::string(cache_level_name(level))); }

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The chart's series: block, token and mean-per-request hit rates, and each tier's share of the hits when
// more than one tier is on (dashed).
std::vector<svg::Series> series_for(const std::vector<SweepPoint>& points) {
  std::vector<svg::Series> s = {
      {"blocks hit", svg::kStyles[0], "", {}},
      {"tokens hit", svg::kStyles[1], "", {}},
      {"mean per request", svg::kStyles[2], "", {}},
  };
  for (const SweepPoint& p : points) {
    s[0].values.push_back(p.report.hit_rate());
    s[1].values.push_back(p.report.token_hit_rate());
    s[2].values.push_back(p.report.mean_request_hit_rate());
  }
  if (points.empty()) return s;
  int enabled = 0;
  for (const TierReport& t : points.front().report.tiers) enabled += t.enabled ? 1 : 0;
  if (enabled < 2) return s;
  for (int t = 0; t < kNumCacheLevels; ++t) {
    if (!points.front().report.tiers[t].enabled) continue;
    svg::Series tier{absl::StrCat("found in G", t + 1), svg::kStyles[3 + t], "7,4", {}};
    for (const SweepPoint& p : points) {
      const ReplayReport& r = p.report;
      tier.values.push_back(r.blocks_total ? static_cast<double>(r.tiers[t].hits) / r.blocks_total : 0.0);
    }
    s.push_back(std::move(tier));
  }
  return s;
}

}  // namespace

absl::StatusOr<SweepSpec> parse_sweep(const std::string& text) {
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--sweep must be TIER=V1,V2,... (TIER g1|g2|g3; V blocks or a size "
                     "like 4GiB), got '",
                     text, "'"));
  }
  SweepSpec spec;
  const std::string tier = absl::AsciiStrToLower(text.substr(0, eq));
  if (tier == "g1") {
    spec.level = CacheLevel::kG1;
  } else if (tier == "g2") {
    spec.level = CacheLevel::kG2;
  } else if (tier == "g3") {
    spec.level = CacheLevel::kG3;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--sweep tier must be g1, g2 or g3, got '", tier, "'"));
  }
  for (absl::string_view v : absl::StrSplit(text.substr(eq + 1), ',', absl::SkipWhitespace())) {
    std::string value(absl::StripAsciiWhitespace(v));
    if (all_digits(value)) {
      std::uint64_t n = 0;
      if (!absl::SimpleAtoi(value, &n) || !check_tier_blocks(tier, n).ok()) {
        return absl::InvalidArgumentError(absl::StrCat("--sweep: ", tier, " capacity must be in [1, ",
                                                       TierConfig::kMaxBlocks, "] blocks, got '", value, "'"));
      }
    } else if (auto size = parse_size(value); !size.ok() || *size == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--sweep: '", value, "' is neither a block count nor a size like 4GiB"));
    }
    spec.values.push_back(std::move(value));
  }
  if (spec.values.empty()) return absl::InvalidArgumentError("--sweep: no capacities given");
  return spec;
}

absl::StatusOr<std::vector<SweepPoint>> run_sweep(TraceReader& trace, const ReplayOptions& base,
                                                  const SweepSpec& spec) {
  std::vector<SweepPoint> points;
  for (const std::string& value : spec.values) {
    ReplayOptions o = base;
    TierConfig& t = tier_of(o.config, spec.level);
    if (all_digits(value)) {
      std::uint64_t n = 0;
      (void)absl::SimpleAtoi(value, &n);
      t.num_blocks = n;
      t.bytes = 0;
    } else {
      t.bytes = *parse_size(value);
      t.num_blocks = 0;
    }
    if (spec.level == CacheLevel::kG1) o.unlimited_g1 = false;
    if (absl::Status s = trace.rewind(); !s.ok()) return s;
    auto report = run_replay(trace, o);
    if (!report.ok()) {
      return absl::Status(report.status().code(),
                          absl::StrCat("sweep ", tier_key(spec.level), "=", value, ": ", report.status().message()));
    }
    SweepPoint p;
    p.value = value;
    p.capacity_blocks = report->tiers[static_cast<int>(spec.level)].capacity_blocks;
    p.report = *std::move(report);
    points.push_back(std::move(p));
  }
  return points;
}

std::string sweep_csv(const SweepSpec& spec, const std::vector<SweepPoint>& points) {
  std::string out = absl::StrCat(
      "tier,capacity,capacity_blocks,capacity_bytes,requests,blocks_total,blocks_hit,hit_rate,token_hit_rate,"
      "mean_request_hit_rate,g1_hits,g2_hits,g3_hits,bytes_down,bytes_up,verification_failures,seconds\n");
  for (const SweepPoint& p : points) {
    const ReplayReport& r = p.report;
    absl::StrAppend(&out, tier_key(spec.level), ",", p.value, ",", p.capacity_blocks, ",",
                    r.tiers[static_cast<int>(spec.level)].capacity_bytes, ",", r.requests, ",", r.blocks_total, ",",
                    r.blocks_hit,
                    absl::StrFormat(",%.6f,%.6f,%.6f,", r.hit_rate(), r.token_hit_rate(), r.mean_request_hit_rate()),
                    r.tiers[0].hits, ",", r.tiers[1].hits, ",", r.tiers[2].hits, ",", r.offload.bytes_down, ",",
                    r.offload.bytes_up, ",", r.verification_failures, absl::StrFormat(",%.4f\n", r.seconds));
  }
  return out;
}

std::string sweep_table(const SweepSpec& spec, const std::vector<SweepPoint>& points) {
  const std::string tier = tier_key(spec.level);
  std::string out;
  if (!points.empty()) {
    out = format_report_header(points.front().report,
                               absl::StrCat("kvbm replay --sweep ", tier, " (hit rate by ", tier, " capacity)"),
                               {.swept_tier = static_cast<int>(spec.level)});
  }
  absl::StrAppend(&out, absl::StrFormat("  %-10s %10s %10s %9s %9s %9s %10s %8s\n", tier + " size", "blocks", "bytes",
                                        "hit rate", "tokens", "mean/req", "blocks hit", "seconds"));
  for (const SweepPoint& p : points) {
    const ReplayReport& r = p.report;
    absl::StrAppend(
        &out, absl::StrFormat("  %-10s %10d %10s %8.2f%% %8.2f%% %8.2f%% %10d %8.3f\n", p.value, p.capacity_blocks,
                              format_size(r.tiers[static_cast<int>(spec.level)].capacity_bytes), r.hit_rate() * 100,
                              r.token_hit_rate() * 100, r.mean_request_hit_rate() * 100, r.blocks_hit, r.seconds));
  }
  return out;
}

std::string sweep_svg(const SweepSpec& spec, const std::vector<SweepPoint>& points) {
  const std::string tier = absl::AsciiStrToUpper(tier_key(spec.level));
  svg::LineChart chart;
  chart.title = absl::StrCat("kvbm replay: hit rate against ", tier, " capacity");
  chart.y_label = "hit rate (% of blocks, tokens or requests)";
  chart.y_to_100 = false;
  std::vector<std::string> values;
  for (const SweepPoint& p : points) {
    chart.capacities.push_back(p.capacity_blocks);
    values.push_back(p.value);
  }
  if (!points.empty()) {
    const ReplayReport& first = points.front().report;
    chart.subtitle = report_text::chart_subtitle(first, {.swept_tier = static_cast<int>(spec.level)}, 110);
    report_text::CapacityTicks ticks =
        report_text::capacity_ticks(tier, values, chart.capacities, first.bytes_per_block);
    chart.tick_labels = std::move(ticks.labels);
    chart.tick_sublabels = std::move(ticks.sublabels);
    chart.x_label = std::move(ticks.axis);
  }
  chart.series = series_for(points);
  return svg::render(chart);
}

}  // namespace kvbm
