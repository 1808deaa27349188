// Pieces shared by replay's text reports (report, sweep and comparison tables): lines of at most
// kReportColumns characters, a label column, and the header every report opens with.
#pragma once

#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>

#include <absl/strings/string_view.h>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kvbm/replay/report.h"

namespace kvbm::report_text {

// Characters, not bytes: UTF-8 continuation bytes do not count ("×" and "→" are one column each).
inline std::size_t width(absl::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// `s` itself when it fits in `columns`, else "…" and its tail (paths keep their file name).
inline std::string fit(const std::string& s, std::size_t columns) {
  if (width(s) <= columns) return s;
  std::size_t cut = 0, drop = width(s) - (columns - 1);
  while (drop > 0 && cut < s.size()) {
    ++cut;
    while (cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) ++cut;
    --drop;
  }
  return absl::StrCat("…", s.substr(cut));
}

inline constexpr std::size_t kLabelColumns = 14;  // "  " + a label of up to 11 characters + a space

// Words of `text` joined into lines of at most `columns` characters (a longer word stays whole).
inline std::vector<std::string> wrap_words(absl::string_view text, std::size_t columns) {
  std::vector<std::string> lines;
  std::string line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line.empty() && width(line) + 1 + width(word) > columns) {
      lines.push_back(std::move(line));
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

// "  label     text", wrapped at spaces so that no line is wider than kReportColumns; continuation
// lines are indented under the text. Ends in a newline.
inline std::string labelled(absl::string_view label, absl::string_view text) {
  std::string out = absl::StrCat("  ", label);
  out.append(kLabelColumns > width(out) ? kLabelColumns - width(out) : 1, ' ');
  const std::vector<std::string> lines = wrap_words(text, kReportColumns - kLabelColumns);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out.append(kLabelColumns, ' ');
    absl::StrAppend(&out, lines[i], "\n");
  }
  if (lines.empty()) out.push_back('\n');
  return out;
}

// The lines under a chart's title: the trace, the model and mode, the tiers held fixed and the settings
// (format_report_header's, shorter), each at most `columns` characters.
std::vector<std::string> chart_subtitle(const ReplayReport& first, const ReportHeaderOptions& options,
                                        std::size_t columns);

// A capacity as the chart's x axis shows it: the value as given, and the other unit below it.
struct CapacityTicks {
  std::vector<std::string> labels, sublabels;
  std::string axis;  // "G2 capacity in bytes (blocks of 64.0 MiB below)"
};
CapacityTicks capacity_ticks(absl::string_view tier, const std::vector<std::string>& values,
                             const std::vector<std::uint64_t>& blocks, std::uint64_t bytes_per_block);

}  // namespace kvbm::report_text
