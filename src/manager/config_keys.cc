// The configuration key table (config_keys.h): every key of KvbmConfig, written once, in make_key_table().
//
// To add a key: add its field to KvbmConfig (or the config struct it belongs to), add one row below with the
// kind that fits (config_key_kinds.h), add a check to KvbmConfig::check() if a single key's range does not
// say everything, and replace README's table with the output of `build/bin/kvbm config keys`
// (config_reference_test compares them). TOML, environment, --set, to_toml() and `kvbm config` follow
// from the row.
#include "manager/config_keys.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_replace.h>

#include <bit>
#include <utility>

#include "kvbm/core/size.h"
#include "manager/config_key_kinds.h"

namespace kvbm {
namespace detail {
namespace {

// A capacity: num_blocks and bytes clear each other, so the source set last wins. `T` is TierConfig or
// G4Config (both have num_blocks and bytes).
template <typename T>
void add_capacity_keys(std::vector<KeySpec>& keys, const std::string& tier, std::function<T&(KvbmConfig&)> t,
                       const std::string& what) {
  keys.push_back(KeySpec{ConfigKey{tier + ".num_blocks", "", "integer",
                                   absl::StrCat("[", tier == "g1" ? 1 : 0, ", ", TierConfig::kMaxBlocks, "]"),
                                   absl::StrCat(what, " capacity in blocks (clears ", tier, ".bytes)")},
                         [t, tier](KvbmConfig& c, const std::string& key, std::string_view value) -> absl::Status {
                           auto v = parse_uint(key, value, tier == "g1" ? 1 : 0, TierConfig::kMaxBlocks);
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
  add_capacity_keys<TierConfig>(keys, tier, t, what);
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
  {
    std::string allowed;
    for (EvictionPolicyKind k : all_eviction_policy_kinds())
      absl::StrAppend(&allowed, std::string(eviction_policy_name(k)), " | ");
    absl::StrAppend(&allowed, "a registered user policy");
    keys.push_back(KeySpec{
        ConfigKey{
            tier + ".eviction", "", "enum", allowed,
            tier == "g1"
                ? absl::StrCat(what, " eviction policy (default adaptive: learned, in LRU order where LRU would find ",
                               "more; user policies: docs/custom_eviction.md)")
                : absl::StrCat(what, " eviction policy (default lru: this tier is fed in copy batches, not requests; ",
                               "docs/eviction.md)")},
        [t](KvbmConfig& c, const std::string& key, std::string_view value) -> absl::Status {
          auto spec = parse_eviction_policy_spec(value);
          if (!spec.ok()) return bad_value(key, value, absl::StrCat("one of ", eviction_policy_choices()));
          t(c).eviction = *std::move(spec);
          return absl::OkStatus();
        },
        [t](const KvbmConfig& c) { return quoted(t(const_cast<KvbmConfig&>(c)).eviction.name()); }});
  }
  if (tier == "g3") {
    keys.push_back(string_key(
        "g3.directory", [](KvbmConfig& c) -> std::string& { return c.g3.directory; },
        "a writable directory; empty = $TMPDIR or /tmp", "Directory of the G3 file"));
    keys.push_back(bool_key(
        "g3.direct_io", [](KvbmConfig& c) -> bool& { return c.g3.direct_io; },
        "Open the G3 file O_DIRECT (falls back to buffered I/O where refused)"));
    keys.push_back(bool_key(
        "g3.unlink_after_open", [](KvbmConfig& c) -> bool& { return c.g3.unlink_after_open; },
        "Remove the G3 file's name right after opening it, so that no run, even a killed one, leaves its file "
        "behind (not with g3.persist, whose file keeps its name)"));
    // Persistent G3 (issue 8/8): the disk tier survives a restart.
    keys.push_back(bool_key(
        "g3.persist", [](KvbmConfig& c) -> bool& { return c.g3.persist; },
        "Keep the G3 file (kvbm-g3-persist.bin in g3.directory) and re-index it at start-up"));
    keys.push_back(string_key(
        "g3.namespace", [](KvbmConfig& c) -> std::string& { return c.g3.key_namespace; },
        "1 to 128 characters, no whitespace",
        "With g3.persist: the identity kept in the file beside the model's geometry; a start with another "
        "namespace is refused (give a fine-tune and its base model different ones)"));
    keys.push_back(uint_key<std::uint32_t>(
        "g3.deadline_ms", [](KvbmConfig& c) -> std::uint32_t& { return c.g3.deadline_ms; }, 1, 600000,
        "Longest an onboarding waits for its G3 reads (from onboard()); later ones are misses, the rest of "
        "the prefix before them is delivered"));
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
  for (const ModelKey& m : kModelKeys) {
    keys.push_back(uint_key<std::uint32_t>(
        m.key, [field = m.field](KvbmConfig& c) -> std::uint32_t& { return c.model.*field; }, 1, m.max, m.description));
  }
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
              "Queued copies per link; beyond, offload.backlog decides");
  offload_u32("offload.transfer_threads", &OffloadConfig::transfer_threads, 1, 64, "Transfer engine threads");
  keys.push_back(KeySpec{ConfigKey{"offload.max_bytes_in_flight", "", "size", "a size ≥ one block, e.g. \"256MiB\"",
                                   "Cap on bytes being copied at once per link"},
                         [](KvbmConfig& c, const std::string& key, std::string_view value) -> absl::Status {
                           auto v = parse_size(value);
                           if (!v.ok())
                             return absl::InvalidArgumentError(absl::StrCat(key, ": ", v.status().message()));
                           c.offload.max_bytes_in_flight = *v;
                           return absl::OkStatus();
                         },
                         [](const KvbmConfig& c) { return quoted(absl::StrCat(c.offload.max_bytes_in_flight)); }});
  keys.push_back(enum_key<OffloadBacklog>(
      "offload.backlog", [](KvbmConfig& c) -> OffloadBacklog& { return c.offload.backlog; },
      {{OffloadBacklog::kWait, "wait"}, {OffloadBacklog::kDrop, "drop"}},
      "When a link cannot keep up: wait (nothing lost: a full queue or an eviction makes the copy itself) or "
      "drop (counted)"));
  keys.push_back(bool_key(
      "keep_tokens", [](KvbmConfig& c) -> bool& { return c.keep_tokens; },
      "Keep token ids per G1 block, and per G2/G3 block while events are published (Stored events carry them; "
      "append needs them)"));
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
  add_capacity_keys<G4Config>(
      keys, "g4", [](KvbmConfig& c) -> G4Config& { return c.g4; },
      "Planned G4 (--no-data replays model G4 as a pool this large; with bytes, Redis' memory decides)");
  // KV events (issue 26): built into publishers by make_event_manager (kvbm/events/events_from_config.h).
  auto events_string = [&](std::string key, std::string EventsConfig::*field, std::string allowed,
                           std::string description) {
    keys.push_back(string_key(
        std::move(key), [field](KvbmConfig& c) -> std::string& { return c.events.*field; }, std::move(allowed),
        std::move(description)));
  };
  events_string("events.endpoint", &EventsConfig::endpoint,
                "tcp://HOST:PORT (binds with * or ::, else connects), ipc://PATH, inproc://NAME; empty = none",
                "ZMQ PUB endpoint of the KV events (vLLM's wire format; vLLM's default is tcp://*:5557)");
  events_string("events.replay_endpoint", &EventsConfig::replay_endpoint,
                "a ZMQ endpoint as events.endpoint (always bound); empty = none",
                "ZMQ ROUTER socket answering replay requests from the last events.replay_buffer_batches batches");
  events_string("events.topic", &EventsConfig::topic, "any string", "First frame of every ZMQ event message");
  keys.push_back(KeySpec{
      ConfigKey{"events.data_parallel_rank", "", "integer", "none or [0, 65535]",
                "Data-parallel rank: the batches' rank; tcp ports become port + rank, inproc names get _dp<rank>, "
                "ipc endpoints are refused"},
      [](KvbmConfig& c, const std::string& key, std::string_view value) -> absl::Status {
        if (value == "none") {
          c.events.data_parallel_rank = -1;
          return absl::OkStatus();
        }
        auto v = parse_uint(key, value, 0, 65535);
        if (!v.ok()) return bad_value(key, value, "none or an integer in [0, 65535]");
        c.events.data_parallel_rank = static_cast<std::int64_t>(*v);
        return absl::OkStatus();
      },
      [](const KvbmConfig& c) {
        return c.events.data_parallel_rank < 0 ? quoted("none") : absl::StrCat(c.events.data_parallel_rank);
      }});
  keys.push_back(uint_key<std::uint32_t>(
      "events.hwm", [](KvbmConfig& c) -> std::uint32_t& { return c.events.hwm; }, 0, 1u << 30,
      "Send high-water mark of the ZMQ PUB socket, in messages (0 = none)"));
  keys.push_back(uint_key<std::uint32_t>(
      "events.replay_buffer_batches", [](KvbmConfig& c) -> std::uint32_t& { return c.events.replay_buffer_batches; }, 1,
      10000000, "Batches kept for replay requests (with events.replay_endpoint)"));
  keys.push_back(enum_key<BatchFormat>(
      "events.batch_format", [](KvbmConfig& c) -> BatchFormat& { return c.events.batch_format; },
      {{BatchFormat::kArray, "array"}, {BatchFormat::kMap, "map"}},
      "Batch shape: array [ts, events, rank] (vLLM 0.24-0.29, Dynamo) or map {ts, events, data_parallel_rank} "
      "(vLLM main); events are maps in both"));
  events_string("events.nats_url", &EventsConfig::nats_url, "nats://HOST:PORT[,nats://HOST:PORT...]; empty = none",
                "NATS servers to publish the same payloads to (Dynamo-style deployments)");
  events_string("events.nats_subject", &EventsConfig::nats_subject,
                "dot-separated tokens without whitespace or wildcards; empty = kvbm.events.<rank, or 0>",
                "NATS subject of the KV events");
  for (int level = 0; level < kNumCacheLevels; ++level) {
    const std::string tier = absl::AsciiStrToLower(std::string(cache_level_name(CacheLevel(level))));
    keys.push_back(string_key(
        absl::StrCat("events.medium_", tier),
        [level](KvbmConfig& c) -> std::string& { return c.events.media[static_cast<std::size_t>(level)]; },
        "a non-empty string",
        absl::StrCat("The medium field of ", absl::AsciiStrToUpper(tier), "'s events (default ",
                     KvbmConfig{}.events.media[static_cast<std::size_t>(level)], ")")));
  }
  for (KeySpec& k : keys) {
    k.doc.env = "KVBM_" + absl::AsciiStrToUpper(absl::StrReplaceAll(k.doc.key, {{".", "_"}}));
  }
  return keys;
}

}  // namespace

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

}  // namespace detail

using detail::key_table;
using detail::KeySpec;

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

}  // namespace kvbm
