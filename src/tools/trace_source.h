// The request stream of `kvbm replay` and `kvbm plan`: a JSONL trace file (--trace, --format) or the
// generated workload (--workload, --requests, --seed), and the tokens per block (--block-tokens).
#pragma once

#include <absl/status/statusor.h>
#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "kvbm/replay/generator.h"
#include "kvbm/replay/trace.h"

namespace kvbm::tools {

struct TraceSourceFlags {
  std::string trace;
  std::string format;  // "" = detect
  std::string workload = "default";
  std::optional<std::uint64_t> requests;
  std::optional<std::uint64_t> seed;
  std::optional<std::uint32_t> block_tokens;
};

// Registers --trace, --format, --workload, --requests, --seed and --block-tokens on `cmd`.
void add_trace_source_options(CLI::App* cmd, TraceSourceFlags& flags);

struct TraceSource {
  TraceOptions trace_options;  // a file
  WorkloadOptions workload;    // no file: the generated workload
  std::uint32_t block_tokens = 0;
  std::string name;  // the path ("-" = stdin), or "generated:<preset> (N requests, seed S)"
  // A file: its reader, opened (and its format detected) by resolve_trace_source, so that the file, a
  // pipe or a FIFO alike is read once. Null for the generated workload and once taken.
  std::unique_ptr<TraceReader> file_reader;
};

// The flags resolved, the trace file opened; InvalidArgument naming the bad flag ("--trace: ..." for a
// file that cannot be opened or whose first line names no format).
[[nodiscard]] absl::StatusOr<TraceSource> resolve_trace_source(const TraceSourceFlags& flags);
// The reader of a resolved source: its file's reader (taken from it), or the generated workload.
[[nodiscard]] std::unique_ptr<TraceReader> open_trace_source(TraceSource& source);

}  // namespace kvbm::tools
