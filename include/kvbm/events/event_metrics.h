// The KV event pipeline's counters as metrics (issue 8/8): whoever owns an EventManager adds them to a
// registry (usually a KvBlockManager's: `add_event_collector(kvbm->metrics(), *events)`). In the events
// layer, which may use the metrics layer below it (never the reverse); header-only.
#pragma once

#include "kvbm/events/event_manager.h"
#include "kvbm/metrics/metrics.h"

namespace kvbm::metrics {

// Families: kvbm_events_sent_total, kvbm_events_dropped_total, kvbm_event_batches_total,
// kvbm_event_publish_errors_total. `events` must stay alive until remove_collector(returned id) or the
// registry's destruction.
inline Registry::CollectorId add_event_collector(Registry& registry, const EventManager& events) {
  return registry.add_collector([&events](Exposition& e) {
    const EventManagerStats s = events.stats();
    e.counter("kvbm_events_sent_total", "KV events handed to every publisher", {}, static_cast<double>(s.sent));
    e.counter("kvbm_events_dropped_total", "KV events pushed out of the full queue or reported after shutdown", {},
              static_cast<double>(s.dropped));
    e.counter("kvbm_event_batches_total", "KV event batches published", {}, static_cast<double>(s.batches));
    e.counter("kvbm_event_publish_errors_total", "Publisher calls that failed (one per publisher per batch)", {},
              static_cast<double>(s.publish_errors));
  });
}

}  // namespace kvbm::metrics
