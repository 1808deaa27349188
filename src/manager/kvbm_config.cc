// KvbmConfig: validation, the key table shared by TOML, environment and CLI, and TOML I/O.
#include "kvbm/manager/kvbm_config.h"

#include <absl/strings/ascii.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_replace.h>

#include <bit>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

// toml++ header-only, compiled here: Debian's libtomlplusplus.so is built with exceptions, and keeping
// the parser in this one translation unit lets parse errors be caught and turned into Status here.
#include <toml++/toml.h>

#include "kvbm/core/size.h"

namespace kvbm {
namespace {

constexpr std::uint64_t kMaxTierBlocks = 0xFFFFFFFEu;
constexpr std::uint64_t kMaxAlignment = std::uint64_t{1} << 30;

using Setter = std::function<absl::Status(KvbmConfig&, const std::string& key, std::string_view value)>;
using Getter = std::function<std::string(const KvbmConfig&)>;

struct KeySpec {
  ConfigKey doc;
  Setter set;
  Getter get;
};

absl::Status bad_value(const std::string& key, std::string_view value, std::string_view allowed) {
  return absl::InvalidArgumentError(
      absl::StrCat(key, " must be ", std::string(allowed), ", got '", std::string(value), "'"));
}

absl::StatusOr<std::uint64_t> parse_uint(const std::string& key, std::string_view value, std::uint64_t lo,
                                         std::uint64_t hi) {
  std::uint64_t v = 0;
  const std::string range = absl::StrCat("an integer in [", lo, ", ", hi, "]");
  if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &v) || v < lo || v > hi) {
    return bad_value(key, value, range);
  }
  return v;
}

absl::StatusOr<bool> parse_bool(const std::string& key, std::string_view value) {
  const std::string v = absl::AsciiStrToLower(absl::string_view(value.data(), value.size()));
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return bad_value(key, value, "true or false");
}

std::string quoted(std::string_view text) { return absl::StrCat("\"", std::string(text), "\""); }

// An unsigned integer field in [lo, hi].
template <typename Field>
KeySpec uint_key(std::string key, std::function<Field&(KvbmConfig&)> field, std::uint64_t lo, std::uint64_t hi,
                 std::string description) {
  auto cfield = [field](const KvbmConfig& c) -> Field { return field(const_cast<KvbmConfig&>(c)); };
  return KeySpec{ConfigKey{std::move(key), "", "integer", absl::StrCat("[", lo, ", ", hi, "]"), std::move(description)},
                 [field, lo, hi](KvbmConfig& c, const std::string& k, std::string_view value) -> absl::Status {
                   auto v = parse_uint(k, value, lo, hi);
                   if (!v.ok()) return v.status();
                   field(c) = static_cast<Field>(*v);
                   return absl::OkStatus();
                 },
                 [cfield](const KvbmConfig& c) { return absl::StrCat(cfield(c)); }};
}

KeySpec bool_key(std::string key, std::function<bool&(KvbmConfig&)> field, std::string description) {
  return KeySpec{
      ConfigKey{std::move(key), "", "bool", "true | false", std::move(description)},
      [field](KvbmConfig& c, const std::string& k, std::string_view value) -> absl::Status {
        auto v = parse_bool(k, value);
        if (!v.ok()) return v.status();
        field(c) = *v;
        return absl::OkStatus();
      },
      [field](const KvbmConfig& c) { return std::string(field(const_cast<KvbmConfig&>(c)) ? "true" : "false"); }};
}

