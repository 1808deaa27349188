// Byte sizes as people write them in configuration: "32GiB", "512 MiB", "1.5GiB", "1GB", "123".
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace kvbm {

// Parses a byte count: a number (integer or decimal) followed by an optional unit, with optional spaces
// around and between them. Units (case-insensitive): B; binary KiB, MiB, GiB, TiB, PiB (powers of 1024);
// decimal KB, MB, GB, TB, PB (powers of 1000); no unit means bytes. A decimal number is rounded down to
// whole bytes. InvalidArgument naming the input and the accepted forms when it does not parse or
// does not fit in 64 bits.
[[nodiscard]] absl::StatusOr<std::uint64_t> parse_size(std::string_view text);

// Human-readable size in binary units with one decimal, e.g. "32.0 GiB", "1.5 KiB"; "123 B" below 1 KiB.
[[nodiscard]] std::string format_size(std::uint64_t bytes);

}  // namespace kvbm
