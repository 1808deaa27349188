// Deterministic block contents for byte-exact tests: every byte of a block is a function of its sequence
// hash, layer, outer index and offset, so any block read back can be checked without keeping a copy.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kvbm/core/model_config.h"
#include "kvbm/core/types.h"
#include "kvbm/offload/tier.h"

namespace kvbm::testing {

// The byte at `i` of chunk (layer, outer) of the block with sequence hash `h`.
inline std::byte expected_byte(SequenceHash h, std::uint32_t layer, std::uint32_t outer, std::size_t i) {
  std::uint64_t x =
      h.value() ^ (std::uint64_t{layer} << 56) ^ (std::uint64_t{outer} << 48) ^ (i * 0x9E3779B97F4A7C15ull);
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  return static_cast<std::byte>(x >> 32);
}

// Writes what `h` implies into every chunk of `b`.
inline void fill(G1MutableBlock& b, SequenceHash h, const ModelConfig& m) {
  for (std::uint32_t l = 0; l < m.num_layers; ++l) {
    for (std::uint32_t o = 0; o < m.outer_dim; ++o) {
      auto bytes = b.chunk(l, o);
      for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = expected_byte(h, l, o, i);
    }
  }
}

// Bytes of `b` that differ from what its sequence hash implies.
inline std::size_t wrong_bytes(const G1Block& b, const ModelConfig& m) {
  std::size_t wrong = 0;
  for (std::uint32_t l = 0; l < m.num_layers; ++l) {
    for (std::uint32_t o = 0; o < m.outer_dim; ++o) {
      auto bytes = b.chunk(l, o);
      for (std::size_t i = 0; i < bytes.size(); ++i) wrong += bytes[i] != expected_byte(b.sequence_hash(), l, o, i);
    }
  }
  return wrong;
}

}  // namespace kvbm::testing