// An enum field given by name: `names[i]` is the name of `values[i]`.
template <typename E>
KeySpec enum_key(std::string key, std::function<E&(KvbmConfig&)> field, std::vector<std::pair<E, std::string>> names,
                 std::string description) {
  std::string allowed;
  for (const auto& [v, name] : names) absl::StrAppend(&allowed, allowed.empty() ? "" : " | ", name);
  std::string one_of;
  for (const auto& [v, name] : names) absl::StrAppend(&one_of, one_of.empty() ? "" : ", ", name);
  return KeySpec{ConfigKey{std::move(key), "", "enum", allowed, std::move(description)},
                 [field, names, one_of](KvbmConfig& c, const std::string& k, std::string_view value) -> absl::Status {
                   for (const auto& [v, name] : names) {
                     if (value == name) {
                       field(c) = v;
                       return absl::OkStatus();
                     }
                   }
                   return bad_value(k, value, absl::StrCat("one of ", one_of));
                 },
                 [field, names](const KvbmConfig& c) {
                   const E v = field(const_cast<KvbmConfig&>(c));
                   for (const auto& [value, name] : names) {
                     if (value == v) return quoted(name);
                   }
                   return std::string("\"?\"");
                 }};
}

// A capacity: num_blocks and bytes clear each other, so the source set last wins.
void add_capacity_keys(std::vector<KeySpec>& keys, const std::string& tier, std::function<TierConfig&(KvbmConfig&)> t,
                       const std::string& what) {
  keys.push_back(KeySpec{
      ConfigKey{tier + ".num_blocks", "", "integer", absl::StrCat("[", tier == "g1" ? 1 : 0, ", ", kMaxTierBlocks, "]"),
                absl::StrCat(what, " capacity in blocks (clears ", tier, ".bytes)")},
      [t, tier](KvbmConfig& c, const std::string& key, std::string_view value) -> absl::Status {
        auto v = parse_uint(key, value, tier == "g1" ? 1 : 0, kMaxTierBlocks);
        if (!v.ok()) return v.status();
        t(c).num_blocks = *v;
        t(c).bytes = 0;
        return absl::OkStatus();
      },
      [t](const KvbmConfig& c) { return absl::StrCat(t(const_cast<KvbmConfig&>(c)).num_blocks); }});
  keys.push_back(KeySpec{
      ConfigKey{tier + ".bytes", "", "size", "a size ≥ one block, e.g. \"4GiB\", \"512MiB\", 1048576",
                absl::StrCat(what, " capacity in bytes, rounded down to whole blocks (clears ", tier, ".num_blocks)")},
      [t](KvbmConfig& c, const std::string& key, std::string_view value) -> absl::Status {
        auto v = parse_size(value);
        if (!v.ok()) return absl::InvalidArgumentError(absl::StrCat(key, ": ", v.status().message()));
        t(c).bytes = *v;
        t(c).num_blocks = 0;
        return absl::OkStatus();
      },
      [t](const KvbmConfig& c) { return quoted(absl::StrCat(t(const_cast<KvbmConfig&>(c)).bytes)); }});
}

