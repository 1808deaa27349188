// Pieces shared by the hand-written SVG charts of replay (sweep_svg, comparison_svg): escaping, the
// document preamble, and the capacity axis (log scale once capacities span 8× or more).
#pragma once

#include <absl/strings/str_format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>

namespace kvbm::svg {

inline std::string xml_escape(const std::string& s) {
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

}  // namespace kvbm::svg
