// plan_svg: the chart of `kvbm plan --out-svg` (see kvbm/replay/plan.h), drawn with replay's SVG helpers.
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kvbm/core/size.h"
#include "kvbm/replay/plan.h"
#include "replay/svg_chart.h"

namespace kvbm {
namespace {

constexpr double kWidth = 900, kLeft = 80, kRight = 30, kPanelHeight = 400;
constexpr double kPlotWidth = kWidth - kLeft - kRight;

// "512 GiB", "1 TiB", "1.5 TiB": a tick label.
std::string short_size(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (u < 5 && bytes >= 1024) {
    bytes /= 1024;
    ++u;
  }
  return absl::StrFormat("%.3g %s", bytes, kUnits[u]);
}

std::string line(double x1, double y1, double x2, double y2, const std::string& style) {
  return absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" %s/>\n", x1, y1, x2, y2, style);
}

std::string text(double x, double y, const std::string& anchor, const std::string& body,
                 const std::string& style = "") {
  return absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s>%s</text>\n", x, y, anchor,
                         style.empty() ? "" : " " + style, svg::xml_escape(body));
}

struct Panel {
  std::string heading;  // above the plot
  std::string tier;     // "G2" or "G3"
  const std::vector<PlanPoint>* points = nullptr;
  const PlanPoint* marked = nullptr;  // the recommendation
  std::string marked_label;
  double baseline = -1;  // a horizontal reference (G2 alone, in the G3 panel); < 0 = none
  std::string baseline_label;
};

// One plot: hit rate against the tier's size, with the attainable rate, the target and the marks.
std::string draw_panel(const PlanReport& r, const Panel& p, double top) {
  const double plot_top = top + 40, plot_height = kPanelHeight - 100;
  const double bottom = plot_top + plot_height;
  std::vector<std::uint64_t> bytes;
  for (const PlanPoint& q : *p.points) bytes.push_back(std::max<std::uint64_t>(1, q.bytes));
  const svg::CapacityAxis axis(bytes, kLeft, kPlotWidth);
  double y_max = std::max(0.1, r.rate(r.attainable_hits));
  for (const PlanPoint& q : *p.points) y_max = std::max(y_max, r.rate(q.blocks_hit));
  y_max = std::min(1.0, std::ceil(y_max * 10 + 0.2) / 10);
  const auto y_of = [&](double rate) { return bottom - std::clamp(rate / y_max, 0.0, 1.0) * plot_height; };

  std::string out = text(kLeft + kPlotWidth / 2, top + 22, "middle", p.heading, "font-size=\"14\"");
  // Grid and y axis: hit rate, linear.
  const int steps = static_cast<int>(std::lround(y_max * 20)) <= 10 ? static_cast<int>(std::lround(y_max * 20))
                                                                    : static_cast<int>(std::lround(y_max * 10));
  for (int i = 0; i <= steps; ++i) {  // every 5 % up to 50 %, else every 10 %
    const double rate = y_max * i / steps, y = y_of(rate);
    absl::StrAppend(&out, line(kLeft, y, kLeft + kPlotWidth, y, "stroke=\"#e4e4e4\""),
                    text(kLeft - 8, y + 4, "end", absl::StrFormat("%.0f%%", rate * 100)));
  }
  absl::StrAppend(&out, line(kLeft, plot_top, kLeft, bottom, "stroke=\"black\""),
                  line(kLeft, bottom, kLeft + kPlotWidth, bottom, "stroke=\"black\""));
  const double mid_y = plot_top + plot_height / 2;
  absl::StrAppend(&out, absl::StrFormat("<text x=\"22\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 22 "
                                        "%.1f)\">%s</text>\n",
                                        mid_y, mid_y, "hit rate: blocks hit / blocks referenced (linear)"));
  // X ticks: powers of two of bytes on a log axis, five even steps on a linear one.
  const double lo = static_cast<double>(*std::min_element(bytes.begin(), bytes.end()));
  const double hi = static_cast<double>(*std::max_element(bytes.begin(), bytes.end()));
  std::vector<double> ticks;
  if (axis.log_scale()) {
    const int first = static_cast<int>(std::ceil(std::log2(lo))), last = static_cast<int>(std::floor(std::log2(hi)));
    const int step = std::max(1, (last - first + 7) / 8);
    for (int e = first; e <= last; e += step) ticks.push_back(std::ldexp(1.0, e));
  } else {
    for (int i = 0; i <= 4; ++i) ticks.push_back(lo + (hi - lo) * i / 4);
  }
  for (double t : ticks) {
    const double x = axis.x(static_cast<std::uint64_t>(t));
    absl::StrAppend(&out, line(x, bottom, x, bottom + 5, "stroke=\"black\""),
                    text(x, bottom + 19, "middle", short_size(t)));
  }
  absl::StrAppend(&out, text(kLeft + kPlotWidth / 2, bottom + 42, "middle",
                             absl::StrCat(p.tier, " size in bytes (", axis.log_scale() ? "log scale" : "linear",
                                          "; one marker per configuration replayed or read off the pass)")));
  // Reference lines, labelled at the left where the curve is low.
  const double attainable = r.rate(r.attainable_hits), goal = r.goal_rate();
  absl::StrAppend(
      &out,
      line(kLeft, y_of(attainable), kLeft + kPlotWidth, y_of(attainable), "stroke=\"#555\" stroke-dasharray=\"2,3\""),
      text(kLeft + 6, y_of(attainable) - 5, "start",
           absl::StrFormat("attainable %.1f%% (unlimited cache)", attainable * 100), "fill=\"#555\""));
  if (p.tier == "G2") {
    absl::StrAppend(
        &out, line(kLeft, y_of(goal), kLeft + kPlotWidth, y_of(goal), "stroke=\"#d62728\" stroke-dasharray=\"7,4\""),
        text(kLeft + 6, y_of(goal) - 5, "start",
             absl::StrFormat("target %.1f%% = %.0f%% of attainable", goal * 100, r.target * 100), "fill=\"#d62728\""));
  }
  if (p.baseline >= 0) {
    absl::StrAppend(&out,
                    line(kLeft, y_of(p.baseline), kLeft + kPlotWidth, y_of(p.baseline),
                         "stroke=\"#2ca02c\" stroke-dasharray=\"7,4\""),
                    text(kLeft + 6, y_of(p.baseline) + 15, "start", p.baseline_label, "fill=\"#2ca02c\""));
  }
  // The curve and its markers.
  std::string pts;
  for (const PlanPoint& q : *p.points) {
    absl::StrAppend(
        &pts, pts.empty() ? "" : " ",
        absl::StrFormat("%.1f,%.1f", axis.x(std::max<std::uint64_t>(1, q.bytes)), y_of(r.rate(q.blocks_hit))));
  }
  absl::StrAppend(&out, absl::StrFormat("<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" "
                                        "points=\"%s\"/>\n",
                                        pts));
  for (const PlanPoint& q : *p.points) {
    absl::StrAppend(&out, absl::StrFormat("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#1f77b4\"/>\n",
                                          axis.x(std::max<std::uint64_t>(1, q.bytes)), y_of(r.rate(q.blocks_hit))));
  }
  if (p.marked != nullptr && p.marked->bytes >= lo && p.marked->bytes <= hi) {
    const double x = axis.x(p.marked->bytes), y = y_of(r.rate(p.marked->blocks_hit));
    // The curve rises: below right of the mark, or above left of it, is clear of it.
    const bool fits_right = x + 12 + 7.5 * static_cast<double>(p.marked_label.size()) < kLeft + kPlotWidth;
    absl::StrAppend(&out, line(x, y, x, bottom, "stroke=\"#2ca02c\" stroke-dasharray=\"4,3\""),
                    absl::StrFormat("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"7\" fill=\"none\" stroke=\"#2ca02c\" "
                                    "stroke-width=\"2.5\"/>\n",
                                    x, y),
                    text(fits_right ? x + 12 : x - 12, fits_right ? y + 24 : y - 12, fits_right ? "start" : "end",
                         p.marked_label, "fill=\"#2ca02c\" font-weight=\"bold\""));
  }
  return out;
}

