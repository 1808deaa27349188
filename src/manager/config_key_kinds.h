// The kinds of configuration key — integer, bool, string, enum — as rows of the key table (config_keys.h):
// each parses its text form into a KvbmConfig field, names the allowed values when the text is bad, and
// prints the field as a TOML value. Private to kvbm_manager.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "manager/config_keys.h"

namespace kvbm::detail {

// InvalidArgument "<key> must be <allowed>, got '<value>'".
[[nodiscard]] absl::Status bad_value(const std::string& key, std::string_view value, std::string_view allowed);
// An integer in [lo, hi], else bad_value.
[[nodiscard]] absl::StatusOr<std::uint64_t> parse_uint(const std::string& key, std::string_view value, std::uint64_t lo,
                                                       std::uint64_t hi);
// true/1/yes/on or false/0/no/off, any case, else bad_value.
[[nodiscard]] absl::StatusOr<bool> parse_bool(const std::string& key, std::string_view value);
// A TOML basic string: quotes, backslashes and control characters escaped (a g3.directory may hold any).
[[nodiscard]] std::string quoted(std::string_view text);

// An unsigned integer field in [lo, hi].
template <typename Field>
KeySpec uint_key(std::string key, std::function<Field&(KvbmConfig&)> field, std::uint64_t lo, std::uint64_t hi,
                 std::string description) {
  auto cfield = [field](const KvbmConfig& c) -> Field { return field(const_cast<KvbmConfig&>(c)); };
  return KeySpec{ConfigKey{std::move(key), "", "integer", absl::StrCat("[", lo, ", ", hi, "]"), std::move(description)},
                 [field, lo, hi](KvbmConfig& c, const std::string& k, std::string_view value) -> absl::Status {
                   auto v = parse_uint(k, value, lo, hi);
                   if (!v.ok()) return v.status();
                   field(c) = static_cast<Field>(*v);
                   return absl::OkStatus();
                 },
                 [cfield](const KvbmConfig& c) { return absl::StrCat(cfield(c)); }};
}

KeySpec bool_key(std::string key, std::function<bool&(KvbmConfig&)> field, std::string description);

// A string field, taken as written; `allowed` says what it should hold.
KeySpec string_key(std::string key, std::function<std::string&(KvbmConfig&)> field, std::string allowed,
                   std::string description);

// An enum field given by name: `names[i]` is the name of `values[i]`.
template <typename E>
KeySpec enum_key(std::string key, std::function<E&(KvbmConfig&)> field, std::vector<std::pair<E, std::string>> names,
                 std::string description) {
  std::string allowed;
  for (const auto& [v, name] : names) absl::StrAppend(&allowed, allowed.empty() ? "" : " | ", name);
  std::string one_of;
  for (const auto& [v, name] : names) absl::StrAppend(&one_of, one_of.empty() ? "" : ", ", name);
  return KeySpec{ConfigKey{std::move(key), "", "enum", allowed, std::move(description)},
                 [field, names, one_of](KvbmConfig& c, const std::string& k, std::string_view value) -> absl::Status {
                   for (const auto& [v, name] : names) {
                     if (value == name) {
                       field(c) = v;
                       return absl::OkStatus();
                     }
                   }
                   return bad_value(k, value, absl::StrCat("one of ", one_of));
                 },
                 [field, names](const KvbmConfig& c) {
                   const E v = field(const_cast<KvbmConfig&>(c));
                   for (const auto& [value, name] : names) {
                     if (value == v) return quoted(name);
                   }
                   return std::string("\"?\"");
                 }};
}

}  // namespace kvbm::detail
