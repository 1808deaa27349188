// KvbmConfig: validation, the key table shared by TOML, environment and CLI, and TOML I/O.
#include "kvbm/manager/kvbm_config.h"

#include <absl/strings/ascii.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_replace.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <tuple>

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

// A TOML basic string: quotes, backslashes and control characters escaped (a g3.directory may hold any).
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20 || byte == 0x7f) {
      absl::StrAppend(&out, "\\u00", absl::Hex(byte, absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

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

// A string field, taken as written; `allowed` says what it should hold.
KeySpec string_key(std::string key, std::function<std::string&(KvbmConfig&)> field, std::string allowed,
                   std::string description) {
  return KeySpec{ConfigKey{std::move(key), "", "string", std::move(allowed), std::move(description)},
                 [field](KvbmConfig& c, const std::string&, std::string_view value) -> absl::Status {
                   field(c) = std::string(value);
                   return absl::OkStatus();
                 },
                 [field](const KvbmConfig& c) { return quoted(field(const_cast<KvbmConfig&>(c))); }};
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
      absl::StrCat(what, " eviction policy (default learned: reuse odds learned online; lru for plain LRU)")));
  if (tier == "g3") {
    keys.push_back(string_key(
        "g3.directory", [](KvbmConfig& c) -> std::string& { return c.g3.directory; },
        "a writable directory; empty = $TMPDIR or /tmp", "Directory of the G3 file"));
    keys.push_back(bool_key(
        "g3.direct_io", [](KvbmConfig& c) -> bool& { return c.g3.direct_io; },
        "Open the G3 file O_DIRECT (falls back to buffered I/O where refused)"));
    keys.push_back(bool_key(
        "g3.unlink_after_open", [](KvbmConfig& c) -> bool& { return c.g3.unlink_after_open; },
        "Remove the G3 file's name right after opening it"));
    // Persistent G3 (issue 8/8): the disk tier survives a restart.
    keys.push_back(bool_key(
        "g3.persist", [](KvbmConfig& c) -> bool& { return c.g3.persist; },
        "Keep the G3 file (kvbm-g3-persist.bin in g3.directory) and re-index it at start-up"));
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
  // Metrics (issue 8/8): Prometheus text on GET /metrics.
  keys.push_back(uint_key<std::uint32_t>(
      "metrics.port", [](KvbmConfig& c) -> std::uint32_t& { return c.metrics.port; }, 0, 65535,
      "HTTP port serving Prometheus metrics on GET /metrics (0 = off)"));
  keys.push_back(string_key(
      "metrics.bind", [](KvbmConfig& c) -> std::string& { return c.metrics.bind; }, "an IPv4/IPv6 address or host name",
      "Address the metrics server listens on"));
  // G4, the remote tier on Redis (issue 7/8). Off while g4.endpoints is empty; needs G2.
  auto g4_string = [&](std::string key, std::string G4Config::*field, std::string allowed, std::string description) {
    keys.push_back(string_key(
        std::move(key), [field](KvbmConfig& c) -> std::string& { return c.g4.*field; }, std::move(allowed),
        std::move(description)));
  };
  auto g4_u32 = [&](std::string key, std::uint32_t G4Config::*field, std::uint64_t lo, std::uint64_t hi,
                    std::string description) {
    keys.push_back(uint_key<std::uint32_t>(
        std::move(key), [field](KvbmConfig& c) -> std::uint32_t& { return c.g4.*field; }, lo, hi,
        std::move(description)));
  };
  g4_string("g4.endpoints", &G4Config::endpoints, "\"host:port,host:port\"; empty = G4 off",
            "Redis servers of the G4 tier; keys are spread over them by jump consistent hash");
  g4_string("g4.namespace", &G4Config::key_namespace, "1 to 128 characters, no whitespace",
            "First part of every G4 key: separates deployments and models sharing a Redis");
  g4_u32("g4.ttl_seconds", &G4Config::ttl_seconds, 0, 1u << 30, "Expiry of stored G4 blocks (0 = none)");
  g4_u32("g4.deadline_ms", &G4Config::deadline_ms, 1, 60000,
         "Longest an engine-facing G4 call (match's lookup, onboarding's fetch) waits");
  g4_u32("g4.connect_timeout_ms", &G4Config::connect_timeout_ms, 1, 60000, "G4 connect + PING bound per attempt");
  g4_u32("g4.io_timeout_ms", &G4Config::io_timeout_ms, 1, 600000,
         "A G4 read or write without progress this long drops the connection (node Unavailable)");
  g4_u32("g4.max_batch_blocks", &G4Config::max_batch_blocks, 1, 4096, "Blocks per pipelined G4 batch");
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

// Edit distance, for "did you mean" (keys are short).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The keys an unknown `key` may have meant: the closest one when it is close, and the keys of its
// section (all keys when the section is unknown too).
std::string known_keys(std::string_view key = {}) {
  const std::size_t dot = key.find('.');
  const std::string prefix = dot == std::string_view::npos ? "" : std::string(key.substr(0, dot + 1));
  std::string same_section;
  std::string all;
  const KeySpec* closest = nullptr;
  std::size_t best = 3;  // at most 2 edits away
  for (const KeySpec& k : key_table()) {
    absl::StrAppend(&all, all.empty() ? "" : ", ", k.doc.key);
    if (!prefix.empty() && k.doc.key.starts_with(prefix)) {
      absl::StrAppend(&same_section, same_section.empty() ? "" : ", ", k.doc.key);
    }
    if (key.size() + 2 >= k.doc.key.size() && key.size() <= k.doc.key.size() + 2) {  // else more than 2 edits
      if (const std::size_t d = edit_distance(key, k.doc.key); d < best) {
        best = d;
        closest = &k;
      }
    }
  }
  std::string out = closest != nullptr ? absl::StrCat("did you mean ", closest->doc.key, "? ") : "";
  if (!same_section.empty()) return absl::StrCat(out, "known keys in [", prefix.substr(0, dot), "]: ", same_section);
  return absl::StrCat(out, "known keys: ", all);
}

// Input that toml++ 3.x (Debian) cannot take safely, found by config_toml_fuzz and refused here first
// with a parse error of the same form (TOML 1.0 allows none of it, except where noted):
//  - a table header whose first character is not a key character or quote ("[=]", "[ .]", "[\n",
//    "[[[g3]"): toml++ asserts (aborts) in builds with assertions;
//  - a non-ASCII character outside string values and comments (bare keys are ASCII; e.g. "Κ = 1"), or
//    in a quoted key: toml++ tests it with is_whitespace(), whose generated tables reach
//    __builtin_unreachable for U+00A1..U+0499 and U+2CEE..U+30E7 (undefined behaviour in every build);
//  - for the same reason, a non-ASCII character right after a backslash in a multi-line basic string
//    (an invalid escape, or the first character after a line-ending backslash: valid TOML, refused);
//  - a '}' where an array value belongs ("x = [}", "x = [1, }"): toml++ asserts, and assumes in release
//    builds, that a value does not start with a terminator (undefined behaviour).
// A small lexer skips strings and comments and follows arrays and inline tables, so that only real
// headers (a '[' that starts a line at the top level) and keys are looked at.
absl::Status prescan_toml(std::string_view text) {
  std::size_t line = 1;
  std::size_t line_start = 0;
  auto error = [&](std::size_t at, std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("TOML parse error at line ", line, ", column ", at - line_start + 1, ": ", std::string(what),
                     " (byte 0x", absl::Hex(static_cast<unsigned char>(text[at]), absl::kZeroPad2), ")"));
  };
  auto is_bare = [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; };
  auto non_ascii = [](char c) { return static_cast<unsigned char>(c) >= 0x80; };
  std::vector<char> nesting;    // open '[' (array) and '{' (inline table) of the current value
  bool statement_start = true;  // only whitespace so far on this line, at the top level
  bool expect_key = true;       // a string here would be a key
  const std::size_t bom = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;  // a UTF-8 byte order mark is allowed
  for (std::size_t i = bom; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      ++line;
      line_start = i + 1;
      statement_start = nesting.empty();
      if (nesting.empty()) expect_key = true;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') continue;
    if (c == '#') {  // a comment, to the end of the line
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
      continue;
    }
    if (c == '"' || c == '\'') {
      const bool multi = text.substr(i, 3) == std::string(3, c);
      const bool basic = c == '"';
      const bool key = expect_key;
      i += multi ? 3 : 1;
      for (; i < text.size(); ++i) {
        const char s = text[i];
        if (key && non_ascii(s)) return error(i, "a non-ASCII character in a key");
        if (basic && s == '\\') {
          std::size_t j = i + 1;
          if (multi) {  // a line-ending backslash skips whitespace and newlines
            while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' || text[j] == '\n')) {
              if (text[j] == '\n') {
                ++line;
                line_start = j + 1;
              }
              ++j;
            }
            if (j < text.size() && non_ascii(text[j])) {
              return error(j, "a non-ASCII character right after a backslash in a multi-line string");
            }
            i = j == i + 1 ? j : j - 1;  // an escape: skip its character; else continue at the next one
          } else {
            i = j;
          }
          continue;
        }
        if (s == '\n') {
          if (!multi) break;  // an unterminated string: toml++ reports it
          ++line;
          line_start = i + 1;
          continue;
        }
        if (multi ? text.substr(i, 3) == std::string(3, c) : s == c) {
          if (multi) {
            i += 2;
            while (i + 1 < text.size() && text[i + 1] == c) ++i;  // up to two quotes may end the content
          }
          break;
        }
      }
      if (i < text.size() && text[i] == '\n') --i;  // the loop sees the newline
      statement_start = false;
      continue;
    }
    if (non_ascii(c)) return error(i, "a non-ASCII character outside a string value or comment");
    if (statement_start && c == '[') {  // a table header: [key] or [[key]]
      std::size_t j = i + 1;
      if (j < text.size() && text[j] == '[') ++j;
      while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
      if (j < text.size() && !is_bare(text[j]) && text[j] != '"' && text[j] != '\'' && text[j] != ']') {
        return error(j, "a table header must start with a key (letters, digits, '_', '-' or a quoted key)");
      }
      i = j - 1;  // the header's brackets are its own; its keys are checked as keys
      statement_start = false;
      expect_key = true;
      continue;
    }
    statement_start = false;
    if (!expect_key && c != '=' && c != '[' && c != '{' && c != ']' && c != '}' && c != ',') {
      // A bare value (number, bool, date, or garbage): toml++ reads it up to a value terminator, testing
      // every character with is_whitespace(), quotes and brackets included.
      for (; i < text.size(); ++i) {
        const char v = text[i];
        if (v == ' ' || v == '\t' || v == '\r' || v == '\n' || v == ',' || v == ']' || v == '}' || v == '#') break;
        if (non_ascii(v)) return error(i, "a non-ASCII character outside a string value or comment");
      }
      --i;  // the loop sees the terminator
      continue;
    }
    if (c == '=') {
      expect_key = false;
    } else if (c == '[' && !expect_key) {
      nesting.push_back('[');
    } else if (c == '{') {
      nesting.push_back('{');
      expect_key = true;
    } else if ((c == ']' || c == '}') && !nesting.empty()) {
      if ((c == '}') != (nesting.back() == '{')) {
        return error(i, c == '}' ? "'}' where an array value or ']' belongs" : "']' where an inline table needs '}'");
      }
      nesting.pop_back();
      expect_key = false;
    } else if (c == ',' && !nesting.empty()) {
      expect_key = nesting.back() == '{';
    }
  }
  return absl::OkStatus();
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
        absl::StrCat("unknown configuration key '", std::string(key), "'; ", known_keys(key)));
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

void validate_tier(const std::string& name, const TierConfig& t, const ModelConfig& model, bool model_ok,
                   std::vector<absl::Status>* errors) {
  if (t.num_blocks != 0 && t.bytes != 0) {
    errors->push_back(
        absl::InvalidArgumentError(absl::StrCat(name, ": set only one of ", name, ".num_blocks or ", name,
                                                ".bytes (got num_blocks=", t.num_blocks, ", bytes=", t.bytes, ")")));
  }
  if (model_ok || t.num_blocks != 0) {
    const std::uint64_t per_block = model.bytes_per_block();
    const std::uint64_t blocks = t.num_blocks != 0 ? t.num_blocks : t.bytes / per_block;
    if (blocks == 0) {
      errors->push_back(
          absl::InvalidArgumentError(absl::StrCat(name, ".bytes = ", t.bytes, " is smaller than one block (", per_block,
                                                  " bytes for ", model.to_string(), ")")));
    } else if (blocks > kMaxTierBlocks) {
      errors->push_back(absl::InvalidArgumentError(
          absl::StrCat(name, " capacity must be in [1, ", kMaxTierBlocks, "] blocks, got ", blocks)));
    }
  }
  if (!std::has_single_bit(t.layout.alignment) || t.layout.alignment > kMaxAlignment) {
    errors->push_back(absl::InvalidArgumentError(
        absl::StrCat(name, ".alignment must be a power of two in [1, ", kMaxAlignment, "], got ", t.layout.alignment)));
  }
  if (t.layout.kind == LayoutKind::kCustom) {
    errors->push_back(absl::InvalidArgumentError(
        absl::StrCat(name, ".layout must be fully_contiguous or layer_separate in a configuration")));
  }
}

}  // namespace