void add_tier_keys(std::vector<KeySpec>& keys, const std::string& tier, TierConfig KvbmConfig::*member,
                   const std::string& what) {
  auto t = [member](KvbmConfig& c) -> TierConfig& { return c.*member; };
  add_capacity_keys(keys, tier, t, what);
  keys.push_back(enum_key<LayoutKind>(
      tier + ".layout", [t](KvbmConfig& c) -> LayoutKind& { return t(c).layout.kind; },
      {{LayoutKind::kFullyContiguous, "fully_contiguous"}, {LayoutKind::kLayerSeparate, "layer_separate"}},
      tier == "g3" ? "G3 layout (must be fully_contiguous: one aligned I/O per block)"
                   : absl::StrCat("How ", what, " lays out block bytes")));
  keys.push_back(bool_key(
      tier + ".outer_contiguous", [t](KvbmConfig& c) -> bool& { return t(c).layout.outer_contiguous; },
      "layer_separate: lay each layer [outer][block] instead of [block][outer]"));
  keys.push_back(
      KeySpec{ConfigKey{tier + ".alignment", "", "integer", absl::StrCat("power of two in [1, ", kMaxAlignment, "]"),
                        "fully_contiguous: block stride alignment in bytes (g3: raised to 4096)"},
              [t](KvbmConfig& c, const std::string& key, std::string_view value) -> absl::Status {
                auto v = parse_uint(key, value, 1, kMaxAlignment);
                if (!v.ok() || !std::has_single_bit(*v)) {
                  return bad_value(key, value, absl::StrCat("a power of two in [1, ", kMaxAlignment, "]"));
                }
                t(c).layout.alignment = *v;
                return absl::OkStatus();
              },
              [t](const KvbmConfig& c) { return absl::StrCat(t(const_cast<KvbmConfig&>(c)).layout.alignment); }});
  keys.push_back(enum_key<EvictionPolicyKind>(
      tier + ".eviction", [t](KvbmConfig& c) -> EvictionPolicyKind& { return t(c).eviction; },
      [] {
        std::vector<std::pair<EvictionPolicyKind, std::string>> names;
        for (EvictionPolicyKind k : all_eviction_policy_kinds()) names.emplace_back(k, eviction_policy_name(k));
        return names;
      }(),
      absl::StrCat(what, " eviction policy")));
  if (tier == "g3") {
    keys.push_back(KeySpec{ConfigKey{"g3.directory", "", "string", "a writable directory; empty = $TMPDIR or /tmp",
                                     "Directory of the G3 file"},
                           [](KvbmConfig& c, const std::string&, std::string_view value) -> absl::Status {
                             c.g3.directory = std::string(value);
                             return absl::OkStatus();
                           },
                           [](const KvbmConfig& c) { return quoted(c.g3.directory); }});
    keys.push_back(bool_key(
        "g3.direct_io", [](KvbmConfig& c) -> bool& { return c.g3.direct_io; },
        "Open the G3 file O_DIRECT (falls back to buffered I/O where refused)"));
    keys.push_back(bool_key(
        "g3.unlink_after_open", [](KvbmConfig& c) -> bool& { return c.g3.unlink_after_open; },
        "Remove the G3 file's name right after opening it"));
    return;
  }
  std::vector<std::pair<MemoryKind, std::string>> kinds = {{MemoryKind::kSystem, "system"},
                                                           {MemoryKind::kPinned, "pinned"}};
  if (tier == "g1") kinds.push_back({MemoryKind::kDevice, "device"});
  keys.push_back(enum_key<MemoryKind>(
      tier + ".memory", [t](KvbmConfig& c) -> MemoryKind& { return t(c).memory; }, kinds,
      absl::StrCat("Where ", what, " bytes live (pinned/device: CUDA builds)")));
  keys.push_back(bool_key(
      tier + ".zero_fill", [t](KvbmConfig& c) -> bool& { return t(c).zero_fill; },
      absl::StrCat("Pre-fault and zero ", what, " memory at start-up")));
  keys.push_back(bool_key(
      tier + ".huge_pages", [t](KvbmConfig& c) -> bool& { return t(c).huge_pages; },
      absl::StrCat("Ask for transparent huge pages for ", what)));
}

