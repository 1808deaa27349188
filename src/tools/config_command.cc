// `kvbm config keys` prints the configuration reference; `kvbm config check FILE` validates a TOML file
// (with KVBM_* environment overrides applied) and prints the resolved configuration or the error.
#include <iostream>

#include "kvbm/manager/kvbm_config.h"
#include "tools/commands.h"

namespace kvbm::tools {

void add_config_command(CLI::App& app, int* exit_code) {
  CLI::App* config = app.add_subcommand("config", "Configuration: reference of every key, and checking a file");
  config->require_subcommand(1);

  CLI::App* keys = config->add_subcommand("keys", "Print every configuration key as a Markdown table");
  keys->callback([exit_code] {
    std::cout << config_reference_markdown();
    *exit_code = 0;
  });

  CLI::App* check = config->add_subcommand("check", "Validate a TOML file (+ KVBM_* environment) and print the result");
  auto path = std::make_shared<std::string>();
  check->add_option("FILE", *path, "TOML configuration file")->required();
  check->callback([exit_code, path] {
    auto loaded = KvbmConfig::from_toml_file(*path);
    absl::Status status = loaded.status();
    if (status.ok()) status = loaded->apply_env();
    if (status.ok()) status = loaded->validate();
    if (!status.ok()) {
      std::cerr << "kvbm config check: " << status.message() << "\n";
      *exit_code = 2;
      return;
    }
    std::cout << "# resolved configuration (defaults < " << *path << " < KVBM_* environment)\n" << loaded->to_toml();
    *exit_code = 0;
  });
}

}  // namespace kvbm::tools
