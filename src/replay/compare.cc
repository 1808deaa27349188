// Policy comparisons (see kvbm/replay/compare.h).
#include "kvbm/replay/compare.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/str_split.h>

#include <algorithm>
#include <cmath>

#include "replay/svg_chart.h"

namespace kvbm {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                   "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000"};

}  // namespace

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
  std::string out = absl::StrFormat("%-12s", "g1 blocks");
  for (const std::string& p : c.policies) absl::StrAppend(&out, absl::StrFormat(" %13s", p));
  absl::StrAppend(&out, "\n");
  for (std::size_t j = 0; j < c.capacities.size(); ++j) {
    absl::StrAppend(&out, absl::StrFormat("%-12s", c.capacities[j]));
    for (std::size_t i = 0; i < c.policies.size(); ++i) {
      absl::StrAppend(&out, absl::StrFormat(" %12.2f%%", c.reports[i][j].hit_rate() * 100));
    }
    absl::StrAppend(&out, "\n");
  }
  if (c.policies.empty()) return out;
  absl::StrAppend(&out, "\nratio to ", c.policies[0], "\n");
  for (std::size_t j = 0; j < c.capacities.size(); ++j) {
    absl::StrAppend(&out, absl::StrFormat("%-12s", c.capacities[j]));
    const double base = c.reports[0][j].hit_rate();
    for (std::size_t i = 0; i < c.policies.size(); ++i) {
      const double r = c.reports[i][j].hit_rate();
      absl::StrAppend(&out, base > 0 ? absl::StrFormat(" %12.3fx", r / base) : absl::StrFormat(" %13s", "-"));
    }
    absl::StrAppend(&out, "\n");
  }
  const auto opt = std::find(c.policies.begin(), c.policies.end(), "optimal");
  if (opt != c.policies.end()) {
    const std::size_t o = static_cast<std::size_t>(opt - c.policies.begin());
    absl::StrAppend(&out, "\nshare of optimal\n");
    for (std::size_t j = 0; j < c.capacities.size(); ++j) {
      absl::StrAppend(&out, absl::StrFormat("%-12s", c.capacities[j]));
      const double best = c.reports[o][j].hit_rate();
      for (std::size_t i = 0; i < c.policies.size(); ++i) {
        const double r = c.reports[i][j].hit_rate();
        absl::StrAppend(&out, best > 0 ? absl::StrFormat(" %12.1f%%", 100 * r / best) : absl::StrFormat(" %13s", "-"));
      }
      absl::StrAppend(&out, "\n");
    }
  }
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
  constexpr double kW = 800, kH = 480, kLeft = 70, kRight = 160, kTop = 40, kBottom = 60;
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  const svg::CapacityAxis axis(c.capacity_blocks, kLeft, pw);
  const bool log_x = axis.log_scale();
  auto x_of = [&](std::uint64_t blocks) { return axis.x(blocks); };
  double top = 0.05;
  for (const auto& row : c.reports) {
    for (const ReplayReport& r : row) top = std::max(top, r.hit_rate());
  }
  top = std::min(1.0, std::ceil(top * 10) / 10);  // y axis up to the next 10 %
  auto y_of = [&](double rate) { return kTop + (1 - std::clamp(rate / top, 0.0, 1.0)) * ph; };
  std::string out =
      svg::preamble(kW, kH) + absl::StrFormat("<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", kW, kH);
  absl::StrAppend(&out, absl::StrFormat("<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">kvbm "
                                        "replay: block hit rate by eviction policy</text>\n",
                                        kLeft + pw / 2));
  absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                                        kLeft, kTop + ph, kLeft + pw, kTop + ph));
  absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                                        kLeft, kTop, kLeft, kTop + ph));
  for (int i = 0; i <= 10; ++i) {
    const double rate = top * i / 10, y = y_of(rate);
    absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f%%</text>\n",
                                          kLeft, y, kLeft + pw, y, kLeft - 8, y + 4, rate * 100));
  }
  for (std::size_t j = 0; j < c.capacities.size(); ++j) {
    const double x = x_of(c.capacity_blocks[j]);
    absl::StrAppend(
        &out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
                              "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                              x, kTop + ph, x, kTop + ph + 5, x, kTop + ph + 20, svg::xml_escape(c.capacities[j])));
  }
  absl::StrAppend(&out, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">g1 capacity in blocks "
                                        "(%s)</text>\n",
                                        kLeft + pw / 2, kH - 15, log_x ? "log scale" : "linear"));
  for (std::size_t i = 0; i < c.policies.size(); ++i) {
    const char* color = kColors[i % (sizeof(kColors) / sizeof(kColors[0]))];
    std::string pts;
    for (std::size_t j = 0; j < c.capacities.size(); ++j) {
      absl::StrAppend(&pts, j ? " " : "",
                      absl::StrFormat("%.1f,%.1f", x_of(c.capacity_blocks[j]), y_of(c.reports[i][j].hit_rate())));
    }
    const bool dashed = c.policies[i] == "optimal";
    absl::StrAppend(
        &out, absl::StrFormat("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"%s\"/>\n", color,
                              dashed ? " stroke-dasharray=\"6,4\"" : "", pts));
    const double ly = kTop + 10 + 20 * static_cast<double>(i);
    absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                                          "stroke-width=\"2\"/>\n<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                                          kLeft + pw + 15, ly, kLeft + pw + 40, ly, color, kLeft + pw + 45, ly + 4,
                                          svg::xml_escape(c.policies[i])));
  }
  absl::StrAppend(&out, "</svg>\n");
  return out;
}

}  // namespace kvbm
