// ModelSpec: the model a capacity plan is for — a preset, a small TOML file or flags — and the real bytes
// of one KV block it implies (`kvbm replay --model`, docs/models.md).
//
// A ModelSpec is plain data. It names the model and keeps the dimensions the user gave (KV heads and head
// dim, or an MLA latent dim, or only an inner dim from a KvbmConfig, or only a block size), and its
// `geometry` is the core ModelConfig every tier is sized with: bytes per block =
//   layers × outer (2 = K and V; 1 = one MLA latent vector) × tokens per block × inner dim × dtype bytes,
// inner dim = KV heads × head dim (or the latent dim).
// Every size a user types or reads in replay is this real block's bytes; data mode may store fewer bytes
// of each block (ReplayOptions::stored_bytes_per_block), which changes no hit.
#pragma once

#include <absl/status/statusor.h>

#include <absl/strings/string_view.h>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kvbm/core/model_config.h"

namespace kvbm {

struct ModelSpec {
  // How the user described the model: which dimensions are known, and so which formula prints.
  enum class Shape : std::uint8_t {
    kKvHeads,     // num_kv_heads × head_dim (GQA / MHA); outer 2 (K and V)
    kLatent,      // one latent vector per token and layer (MLA); outer 1, inner = latent_dim
    kInnerDim,    // a KvbmConfig's model section: inner_dim and outer_dim as given
    kBlockBytes,  // only the bytes per block (--bytes-per-block): the geometry is a stand-in
  };

  std::string name;    // "Llama-3.1-8B", a model file's `name`, "custom", "config"
  std::string source;  // where it came from: "preset", "file m.toml", "flags", "--bytes-per-block", ...
  Shape shape = Shape::kInnerDim;
  std::uint32_t num_kv_heads = 0;  // kKvHeads
  std::uint32_t head_dim = 0;      // kKvHeads
  std::uint32_t latent_dim = 0;    // kLatent
  ModelConfig geometry;            // page_size = tokens per block

  [[nodiscard]] std::uint64_t bytes_per_block() const { return geometry.bytes_per_block(); }
  // "32 layers × 2 (K, V) × 8 KV heads × 128 head dim × 2 B × 512 tokens = 64.0 MiB" (one line, no newline).
  [[nodiscard]] std::string formula() const;
  // {"name","source","shape":"kv_heads"|"latent"|"inner_dim"|"block_bytes","page_size", then (not for
  // block_bytes) "num_layers","outer_dim","inner_dim","dtype_bytes", "num_kv_heads","head_dim" (kv_heads)
  // or "latent_dim" (latent), and "bytes_per_block"}.
  [[nodiscard]] std::string to_json() const;

  // An unnamed model known only by its bytes per block (shape kBlockBytes): a stand-in geometry of one
  // layer, one outer and tokens_per_block tokens. InvalidArgument when bytes is not a multiple of
  // tokens_per_block or is above 8 GiB-ish (the geometry's limits).
  [[nodiscard]] static absl::StatusOr<ModelSpec> from_block_bytes(std::uint64_t bytes, std::uint32_t tokens_per_block);
  // A spec that only knows a core geometry (a KvbmConfig's model section): shape kInnerDim.
  [[nodiscard]] static ModelSpec from_geometry(const ModelConfig& geometry, std::string name, std::string source);
};

// Dimensions given one by one (flags or a model file); unset fields keep the base model's.
struct ModelDims {
  std::optional<std::string> name;
  std::optional<std::uint32_t> num_layers, num_kv_heads, head_dim, latent_dim, dtype_bytes, page_size;
  [[nodiscard]] bool empty() const {
    return !name && !num_layers && !num_kv_heads && !head_dim && !latent_dim && !dtype_bytes && !page_size;
  }
};

// The presets: "Llama-3.1-8B", "Llama-3.1-70B", "Llama-3.1-405B", "Qwen3-8B", "Qwen3-32B", "DeepSeek-V3"
// (bf16 KV cache). Names match without regard to case.
[[nodiscard]] std::vector<std::string> model_spec_preset_names();
// NotFound listing the presets for an unknown name. page_size = tokens_per_block.
[[nodiscard]] absl::StatusOr<ModelSpec> model_spec_preset(absl::string_view name, std::uint32_t tokens_per_block);

// Applies `dims` to `base` (kv heads and head dim, or a latent dim, replace base's shape), with page_size =
// tokens_per_block. `what` prefixes errors ("--kv-heads" style flag names when from_flags, key names
// otherwise). InvalidArgument naming the field and its allowed range.
[[nodiscard]] absl::StatusOr<ModelSpec> apply_model_dims(const std::optional<ModelSpec>& base, const ModelDims& dims,
                                                         std::uint32_t tokens_per_block, bool from_flags);

// A model file: a small TOML subset, one `key = value` per line, `#` comments, an optional `[model]` header;
// keys name (a quoted string), num_layers, num_kv_heads, head_dim, latent_dim, dtype_bytes, page_size
// (integers). InvalidArgument "line N: ..." for anything else. docs/models.md has an example.
[[nodiscard]] absl::StatusOr<ModelDims> parse_model_file(absl::string_view text);

}  // namespace kvbm
