// The msgpack payload of one event batch, exactly as specs/kv-events-wire-format.md describes:
// `[timestamp (float), events (array of maps tagged by "type"), data_parallel_rank (int or nil)]`.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kvbm/events/kv_event.h"

namespace kvbm {

// Encodes in the map form (what a publisher must emit). Hashes are encoded as unsigned 64-bit.
[[nodiscard]] std::string encode_event_batch(const EventBatch& batch);
// The same batch from its parts, written over `out` (its capacity reused): for events held elsewhere.
void encode_event_batch(double timestamp, std::span<const KvEvent> events,
                        std::optional<std::int64_t> data_parallel_rank, std::string& out);
// Decodes the map form and the older positional-array form of events. InvalidArgument naming what is
// wrong (and where) for anything else; never crashes on hostile input.
[[nodiscard]] absl::StatusOr<EventBatch> decode_event_batch(std::string_view payload);

}  // namespace kvbm
