// Shared body of the two trace-parser fuzz targets: the input is a JSONL trace (after one option byte
// for token traces). Invariants: no crash, hang or sanitizer report; every error is InvalidArgument
// naming the trace and a line ("<fuzz>:N: ..."); reading stops at the first error; rewind() reads the
// same requests and the same error again; token requests hold tokens.size() / block_tokens blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "kvbm/replay/trace.h"

namespace kvbm::fuzz {

struct TraceRun {
  std::vector<TraceRequest> requests;
  absl::Status error;
};

inline TraceRun read_all(TraceReader& reader) {
  TraceRun run;
  // A line yields at most one request; the input's size bounds the loop.
  for (;;) {
    auto next = reader.next();
    if (!next.ok()) {
      run.error = next.status();
      return run;
    }
    if (!next->has_value()) return run;
    run.requests.push_back(std::move(**next));
  }
}

inline void fuzz_trace(std::string text, TraceOptions options) {
  auto reader = open_trace_text(std::move(text), options, "<fuzz>");
  KVBM_FUZZ_CHECK(reader.ok(), "open_trace_text: %s", std::string(reader.status().message()).c_str());
  const TraceRun first = read_all(**reader);
  if (!first.error.ok()) {
    KVBM_FUZZ_CHECK(first.error.code() == absl::StatusCode::kInvalidArgument, "error code %d: %s",
                    static_cast<int>(first.error.code()), std::string(first.error.message()).c_str());
    KVBM_FUZZ_CHECK(first.error.message().rfind("<fuzz>:", 0) == 0, "error does not name the trace: %s",
                    std::string(first.error.message()).c_str());
  }
  for (const TraceRequest& r : first.requests) {
    if (options.format == TraceFormat::kTokens) {
      KVBM_FUZZ_CHECK(r.blocks.size() == r.tokens.size() / options.block_tokens, "%zu blocks for %zu tokens",
                      r.blocks.size(), r.tokens.size());
      KVBM_FUZZ_CHECK(r.input_tokens == r.tokens.size(), "input_tokens");
    } else {
      KVBM_FUZZ_CHECK(r.tokens.empty() && r.salt.empty(), "a Mooncake request with tokens");
    }
  }
  KVBM_FUZZ_CHECK((*reader)->rewind().ok(), "rewind failed");
  const TraceRun second = read_all(**reader);
  KVBM_FUZZ_CHECK(second.requests == first.requests, "rewind read %zu requests, first pass %zu", second.requests.size(),
                  first.requests.size());
  KVBM_FUZZ_CHECK(second.error == first.error, "rewind gave another error");
}

}  // namespace kvbm::fuzz