std::vector<KeySpec> make_key_table() {
  std::vector<KeySpec> keys;
  auto model_key = [&](std::string key, std::uint32_t ModelConfig::*field, std::uint64_t hi, std::uint64_t lo,
                       std::string description) {
    keys.push_back(uint_key<std::uint32_t>(
        std::move(key), [field](KvbmConfig& c) -> std::uint32_t& { return c.model.*field; }, lo, hi,
        std::move(description)));
  };
  model_key("model.num_layers", &ModelConfig::num_layers, ModelConfig::kMaxLayers, 1, "Transformer layers per block");
  model_key("model.outer_dim", &ModelConfig::outer_dim, 2, 1, "2 for separate K and V, 1 for MLA latent caches");
  model_key("model.page_size", &ModelConfig::page_size, ModelConfig::kMaxPageSize, 1, "Tokens per block");
  model_key("model.inner_dim", &ModelConfig::inner_dim, ModelConfig::kMaxInnerDim, 1,
            "Elements per token per (layer, outer): num_kv_heads × head_dim");
  model_key("model.dtype_bytes", &ModelConfig::dtype_bytes, ModelConfig::kMaxDtypeBytes, 1, "Bytes per element");
  add_tier_keys(keys, "g1", &KvbmConfig::g1, "G1");
  add_tier_keys(keys, "g2", &KvbmConfig::g2, "G2 (host)");
  add_tier_keys(keys, "g3", &KvbmConfig::g3, "G3 (disk)");

  const std::vector<std::pair<OffloadMode, std::string>> modes = {{OffloadMode::kWriteThrough, "write_through"},
                                                                  {OffloadMode::kWriteBack, "write_back"},
                                                                  {OffloadMode::kNone, "none"}};
  keys.push_back(enum_key<OffloadMode>(
      "offload.g1_to_g2", [](KvbmConfig& c) -> OffloadMode& { return c.offload.g1_to_g2; }, modes,
      "When G1 blocks are copied to G2"));
  keys.push_back(enum_key<OffloadMode>(
      "offload.g2_to_g3", [](KvbmConfig& c) -> OffloadMode& { return c.offload.g2_to_g3; }, modes,
      "When G2 blocks are copied to G3"));
  auto offload_u32 = [&](std::string key, std::uint32_t OffloadConfig::*field, std::uint64_t lo, std::uint64_t hi,
                         std::string description) {
    keys.push_back(uint_key<std::uint32_t>(
        std::move(key), [field](KvbmConfig& c) -> std::uint32_t& { return c.offload.*field; }, lo, hi,
        std::move(description)));
  };
  offload_u32("offload.g3_min_frequency", &OffloadConfig::g3_min_frequency, 0, 1000,
              "Blocks go to G3 only once seen this often (0 or 1: filter off)");
  offload_u32("offload.frequency_decay_events", &OffloadConfig::frequency_decay_events, 1, 1u << 30,
              "Sightings between halvings of every frequency count");
  offload_u32("offload.batch_blocks", &OffloadConfig::batch_blocks, 1, 65536, "Blocks per offload transfer batch");
  offload_u32("offload.queue_capacity", &OffloadConfig::queue_capacity, 1, 1u << 24,
              "Queued offloads per tier pair; more are dropped and counted");
  offload_u32("offload.transfer_threads", &OffloadConfig::transfer_threads, 1, 64, "Transfer engine threads");
  keys.push_back(KeySpec{ConfigKey{"offload.max_bytes_in_flight", "", "size", "a size ≥ one block, e.g. \"256MiB\"",
                                   "Cap on bytes being copied at once per tier pair"},
                         [](KvbmConfig& c, const std::string& key, std::string_view value) -> absl::Status {
                           auto v = parse_size(value);
                           if (!v.ok())
                             return absl::InvalidArgumentError(absl::StrCat(key, ": ", v.status().message()));
                           c.offload.max_bytes_in_flight = *v;
                           return absl::OkStatus();
                         },
                         [](const KvbmConfig& c) { return quoted(absl::StrCat(c.offload.max_bytes_in_flight)); }});
  keys.push_back(bool_key(
      "offload.onboard_direct", [](KvbmConfig& c) -> bool& { return c.offload.onboard_direct; },
      "Onboard G3 blocks straight into G1 instead of through G2"));
  keys.push_back(bool_key(
      "keep_tokens", [](KvbmConfig& c) -> bool& { return c.keep_tokens; },
      "Keep token ids per G1 block (events carry them; append needs them)"));
  for (KeySpec& k : keys) {
    k.doc.env = "KVBM_" + absl::AsciiStrToUpper(absl::StrReplaceAll(k.doc.key, {{".", "_"}}));
  }
  return keys;
}

