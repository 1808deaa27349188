// The event pipeline an EventsConfig (the `events.*` configuration keys) describes: an EventManager whose
// publishers are a ZmqPublisher (events.endpoint, with events.replay_endpoint, topic, hwm, replay buffer
// and data-parallel rank) and a NatsPublisher (events.nats_url, nats_subject), plus any publishers the
// caller adds (the Python module's callback). The manager, `kvbm replay --events` and the Python module
// all build their events here, so the keys mean the same everywhere.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <vector>

#include "kvbm/core/events_config.h"
#include "kvbm/events/event_manager.h"
#include "kvbm/events/event_publisher.h"

namespace kvbm {

// `base` supplies the queue and batching options; the rank, batch format and media come from `config`.
// Every endpoint is checked and bound or connected here: InvalidArgument naming the key for a malformed
// one (or an ipc:// endpoint with a data-parallel rank), Unavailable when a socket cannot bind or no NATS
// server answers. With neither endpoint set, only `extra` publishers (possibly none).
[[nodiscard]] absl::StatusOr<std::unique_ptr<EventManager>> make_event_manager(
    const EventsConfig& config, std::vector<std::unique_ptr<EventPublisher>> extra = {}, EventManagerOptions base = {});

}  // namespace kvbm