std::vector<absl::Status> KvbmConfig::check() const {
  std::vector<absl::Status> errors;
  // Model fields one by one (each names its key), so that every bad one is reported.
  struct ModelField {
    const char* key;
    std::uint32_t value;
    std::uint32_t hi;
  };
  bool model_ok = true;
  for (const ModelField& f : {ModelField{"model.num_layers", model.num_layers, ModelConfig::kMaxLayers},
                              ModelField{"model.outer_dim", model.outer_dim, 2},
                              ModelField{"model.page_size", model.page_size, ModelConfig::kMaxPageSize},
                              ModelField{"model.inner_dim", model.inner_dim, ModelConfig::kMaxInnerDim},
                              ModelField{"model.dtype_bytes", model.dtype_bytes, ModelConfig::kMaxDtypeBytes}}) {
    if (f.value < 1 || f.value > f.hi) {
      errors.push_back(
          absl::InvalidArgumentError(absl::StrCat(f.key, " must be an integer in [1, ", f.hi, "], got ", f.value)));
      model_ok = false;
    }
  }
  // Checks in bytes need a valid model (bytes per block); they are skipped while it is not.
  if (!g1.enabled()) {
    errors.push_back(absl::InvalidArgumentError("g1: set g1.num_blocks or g1.bytes (G1 is required)"));
  }
  for (auto [name, t] : {std::pair<std::string, const TierConfig*>{"g1", &g1}, {"g2", &g2}, {"g3", &g3}}) {
    if (!t->enabled()) continue;
    validate_tier(name, *t, model, model_ok, &errors);
  }
  if (g2.memory == MemoryKind::kDevice) {
    errors.push_back(absl::InvalidArgumentError("g2.memory must be system or pinned (G2 is host memory), got device"));
  }
  if (g3.enabled()) {
    if (!g2.enabled()) {
      errors.push_back(
          absl::InvalidArgumentError("g3 needs a g2 tier: blocks reach disk through host memory (G1 → G2 → G3); "
                                     "set g2.num_blocks or g2.bytes"));
    }
    if (g3.layout.kind != LayoutKind::kFullyContiguous) {
      errors.push_back(absl::InvalidArgumentError("g3.layout must be fully_contiguous (one aligned I/O per block)"));
    }
    if (g3.persist && g3.directory.empty()) {
      errors.push_back(absl::InvalidArgumentError(
          "g3.persist needs g3.directory: a persistent tier must not live in the temp dir; set g3.directory"));
    }
    if (g3.persist && g3.unlink_after_open) {
      errors.push_back(absl::InvalidArgumentError(
          "g3.persist and g3.unlink_after_open exclude each other: an unlinked file cannot be reopened after a "
          "restart; set g3.unlink_after_open = false"));
    }
  }
  if (model_ok && offload.max_bytes_in_flight < model.bytes_per_block()) {
    errors.push_back(absl::InvalidArgumentError(absl::StrCat("offload.max_bytes_in_flight must be at least one block (",
                                                             model.bytes_per_block(), " bytes), got ",
                                                             offload.max_bytes_in_flight)));
  }
  // G4 (issue 7/8).
  if (g4.enabled()) {
    if (!g2.enabled()) {
      errors.push_back(absl::InvalidArgumentError(
          "g4 needs a g2 tier: blocks reach the remote tier from host memory and come back through it; "
          "set g2.num_blocks or g2.bytes (or leave g4.endpoints empty)"));
    }
    for (absl::Status& e : g4.check()) errors.push_back(std::move(e));
  }
  return errors;
}

