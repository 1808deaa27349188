// KvbmConfig: everything a KvBlockManager is built from (DESIGN.md §7).
//
// Settable in code, loadable from a TOML file, and overridable by KVBM_* environment variables.
// Precedence, lowest first: built-in defaults < TOML file < environment < values set in code (or CLI
// `--set key=value` flags, see apply_overrides) after loading. validate() checks everything once, at construction of
// the manager; every error names the key and the allowed range.
//
// Keys are `section.name` (model.*, g1.*, g2.*, g3.*, g4.*, offload.*, metrics.*, events.*) plus top-level
// `keep_tokens`; the
// environment variable of a key is KVBM_ + the key upper-cased with '.' → '_' (KVBM_G2_BYTES).
// config_keys() lists every key with its type, allowed values and meaning; the README's reference is
// checked against it by a test.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/core/events_config.h"
#include "kvbm/core/model_config.h"
#include "kvbm/core/types.h"
#include "kvbm/layout/layout.h"
#include "kvbm/metrics/metrics_config.h"
#include "kvbm/offload/offload_config.h"
#include "kvbm/pool/eviction_policy.h"
#include "kvbm/remote/remote_config.h"

namespace kvbm {

struct LayoutConfig {
  LayoutKind kind = LayoutKind::kFullyContiguous;  // fully_contiguous | layer_separate
  bool outer_contiguous = false;                   // layer_separate only: [outer][block] instead of [block][outer]
  std::uint64_t alignment = 1;                     // fully_contiguous only: block stride alignment (power of two)
};

// Where a memory tier's bytes live. G3 is always a DiskFile.
enum class MemoryKind : std::uint8_t {
  kSystem,  // pageable system memory (G1 on a machine without a GPU; G2 by default)
  kPinned,  // page-locked host memory (CUDA builds): faster host ↔ device copies
  kDevice,  // GPU memory (CUDA builds)
};

// One tier's capacity, layout, storage options and eviction policy. Capacity is given either in blocks
// or in bytes (rounded down to whole blocks of the model). G1 must have one of the two; G2 and G3 are
// enabled by setting one, and absent while both are 0.
struct TierConfig {
  // The most blocks one tier holds: block ids are u32 and UINT32_MAX means "no block". Every capacity —
  // the g*.num_blocks keys, the CLI's block flags, and the analysis paths of `kvbm replay` and `kvbm plan`
  // (eviction optimal, unlimited G1, the one-pass G2 curve) — is checked against this one bound.
  static constexpr std::uint64_t kMaxBlocks = 0xFFFFFFFEu;

  std::uint64_t num_blocks = 0;
  std::uint64_t bytes = 0;
  LayoutConfig layout;
  // G1's default (see docs/eviction.md); KvbmConfig gives G2 and G3 lru.
  EvictionPolicySpec eviction = EvictionPolicyKind::kAdaptive;
  MemoryKind memory = MemoryKind::kSystem;  // g1, g2
  bool zero_fill = false;                   // pre-fault and zero the tier's memory at start-up
  bool huge_pages = false;                  // ask for transparent huge pages
  std::string directory;                    // g3: where the file lives; empty = system temp dir
  bool direct_io = true;                    // g3: O_DIRECT (falls back when the file system refuses)
  bool unlink_after_open = true;            // g3 without persist: leave no file behind, even after a kill
  bool persist = false;                     // g3: keep the file and re-index it at start-up (needs directory)
  std::uint32_t deadline_ms = 2000;         // g3: longest an onboarding waits for its disk reads
  std::string key_namespace = "kvbm";       // g3 with persist: whose blocks the file holds (key g3.namespace)

  [[nodiscard]] bool enabled() const { return num_blocks != 0 || bytes != 0; }
};

struct KvbmConfig {
  ModelConfig model;
  TierConfig g1{.num_blocks = 1024};
  // G2 and G3 default to LRU: they receive blocks in copy batches sized by offload.max_bytes_in_flight, not
  // in a request's release order, so adaptive's request signals (tail, prefix reuse) do not hold there; with
  // them, hits depended on the block size and fell 13–16 % below LRU on the conversation trace
  // (docs/eviction.md, "Lower tiers").
  TierConfig g2{.eviction = EvictionPolicyKind::kLru};
  TierConfig g3{.eviction = EvictionPolicyKind::kLru};
  OffloadConfig offload;
  MetricsConfig metrics;    // metrics.port (0 = off), metrics.bind
  G4Config g4;              // g4.*: the remote tier (issue 7/8); off while g4.endpoints is empty
  EventsConfig events;      // events.*: KV event publishing (issue 26); off while no endpoint is set
  bool keep_tokens = true;  // keep token ids per G1 block (Stored events carry them; append needs them)

