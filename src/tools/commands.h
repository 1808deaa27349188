// Subcommands of the kvbm CLI. Each add_* registers one subcommand on the app; the callback it installs
// sets *exit_code.
#pragma once

#include <CLI/CLI.hpp>

namespace kvbm::tools {

void add_hash_command(CLI::App& app, int* exit_code);
void add_config_command(CLI::App& app, int* exit_code);
void add_bench_command(CLI::App& app, int* exit_code);
void add_gen_command(CLI::App& app, int* exit_code);
void add_replay_command(CLI::App& app, int* exit_code);
void add_plan_command(CLI::App& app, int* exit_code);
// `kvbm events tail|bench`. Further `events` subcommands attach to events_group(app), which returns the
// group (creating it on first use).
void add_events_command(CLI::App& app, int* exit_code);
CLI::App* events_group(CLI::App& app);

}  // namespace kvbm::tools
