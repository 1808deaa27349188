// KvbmConfig::check() and validate(): the whole configuration checked once, however its fields were set.
#include "kvbm/manager/kvbm_config.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>

#include <bit>
#include <string>
#include <utility>
#include <vector>

#include "manager/config_keys.h"

namespace kvbm {
namespace {

using detail::kMaxAlignment;

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
    } else if (absl::Status s = check_tier_blocks(name, blocks); !s.ok()) {
      errors->push_back(std::move(s));
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

absl::Status check_tier_blocks(const std::string& tier, std::uint64_t blocks) {
  if (blocks >= 1 && blocks <= TierConfig::kMaxBlocks) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(tier, " capacity must be in [1, ", TierConfig::kMaxBlocks, "] blocks, got ", blocks));
}

std::vector<absl::Status> KvbmConfig::check() const {
  std::vector<absl::Status> errors;
  // Model fields one by one (each names its key), so that every bad one is reported.
  bool model_ok = true;
  for (const detail::ModelKey& m : detail::kModelKeys) {
    const std::uint32_t value = model.*m.field;
    if (value < 1 || value > m.max) {
      errors.push_back(
          absl::InvalidArgumentError(absl::StrCat(m.key, " must be an integer in [1, ", m.max, "], got ", value)));
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
    if (g3.key_namespace.empty() || g3.key_namespace.size() > 128 ||
        g3.key_namespace.find_first_of(" \t\r\n") != std::string::npos) {
      errors.push_back(absl::InvalidArgumentError(
          absl::StrCat("g3.namespace must be 1 to 128 characters without whitespace, got '", g3.key_namespace, "'")));
    }
    if (g3.persist && g3.directory.empty()) {
      errors.push_back(absl::InvalidArgumentError(
          "g3.persist needs g3.directory: a persistent tier must not live in the temp dir; set g3.directory"));
    }
  }
  if (model_ok && offload.max_bytes_in_flight < model.bytes_per_block()) {
    errors.push_back(absl::InvalidArgumentError(absl::StrCat("offload.max_bytes_in_flight must be at least one block (",
                                                             model.bytes_per_block(), " bytes), got ",
                                                             offload.max_bytes_in_flight)));
  }
  // Events (issue 26). Endpoints are checked when the publishers are made (make_event_manager).
  if (!events.replay_endpoint.empty() && events.endpoint.empty()) {
    errors.push_back(
        absl::InvalidArgumentError(absl::StrCat("events.replay_endpoint \"", events.replay_endpoint,
                                                "\" needs events.endpoint (replay serves the ZMQ stream)")));
  }
  for (int level = 0; level < kNumCacheLevels; ++level) {
    if (events.media[static_cast<std::size_t>(level)].empty()) {
      errors.push_back(absl::InvalidArgumentError(
          absl::StrCat("events.medium_", absl::AsciiStrToLower(std::string(cache_level_name(CacheLevel(level)))),
                       " must be a non-empty string, got ''")));
    }
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
  if (g4.num_blocks != 0 && g4.bytes != 0) {
    errors.push_back(absl::InvalidArgumentError(absl::StrCat(
        "g4: set only one of g4.num_blocks or g4.bytes (got num_blocks=", g4.num_blocks, ", bytes=", g4.bytes, ")")));
  } else if (model_ok && g4.bytes != 0 && g4.bytes / model.bytes_per_block() == 0) {
    errors.push_back(
        absl::InvalidArgumentError(absl::StrCat("g4.bytes = ", g4.bytes, " is smaller than one block (",
                                                model.bytes_per_block(), " bytes for ", model.to_string(), ")")));
  } else if (model_ok && g4.bytes != 0) {
    if (absl::Status s = check_tier_blocks("g4", g4.bytes / model.bytes_per_block()); !s.ok()) {
      errors.push_back(std::move(s));
    }
  }
  return errors;
}

absl::Status KvbmConfig::validate() const {
  std::vector<absl::Status> errors = check();
  return errors.empty() ? absl::OkStatus() : errors.front();
}

}  // namespace kvbm
