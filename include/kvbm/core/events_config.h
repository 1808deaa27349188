// EventsConfig: the `events.*` keys of KvbmConfig (issue 26): where and how a KvBlockManager's KV events
// are published (specs/kv-events-wire-format.md). Plain data in core, so that the manager's configuration
// holds it while the events layer, which the manager does not depend on, builds the publishers from it
// (make_event_manager in kvbm/events/events_from_config.h). Events are off while both endpoint and
// nats_url are empty.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "kvbm/core/types.h"

namespace kvbm {

// The batch shape a publisher writes (events.batch_format). Events are maps tagged by "type" in both.
enum class BatchFormat : std::uint8_t {
  kArray,  // shape B: [ts, events, data_parallel_rank] (the default; every vLLM-format consumer reads it)
  kMap,    // shape C: {"ts", "events", "data_parallel_rank"}, the rank key omitted when nil
};

struct EventsConfig {
  std::string endpoint;                  // ZMQ PUB endpoint (vLLM's: tcp://*:5557); empty = no ZMQ
  std::string replay_endpoint;           // ZMQ ROUTER replay endpoint; empty = no replay socket
  std::string topic;                     // first frame of every ZMQ message
  std::int64_t data_parallel_rank = -1;  // -1 = none (key value "none"); else the batches' rank and endpoint offset
  std::uint32_t hwm = 100000;            // PUB send high-water mark (0 = none)
  std::uint32_t replay_buffer_batches = 10000;  // batches kept for replay
  BatchFormat batch_format = BatchFormat::kArray;
  std::string nats_url;      // NATS servers, comma-separated (nats://host:port,...); empty = no NATS
  std::string nats_subject;  // empty = "kvbm.events.<rank, or 0>"
  // The `medium` of each tier's events, indexed by CacheLevel.
  std::array<std::string, kNumCacheLevels> media = {"GPU", "CPU", "DISK", "REMOTE"};

  [[nodiscard]] bool enabled() const { return !endpoint.empty() || !nats_url.empty(); }
};

}  // namespace kvbm
