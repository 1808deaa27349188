// The model flags of `kvbm replay` and `kvbm plan` (see tools/model_flags.h).
#include "tools/model_flags.h"

#include <absl/status/status.h>
#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>

#include <fstream>
#include <sstream>

#include "kvbm/core/size.h"

namespace kvbm::tools {

void add_model_options(CLI::App* cmd, ModelFlags& flags) {
  cmd->add_option("--model", flags.model,
                  "The model planned for, a preset (Llama-3.1-8B (default), Llama-3.1-70B, Llama-3.1-405B, Qwen3-8B, "
                  "Qwen3-32B, DeepSeek-V3) or a model TOML file (docs/models.md). Every size typed or printed is of "
                  "its real blocks");
  cmd->add_option("--layers", flags.layers, "Model: transformer layers [1, 1024] (over --model's)");
  cmd->add_option("--kv-heads", flags.kv_heads, "Model: KV heads [1, 1024] (with --head-dim; K and V per head)");
  cmd->add_option("--head-dim", flags.head_dim, "Model: head dim [1, 65536]");
  cmd->add_option("--latent-dim", flags.latent_dim,
                  "Model: MLA latent cache, one vector of this dim per token and layer (e.g. 576 for DeepSeek-V3)");
  cmd->add_option("--dtype-bytes", flags.dtype_bytes, "Model: bytes per KV element [1, 16] (2 = bf16, 1 = fp8)");
  cmd->add_option("--bytes-per-block", flags.bytes_per_block,
                  "An unnamed model given only by its real bytes per block (e.g. 2MiB); not with --model");
}

absl::StatusOr<std::optional<ModelDims>> read_model_file(const ModelFlags& f) {
  const bool is_file = absl::EndsWith(f.model, ".toml") || (!f.model.empty() && std::ifstream(f.model).good());
  if (!is_file) return std::nullopt;
  std::ifstream in(f.model);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--model: cannot read model file '", f.model, "'"));
  std::stringstream text;
  text << in.rdbuf();
  auto dims = parse_model_file(text.str());
  if (!dims.ok()) return absl::InvalidArgumentError(absl::StrCat("--model ", f.model, ": ", dims.status().message()));
  return std::optional<ModelDims>(*dims);
}

absl::StatusOr<std::optional<ModelSpec>> resolve_model(const ModelFlags& f, const std::optional<ModelDims>& file,
                                                       std::uint32_t block_tokens, bool default_preset) {
  const ModelDims flag_dims{.num_layers = f.layers,
                            .num_kv_heads = f.kv_heads,
                            .head_dim = f.head_dim,
                            .latent_dim = f.latent_dim,
                            .dtype_bytes = f.dtype_bytes};
  if (!f.bytes_per_block.empty()) {
    if (!f.model.empty() || !flag_dims.empty()) {
      return absl::InvalidArgumentError(
          "--bytes-per-block gives an unnamed model's block size: leave out --model, --layers, --kv-heads, "
          "--head-dim, --latent-dim and --dtype-bytes (or drop --bytes-per-block)");
    }
    auto bytes = parse_size(f.bytes_per_block);
    if (!bytes.ok() || *bytes == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--bytes-per-block must be a size >= 1 byte (e.g. 64KiB, 2MiB), got '", f.bytes_per_block, "'"));
    }
    auto m = ModelSpec::from_block_bytes(*bytes, block_tokens);
    if (!m.ok()) return absl::InvalidArgumentError(absl::StrCat("--bytes-per-block: ", m.status().message()));
    return std::optional<ModelSpec>(*m);
  }
  if (f.model.empty() && flag_dims.empty() && !default_preset) return std::nullopt;
  std::optional<ModelSpec> base;
  if (file) {
    auto m = apply_model_dims(std::nullopt, *file, block_tokens, /*from_flags=*/false);
    if (!m.ok()) return absl::InvalidArgumentError(absl::StrCat("--model ", f.model, ": ", m.status().message()));
    m->source = absl::StrCat("file ", f.model);
    if (!file->name) m->name = f.model;
    base = *m;
  } else if (!f.model.empty() || flag_dims.empty()) {
    auto m = model_spec_preset(f.model.empty() ? "Llama-3.1-8B" : f.model, block_tokens);
    if (!m.ok()) return absl::InvalidArgumentError(absl::StrCat("--model: ", m.status().message()));
    base = *m;
  }
  auto m = apply_model_dims(base, flag_dims, block_tokens, /*from_flags=*/true);
  if (!m.ok()) return absl::InvalidArgumentError(m.status().message());
  return std::optional<ModelSpec>(*m);
}

}  // namespace kvbm::tools
