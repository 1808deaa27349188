// The kinds of configuration key (config_key_kinds.h).
#include "manager/config_key_kinds.h"

#include <absl/strings/ascii.h>
#include <absl/strings/numbers.h>

namespace kvbm::detail {

absl::Status bad_value(const std::string& key, std::string_view value, std::string_view allowed) {
  return absl::InvalidArgumentError(
      absl::StrCat(key, " must be ", std::string(allowed), ", got '", std::string(value), "'"));
}

absl::StatusOr<std::uint64_t> parse_uint(const std::string& key, std::string_view value, std::uint64_t lo,
                                         std::uint64_t hi) {
  std::uint64_t v = 0;
  const std::string range = absl::StrCat("an integer in [", lo, ", ", hi, "]");
  if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &v) || v < lo || v > hi) {
    return bad_value(key, value, range);
  }
  return v;
}

absl::StatusOr<bool> parse_bool(const std::string& key, std::string_view value) {
  const std::string v = absl::AsciiStrToLower(absl::string_view(value.data(), value.size()));
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return bad_value(key, value, "true or false (also 1 or 0, yes or no, on or off)");
}

// A TOML basic string: quotes, backslashes and control characters escaped (a g3.directory may hold any).
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20 || byte == 0x7f) {
      absl::StrAppend(&out, "\\u00", absl::Hex(byte, absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

KeySpec bool_key(std::string key, std::function<bool&(KvbmConfig&)> field, std::string description) {
  return KeySpec{
      ConfigKey{std::move(key), "", "bool", "true | false (also 1 | 0, yes | no, on | off)", std::move(description)},
      [field](KvbmConfig& c, const std::string& k, std::string_view value) -> absl::Status {
        auto v = parse_bool(k, value);
        if (!v.ok()) return v.status();
        field(c) = *v;
        return absl::OkStatus();
      },
      [field](const KvbmConfig& c) { return std::string(field(const_cast<KvbmConfig&>(c)) ? "true" : "false"); }};
}

// A string field, taken as written; `allowed` says what it should hold.
KeySpec string_key(std::string key, std::function<std::string&(KvbmConfig&)> field, std::string allowed,
                   std::string description) {
  return KeySpec{ConfigKey{std::move(key), "", "string", std::move(allowed), std::move(description)},
                 [field](KvbmConfig& c, const std::string&, std::string_view value) -> absl::Status {
                   field(c) = std::string(value);
                   return absl::OkStatus();
                 },
                 [field](const KvbmConfig& c) { return quoted(field(const_cast<KvbmConfig&>(c))); }};
}

}  // namespace kvbm::detail