std::string base_name(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string plan_svg(const PlanReport& r) {
  const bool g3 = !r.g3_curve.empty();
  const double height = 70 + kPanelHeight * (g3 ? 2 : 1);
  std::string out = svg::preamble(kWidth, height) +
                    absl::StrFormat("<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", kWidth, height);
  const std::string g1 =
      absl::StrCat("G1 ", format_size(r.g1_blocks * r.bytes_per_block), " (", r.g1_blocks, " blocks) fixed");
  absl::StrAppend(
      &out,
      text(kWidth / 2, 24, "middle",
           absl::StrCat("kvbm plan: ", base_name(r.trace), " \u00b7 ", r.model, " (", format_size(r.bytes_per_block),
                        " per block)"),
           "font-size=\"16\" font-weight=\"bold\""),
      text(kWidth / 2, 46, "middle",
           absl::StrCat(g1, " \u00b7 eviction ", std::string(r.config.g1.eviction.name()), " \u00b7 frequency filter ",
                        r.config.offload.g3_min_frequency > 1
                            ? absl::StrCat("on (", r.config.offload.g3_min_frequency, ")")
                            : std::string("off"),
                        " \u00b7 ", r.block_tokens, " tokens per block")));
  Panel g2;
  g2.heading = absl::StrCat("hit rate against G2 (host) size, behind ", g1);
  g2.tier = "G2";
  g2.points = &r.curve;
  if (r.recommended_found) {
    g2.marked = &r.recommended;
    g2.marked_label = absl::StrFormat("recommended G2 %s: %.1f%%", format_size(r.recommended.bytes),
                                      r.rate(r.recommended.blocks_hit) * 100);
  }
  absl::StrAppend(&out, draw_panel(r, g2, 60));
  if (g3) {
    Panel d;
    d.heading =
        absl::StrCat("hit rate against G3 (disk) size, behind ", g1, " + G2 ", format_size(r.recommended.bytes));
    d.tier = "G3";
    d.points = &r.g3_curve;
    d.baseline = r.rate(r.recommended.blocks_hit);
    d.baseline_label =
        absl::StrFormat("G2 %s alone, no G3: %.1f%%", format_size(r.recommended.bytes), d.baseline * 100);
    absl::StrAppend(&out, draw_panel(r, d, 60 + kPanelHeight));
  }
  absl::StrAppend(&out, "</svg>\n");
  return out;
}

}  // namespace kvbm
