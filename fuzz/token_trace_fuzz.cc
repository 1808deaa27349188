// libFuzzer target: the token JSONL trace parser (open_trace_text, TraceFormat::kTokens, hashing with
// the line's salt). The first byte picks block_tokens (1 + byte % 64), the rest is the trace.
// Invariants: see trace_fuzz_common.h.
#include "trace_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint32_t block_tokens = 1 + data[0] % 64;
  kvbm::fuzz::fuzz_trace(std::string(reinterpret_cast<const char*>(data) + 1, size - 1),
                         kvbm::TraceOptions{.format = kvbm::TraceFormat::kTokens, .block_tokens = block_tokens});
  return 0;
}
