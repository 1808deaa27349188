// "Did you mean" for unknown configuration keys (config_suggest.h).
#include "manager/config_suggest.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <vector>

#include "manager/config_keys.h"

namespace kvbm::detail {

// Edit distance, for "did you mean" (keys are short).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string known_keys(std::string_view key) {
  const std::size_t dot = key.find('.');
  const std::string prefix = dot == std::string_view::npos ? "" : std::string(key.substr(0, dot + 1));
  std::string same_section;
  std::string all;
  const KeySpec* closest = nullptr;
  std::size_t best = 3;  // at most 2 edits away
  for (const KeySpec& k : key_table()) {
    absl::StrAppend(&all, all.empty() ? "" : ", ", k.doc.key);
    if (!prefix.empty() && k.doc.key.starts_with(prefix)) {
      absl::StrAppend(&same_section, same_section.empty() ? "" : ", ", k.doc.key);
    }
    if (key.size() + 2 >= k.doc.key.size() && key.size() <= k.doc.key.size() + 2) {  // else more than 2 edits
      if (const std::size_t d = edit_distance(key, k.doc.key); d < best) {
        best = d;
        closest = &k;
      }
    }
  }
  std::string out = closest != nullptr ? absl::StrCat("did you mean ", closest->doc.key, "? ") : "";
  if (!same_section.empty()) return absl::StrCat(out, "known keys in [", prefix.substr(0, dot), "]: ", same_section);
  return absl::StrCat(out, "known keys: ", all);
}

}  // namespace kvbm::detail