absl::Status KvbmConfig::validate() const {
  std::vector<absl::Status> errors = check();
  return errors.empty() ? absl::OkStatus() : errors.front();
}

KvbmConfig KvbmConfig::from_toml_collect(std::string_view text, std::vector<absl::Status>* errors) {
  KvbmConfig config;
  if (absl::Status s = prescan_toml(text); !s.ok()) {
    errors->push_back(std::move(s));
    return config;
  }
  toml::table root;
  try {
    root = toml::parse(text);
  } catch (const toml::parse_error& e) {
    errors->push_back(
        absl::InvalidArgumentError(absl::StrCat("TOML parse error at line ", e.source().begin.line, ", column ",
                                                e.source().begin.column, ": ", std::string(e.description()))));
    return config;
  }
  // Sections are the prefixes of the keys (model, g1, ..., offload and whatever the key table adds).
  std::vector<std::string> sections;
  for (const KeySpec& k : key_table()) {
    const std::size_t dot = k.doc.key.find('.');
    if (dot == std::string::npos) continue;
    std::string section = k.doc.key.substr(0, dot);
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) sections.push_back(section);
  }
  // toml++ iterates tables in key order; keys are applied (and errors reported) in the file's order, so
  // that of a tier's num_blocks and bytes the one written last wins, as with every other source.
  struct Entry {
    std::uint64_t line;
    std::uint64_t column;
    std::string key;
    const toml::node* node;  // null: an unknown section
  };
  std::vector<Entry> entries;
  auto add = [&](std::string key, const toml::node& node) {
    entries.push_back(Entry{node.source().begin.line, node.source().begin.column, std::move(key), &node});
  };
  for (const auto& [name, node] : root) {
    const std::string top(name.str());
    if (const toml::table* table = node.as_table()) {
      if (std::find(sections.begin(), sections.end(), top) == sections.end()) {
        entries.push_back(Entry{node.source().begin.line, node.source().begin.column, top, nullptr});
        continue;
      }
      for (const auto& [sub, value] : *table) add(absl::StrCat(top, ".", std::string(sub.str())), value);
    } else {
      add(top, node);
    }
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  for (const Entry& e : entries) {
    if (e.node == nullptr) {
      errors->push_back(absl::InvalidArgumentError(absl::StrCat("unknown configuration section [", e.key,
                                                                "]; known sections: ", absl::StrJoin(sections, ", "))));
      continue;
    }
    if (find_key(e.key) == nullptr) {
      errors->push_back(config.set(e.key, ""));  // set() names the known keys
      continue;
    }
    auto text_value = scalar_text(e.key, *e.node);
    if (!text_value.ok()) {
      errors->push_back(text_value.status());
      continue;
    }
    if (absl::Status st = config.set(e.key, *text_value); !st.ok()) errors->push_back(std::move(st));
  }
  return config;
}

