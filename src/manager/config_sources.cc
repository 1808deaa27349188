// The text sources of a KvbmConfig over its defaults and TOML: set(key, value), the KVBM_* environment,
// `--set key=value` overrides, and the precedence chain that applies them (resolve, apply_layers).
#include "kvbm/manager/kvbm_config.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>

#include <unistd.h>  // environ

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <string_view>

#include "manager/config_keys.h"
#include "manager/config_suggest.h"

namespace kvbm {

using detail::find_key;
using detail::key_table;
using detail::KeySpec;

absl::Status KvbmConfig::set(std::string_view key, std::string_view value) {
  const KeySpec* spec = find_key(key);
  if (spec == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown configuration key '", std::string(key), "'; ", detail::known_keys(key)));
  }
  return spec->set(*this, spec->doc.key, value);
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

std::vector<std::string> KvbmConfig::unknown_env_warnings() {
  // Variables kvbm's own tools and tests read that are not configuration keys.
  static constexpr std::string_view kOtherKvbmVariables[] = {"KVBM_BIN", "KVBM_ZMQ_FIXTURE"};
  std::vector<std::string> warnings;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view assignment(*entry);
    if (!assignment.starts_with("KVBM_")) continue;
    const std::string_view name = assignment.substr(0, assignment.find('='));
    if (std::find(std::begin(kOtherKvbmVariables), std::end(kOtherKvbmVariables), name) !=
        std::end(kOtherKvbmVariables)) {
      continue;
    }
    std::string_view closest;
    std::size_t closest_distance = 3;  // a suggestion within 2 edits
    bool known = false;
    for (const KeySpec& k : key_table()) {
      if (k.doc.env == name) {
        known = true;
        break;
      }
      const std::size_t d = detail::edit_distance(name, k.doc.env);
      if (d < closest_distance) {
        closest_distance = d;
        closest = k.doc.env;
      }
    }
    if (known) continue;
    warnings.push_back(absl::StrCat(std::string(name), " is not a configuration variable (ignored)",
                                    closest.empty() ? "; `kvbm config keys` lists them"
                                                    : absl::StrCat("; did you mean ", std::string(closest), "?")));
  }
  return warnings;
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

}  // namespace kvbm
