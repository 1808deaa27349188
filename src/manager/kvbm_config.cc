// KvbmConfig (kvbm/manager/kvbm_config.h): what the struct answers itself. The rest of it, by job:
//   config_keys.h/.cc          the key table: every key once (add keys there), config_keys(), the reference
//   config_key_kinds.h/.cc     the kinds of key (integer, bool, string, enum): parse text, print TOML
//   config_suggest.h/.cc       "did you mean" for unknown keys
//   config_toml_prescan.h/.cc  refuses TOML that toml++ cannot take safely, before it parses
//   config_toml.cc             from_toml*, to_toml
//   config_sources.cc          set(), KVBM_* environment, --set overrides, resolve / apply_layers
//   config_validate.cc         check(), validate()
#include "kvbm/manager/kvbm_config.h"

namespace kvbm {

const TierConfig& KvbmConfig::tier(CacheLevel level) const {
  switch (level) {
    case CacheLevel::kG1:
      return g1;
    case CacheLevel::kG2:
      return g2;
    default:
      return g3;
  }
}

std::uint32_t KvbmConfig::tier_blocks(CacheLevel level) const {
  if (level == CacheLevel::kG4) {  // the planned capacity (g4.num_blocks / g4.bytes)
    return static_cast<std::uint32_t>(g4.num_blocks != 0 ? g4.num_blocks : g4.bytes / model.bytes_per_block());
  }
  const TierConfig& t = tier(level);
  return static_cast<std::uint32_t>(t.num_blocks != 0 ? t.num_blocks : t.bytes / model.bytes_per_block());
}

}  // namespace kvbm