const std::vector<KeySpec>& key_table() {
  static const std::vector<KeySpec> table = make_key_table();
  return table;
}

const KeySpec* find_key(std::string_view key) {
  for (const KeySpec& k : key_table()) {
    if (k.doc.key == key) return &k;
  }
  return nullptr;
}

std::string known_keys() {
  std::string out;
  for (const KeySpec& k : key_table()) absl::StrAppend(&out, out.empty() ? "" : ", ", k.doc.key);
  return out;
}

// A TOML scalar as the text set() takes.
absl::StatusOr<std::string> scalar_text(const std::string& key, const toml::node& node) {
  if (auto v = node.as_integer()) {
    if (v->get() < 0) return absl::InvalidArgumentError(absl::StrCat(key, " must not be negative, got ", v->get()));
    return absl::StrCat(v->get());
  }
  if (auto v = node.as_boolean()) return std::string(v->get() ? "true" : "false");
  if (auto v = node.as_string()) return v->get();
  return absl::InvalidArgumentError(absl::StrCat(key, " must be an integer, a string or a bool"));
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> docs = [] {
    std::vector<ConfigKey> out;
    for (const KeySpec& k : key_table()) out.push_back(k.doc);
    return out;
  }();
  return docs;
}

std::string config_reference_markdown() {
  const KvbmConfig defaults;
  std::string out =
      "| key | environment | type | allowed | default | meaning |\n| --- | --- | --- | --- | --- | --- |\n";
  for (const KeySpec& k : key_table()) {
    std::string allowed = absl::StrReplaceAll(k.doc.allowed, {{"|", "\\|"}});
    absl::StrAppend(&out, "| `", k.doc.key, "` | `", k.doc.env, "` | ", k.doc.type, " | ", allowed, " | `",
                    k.get(defaults), "` | ", k.doc.description, " |\n");
  }
  return out;
}

absl::Status KvbmConfig::set(std::string_view key, std::string_view value) {
  const KeySpec* spec = find_key(key);
  if (spec == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown configuration key '", std::string(key), "'; known keys: ", known_keys()));
  }
  return spec->set(*this, spec->doc.key, value);
}

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
  const TierConfig& t = tier(level);
  return static_cast<std::uint32_t>(t.num_blocks != 0 ? t.num_blocks : t.bytes / model.bytes_per_block());
}

namespace {

absl::Status validate_tier(const std::string& name, const TierConfig& t, const ModelConfig& model) {
  if (t.num_blocks != 0 && t.bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": set only one of ", name, ".num_blocks or ", name,
                                                   ".bytes (got num_blocks=", t.num_blocks, ", bytes=", t.bytes, ")"));
  }
  const std::uint64_t per_block = model.bytes_per_block();
  const std::uint64_t blocks = t.num_blocks != 0 ? t.num_blocks : t.bytes / per_block;
  if (blocks == 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ".bytes = ", t.bytes, " is smaller than one block (",
                                                   per_block, " bytes for ", model.to_string(), ")"));
  }
  if (blocks > kMaxTierBlocks) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " capacity must be in [1, ", kMaxTierBlocks, "] blocks, got ", blocks));
  }
  if (!std::has_single_bit(t.layout.alignment) || t.layout.alignment > kMaxAlignment) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".alignment must be a power of two in [1, ", kMaxAlignment, "], got ", t.layout.alignment));
  }
  if (t.layout.kind == LayoutKind::kCustom) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".layout must be fully_contiguous or layer_separate in a configuration"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status KvbmConfig::validate() const {
  if (absl::Status s = model.validate(); !s.ok()) return s;
  if (!g1.enabled()) {
    return absl::InvalidArgumentError("g1: set g1.num_blocks or g1.bytes (G1 is required)");
  }
  for (auto [name, t] : {std::pair<std::string, const TierConfig*>{"g1", &g1}, {"g2", &g2}, {"g3", &g3}}) {
    if (!t->enabled()) continue;
    if (absl::Status s = validate_tier(name, *t, model); !s.ok()) return s;
  }
  if (g2.memory == MemoryKind::kDevice) {
    return absl::InvalidArgumentError("g2.memory must be system or pinned (G2 is host memory), got device");
  }
  if (g3.enabled()) {
    if (!g2.enabled()) {
      return absl::InvalidArgumentError(
          "g3 needs a g2 tier: blocks reach disk through host memory (G1 → G2 → G3); "
          "set g2.num_blocks or g2.bytes");
    }
    if (g3.layout.kind != LayoutKind::kFullyContiguous) {
      return absl::InvalidArgumentError("g3.layout must be fully_contiguous (one aligned I/O per block)");
    }
  }
  if (offload.max_bytes_in_flight < model.bytes_per_block()) {
    return absl::InvalidArgumentError(absl::StrCat("offload.max_bytes_in_flight must be at least one block (",
                                                   model.bytes_per_block(), " bytes), got ",
                                                   offload.max_bytes_in_flight));
  }
  return absl::OkStatus();
}

