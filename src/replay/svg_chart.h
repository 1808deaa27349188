// The hand-written SVG charts of replay: the line chart of sweep_svg and comparison_svg, and the pieces
// (preamble, CapacityAxis) plan_svg draws its panels with. The line chart plots hit rate against a tier's
// capacity. A title and subtitle lines (trace, model, the tiers held fixed), a capacity axis on a log scale
// with each tried capacity as a tick (as given, and in the other unit below it), a percentage axis, and
// one polyline per series in a colour and a point marker of its own, with a legend.
#pragma once

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <absl/strings/string_view.h>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kvbm::svg {

inline std::string xml_escape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// `<?xml ...?><svg ...>` and a white background, `width` × `height`.
inline std::string preamble(double width, double height) {
  return absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n",
      width, height, width, height);
}

// Maps capacities (in blocks, 0 read as 1) onto [left, left + width]: logarithmic when the largest is at
// least 8× the smallest, linear otherwise, the middle when all are equal.
class CapacityAxis {
 public:
  CapacityAxis(std::span<const std::uint64_t> capacities, double left, double width) : left_(left), width_(width) {
    for (std::size_t i = 0; i < capacities.size(); ++i) {
      const double c = clamped(capacities[i]);
      lo_ = i == 0 ? c : std::min(lo_, c);
      hi_ = i == 0 ? c : std::max(hi_, c);
    }
    log_ = hi_ / lo_ >= 8;
  }
  [[nodiscard]] bool log_scale() const { return log_; }
  [[nodiscard]] double x(std::uint64_t blocks) const {
    if (hi_ == lo_) return left_ + width_ / 2;
    const double c = clamped(blocks);
    const double f = log_ ? (std::log(c) - std::log(lo_)) / (std::log(hi_) - std::log(lo_)) : (c - lo_) / (hi_ - lo_);
    return left_ + f * width_;
  }

 private:
  static double clamped(std::uint64_t blocks) { return static_cast<double>(std::max<std::uint64_t>(1, blocks)); }
  double left_, width_;
  double lo_ = 1, hi_ = 1;
  bool log_ = false;
};

enum class Marker : std::uint8_t { kCircle, kSquare, kTriangle, kDiamond, kTriangleDown, kCross, kPlus, kRing };

// A series' look: colours far apart for every kind of colour vision (Okabe and Ito), each with a marker.
struct Style {
  const char* color;
  Marker marker;
};
inline constexpr std::array<Style, 8> kStyles = {{
    {"#0072B2", Marker::kCircle},        // blue
    {"#E69F00", Marker::kSquare},        // orange
    {"#009E73", Marker::kTriangle},      // green
    {"#D55E00", Marker::kDiamond},       // vermillion
    {"#CC79A7", Marker::kTriangleDown},  // purple
    {"#000000", Marker::kCross},         // black
    {"#56B4E9", Marker::kPlus},          // sky blue
    {"#999999", Marker::kRing},          // grey
}};

// Style i of a chart with many series: the eight colours, then the same colours with other markers.
inline Style style_for(std::size_t i) {
  const Style base = kStyles[i % kStyles.size()];
  const std::size_t round = i / kStyles.size();
  if (round == 0) return base;
  return {base.color, kStyles[(i + 3 * round) % kStyles.size()].marker};
}

struct Series {
  std::string name;
  Style style;
  std::string dash;            // SVG stroke-dasharray; "" = solid
  std::vector<double> values;  // one per capacity, 0..1
};

struct LineChart {
  std::string title;
  std::vector<std::string> subtitle;  // each line at most ~110 characters
  std::string x_label;                // the unit; the scale is appended
  std::string y_label;
  std::vector<std::uint64_t> capacities;  // blocks, one per tick (0 is drawn as 1)
  std::vector<std::string> tick_labels;   // as given
  std::vector<std::string> tick_sublabels;
  bool y_to_100 = true;  // false: the y axis ends at the next 10 % above the largest value
  std::vector<Series> series;
};

