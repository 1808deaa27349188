// A pre-scan of configuration TOML for input toml++ cannot take safely (config_toml_prescan.h).
#include "manager/config_toml_prescan.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>

#include <string>
#include <vector>

namespace kvbm::detail {

absl::Status prescan_toml(std::string_view text) {
  std::size_t line = 1;
  std::size_t line_start = 0;
  auto error = [&](std::size_t at, std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("TOML parse error at line ", line, ", column ", at - line_start + 1, ": ", std::string(what),
                     " (byte 0x", absl::Hex(static_cast<unsigned char>(text[at]), absl::kZeroPad2), ")"));
  };
  auto is_bare = [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; };
  auto non_ascii = [](char c) { return static_cast<unsigned char>(c) >= 0x80; };
  std::vector<char> nesting;    // open '[' (array) and '{' (inline table) of the current value
  bool statement_start = true;  // only whitespace so far on this line, at the top level
  bool expect_key = true;       // a string here would be a key
  const std::size_t bom = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;  // a UTF-8 byte order mark is allowed
  for (std::size_t i = bom; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      ++line;
      line_start = i + 1;
      statement_start = nesting.empty();
      if (nesting.empty()) expect_key = true;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') continue;
    if (c == '#') {  // a comment, to the end of the line
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
      continue;
    }
    if (c == '"' || c == '\'') {
      const bool multi = text.substr(i, 3) == std::string(3, c);
      const bool basic = c == '"';
      const bool key = expect_key;
      i += multi ? 3 : 1;
      for (; i < text.size(); ++i) {
        const char s = text[i];
        if (key && non_ascii(s)) return error(i, "a non-ASCII character in a key");
        if (basic && s == '\\') {
          std::size_t j = i + 1;
          if (multi) {  // a line-ending backslash skips whitespace and newlines
            while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' || text[j] == '\n')) {
              if (text[j] == '\n') {
                ++line;
                line_start = j + 1;
              }
              ++j;
            }
            if (j < text.size() && non_ascii(text[j])) {
              return error(j, "a non-ASCII character right after a backslash in a multi-line string");
            }
            i = j == i + 1 ? j : j - 1;  // an escape: skip its character; else continue at the next one
          } else {
            i = j;
          }
          continue;
        }
        if (s == '\n') {
          if (!multi) break;  // an unterminated string: toml++ reports it
          ++line;
          line_start = i + 1;
          continue;
        }
        if (multi ? text.substr(i, 3) == std::string(3, c) : s == c) {
          if (multi) {
            i += 2;
            while (i + 1 < text.size() && text[i + 1] == c) ++i;  // up to two quotes may end the content
          }
          break;
        }
      }
      if (i < text.size() && text[i] == '\n') --i;  // the loop sees the newline
      statement_start = false;
      continue;
    }
    if (non_ascii(c)) return error(i, "a non-ASCII character outside a string value or comment");
    if (statement_start && c == '[') {  // a table header: [key] or [[key]]
      std::size_t j = i + 1;
      if (j < text.size() && text[j] == '[') ++j;
      while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
      if (j < text.size() && !is_bare(text[j]) && text[j] != '"' && text[j] != '\'' && text[j] != ']') {
        return error(j, "a table header must start with a key (letters, digits, '_', '-' or a quoted key)");
      }
      i = j - 1;  // the header's brackets are its own; its keys are checked as keys
      statement_start = false;
      expect_key = true;
      continue;
    }
    statement_start = false;
    if (!expect_key && c != '=' && c != '[' && c != '{' && c != ']' && c != '}' && c != ',') {
      // A bare value (number, bool, date, or garbage): toml++ reads it up to a value terminator, testing
      // every character with is_whitespace(), quotes and brackets included.
      for (; i < text.size(); ++i) {
        const char v = text[i];
        if (v == ' ' || v == '\t' || v == '\r' || v == '\n' || v == ',' || v == ']' || v == '}' || v == '#') break;
        if (non_ascii(v)) return error(i, "a non-ASCII character outside a string value or comment");
      }
      --i;  // the loop sees the terminator
      continue;
    }
    if (c == '=') {
      expect_key = false;
    } else if (c == '[' && !expect_key) {
      nesting.push_back('[');
    } else if (c == '{') {
      nesting.push_back('{');
      expect_key = true;
    } else if ((c == ']' || c == '}') && !nesting.empty()) {
      if ((c == '}') != (nesting.back() == '{')) {
        return error(i, c == '}' ? "'}' where an array value or ']' belongs" : "']' where an inline table needs '}'");
      }
      nesting.pop_back();
      expect_key = false;
    } else if (c == ',' && !nesting.empty()) {
      expect_key = nesting.back() == '{';
    }
  }
  return absl::OkStatus();
}

}  // namespace kvbm::detail
