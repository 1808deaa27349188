// libFuzzer target: the configuration parser (KvbmConfig::from_toml / from_toml_collect, set, check,
// to_toml). Invariants: no crash, hang or sanitizer report; from_toml fails exactly when the collecting
// parser reports an error, and with its first error; every error names something (non-empty message);
// a valid configuration writes TOML that parses back to the same TOML; check() and validate()
// agree; a valid configuration's tier sizes are within bounds. The same text read from a file gives the same
// errors; a directory is always refused.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <absl/strings/match.h>

#include "fuzz_check.h"
#include "kvbm/core/size.h"
#include "kvbm/manager/kvbm_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  std::vector<absl::Status> errors;
  const kvbm::KvbmConfig collected = kvbm::KvbmConfig::from_toml_collect(text, &errors);
  const auto first = kvbm::KvbmConfig::from_toml(text);
  KVBM_FUZZ_CHECK(first.ok() == errors.empty(), "from_toml ok=%d, collected %zu errors", first.ok(), errors.size());
  for (const absl::Status& s : errors) {
    KVBM_FUZZ_CHECK(!s.ok() && !s.message().empty(), "an empty error");
  }
  if (!first.ok()) {
    KVBM_FUZZ_CHECK(first.status() == errors.front(), "from_toml's error is not the first collected one");
  }

  // Whatever was collected (good keys applied, bad ones at their defaults) is checkable and printable.
  const std::vector<absl::Status> problems = collected.check();
  const absl::Status valid = collected.validate();
  KVBM_FUZZ_CHECK(valid.ok() == problems.empty(), "validate/check disagree");
  if (!valid.ok()) KVBM_FUZZ_CHECK(valid == problems.front(), "validate is not check's first error");
  if (valid.ok()) {
    for (kvbm::CacheLevel level : {kvbm::CacheLevel::kG1, kvbm::CacheLevel::kG2, kvbm::CacheLevel::kG3}) {
      const std::uint32_t blocks = collected.tier_blocks(level);
      KVBM_FUZZ_CHECK(blocks <= 0xFFFFFFFEu, "tier blocks %u", blocks);
      if (level == kvbm::CacheLevel::kG1) KVBM_FUZZ_CHECK(blocks >= 1, "empty G1 passed validation");
    }
  }
  // (An invalid configuration need not survive: e.g. g1.bytes = "0 MiB" leaves G1 without a capacity,
  // which to_toml cannot write; found by this target, and check() reports it.)
  if (first.ok() && valid.ok()) {
    const std::string toml = first->to_toml();
    const auto back = kvbm::KvbmConfig::from_toml(toml);
    KVBM_FUZZ_CHECK(back.ok(), "to_toml output does not parse: %s\n%s", std::string(back.status().message()).c_str(),
                    toml.c_str());
    KVBM_FUZZ_CHECK(back->to_toml() == toml, "to_toml does not round-trip:\n%s\n---\n%s", toml.c_str(),
                    back->to_toml().c_str());
    KVBM_FUZZ_CHECK(back->validate().ok() == valid.ok(), "validity changed across a round trip");
  }

  // The file path: the text from a file (errors prefixed by its path), and a directory as the file.
  static const std::string dir = [] {
    char name[] = "/tmp/kvbm-config-fuzz-XXXXXX";
    KVBM_FUZZ_CHECK(::mkdtemp(name) != nullptr, "mkdtemp failed");
    return std::string(name);
  }();
  const std::string file = dir + "/fuzz.toml";
  if (std::FILE* f = std::fopen(file.c_str(), "wb")) {
    KVBM_FUZZ_CHECK(std::fwrite(text.data(), 1, text.size(), f) == text.size(), "write failed");
    std::fclose(f);
    std::vector<absl::Status> file_errors;
    (void)kvbm::KvbmConfig::from_toml_file_collect(file, &file_errors);
    KVBM_FUZZ_CHECK(file_errors.size() == errors.size(), "a file gave %zu errors, the text %zu", file_errors.size(),
                    errors.size());
  }
  const auto from_dir = kvbm::KvbmConfig::from_toml_file(dir);
  KVBM_FUZZ_CHECK(!from_dir.ok() && absl::StrContains(from_dir.status().message(), "is a directory"),
                  "a directory was read as a configuration");

  // The text as a value of every key (environment / --set path) and as a size.
  kvbm::KvbmConfig scratch;
  for (const kvbm::ConfigKey& key : kvbm::config_keys()) {
    const absl::Status s = scratch.set(key.key, text);
    KVBM_FUZZ_CHECK(s.ok() || !s.message().empty(), "empty error for %s", key.key.c_str());
  }
  (void)scratch.check();
  (void)kvbm::parse_size(text);
  std::vector<absl::Status> override_errors;
  scratch.apply_overrides({std::string(text)}, &override_errors);
  return 0;
}
