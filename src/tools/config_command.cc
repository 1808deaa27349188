// `kvbm config keys` prints the configuration reference; `kvbm config check FILE` resolves a TOML file
// with KVBM_* environment overrides and `--set key=value` flags (defaults < FILE < environment < --set)
// and prints the resolved configuration (exit 0) or every error, one per line (exit 2).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

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

  CLI::App* check = config->add_subcommand(
      "check", "Resolve a TOML file (+ KVBM_* environment + --set) and print it, or print every error");
  struct CheckArgs {
    std::string path;
    std::vector<std::string> sets;
  };
  auto args = std::make_shared<CheckArgs>();
  check->add_option("FILE", args->path, "TOML configuration file ('-' or '' for the defaults alone)")->required();
  check->add_option("--set", args->sets, "key=value override, applied last (repeatable), e.g. --set g1.bytes=4GiB")
      ->allow_extra_args(false);
  check->callback([exit_code, args] {
    const std::string file = args->path == "-" ? "" : args->path;
    std::vector<absl::Status> errors;
    const KvbmConfig resolved = KvbmConfig::resolve(file, args->sets, &errors);
    for (const std::string& w : KvbmConfig::unknown_env_warnings()) std::cerr << "warning: " << w << "\n";
    if (!errors.empty()) {
      std::cerr << "kvbm config check: " << errors.size() << (errors.size() == 1 ? " error" : " errors") << "\n";
      for (const absl::Status& s : errors) std::cerr << "error: " << s.message() << "\n";
      *exit_code = 2;
      return;
    }
    std::cout << "# resolved configuration (defaults < " << (file.empty() ? "(no file)" : file)
              << " < KVBM_* environment < --set)\n"
              << resolved.to_toml();
    *exit_code = 0;
  });
}

}  // namespace kvbm::tools
