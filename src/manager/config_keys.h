// The configuration key table: one row per key, the one list that TOML, the KVBM_* environment, `--set`,
// to_toml() and the README reference all read (DESIGN.md §7). Private to kvbm_manager.
//
// A row carries the key's documentation (ConfigKey), how to set it from text and how to print it as TOML.
// The rows themselves are written in config_keys.cc (make_key_table); the kinds of row (integer, bool,
// string, enum) are built by config_key_kinds.h.
#pragma once

#include <absl/status/status.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/manager/kvbm_config.h"

namespace kvbm::detail {

// Bounds shared by the key table and validation.
inline constexpr std::uint64_t kMaxAlignment = std::uint64_t{1} << 30;

// The model's keys, each an integer in [1, max]. The key table makes their rows from this list and check()
// checks every field against it, so that a model key's bound is written once.
struct ModelKey {
  const char* key;
  std::uint32_t ModelConfig::*field;
  std::uint32_t max;
  const char* description;
};
inline constexpr ModelKey kModelKeys[] = {
    {"model.num_layers", &ModelConfig::num_layers, ModelConfig::kMaxLayers, "Transformer layers per block"},
    {"model.outer_dim", &ModelConfig::outer_dim, 2, "2 for separate K and V, 1 for MLA latent caches"},
    {"model.page_size", &ModelConfig::page_size, ModelConfig::kMaxPageSize, "Tokens per block"},
    {"model.inner_dim", &ModelConfig::inner_dim, ModelConfig::kMaxInnerDim,
     "Elements per token per (layer, outer): num_kv_heads × head_dim"},
    {"model.dtype_bytes", &ModelConfig::dtype_bytes, ModelConfig::kMaxDtypeBytes, "Bytes per element"},
};

// Sets the key from its text form; `key` is the key's name, for error messages.
using Setter = std::function<absl::Status(KvbmConfig&, const std::string& key, std::string_view value)>;
// The key's value as a TOML value.
using Getter = std::function<std::string(const KvbmConfig&)>;

struct KeySpec {
  ConfigKey doc;
  Setter set;
  Getter get;
};

// Every key, in reference order (the order of README's table and of to_toml()).
[[nodiscard]] const std::vector<KeySpec>& key_table();
// The row of `key`, or null when there is no such key.
[[nodiscard]] const KeySpec* find_key(std::string_view key);

}  // namespace kvbm::detail
