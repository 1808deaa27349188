// EventPublisher: one destination of the EventManager's batches (ZMQ, NATS, an in-process callback).
//
// The EventManager's publisher thread calls publish() for every batch, with the batch and its msgpack
// payload already encoded (encode_event_batch), so each format is encoded once whatever the number of
// publishers. publish() is only ever called from that one thread.
#pragma once

#include <absl/status/status.h>

#include <string_view>

#include "kvbm/events/kv_event.h"

namespace kvbm {

class EventPublisher {
 public:
  virtual ~EventPublisher() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;
  // Sends one batch. An error is counted by the EventManager and the batch is not retried.
  [[nodiscard]] virtual absl::Status publish(const EventBatch& batch, std::string_view payload) = 0;
  // Whether publish() reads batch.events. One that sends only the payload returns false: when no
  // publisher of an EventManager reads them, it hands over batches without their events (timestamp and
  // rank set) instead of copying every event into a batch.
  [[nodiscard]] virtual bool reads_events() const { return true; }
};

}  // namespace kvbm