absl::StatusOr<KvbmConfig> KvbmConfig::from_toml(std::string_view text) {
  toml::table root;
  try {
    root = toml::parse(text);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("TOML parse error at line ", e.source().begin.line, ", column ",
                                                   e.source().begin.column, ": ", std::string(e.description())));
  }
  KvbmConfig config;
  absl::Status status;
  auto visit = [&](const std::string& key, const toml::node& node) {
    if (!status.ok()) return;
    auto text_value = scalar_text(key, node);
    if (!text_value.ok()) {
      status = text_value.status();
      return;
    }
    status = config.set(key, *text_value);
  };
  for (const auto& [name, node] : root) {
    const std::string top(name.str());
    if (const toml::table* table = node.as_table()) {
      if (top != "model" && top != "g1" && top != "g2" && top != "g3" && top != "offload") {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown configuration section [", top, "]; known sections: model, g1, g2, g3, offload"));
      }
      for (const auto& [sub, value] : *table) visit(absl::StrCat(top, ".", std::string(sub.str())), value);
    } else {
      visit(top, node);
    }
    if (!status.ok()) return status;
  }
  return config;
}

absl::StatusOr<KvbmConfig> KvbmConfig::from_toml_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open configuration file '", path, "'"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto config = from_toml(buffer.str());
  if (!config.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  return config;
}

absl::Status KvbmConfig::apply_env(const std::function<const char*(const char*)>& getenv) {
  for (const KeySpec& k : key_table()) {
    const char* value = getenv ? getenv(k.doc.env.c_str()) : std::getenv(k.doc.env.c_str());
    if (value == nullptr) continue;
    if (absl::Status s = set(k.doc.key, value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("environment ", k.doc.env, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

std::string KvbmConfig::to_toml() const {
  // Top-level keys first: in TOML a key after a [section] header belongs to that section.
  std::string top;
  std::string sections;
  std::string table;
  for (const KeySpec& k : key_table()) {
    // Of a tier's two capacity keys only the one in use is written (each clears the other on load).
    if (k.doc.key.ends_with(".num_blocks") && k.get(*this) == "0") continue;
    if (k.doc.key.ends_with(".bytes") && k.get(*this) == "\"0\"") continue;
    const std::size_t dot = k.doc.key.find('.');
    if (dot == std::string::npos) {
      absl::StrAppend(&top, k.doc.key, " = ", k.get(*this), "\n");
      continue;
    }
    const std::string section = k.doc.key.substr(0, dot);
    if (section != table) {
      absl::StrAppend(&sections, "\n[", section, "]\n");
      table = section;
    }
    absl::StrAppend(&sections, k.doc.key.substr(dot + 1), " = ", k.get(*this), "\n");
  }
  return top + sections;
}

}  // namespace kvbm