  // Everything checked; InvalidArgument naming the key and the allowed range. The first error of check().
  [[nodiscard]] absl::Status validate() const;
  // Every error validate() would find, not just the first, in the same order; empty when valid. Each is
  // InvalidArgument naming the key and the allowed values. (`kvbm config check` prints them all.)
  [[nodiscard]] std::vector<absl::Status> check() const;
  // A tier's capacity in blocks after resolving bytes (0 for a disabled tier). REQUIRES: validate() is OK.
  [[nodiscard]] std::uint32_t tier_blocks(CacheLevel level) const;
  [[nodiscard]] std::uint32_t g1_blocks() const { return tier_blocks(CacheLevel::kG1); }
  [[nodiscard]] const TierConfig& tier(CacheLevel level) const;

  // Parses TOML text over the defaults. Unknown keys are errors (they are usually typos).
  [[nodiscard]] static absl::StatusOr<KvbmConfig> from_toml(std::string_view text);
  [[nodiscard]] static absl::StatusOr<KvbmConfig> from_toml_file(const std::string& path);
  // As from_toml, but goes on past a bad key or value: every error is appended to `errors` (each naming
  // the key and the allowed values) and the key keeps its previous value. A TOML syntax error stops the
  // parse (it is then the only error) and returns the defaults. from_toml returns the first of these.
  [[nodiscard]] static KvbmConfig from_toml_collect(std::string_view text, std::vector<absl::Status>* errors);
  // As from_toml_file, collecting; errors are prefixed with the path (NotFound when it cannot be read).
  [[nodiscard]] static KvbmConfig from_toml_file_collect(const std::string& path, std::vector<absl::Status>* errors);
  // Applies KVBM_* variables found by `getenv` (std::getenv by default) over this config. Every variable
  // is tried; the first error is returned (apply_env_collect gives them all).
  [[nodiscard]] absl::Status apply_env(const std::function<const char*(const char*)>& getenv = nullptr);
  void apply_env_collect(std::vector<absl::Status>* errors,
                         const std::function<const char*(const char*)>& getenv = nullptr);
  // KVBM_* variables of the process environment that name no key (a typo such as KVBM_G1_NUM_BLOKS would
  // otherwise be ignored silently), each as one warning line: "KVBM_X is not a configuration variable
  // (ignored); did you mean KVBM_Y?". The CLI prints them.
  [[nodiscard]] static std::vector<std::string> unknown_env_warnings();
  // Applies `key=value` overrides (CLI `--set`), in order, collecting every error ("--set key=value: ...").
  void apply_overrides(const std::vector<std::string>& assignments, std::vector<absl::Status>* errors);
  // The whole precedence chain over the built-in defaults: `file` (none when empty) < KVBM_* environment
  // < `overrides` (key=value), then check(). Every error of every layer is appended to `errors`, in that
  // order; the result is only meaningful when none was.
  [[nodiscard]] static KvbmConfig resolve(const std::string& file, const std::vector<std::string>& overrides,
                                          std::vector<absl::Status>* errors,
                                          const std::function<const char*(const char*)>& getenv = nullptr);
  // The same chain over `base` instead of the defaults (no file) and without check(): tools that start
  // from their own defaults.
  static void apply_layers(KvbmConfig& base, const std::vector<std::string>& overrides,
                           std::vector<absl::Status>* errors,
                           const std::function<const char*(const char*)>& getenv = nullptr);
  // Sets one key from its text form, as an environment variable or CLI flag would give it.
  [[nodiscard]] absl::Status set(std::string_view key, std::string_view value);
  // The resolved configuration as TOML.
  [[nodiscard]] std::string to_toml() const;
};

// One configuration key, for references and tooling.
struct ConfigKey {
  std::string key;      // "g1.bytes"
  std::string env;      // "KVBM_G1_BYTES"
  std::string type;     // "integer", "size", "bool", "enum", "string"
  std::string allowed;  // "[1, 1024]", "lru | priority_lru | lineage", ...
  std::string description;
};
[[nodiscard]] const std::vector<ConfigKey>& config_keys();
// OK when `blocks` is a tier capacity in [1, TierConfig::kMaxBlocks]; else InvalidArgument
// "<tier> capacity must be in [1, 4294967294] blocks, got N", the one message for every path that checks it.
[[nodiscard]] absl::Status check_tier_blocks(const std::string& tier, std::uint64_t blocks);
// The reference table of every key (Markdown), as README.md carries it between its config-keys markers.
[[nodiscard]] std::string config_reference_markdown();

}  // namespace kvbm