inline std::string marker_svg(Marker m, double x, double y, const char* color) {
  constexpr double r = 4.5;
  switch (m) {
    case Marker::kCircle:
      return absl::StrFormat("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\"/>\n", x, y, r, color);
    case Marker::kSquare:
      return absl::StrFormat("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x - r + 0.5,
                             y - r + 0.5, 2 * r - 1, 2 * r - 1, color);
    case Marker::kTriangle:
      return absl::StrFormat("<path d=\"M%.1f %.1f L%.1f %.1f L%.1f %.1f Z\" fill=\"%s\"/>\n", x, y - r - 1,
                             x + r + 0.5, y + r - 1, x - r - 0.5, y + r - 1, color);
    case Marker::kTriangleDown:
      return absl::StrFormat("<path d=\"M%.1f %.1f L%.1f %.1f L%.1f %.1f Z\" fill=\"%s\"/>\n", x, y + r + 1,
                             x + r + 0.5, y - r + 1, x - r - 0.5, y - r + 1, color);
    case Marker::kDiamond:
      return absl::StrFormat("<path d=\"M%.1f %.1f L%.1f %.1f L%.1f %.1f L%.1f %.1f Z\" fill=\"%s\"/>\n", x, y - r - 1,
                             x + r + 1, y, x, y + r + 1, x - r - 1, y, color);
    case Marker::kCross:
      return absl::StrFormat(
          "<path d=\"M%.1f %.1f L%.1f %.1f M%.1f %.1f L%.1f %.1f\" stroke=\"%s\" "
          "stroke-width=\"2.5\"/>\n",
          x - r, y - r, x + r, y + r, x - r, y + r, x + r, y - r, color);
    case Marker::kPlus:
      return absl::StrFormat(
          "<path d=\"M%.1f %.1f L%.1f %.1f M%.1f %.1f L%.1f %.1f\" stroke=\"%s\" "
          "stroke-width=\"2.5\"/>\n",
          x - r - 1, y, x + r + 1, y, x, y - r - 1, x, y + r + 1, color);
    case Marker::kRing:
      return absl::StrFormat(
          "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"white\" stroke=\"%s\" "
          "stroke-width=\"2\"/>\n",
          x, y, r, color);
  }
  return "";
}

inline std::string dash_attr(const std::string& dash) {
  return dash.empty() ? std::string() : absl::StrCat(" stroke-dasharray=\"", dash, "\"");
}

