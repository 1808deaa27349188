// ModelConfig: the shape of one KV block, from which every tier's bytes per block follow.
#pragma once

#include <absl/status/status.h>

#include <cstdint>
#include <string>

namespace kvbm {

// The KV geometry of a model, per block of `page_size` tokens.
// A block holds num_layers × outer_dim × page_size × inner_dim elements of dtype_bytes each.
// outer_dim is 2 for separate K and V, 1 for MLA-style latent caches.
struct ModelConfig {
  std::uint32_t num_layers = 1;
  std::uint32_t outer_dim = 2;
  std::uint32_t page_size = 16;
  std::uint32_t inner_dim = 128;  // e.g. num_kv_heads × head_dim
  std::uint32_t dtype_bytes = 2;

  // Limits that keep every product below 2^63 and reject obvious typos.
  static constexpr std::uint32_t kMaxLayers = 1024;
  static constexpr std::uint32_t kMaxPageSize = 1u << 16;
  static constexpr std::uint32_t kMaxInnerDim = 1u << 20;
  static constexpr std::uint32_t kMaxDtypeBytes = 16;

  // OK, or InvalidArgument naming the first field out of range and its allowed range.
  [[nodiscard]] absl::Status validate() const;

  // Bytes of one (layer, outer) chunk: page_size × inner_dim × dtype_bytes.
  [[nodiscard]] std::uint64_t bytes_per_chunk() const { return std::uint64_t{page_size} * inner_dim * dtype_bytes; }
  // Bytes of one whole block across layers: num_layers × outer_dim × bytes_per_chunk().
  [[nodiscard]] std::uint64_t bytes_per_block() const {
    return std::uint64_t{num_layers} * outer_dim * bytes_per_chunk();
  }
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const ModelConfig&, const ModelConfig&) = default;
};

}  // namespace kvbm
