// Little-endian integer encoding for kvbm's byte formats: the chain-hash input (DESIGN.md §1), the G4
// value header, the peer-block messages and the UCX metadata blob. Every format is little-endian
// whatever the host's byte order, so these work byte by byte and never reinterpret memory.
//
// The width is always written at the call site (`store_le<std::uint64_t>(p, v)`, `read<std::uint32_t>`): it is part of
// the format, so it is never deduced from the argument's type. Pure functions; LeReader is a value that one thread uses
// at a time and that does not own its input.
#pragma once

#include <absl/status/status.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace kvbm {

// The byte types a buffer may be made of.
template <typename B>
concept LeByte = std::same_as<B, char> || std::same_as<B, unsigned char> || std::same_as<B, std::byte>;

// Writes `value` as sizeof(T) little-endian bytes to out[0, sizeof(T)).
template <std::unsigned_integral T, LeByte B>
constexpr void store_le(B* out, std::type_identity_t<T> value) {
  for (std::size_t i = 0; i < sizeof(T); ++i) out[i] = static_cast<B>(static_cast<unsigned char>(value >> (8 * i)));
}

// The value of the sizeof(T) little-endian bytes in[0, sizeof(T)).
template <std::unsigned_integral T, LeByte B>
[[nodiscard]] constexpr T load_le(const B* in) {
  T value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    value |= static_cast<T>(static_cast<T>(static_cast<unsigned char>(in[i])) << (8 * i));
  }
  return value;
}

// Appends `value` as sizeof(T) little-endian bytes. REQUIRES: out != nullptr.
template <std::unsigned_integral T>
void append_le(std::string* out, std::type_identity_t<T> value) {
  char bytes[sizeof(T)];
  store_le<T>(bytes, value);
  out->append(bytes, sizeof(T));
}
template <std::unsigned_integral T>
void append_le(std::vector<std::byte>* out, std::type_identity_t<T> value) {
  std::byte bytes[sizeof(T)];
  store_le<T>(bytes, value);
  out->insert(out->end(), bytes, bytes + sizeof(T));
}

// Reads little-endian integers and byte strings from the front of a buffer, each read checked against
// its end. A read past the end changes nothing and returns InvalidArgument
// "<what>: truncated at byte <pos> of <size> (reading <field>)".
// REQUIRES: the buffer and `what` outlive the reader.
class LeReader {
 public:
  // `what` names the buffer in errors, e.g. "ucx metadata".
  LeReader(std::string_view in, std::string_view what) : in_(in), what_(what) {}

  template <std::unsigned_integral T>
  [[nodiscard]] absl::Status read(std::type_identity_t<T>* value, std::string_view field) {
    if (remaining() < sizeof(T)) return truncated(field);
    *value = load_le<T>(in_.data() + pos_);
    pos_ += sizeof(T);
    return absl::OkStatus();
  }
  // The next `n` bytes.
  [[nodiscard]] absl::Status read_bytes(std::string* value, std::size_t n, std::string_view field);

  // Bytes read so far, and bytes left.
  [[nodiscard]] std::size_t pos() const { return pos_; }
  [[nodiscard]] std::size_t remaining() const { return in_.size() - pos_; }
  // The error a read of `field` at the current position reports when too few bytes are left.
  [[nodiscard]] absl::Status truncated(std::string_view field) const;

 private:
  std::string_view in_;
  std::string_view what_;
  std::size_t pos_ = 0;
};

}  // namespace kvbm