// The chart as a self-contained SVG document.
inline std::string render(const LineChart& c) {
  constexpr double kW = 900, kLeft = 80, kRight = 210, kBottom = 90, kLine = 17;
  const double top = 50 + kLine * static_cast<double>(c.subtitle.size());
  const double h = top + 340 + kBottom;
  const double pw = kW - kLeft - kRight, ph = h - top - kBottom;
  // X: log scale over the capacities (the middle when they are all equal).
  double lo = 0, hi = 0;
  for (std::size_t i = 0; i < c.capacities.size(); ++i) {
    const double v = std::log(static_cast<double>(std::max<std::uint64_t>(1, c.capacities[i])));
    lo = i == 0 ? v : std::min(lo, v);
    hi = i == 0 ? v : std::max(hi, v);
  }
  const double pad = 0.04 * pw;
  auto x_of = [&](std::uint64_t cap) {
    if (hi == lo) return kLeft + pw / 2;
    const double v = std::log(static_cast<double>(std::max<std::uint64_t>(1, cap)));
    return kLeft + pad + (v - lo) / (hi - lo) * (pw - 2 * pad);
  };
  double y_max = 1;
  if (!c.y_to_100) {
    double m = 0.05;
    for (const Series& s : c.series) {
      for (double v : s.values) m = std::max(m, v);
    }
    y_max = std::min(1.0, std::ceil(m * 10 - 1e-9) / 10);
  }
  auto y_of = [&](double rate) { return top + (1 - std::clamp(rate / y_max, 0.0, 1.0)) * ph; };

  std::string out = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n",
      kW, h, kW, h, kW, h);
  absl::StrAppend(&out, absl::StrFormat("<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" "
                                        "font-weight=\"bold\">%s</text>\n",
                                        kW / 2, xml_escape(c.title)));
  for (std::size_t i = 0; i < c.subtitle.size(); ++i) {
    absl::StrAppend(
        &out, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#333\">%s</text>\n", kW / 2,
                              44 + kLine * static_cast<double>(i), xml_escape(c.subtitle[i])));
  }
  // Y grid, ticks and labels at round percentages: every 10 % of a tall axis, 5 % or 2 % of a short one.
  const double step = y_max >= 0.5 ? 0.1 : (y_max >= 0.2 ? 0.05 : 0.02);
  const int ticks = static_cast<int>(std::lround(y_max / step));
  for (int i = 0; i <= ticks; ++i) {
    const double rate = step * i, y = y_of(rate);
    absl::StrAppend(&out,
                    absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n"
                                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
                                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f%%</text>\n",
                                    kLeft, y, kLeft + pw, y, kLeft - 5, y, kLeft, y, kLeft - 8, y + 4, rate * 100));
  }
  // X ticks at each capacity: the value as given, and below it in the other unit.
  for (std::size_t i = 0; i < c.capacities.size(); ++i) {
    const double x = x_of(c.capacities[i]);
    absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n"
                                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                                          x, top, x, top + ph, x, top + ph, x, top + ph + 5));
    if (i < c.tick_labels.size()) {
      absl::StrAppend(&out, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x,
                                            top + ph + 19, xml_escape(c.tick_labels[i])));
    }
    if (i < c.tick_sublabels.size()) {
      absl::StrAppend(&out, absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#666\" "
                                            "font-size=\"11\">%s</text>\n",
                                            x, top + ph + 34, xml_escape(c.tick_sublabels[i])));
    }
  }
  // Axes over the grid.
  absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
                                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                                        kLeft, top + ph, kLeft + pw, top + ph, kLeft, top, kLeft, top + ph));
  absl::StrAppend(
      &out,
      absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", kLeft + pw / 2, top + ph + 62,
                      xml_escape(absl::StrCat(c.x_label, c.capacities.size() > 1 && hi > lo ? " — log scale" : ""))));
  absl::StrAppend(&out, absl::StrFormat("<text x=\"22\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 22 "
                                        "%.1f)\">%s</text>\n",
                                        top + ph / 2, top + ph / 2, xml_escape(c.y_label)));
  // Series, then the legend (a line with its marker and the name).
  for (std::size_t s = 0; s < c.series.size(); ++s) {
    const Series& se = c.series[s];
    std::string pts;
    for (std::size_t i = 0; i < se.values.size() && i < c.capacities.size(); ++i) {
      absl::StrAppend(&pts, i ? " " : "", absl::StrFormat("%.1f,%.1f", x_of(c.capacities[i]), y_of(se.values[i])));
    }
    absl::StrAppend(&out,
                    absl::StrFormat("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"%s\"/>\n",
                                    se.style.color, dash_attr(se.dash), pts));
    for (std::size_t i = 0; i < se.values.size() && i < c.capacities.size(); ++i) {
      absl::StrAppend(&out, marker_svg(se.style.marker, x_of(c.capacities[i]), y_of(se.values[i]), se.style.color));
    }
    const double ly = top + 12 + 22 * static_cast<double>(s), lx = kLeft + pw + 16;
    absl::StrAppend(&out, absl::StrFormat("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                                          "stroke-width=\"2\"%s/>\n",
                                          lx, ly, lx + 30, ly, se.style.color, dash_attr(se.dash)));
    absl::StrAppend(&out, marker_svg(se.style.marker, lx + 15, ly, se.style.color));
    absl::StrAppend(&out,
                    absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", lx + 38, ly + 4, xml_escape(se.name)));
  }
  absl::StrAppend(&out, "</svg>\n");
  return out;
}

}  // namespace kvbm::svg