absl::StatusOr<KvbmConfig> KvbmConfig::from_toml(std::string_view text) {
  std::vector<absl::Status> errors;
  KvbmConfig config = from_toml_collect(text, &errors);
  if (!errors.empty()) return errors.front();
  return config;
}

KvbmConfig KvbmConfig::from_toml_file_collect(const std::string& path, std::vector<absl::Status>* errors) {
  std::ifstream in(path);
  if (!in) {
    errors->push_back(absl::NotFoundError(absl::StrCat("cannot open configuration file '", path, "'")));
    return KvbmConfig{};
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::vector<absl::Status> own;
  KvbmConfig config = from_toml_collect(buffer.str(), &own);
  for (const absl::Status& s : own) {
    errors->push_back(absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message())));
  }
  return config;
}

absl::StatusOr<KvbmConfig> KvbmConfig::from_toml_file(const std::string& path) {
  std::vector<absl::Status> errors;
  KvbmConfig config = from_toml_file_collect(path, &errors);
  if (!errors.empty()) return errors.front();
  return config;
}

void KvbmConfig::apply_env_collect(std::vector<absl::Status>* errors,
                                   const std::function<const char*(const char*)>& getenv) {
  for (const KeySpec& k : key_table()) {
    const char* value = getenv ? getenv(k.doc.env.c_str()) : std::getenv(k.doc.env.c_str());
    if (value == nullptr) continue;
    if (absl::Status s = set(k.doc.key, value); !s.ok()) {
      errors->push_back(absl::InvalidArgumentError(absl::StrCat("environment ", k.doc.env, ": ", s.message())));
    }
  }
}

