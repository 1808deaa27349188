// A pre-scan of configuration TOML for input the TOML parser cannot take safely. Private to kvbm_manager.
#pragma once

#include <absl/status/status.h>

#include <string_view>

namespace kvbm::detail {

// Input that toml++ 3.x (Debian) cannot take safely, found by config_toml_fuzz and refused here first
// with a parse error of the same form (TOML 1.0 allows none of it, except where noted):
//  - a table header whose first character is not a key character or quote ("[=]", "[ .]", "[\n",
//    "[[[g3]"): toml++ asserts (aborts) in builds with assertions;
//  - a non-ASCII character outside string values and comments (bare keys are ASCII; e.g. "Κ = 1"), or
//    in a quoted key: toml++ tests it with is_whitespace(), whose generated tables reach
//    __builtin_unreachable for U+00A1..U+0499 and U+2CEE..U+30E7 (undefined behaviour in every build);
//  - for the same reason, a non-ASCII character right after a backslash in a multi-line basic string
//    (an invalid escape, or the first character after a line-ending backslash: valid TOML, refused);
//  - a '}' where an array value belongs ("x = [}", "x = [1, }"): toml++ asserts, and assumes in release
//    builds, that a value does not start with a terminator (undefined behaviour).
// A small lexer skips strings and comments and follows arrays and inline tables, so that only real
// headers (a '[' that starts a line at the top level) and keys are looked at.
// OK, or InvalidArgument "TOML parse error at line L, column C: ..." naming the byte.
[[nodiscard]] absl::Status prescan_toml(std::string_view text);

}  // namespace kvbm::detail
