// kvbm: the command line. `kvbm --help` lists the subcommands.
#include <CLI/CLI.hpp>

#include "tools/commands.h"

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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
