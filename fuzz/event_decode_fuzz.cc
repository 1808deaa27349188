// libFuzzer target: the KV event batch decoder (decode_event_batch, both the map and the positional
// event forms). Invariants: no crash, hang or sanitizer report; errors are InvalidArgument with a
// message; a batch that decodes re-encodes to bytes that decode to the same batch, and encoding that
// again gives the same bytes (timestamps compared as bytes, so NaN is fine).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "kvbm/events/msgpack_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  auto batch = kvbm::decode_event_batch(payload);
  if (!batch.ok()) {
    KVBM_FUZZ_CHECK(batch.status().code() == absl::StatusCode::kInvalidArgument && !batch.status().message().empty(),
                    "error %s", batch.status().ToString().c_str());
    return 0;
  }
  const std::string encoded = kvbm::encode_event_batch(*batch);
  auto again = kvbm::decode_event_batch(encoded);
  KVBM_FUZZ_CHECK(again.ok(), "re-encoded batch does not decode: %s", again.status().ToString().c_str());
  KVBM_FUZZ_CHECK(again->events == batch->events, "events changed across encode/decode");
  KVBM_FUZZ_CHECK(again->data_parallel_rank == batch->data_parallel_rank, "rank changed across encode/decode");
  KVBM_FUZZ_CHECK(kvbm::encode_event_batch(*again) == encoded, "encoding is not a fixed point");
  return 0;
}
