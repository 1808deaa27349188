// Request traces for `kvbm replay`: what a request asks of the cache, whatever the file format.
//
// A trace is a stream of TraceRequests. Readers stream a file in bounded memory (one line at a time);
// a malformed line is an error naming the file, its line number and what was wrong. The generator
// produces the same stream from a seed, so replay needs no file.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvbm/core/types.h"

namespace kvbm {

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
// Blank lines are skipped; other keys are ignored. NotFound when the file cannot be opened;
// InvalidArgument for block_tokens == 0.
[[nodiscard]] absl::StatusOr<std::unique_ptr<TraceReader>> open_trace(const std::string& path, TraceOptions options);
// The same reader over JSONL text held in memory (fuzzing, tests); `name` stands for the path in errors.
[[nodiscard]] absl::StatusOr<std::unique_ptr<TraceReader>> open_trace_text(std::string text, TraceOptions options,
                                                                           const std::string& name = "<memory>");

// The format of a JSONL trace, from its first non-blank line: "hash_ids" means Mooncake, "tokens" means
// token-level. InvalidArgument (with path:line) when that line is not a JSON object with either key.
[[nodiscard]] absl::StatusOr<TraceFormat> detect_trace_format(const std::string& path);

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
