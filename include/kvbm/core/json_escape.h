// JSON string literals for the JSON kvbm writes by hand (replay reports, `kvbm bench --json`, token traces).
//
// The literal is the text in double quotes with '"' and '\\' escaped by a backslash and every control
// character (bytes 0x00-0x1f) written as \u00xx (lowercase hex). Every other byte, DEL and UTF-8 included,
// is copied as it is: the text is not validated as UTF-8. Pure functions; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace kvbm {

// Appends `text` to `*out` as a JSON string literal, quotes included.
// REQUIRES: out != nullptr.
void append_json_string(std::string* out, std::string_view text);

// `text` as a JSON string literal, quotes included.
[[nodiscard]] std::string json_string(std::string_view text);

}  // namespace kvbm
