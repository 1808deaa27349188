// Request traces for `kvbm replay`: what a request asks of the cache, whatever the file format.
//
// A trace is a stream of TraceRequests. Readers stream a file in bounded memory (one line at a time, at
// most kMaxTraceLineBytes); a malformed line is an error naming the file, its line number and what was
// wrong. Every input is read once: a pipe, FIFO or stdin ("-") is copied to an unlinked spool file in
// $TMPDIR (or /tmp) as it is read, so rewind() works on it too. The generator
// produces the same stream from a seed, so replay needs no file.
#pragma once

#include <absl/status/statusor.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvbm/core/types.h"

namespace kvbm {

// The longest line a trace may have (64 MiB): a longer one is an error naming this limit, so a stream
// without newlines (/dev/zero, a binary file) fails fast in bounded memory.
inline constexpr std::size_t kMaxTraceLineBytes = std::size_t{64} << 20;
// The largest "input_length" / "output_length" (2^40 tokens, far beyond any context): sums over a trace of
// up to 2^24 such requests stay exact in 64 bits (replay's sums saturate beyond that).
inline constexpr std::uint64_t kMaxTraceTokens = std::uint64_t{1} << 40;

// One request: arrival time, and its prompt as full blocks named by sequence hashes (each names the
// whole prefix up to and including that block, as kvbm's hashes and Mooncake's hash_ids do).
struct TraceRequest {
  double timestamp_ms = 0;
  std::vector<SequenceHash> blocks;  // full blocks of the prompt, in order
  std::uint64_t input_tokens = 0;    // prompt length (blocks × block_tokens, or less for a partial tail)
  std::uint64_t output_tokens = 0;   // decode length, when the trace says
  // Token-level traces: the prompt tokens themselves (empty for hash-level traces).
  std::vector<std::uint32_t> tokens;
  // Token-level traces: the line's "salt" (empty when none); `blocks` were hashed with it.
  std::string salt;

  friend bool operator==(const TraceRequest&, const TraceRequest&) = default;
};

class TraceReader {
 public:
  virtual ~TraceReader() = default;
  // The next request; nullopt at the end; an error (InvalidArgument with file:line) for a bad line.
  [[nodiscard]] virtual absl::StatusOr<std::optional<TraceRequest>> next() = 0;
  // Starts again from the first request (replaying several capacities over one trace).
  [[nodiscard]] virtual absl::Status rewind() = 0;
};

enum class TraceFormat : std::uint8_t {
  kMooncake,  // {"timestamp", "input_length", "output_length", "hash_ids": [int...]}
  kTokens,    // {"timestamp": ms, "tokens": [u32...], "salt": optional string}
};

struct TraceOptions {
  TraceFormat format = TraceFormat::kMooncake;
  std::uint32_t block_tokens = 512;  // Mooncake: tokens per hash id; tokens: page size for hashing
};

// Opens a JSONL trace file. Mooncake hash ids become SequenceHash{id} (they already name prefixes; any
// u64); token traces are hashed with kvbm's Dynamo-compatible hashing (page = block_tokens, salt from the
// line's "salt"; a partial tail block is not a block). Required keys: Mooncake "timestamp",
// "input_length", "hash_ids"; tokens "timestamp", "tokens". "output_length" is optional in both (0).
// Blank lines are skipped, as is a UTF-8 byte order mark; other keys are ignored; a key given twice is an
// error. `path` may be a regular file, a pipe or FIFO, or "-" (stdin). NotFound when the file cannot be
// opened; InvalidArgument for a directory or block_tokens == 0.
[[nodiscard]] absl::StatusOr<std::unique_ptr<TraceReader>> open_trace(const std::string& path, TraceOptions options);
// The same reader over JSONL text held in memory (fuzzing, tests); `name` stands for the path in errors.
[[nodiscard]] absl::StatusOr<std::unique_ptr<TraceReader>> open_trace_text(std::string text, TraceOptions options,
                                                                           const std::string& name = "<memory>");

// A trace opened by open_trace_detect: its reader, and the options it resolved.
struct OpenedTrace {
  std::unique_ptr<TraceReader> reader;
  TraceOptions options;  // the detected format; block_tokens as given, or that format's default (512 / 16)
};
// Opens a trace of unknown format, detected from its first non-blank line ("hash_ids" means Mooncake,
// "tokens" means token-level); the reader then parses that same line, so a pipe is read once.
// InvalidArgument (with path:line) when that line is not a JSON object with either key, or the trace is
// empty; otherwise as open_trace.
[[nodiscard]] absl::StatusOr<OpenedTrace> open_trace_detect(const std::string& path,
                                                            std::optional<std::uint32_t> block_tokens = std::nullopt);

// The rest of `reader`'s stream (from where it stands, to its end), in memory; the reader's error, if any.
[[nodiscard]] absl::StatusOr<std::vector<TraceRequest>> read_requests(TraceReader& reader);

// A reader over requests held in memory (tests; traces built by hand). rewind() starts again.
[[nodiscard]] std::unique_ptr<TraceReader> make_vector_trace(std::vector<TraceRequest> requests);

// Writes the rest of `reader`'s stream (from where it stands, to its end) to `path` as JSONL.
// Mooncake: hash_ids are the blocks' sequence hash values, written as unsigned decimals (they may exceed
// 2^63; open_trace reads the full u64 range back). Tokens: "timestamp", "tokens", "output_length" and
// "salt" when non-empty; FailedPrecondition for a request without tokens (a hash-level trace cannot be
// written as tokens). Errors of the reader are returned as they are.
[[nodiscard]] absl::Status write_trace(TraceReader& reader, const std::string& path, TraceFormat format);

// The generator (`kvbm gen`, replay's default workload) is declared in kvbm/replay/generator.h.

}  // namespace kvbm
