// kvbm: the command line. `kvbm --help` lists the subcommands.
//
// Exit codes, the same for every command (README.md "Exit codes"): 0 success; 1 a runtime failure (I/O,
// a failed verification, a peer that went away); 2 bad input: a flag CLI11 cannot parse, a bad value,
// a configuration, trace or model file that is wrong.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "tools/commands.h"

namespace {

// CLI11 reads an unsigned option with strtoull, which wraps "-1" to 2^64-1 and takes 0x/octal forms:
// `kvbm gen --requests -1` would write until the disk is full. Every unsigned option (CLI11 names its
// type UINT, whatever its width) of every subcommand takes plain decimal digits only; a value too wide for
// the option's type is still refused by CLI11's conversion. The check goes first (transform() inserts it in
// front), so that "-1" is named as not a number before an option's range check sees it.
void require_decimal_unsigned(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    // "UINT", or "UINT:<its range check>" when the option has one.
    if (!option->get_type_name().starts_with("UINT")) continue;
    option->transform(CLI::Validator(
        [](std::string& value) -> std::string {
          if (!value.empty() && value.find_first_not_of("0123456789") == std::string::npos) return "";
          return "must be an unsigned decimal integer (0, 1, 2, ...), got '" + value + "'";
        },
        "UINT>=0"));
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) require_decimal_unsigned(*sub);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvbm: KV-cache block manager for LLM inference"};
  app.require_subcommand(1);
  int exit_code = 0;
  kvbm::tools::add_hash_command(app, &exit_code);
  kvbm::tools::add_config_command(app, &exit_code);
  kvbm::tools::add_bench_command(app, &exit_code);
  kvbm::tools::add_gen_command(app, &exit_code);
  kvbm::tools::add_replay_command(app, &exit_code);
  kvbm::tools::add_plan_command(app, &exit_code);
  kvbm::tools::add_events_command(app, &exit_code);
  kvbm::tools::add_router_command(app, &exit_code);
  require_decimal_unsigned(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are ParseErrors with exit code 0; every other one is bad input (CLI11's own
    // codes, 104 to 114, would be a second scheme).
    const int cli11_code = app.exit(e);
    return cli11_code == 0 ? 0 : kvbm::tools::kExitBadInput;
  }
  return exit_code;
}
