// The msgpack payload of one event batch, exactly as specs/kv-events-wire-format.md describes. Three
// shapes exist: A `[ts, events, rank]` with tagged-array events (vLLM ≤ 0.23), B `[ts, events, rank]`
// with events as maps tagged by "type" (vLLM 0.24–0.29, Dynamo's router), C `{"ts", "events",
// "data_parallel_rank"}` with map events (vLLM main). The decoder accepts all three; the encoder writes B
// or C.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kvbm/core/events_config.h"  // BatchFormat
#include "kvbm/events/kv_event.h"

namespace kvbm {

// Encodes events as maps tagged by "type", in `format`. Hashes are encoded as unsigned 64-bit.
[[nodiscard]] std::string encode_event_batch(const EventBatch& batch, BatchFormat format = BatchFormat::kArray);
// The same batch from its parts, written over `out` (its capacity reused): for events held elsewhere.
void encode_event_batch(double timestamp, std::span<const KvEvent> events,
                        std::optional<std::int64_t> data_parallel_rank, std::string& out,
                        BatchFormat format = BatchFormat::kArray);
// Decodes shapes A, B and C (an array batch of ≥ 2 items: the rank is optional and extra items are
// ignored; in a map batch unknown keys are ignored). Hashes may be unsigned or signed 64-bit ints; 32-byte
// `bin` hashes are refused (kvbm indexes 64-bit sequence hashes). A BlockStored whose token_ids are not
// blocks × block_size long is refused. InvalidArgument naming what is wrong (and where) for anything
// else; never crashes on hostile input.
[[nodiscard]] absl::StatusOr<EventBatch> decode_event_batch(std::string_view payload);

}  // namespace kvbm
