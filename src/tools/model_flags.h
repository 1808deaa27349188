// The model a `kvbm replay` or `kvbm plan` is for: --model (a preset or a model TOML file), the dimension
// flags over it, or --bytes-per-block alone (docs/models.md). Every size either command reads or prints is
// a real block of this model.
#pragma once

#include <absl/status/statusor.h>
#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "kvbm/replay/model_spec.h"

namespace kvbm::tools {

struct ModelFlags {
  std::string model;  // "" = the command's default
  std::optional<std::uint32_t> layers, kv_heads, head_dim, latent_dim, dtype_bytes;
  std::string bytes_per_block;
};

// Registers --model, --layers, --kv-heads, --head-dim, --latent-dim, --dtype-bytes and --bytes-per-block.
void add_model_options(CLI::App* cmd, ModelFlags& flags);

// The model file --model names (it ends in .toml or a file of that name exists), or nullopt for a preset
// name or none. Its page_size is the tokens per block's default. InvalidArgument naming --model.
[[nodiscard]] absl::StatusOr<std::optional<ModelDims>> read_model_file(const ModelFlags& flags);

// The model for `block_tokens` tokens per block: --bytes-per-block, or the preset or `file` with the
// dimension flags over it; with none of these flags, Llama-3.1-8B when `default_preset`, else nullopt (the
// caller's configuration file decides). InvalidArgument naming the flag.
[[nodiscard]] absl::StatusOr<std::optional<ModelSpec>> resolve_model(const ModelFlags& flags,
                                                                     const std::optional<ModelDims>& file,
                                                                     std::uint32_t block_tokens, bool default_preset);

}  // namespace kvbm::tools