absl::Status KvbmConfig::apply_env(const std::function<const char*(const char*)>& getenv) {
  std::vector<absl::Status> errors;
  apply_env_collect(&errors, getenv);
  return errors.empty() ? absl::OkStatus() : errors.front();
}

void KvbmConfig::apply_overrides(const std::vector<std::string>& assignments, std::vector<absl::Status>* errors) {
  for (const std::string& assignment : assignments) {
    const std::size_t eq = assignment.find('=');
    if (eq == std::string::npos) {
      errors->push_back(absl::InvalidArgumentError(
          absl::StrCat("--set ", assignment, ": expected key=value, e.g. --set g1.bytes=4GiB")));
      continue;
    }
    const std::string key(absl::StripAsciiWhitespace(assignment.substr(0, eq)));
    const std::string value(absl::StripAsciiWhitespace(assignment.substr(eq + 1)));
    if (absl::Status s = set(key, value); !s.ok()) {
      errors->push_back(absl::InvalidArgumentError(absl::StrCat("--set ", assignment, ": ", s.message())));
    }
  }
}

KvbmConfig KvbmConfig::resolve(const std::string& file, const std::vector<std::string>& overrides,
                               std::vector<absl::Status>* errors,
                               const std::function<const char*(const char*)>& getenv) {
  KvbmConfig config = file.empty() ? KvbmConfig{} : from_toml_file_collect(file, errors);
  apply_layers(config, overrides, errors, getenv);
  for (absl::Status& s : config.check()) errors->push_back(std::move(s));
  return config;
}

void KvbmConfig::apply_layers(KvbmConfig& base, const std::vector<std::string>& overrides,
                              std::vector<absl::Status>* errors,
                              const std::function<const char*(const char*)>& getenv) {
  base.apply_env_collect(errors, getenv);
  base.apply_overrides(overrides, errors);
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
