#include "kvbm/core/size.h"

#include <absl/status/status.h>
#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/string_view.h>

#include <array>

namespace kvbm {
namespace {

// 128-bit intermediate so that "fraction × unit" cannot overflow before the range check.
__extension__ using Wide = unsigned __int128;

struct Unit {
  absl::string_view name;
  std::uint64_t bytes;
};

constexpr std::array<Unit, 11> kUnits = {{
    {"b", 1},
    {"kib", 1ull << 10},
    {"mib", 1ull << 20},
    {"gib", 1ull << 30},
    {"tib", 1ull << 40},
    {"pib", 1ull << 50},
    {"kb", 1'000ull},
    {"mb", 1'000'000ull},
    {"gb", 1'000'000'000ull},
    {"tb", 1'000'000'000'000ull},
    {"pb", 1'000'000'000'000'000ull},
}};

constexpr Wide kMaxU64 = static_cast<Wide>(~std::uint64_t{0});

absl::Status size_error(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "size \"", text, "\" ", why,
      "; expected a number with an optional unit B, KiB, MiB, GiB, TiB, PiB (1024-based) or KB, MB, GB, TB, PB "
      "(1000-based), e.g. \"32GiB\", \"1.5 GiB\", \"123\""));
}

}  // namespace

absl::StatusOr<std::uint64_t> parse_size(std::string_view input) {
  // Abseil here is built with its own string_view type, not std's.
  const absl::string_view text(input.data(), input.size());
  absl::string_view rest = absl::StripAsciiWhitespace(text);
  Wide whole = 0;
  std::size_t whole_digits = 0;
  while (!rest.empty() && absl::ascii_isdigit(static_cast<unsigned char>(rest.front()))) {
    whole = whole * 10 + static_cast<unsigned>(rest.front() - '0');
    if (whole > kMaxU64) return size_error(text, "does not fit in 64 bits");
    ++whole_digits;
    rest.remove_prefix(1);
  }
  // Fraction as numerator / 10^digits; digits beyond 19 cannot change a result rounded to whole bytes
  // for units up to PiB, so they are checked but not accumulated.
  Wide frac = 0;
  Wide frac_scale = 1;
  std::size_t frac_digits = 0;
  bool has_point = false;
  if (!rest.empty() && rest.front() == '.') {
    has_point = true;
    rest.remove_prefix(1);
    while (!rest.empty() && absl::ascii_isdigit(static_cast<unsigned char>(rest.front()))) {
      if (frac_digits < 19) {
        frac = frac * 10 + static_cast<unsigned>(rest.front() - '0');
        frac_scale *= 10;
      }
      ++frac_digits;
      rest.remove_prefix(1);
    }
  }
  if (whole_digits == 0 && frac_digits == 0) return size_error(text, "has no number");
  if (has_point && frac_digits == 0) return size_error(text, "has a decimal point with no digits after it");

  const std::string unit_text = absl::AsciiStrToLower(absl::StripAsciiWhitespace(rest));
  std::uint64_t multiplier = 1;
  if (!unit_text.empty()) {
    bool found = false;
    for (const Unit& unit : kUnits) {
      if (unit.name == unit_text) {
        multiplier = unit.bytes;
        found = true;
        break;
      }
    }
    if (!found) return size_error(text, absl::StrCat("has an unknown unit \"", rest, "\""));
  }
  const Wide total = whole * multiplier + frac * multiplier / frac_scale;
  if (total > kMaxU64) return size_error(text, "does not fit in 64 bits");
  // "0.5B" would round down to 0, which a capacity reads as "no tier": a size that is not zero must be at
  // least one byte.
  if (total == 0 && (whole != 0 || frac != 0)) return size_error(text, "is less than one byte");
  return static_cast<std::uint64_t>(total);
}

std::string format_size(std::uint64_t bytes) {
  static constexpr std::array<absl::string_view, 6> kNames = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  std::size_t index = 0;
  std::uint64_t unit = 1;
  while (index + 1 < kNames.size() && bytes / unit >= 1024) {
    unit <<= 10;
    ++index;
  }
  return absl::StrFormat("%.1f %s", static_cast<double>(bytes) / static_cast<double>(unit), kNames[index]);
}

}  // namespace kvbm
