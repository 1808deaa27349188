// libFuzzer target: the Mooncake JSONL trace parser (open_trace_text, TraceFormat::kMooncake).
// Invariants: see trace_fuzz_common.h.
#include "trace_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kvbm::fuzz::fuzz_trace(std::string(reinterpret_cast<const char*>(data), size),
                         kvbm::TraceOptions{.format = kvbm::TraceFormat::kMooncake, .block_tokens = 512});
  return 0;
}
