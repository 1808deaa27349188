// Frame-level helpers of the ZMQ transport of specs/kv-events-wire-format.md, shared by the publisher,
// the subscriber and tests.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace kvbm {

// The sequence number a replay answer ends with: -1 as eight 0xFF bytes.
inline constexpr std::uint64_t kZmqReplayEndSeq = ~std::uint64_t{0};

// A sequence number as its 8-byte big-endian frame.
[[nodiscard]] inline std::array<char, 8> encode_zmq_seq(std::uint64_t seq) {
  std::array<char, 8> out{};
  for (int i = 7; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(seq & 0xFF);
    seq >>= 8;
  }
  return out;
}

// REQUIRES: frame.size() == 8.
[[nodiscard]] inline std::uint64_t decode_zmq_seq(std::string_view frame) {
  std::uint64_t seq = 0;
  for (char c : frame.substr(0, 8)) seq = (seq << 8) | static_cast<std::uint8_t>(c);
  return seq;
}

}  // namespace kvbm
