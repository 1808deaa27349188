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

struct Series {
  std::string name;
  std::string color;
  std::function<double(const ReplayReport&)> value;
};

std::vector<Series> series_for(const std::vector<SweepPoint>& points) {
  std::vector<Series> s = {
      {"blocks hit", "#1f77b4", [](const ReplayReport& r) { return r.hit_rate(); }},
      {"tokens hit", "#ff7f0e", [](const ReplayReport& r) { return r.token_hit_rate(); }},
      {"mean per request", "#2ca02c", [](const ReplayReport& r) { return r.mean_request_hit_rate(); }},
  };
  const bool data = !points.empty() && points.front().report.data;
  if (data) {
    const char* colors[3] = {"#9467bd", "#8c564b", "#e377c2"};
    for (int t = 0; t < 3; ++t) {
      if (!points.front().report.tiers[t].enabled) continue;
      s.push_back({absl::StrCat("hits in G", t + 1), colors[t], [t](const ReplayReport& r) {
                     return r.blocks_total ? static_cast<double>(r.tiers[t].hits) / r.blocks_total : 0.0;
                   }});
    }
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
      if (!absl::SimpleAtoi(value, &n) || n == 0) {
        return absl::InvalidArgumentError(absl::StrCat("--sweep: capacity must be >= 1 block, got '", value, "'"));
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
  std::string out = absl::StrFormat("%-12s %12s %10s %10s %10s %10s %10s\n", tier_key(spec.level) + " capacity",
                                    "blocks", "hit rate", "tokens", "mean/req", "blocks hit", "seconds");
  for (const SweepPoint& p : points) {
    const ReplayReport& r = p.report;
    absl::StrAppend(&out, absl::StrFormat("%-12s %12d %9.2f%% %9.2f%% %9.2f%% %10d %10.3f\n", p.value,
                                          p.capacity_blocks, r.hit_rate() * 100, r.token_hit_rate() * 100,
                                          r.mean_request_hit_rate() * 100, r.blocks_hit, r.seconds));
  }
  return out;
}

std::string sweep_svg(const SweepSpec& spec, const std::vector<SweepPoint>& points) {
  constexpr double kW = 800, kH = 480, kLeft = 70, kRight = 200, kTop = 40, kBottom = 60;
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  std::vector<std::uint64_t> capacities;
  for (const SweepPoint& p : points) capacities.push_back(p.capacity_blocks);
  const svg::CapacityAxis axis(capacities, kLeft, pw);
  const bool log_x = axis.log_scale();
  auto x_of = [&](std::uint64_t cap) { return axis.x(cap); };
  auto y_of = [&](double rate) { return kTop + (1 - std::clamp(rate, 0.0, 1.0)) * ph; };

  const std::string tier = tier_key(spec.level);
  std::string out = svg::preamble(kW, kH) +
                    absl::StrFormat("<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", kW, kH);
  absl::StrAppend(
      &out,
      absl::StrFormat("<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n", kLeft + pw / 2,
                      svg::xml_escape(absl::StrCat("kvbm replay: hit rate against ", tier, " capacity"))));
  // Axes.
  absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                                        kLeft, kTop + ph, kLeft + pw, kTop + ph));
  absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                                        kLeft, kTop, kLeft, kTop + ph));
  // Y ticks and grid, every 10 %.
  for (int i = 0; i <= 10; ++i) {
    const double y = y_of(i / 10.0);
    absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                                          kLeft, y, kLeft + pw, y));
    absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                                          kLeft - 5, y, kLeft, y));
    absl::StrAppend(&out, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>\n", kLeft - 8,
                                          y + 4, i * 10));
  }
  // X ticks at each capacity tried.
  for (const SweepPoint& p : points) {
    const double x = x_of(p.capacity_blocks);
    absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                                          x, kTop + ph, x, kTop + ph + 5));
    absl::StrAppend(&out, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x,
                                          kTop + ph + 20, svg::xml_escape(p.value)));
  }
  absl::StrAppend(
      &out, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", kLeft + pw / 2, kH - 15,
                            svg::xml_escape(absl::StrCat(tier, " capacity (", log_x ? "log scale" : "linear",
                                                         ", blocks as resolved)"))));
  absl::StrAppend(&out, absl::StrFormat("<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 18 "
                                        "%.1f)\">hit rate</text>\n",
                                        kTop + ph / 2, kTop + ph / 2));
  // One polyline per series, and the legend.
  const std::vector<Series> series = series_for(points);
  for (std::size_t s = 0; s < series.size(); ++s) {
    std::string pts;
    for (const SweepPoint& p : points) {
      absl::StrAppend(&pts, pts.empty() ? "" : " ",
                      absl::StrFormat("%.1f,%.1f", x_of(p.capacity_blocks), y_of(series[s].value(p.report))));
    }
    absl::StrAppend(&out, absl::StrFormat("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n",
                                          series[s].color, pts));
    for (const SweepPoint& p : points) {
      absl::StrAppend(&out, absl::StrFormat("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                                            x_of(p.capacity_blocks), y_of(series[s].value(p.report)), series[s].color));
    }
    const double ly = kTop + 10 + 20 * static_cast<double>(s);
    absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                                          "stroke-width=\"2\"/>\n",
                                          kLeft + pw + 15, ly, kLeft + pw + 40, ly, series[s].color));
    absl::StrAppend(&out, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", kLeft + pw + 45, ly + 4,
                                          svg::xml_escape(series[s].name)));
  }
  absl::StrAppend(&out, "</svg>\n");
  return out;
}

}  // namespace kvbm
