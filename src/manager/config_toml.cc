// KvbmConfig's TOML I/O: from_toml* (pre-scan, parse, then every key through set() in the file's order)
// and to_toml().
#include "kvbm/manager/kvbm_config.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

// toml++ header-only, compiled here: Debian's libtomlplusplus.so is built with exceptions, and keeping
// the parser in this one translation unit lets parse errors be caught and turned into Status here.
#include <toml++/toml.h>

#include "manager/config_keys.h"
#include "manager/config_toml_prescan.h"

namespace kvbm {
namespace {

using detail::find_key;
using detail::key_table;
using detail::KeySpec;

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

KvbmConfig KvbmConfig::from_toml_collect(std::string_view text, std::vector<absl::Status>* errors) {
  KvbmConfig config;
  if (absl::Status s = detail::prescan_toml(text); !s.ok()) {
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
  // A directory opens as a stream that reads nothing: without this check it would be an empty file, the
  // defaults with no error.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    errors->push_back(
        absl::InvalidArgumentError(absl::StrCat("configuration file '", path, "' is a directory; give a TOML file")));
    return KvbmConfig{};
  }
  std::ifstream in(path);
  if (!in) {
    errors->push_back(absl::NotFoundError(absl::StrCat("cannot open configuration file '", path, "'")));
    return KvbmConfig{};
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    errors->push_back(absl::DataLossError(absl::StrCat("cannot read configuration file '", path, "'")));
    return KvbmConfig{};
  }
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
