// The request stream of `kvbm replay` and `kvbm plan` (see tools/trace_source.h).
#include "tools/trace_source.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>

#include "kvbm/core/model_config.h"

namespace kvbm::tools {

void add_trace_source_options(CLI::App* cmd, TraceSourceFlags& flags) {
  cmd->add_option("--trace", flags.trace,
                  "JSONL trace (Mooncake hash_ids or token-level): a file, a pipe or FIFO, or - for stdin");
  cmd->add_option("--format", flags.format, "Trace format: mooncake | tokens (default: detected)");
  cmd->add_option("--workload", flags.workload, "Generated workload preset when no --trace is given");
  cmd->add_option("--requests", flags.requests, "Generated workload: number of requests")
      ->check(CLI::Range(std::uint64_t{0}, kMaxWorkloadRequests));
  cmd->add_option("--seed", flags.seed, "Generated workload: seed");
  cmd->add_option("--block-tokens", flags.block_tokens,
                  "Tokens per block (default 512 for hash-level traces, 16 for token traces)")
      ->check(CLI::Range(std::uint32_t{1}, ModelConfig::kMaxPageSize));
}

absl::StatusOr<TraceSource> resolve_trace_source(const TraceSourceFlags& f) {
  TraceSource s;
  if (!f.trace.empty()) {
    if (f.format.empty()) {
      auto opened = open_trace_detect(f.trace, f.block_tokens);
      if (!opened.ok()) return absl::InvalidArgumentError(absl::StrCat("--trace: ", opened.status().message()));
      s.trace_options = opened->options;
      s.file_reader = std::move(opened->reader);
    } else {
      if (f.format == "mooncake") {
        s.trace_options.format = TraceFormat::kMooncake;
      } else if (f.format == "tokens") {
        s.trace_options.format = TraceFormat::kTokens;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--format must be mooncake or tokens, got '", f.format, "'"));
      }
      s.trace_options.block_tokens = f.block_tokens.value_or(
          s.trace_options.format == TraceFormat::kTokens ? kDefaultTokenBlockTokens : kDefaultHashBlockTokens);
      auto opened = open_trace(f.trace, s.trace_options);
      if (!opened.ok()) return absl::InvalidArgumentError(absl::StrCat("--trace: ", opened.status().message()));
      s.file_reader = *std::move(opened);
    }
    s.block_tokens = s.trace_options.block_tokens;
    s.name = f.trace;
    return s;
  }
  auto preset = workload_preset(f.workload);
  if (!preset.ok()) return absl::InvalidArgumentError(absl::StrCat("--workload: ", preset.status().message()));
  s.workload = *preset;
  if (f.requests) s.workload.num_requests = *f.requests;
  if (f.seed) s.workload.seed = *f.seed;
  if (f.block_tokens) s.workload.block_tokens = *f.block_tokens;
  if (absl::Status st = validate_workload(s.workload); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--requests/--seed/--block-tokens: ", st.message()));
  }
  s.block_tokens = s.workload.block_tokens != 0 ? s.workload.block_tokens : kDefaultHashBlockTokens;
  s.name =
      absl::StrCat("generated:", f.workload, " (", s.workload.num_requests, " requests, seed ", s.workload.seed, ")");
  return s;
}

std::unique_ptr<TraceReader> open_trace_source(TraceSource& source) {
  if (source.file_reader) return std::move(source.file_reader);
  return generate_trace(source.workload);
}

}  // namespace kvbm::tools
