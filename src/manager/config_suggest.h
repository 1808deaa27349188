// "Did you mean": what an unknown configuration key may have meant. Private to kvbm_manager.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kvbm::detail {

// The keys an unknown `key` may have meant: the closest one when it is close (at most 2 edits), and the keys
// of its section (all keys when the section is unknown too). E.g. "did you mean g1.bytes? known keys in
// [g1]: g1.num_blocks, g1.bytes, ...".
[[nodiscard]] std::string known_keys(std::string_view key = {});
// Levenshtein distance of two short names.
[[nodiscard]] std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace kvbm::detail
