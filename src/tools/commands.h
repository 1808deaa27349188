// Subcommands of the kvbm CLI. Each add_* registers one subcommand on the app; the callback it installs
// sets *exit_code.
#pragma once

#include <absl/status/status.h>
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <string>

#include "kvbm/manager/kvbm_config.h"

namespace kvbm::tools {

// Exit codes of every command (README.md "Exit codes"). 0 is success.
inline constexpr int kExitFailure = 1;   // a runtime failure: I/O, a failed verification, a lost peer
inline constexpr int kExitBadInput = 2;  // bad input: flags, values, configuration, trace or model files

// The exit code for a failed status: kExitBadInput for what the input got wrong (InvalidArgument,
// NotFound, OutOfRange), kExitFailure for anything else.
[[nodiscard]] inline int exit_code_for(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
      return kExitBadInput;
    default:
      return kExitFailure;
  }
}

// Applies the KVBM_* environment over `config` (the first bad value is the error) and warns on stderr,
// "<command>: warning: ...", about KVBM_* names that are no key (with a did-you-mean).
[[nodiscard]] inline absl::Status apply_environment(KvbmConfig& config, const char* command) {
  if (absl::Status s = config.apply_env(); !s.ok()) return s;
  for (const std::string& w : KvbmConfig::unknown_env_warnings())
    std::fprintf(stderr, "%s: warning: %s\n", command, w.c_str());
  return absl::OkStatus();
}

void add_hash_command(CLI::App& app, int* exit_code);
void add_config_command(CLI::App& app, int* exit_code);
void add_bench_command(CLI::App& app, int* exit_code);
void add_gen_command(CLI::App& app, int* exit_code);
void add_replay_command(CLI::App& app, int* exit_code);
void add_plan_command(CLI::App& app, int* exit_code);
// `kvbm router`: the standalone KV-aware router (kvbm/router/router.h).
void add_router_command(CLI::App& app, int* exit_code);
// `kvbm bench router` (router_command.cc): match queries/s of the router beside KvIndexer, same run.
struct RouterBenchArgs {
  std::uint64_t workers = 100;
  std::uint64_t blocks_per_worker = 100000;
  std::uint64_t query_blocks = 128;
  double seconds = 1.0;
};
[[nodiscard]] int run_router_bench(const RouterBenchArgs& args);
// `kvbm events tail|bench`. Further `events` subcommands attach to events_group(app), which returns the
// group (creating it on first use).
void add_events_command(CLI::App& app, int* exit_code);
CLI::App* events_group(CLI::App& app);

}  // namespace kvbm::tools
