// Model presets, model files and the bytes-per-block formula (see kvbm/replay/model_spec.h).
#include "kvbm/replay/model_spec.h"

#include <absl/strings/ascii.h>
#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <absl/strings/strip.h>

#include <algorithm>
#include <array>
#include <utility>

#include "kvbm/core/json_escape.h"
#include "kvbm/core/size.h"

namespace kvbm {
namespace {

struct Preset {
  const char* name;
  std::uint32_t num_layers;
  std::uint32_t num_kv_heads;  // 0: MLA
  std::uint32_t head_dim;      // MLA: the latent dim (kv_lora_rank + rope dims)
};

// From each model's config.json (num_hidden_layers, num_key_value_heads, head_dim; DeepSeek-V3:
// kv_lora_rank 512 + qk_rope_head_dim 64), with a bf16 KV cache.
constexpr std::array<Preset, 6> kPresets = {{
    {"Llama-3.1-8B", 32, 8, 128},
    {"Llama-3.1-70B", 80, 8, 128},
    {"Llama-3.1-405B", 126, 8, 128},
    {"Qwen3-8B", 36, 8, 128},
    {"Qwen3-32B", 64, 8, 128},
    {"DeepSeek-V3", 61, 0, 576},
}};

constexpr std::uint32_t kMaxHeads = 1024;
constexpr std::uint32_t kMaxHeadDim = 1u << 16;

absl::string_view shape_name(ModelSpec::Shape s) {
  switch (s) {
    case ModelSpec::Shape::kKvHeads:
      return "kv_heads";
    case ModelSpec::Shape::kLatent:
      return "latent";
    case ModelSpec::Shape::kInnerDim:
      return "inner_dim";
    case ModelSpec::Shape::kBlockBytes:
      return "block_bytes";
  }
  return "?";
}

absl::Status check_range(absl::string_view field, std::uint64_t value, std::uint64_t lo, std::uint64_t hi) {
  if (value < lo || value > hi) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be in [", lo, ", ", hi, "], got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

std::string ModelSpec::formula() const {
  const ModelConfig& g = geometry;
  const std::string outer = g.outer_dim == 2 ? "2 (K, V)" : "1 (latent)";
  std::string dims;
  switch (shape) {
    case Shape::kKvHeads:
      dims = absl::StrCat(num_kv_heads, " KV heads × ", head_dim, " head dim");
      break;
    case Shape::kLatent:
      dims = absl::StrCat(latent_dim, " latent dim");
      break;
    case Shape::kInnerDim:
      dims = absl::StrCat(g.inner_dim, " inner dim");
      break;
    case Shape::kBlockBytes:
      return absl::StrCat(format_size(bytes_per_block()), " (", bytes_per_block(), " B) per block of ", g.page_size,
                          " tokens, as given; no dimensions");
  }
  return absl::StrCat(g.num_layers, " layers × ", outer, " × ", dims, " × ", g.dtype_bytes, " B × ", g.page_size,
                      " tokens = ", format_size(bytes_per_block()));
}

std::string ModelSpec::to_json() const {
  const ModelConfig& g = geometry;
  std::string out =
      absl::StrCat("{\"name\":", json_string(name), ",\"source\":", json_string(source),
                   ",\"shape\":", json_string(std::string(shape_name(shape))), ",\"page_size\":", g.page_size);
  // A block given only by its bytes has no dimensions to show (its geometry is a stand-in).
  if (shape != Shape::kBlockBytes) {
    absl::StrAppend(&out, ",\"num_layers\":", g.num_layers, ",\"outer_dim\":", g.outer_dim,
                    ",\"inner_dim\":", g.inner_dim, ",\"dtype_bytes\":", g.dtype_bytes);
  }
  if (shape == Shape::kKvHeads) absl::StrAppend(&out, ",\"num_kv_heads\":", num_kv_heads, ",\"head_dim\":", head_dim);
  if (shape == Shape::kLatent) absl::StrAppend(&out, ",\"latent_dim\":", latent_dim);
  absl::StrAppend(&out, ",\"bytes_per_block\":", bytes_per_block(), "}");
  return out;
}

ModelSpec ModelSpec::from_geometry(const ModelConfig& geometry, std::string name, std::string source) {
  ModelSpec m;
  m.name = std::move(name);
  m.source = std::move(source);
  m.shape = Shape::kInnerDim;
  m.geometry = geometry;
  return m;
}

absl::StatusOr<ModelSpec> ModelSpec::from_block_bytes(std::uint64_t bytes, std::uint32_t tokens_per_block) {
  if (tokens_per_block == 0 || bytes == 0 || bytes % tokens_per_block != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bytes per block must be a multiple of the ", tokens_per_block, " tokens per block, got ", bytes));
  }
  ModelSpec m;
  m.name = "custom";
  m.source = "--bytes-per-block";
  m.shape = Shape::kBlockBytes;
  m.geometry =
      ModelConfig{.num_layers = 1, .outer_dim = 1, .page_size = tokens_per_block, .inner_dim = 1, .dtype_bytes = 1};
  std::uint64_t per_token = bytes / tokens_per_block;
  while (per_token > ModelConfig::kMaxInnerDim && per_token % 2 == 0 &&
         m.geometry.dtype_bytes < ModelConfig::kMaxDtypeBytes) {
    per_token /= 2;
    m.geometry.dtype_bytes *= 2;
  }
  if (per_token > ModelConfig::kMaxInnerDim) {
    return absl::InvalidArgumentError(
        absl::StrCat("bytes per block must be at most ",
                     std::uint64_t{ModelConfig::kMaxInnerDim} * ModelConfig::kMaxDtypeBytes * tokens_per_block, " for ",
                     tokens_per_block, " tokens per block, got ", bytes));
  }
  m.geometry.inner_dim = static_cast<std::uint32_t>(per_token);
  if (absl::Status s = m.geometry.validate(); !s.ok()) return s;
  return m;
}

std::vector<std::string> model_spec_preset_names() {
  std::vector<std::string> out;
  for (const Preset& p : kPresets) out.emplace_back(p.name);
  return out;
}

absl::StatusOr<ModelSpec> model_spec_preset(absl::string_view name, std::uint32_t tokens_per_block) {
  for (const Preset& p : kPresets) {
    if (!absl::EqualsIgnoreCase(name, p.name)) continue;
    ModelSpec m;
    m.name = p.name;
    m.source = "preset";
    m.geometry.num_layers = p.num_layers;
    m.geometry.page_size = tokens_per_block;
    m.geometry.dtype_bytes = 2;  // bf16
    if (p.num_kv_heads == 0) {
      m.shape = ModelSpec::Shape::kLatent;
      m.latent_dim = p.head_dim;
      m.geometry.outer_dim = 1;
      m.geometry.inner_dim = p.head_dim;
    } else {
      m.shape = ModelSpec::Shape::kKvHeads;
      m.num_kv_heads = p.num_kv_heads;
      m.head_dim = p.head_dim;
      m.geometry.outer_dim = 2;
      m.geometry.inner_dim = p.num_kv_heads * p.head_dim;
    }
    if (absl::Status s = m.geometry.validate(); !s.ok()) return s;
    return m;
  }
  return absl::NotFoundError(absl::StrCat("model '", name, "' is not a preset (",
                                          absl::StrJoin(model_spec_preset_names(), ", "), ") nor a model file"));
}

absl::StatusOr<ModelSpec> apply_model_dims(const std::optional<ModelSpec>& base, const ModelDims& d,
                                           std::uint32_t tokens_per_block, bool from_flags) {
  auto field = [from_flags](const char* flag, const char* key) { return std::string(from_flags ? flag : key); };
  const std::string layers_f = field("--layers", "num_layers"), heads_f = field("--kv-heads", "num_kv_heads"),
                    head_dim_f = field("--head-dim", "head_dim"), latent_f = field("--latent-dim", "latent_dim"),
                    dtype_f = field("--dtype-bytes", "dtype_bytes");
  if (d.latent_dim && (d.num_kv_heads || d.head_dim)) {
    return absl::InvalidArgumentError(absl::StrCat("give either ", heads_f, " and ", head_dim_f,
                                                   " (K and V per head) or ", latent_f,
                                                   " (MLA: one latent vector), not both"));
  }
  if (base && base->shape == ModelSpec::Shape::kBlockBytes && !d.empty()) {
    return absl::InvalidArgumentError("a model given only by its bytes per block has no dimensions to change");
  }
  ModelSpec m;
  if (base) {
    m = *base;
  } else {
    m.name = "custom";
    m.source = from_flags ? "flags" : "file";
    if (!d.num_layers) return absl::InvalidArgumentError(absl::StrCat("a custom model needs ", layers_f));
    if (!d.latent_dim && !(d.num_kv_heads && d.head_dim)) {
      return absl::InvalidArgumentError(
          absl::StrCat("a custom model needs ", heads_f, " and ", head_dim_f, ", or ", latent_f, " for MLA"));
    }
  }
  if (d.name) m.name = *d.name;
  if (d.num_layers) {
    if (absl::Status s = check_range(layers_f, *d.num_layers, 1, ModelConfig::kMaxLayers); !s.ok()) return s;
    m.geometry.num_layers = *d.num_layers;
  }
  if (d.num_kv_heads || d.head_dim) {
    if (m.shape != ModelSpec::Shape::kKvHeads && !(d.num_kv_heads && d.head_dim)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", m.name, "' has no KV heads: give both ", heads_f, " and ", head_dim_f));
    }
    m.shape = ModelSpec::Shape::kKvHeads;
    m.latent_dim = 0;
    if (d.num_kv_heads) {
      if (absl::Status s = check_range(heads_f, *d.num_kv_heads, 1, kMaxHeads); !s.ok()) return s;
      m.num_kv_heads = *d.num_kv_heads;
    }
    if (d.head_dim) {
      if (absl::Status s = check_range(head_dim_f, *d.head_dim, 1, kMaxHeadDim); !s.ok()) return s;
      m.head_dim = *d.head_dim;
    }
    if (std::uint64_t{m.num_kv_heads} * m.head_dim > ModelConfig::kMaxInnerDim) {
      return absl::InvalidArgumentError(absl::StrCat(heads_f, " × ", head_dim_f, " must be at most ",
                                                     ModelConfig::kMaxInnerDim, ", got ", m.num_kv_heads, " × ",
                                                     m.head_dim));
    }
    m.geometry.outer_dim = 2;
    m.geometry.inner_dim = m.num_kv_heads * m.head_dim;
  }
  if (d.latent_dim) {
    if (absl::Status s = check_range(latent_f, *d.latent_dim, 1, ModelConfig::kMaxInnerDim); !s.ok()) return s;
    m.shape = ModelSpec::Shape::kLatent;
    m.num_kv_heads = m.head_dim = 0;
    m.latent_dim = *d.latent_dim;
    m.geometry.outer_dim = 1;
    m.geometry.inner_dim = *d.latent_dim;
  }
  if (d.dtype_bytes) {
    if (absl::Status s = check_range(dtype_f, *d.dtype_bytes, 1, ModelConfig::kMaxDtypeBytes); !s.ok()) return s;
    m.geometry.dtype_bytes = *d.dtype_bytes;
  }
  if (d.page_size && *d.page_size != tokens_per_block) {
    return absl::InvalidArgumentError(absl::StrCat("page_size ", *d.page_size, " differs from ", tokens_per_block,
                                                   " tokens per block: one kvbm block is one trace block "
                                                   "(set --block-tokens to the model's page size)"));
  }
  if (base && !d.empty() && m.source == "preset") m.source = from_flags ? "preset, changed by flags" : "preset";
  m.geometry.page_size = tokens_per_block;
  if (absl::Status s = m.geometry.validate(); !s.ok()) return s;
  return m;
}

absl::StatusOr<ModelDims> parse_model_file(absl::string_view text) {
  ModelDims d;
  int line_no = 0;
  bool seen_key = false;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line_no;
    auto error = [line_no](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": ", what));
    };
    // A '#' outside a quoted string starts a comment.
    bool quoted = false;
    std::size_t end = raw.size();
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '"') quoted = !quoted;
      if (raw[i] == '#' && !quoted) {
        end = i;
        break;
      }
    }
    const absl::string_view line = absl::StripAsciiWhitespace(raw.substr(0, end));
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line != "[model]" || seen_key) return error("the only table allowed is [model], before every key");
      continue;
    }
    const std::size_t eq = line.find('=');
    if (eq == absl::string_view::npos) return error("expected key = value");
    const std::string key(absl::StripAsciiWhitespace(line.substr(0, eq)));
    const absl::string_view value = absl::StripAsciiWhitespace(line.substr(eq + 1));
    seen_key = true;
    if (key == "name") {
      if (d.name) return error("name given twice");
      if (value.size() < 2 || value.front() != '"' || value.back() != '"' ||
          value.substr(1, value.size() - 2).find_first_of("\"\\") != absl::string_view::npos) {
        return error("name must be a quoted string without escapes, e.g. name = \"my-model\"");
      }
      d.name = std::string(value.substr(1, value.size() - 2));
      continue;
    }
    std::optional<std::uint32_t>* slot = nullptr;
    if (key == "num_layers") slot = &d.num_layers;
    if (key == "num_kv_heads") slot = &d.num_kv_heads;
    if (key == "head_dim") slot = &d.head_dim;
    if (key == "latent_dim") slot = &d.latent_dim;
    if (key == "dtype_bytes") slot = &d.dtype_bytes;
    if (key == "page_size") slot = &d.page_size;
    if (slot == nullptr) {
      return error(absl::StrCat("unknown key '", key,
                                "' (keys: name, num_layers, num_kv_heads, head_dim, latent_dim, dtype_bytes, "
                                "page_size)"));
    }
    if (slot->has_value()) return error(absl::StrCat(key, " given twice"));
    std::uint32_t v = 0;
    if (value.empty() || !std::all_of(value.begin(), value.end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(value, &v) || v == 0) {
      return error(absl::StrCat(key, " must be a whole number >= 1, got '", value, "'"));
    }
    *slot = v;
  }
  return d;
}

}  // namespace kvbm
