// NatsPublisher: publishes the EventManager's batches on a NATS subject, for Dynamo-style deployments
// (DESIGN.md §5). Each message's payload is the batch's msgpack payload, byte for byte what the ZMQ
// publisher sends as its third frame; there is no topic or sequence frame (NATS has subjects).
//
// Connection: libnats (the C client), to the first reachable server of `servers`. When the server goes
// away the connection reconnects forever (every `reconnect_wait`); publishes made meanwhile are kept
// in a buffer of `reconnect_buffer_bytes` and sent on reconnect. Once that buffer is full, publish()
// fails with ResourceExhausted and the batch is lost (core NATS is at-most-once anyway: a subscriber
// that is itself reconnecting misses what is sent meanwhile). Every failed publish is counted.
// create() connects before returning and fails with Unavailable naming the servers when none answers;
// with `connect_lazily` it returns at once and keeps trying in the background, buffering as above.
//
// Thread-safety: publish() is called from the EventManager's one publisher thread (EventPublisher);
// stats() and connected() may be called from any thread. libnats invokes the connection callbacks on
// its own thread; they only touch atomics.
// Ownership: the publisher owns its connection; destruction flushes (bounded by `close_timeout`) and
// closes it.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/events/event_publisher.h"

namespace kvbm {

struct NatsPublisherOptions {
  // NATS URLs, tried in order (no randomization). REQUIRES: non-empty.
  std::vector<std::string> servers = {"nats://127.0.0.1:4222"};
  // Empty: "kvbm.events.<worker_id>". Otherwise a literal subject: dot-separated non-empty tokens,
  // no whitespace, no wildcards ('*', '>').
  std::string subject;
  std::uint64_t worker_id = 0;
  std::chrono::milliseconds connect_timeout{2000};  // per connect attempt; > 0
  std::chrono::milliseconds reconnect_wait{250};    // between reconnect attempts; > 0
  std::size_t reconnect_buffer_bytes = 8u << 20;    // publishes buffered while reconnecting; > 0, < 2 GiB
  bool connect_lazily = false;                      // see the class comment
  std::chrono::milliseconds close_timeout{1000};    // destructor's flush bound
};

// What the publisher did, for metrics and tests.
struct NatsPublisherStats {
  std::uint64_t published = 0;    // publish() calls accepted (sent or buffered for reconnect)
  std::uint64_t failed = 0;       // publish() calls that returned an error (batch lost)
  std::uint64_t disconnects = 0;  // times the connection to the server was lost
  std::uint64_t reconnects = 0;   // times it was re-established (an initial lazy connect counts)
  std::uint64_t published_bytes = 0;
};

class NatsPublisher final : public EventPublisher {
 public:
  // InvalidArgument naming the option for bad options; Unavailable naming the servers when no server
  // answers (unless connect_lazily).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<NatsPublisher>> create(NatsPublisherOptions options);
  ~NatsPublisher() override;
  NatsPublisher(const NatsPublisher&) = delete;
  NatsPublisher& operator=(const NatsPublisher&) = delete;

  [[nodiscard]] std::string_view name() const override { return "nats"; }
  // Unavailable when the connection is closed; ResourceExhausted when the reconnect buffer is full;
  // InvalidArgument when the payload exceeds the server's max_payload.
  [[nodiscard]] absl::Status publish(const EventBatch& batch, std::string_view payload) override;
  [[nodiscard]] bool reads_events() const override { return false; }
  // Waits until the server has processed everything published so far. DeadlineExceeded / Unavailable.
  [[nodiscard]] absl::Status flush(std::chrono::milliseconds timeout);

  [[nodiscard]] const std::string& subject() const { return subject_; }
  [[nodiscard]] bool connected() const;
  [[nodiscard]] NatsPublisherStats stats() const;

 private:
  struct Impl;
  explicit NatsPublisher(std::unique_ptr<Impl> impl, std::string subject);

  std::unique_ptr<Impl> impl_;
  std::string subject_;
};

// The subject rule of NatsPublisherOptions::subject: OK or InvalidArgument naming `subject`.
[[nodiscard]] absl::Status validate_nats_subject(std::string_view subject);

}  // namespace kvbm
