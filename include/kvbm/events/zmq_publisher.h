// ZmqPublisher: KV event batches on a ZMQ PUB socket, exactly as specs/kv-events-wire-format.md says
// (the format vLLM publishes, so existing routers consume it unchanged).
//
// Every batch is one three-frame message: [topic, sequence (8 bytes big-endian, from 0, +1 per batch),
// msgpack payload]. The PUB socket binds when its endpoint holds `*` or `::` or starts with ipc:// or
// inproc://, and connects otherwise. With a data-parallel rank r, a tcp endpoint's port becomes port + r
// (for both sockets; a `*` port stays ephemeral), an inproc name gets `_dp{r}`, an ipc path is refused. Batches go only
// to peers whose connection is complete (ZMQ_IMMEDIATE): a connecting PUB drops what it publishes while
// its peer is away, as a bound PUB does with no subscriber (a subscriber catches up through replay).
//
// Replay (optional): a ROUTER socket, always bound, served by the publisher's own replay thread. A
// client sends [b"", start_seq (8 bytes BE)] from a DEALER (the ROUTER sees [identity, b"", start_seq])
// and receives one message [b"", seq, payload] per buffered batch with seq >= start_seq, then
// [b"", 0xFF x 8, b""]. The last `replay_buffer_batches` batches are buffered.
//
// Each publisher owns its own ZMQ context (one I/O thread): publishers are independent and the
// destructor does not wait on anyone else's sockets.
//
// Thread-safety: publish() must be called from one thread at a time (the EventManager's publisher
// thread); the replay thread shares only the buffer, under a mutex. Accessors may be called from any
// thread.
#pragma once

#include <absl/base/thread_annotations.h>
#include <absl/status/statusor.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <zmq.hpp>

#include "kvbm/core/mutex.h"
#include "kvbm/events/event_publisher.h"

namespace kvbm {

struct ZmqPublisherOptions {
  std::string endpoint = "tcp://*:5557";
  std::string topic;                                   // first frame of every message
  std::optional<std::string> replay_endpoint;          // e.g. "tcp://*:5558"; none = no replay socket
  int hwm = 100000;                                    // send high-water mark of the PUB socket, >= 0 (0 = none)
  std::size_t replay_buffer_batches = 10000;           // batches kept for replay, > 0 when replay is on
  std::optional<std::int64_t> data_parallel_rank;      // tcp port offset; >= 0
  std::chrono::milliseconds replay_poll_interval{50};  // how often the replay thread checks for shutdown
  std::chrono::milliseconds linger{1000};              // how long closing waits to send what is queued
};

class ZmqPublisher final : public EventPublisher {
 public:
  // InvalidArgument naming the field for a malformed endpoint or option; Unavailable when a socket
  // cannot bind or connect (e.g. the port is in use).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ZmqPublisher>> create(ZmqPublisherOptions options);
  ~ZmqPublisher() override;
  ZmqPublisher(const ZmqPublisher&) = delete;
  ZmqPublisher& operator=(const ZmqPublisher&) = delete;

  [[nodiscard]] std::string_view name() const override { return "zmq"; }
  // Sends [topic, seq, payload] and buffers the payload for replay. `batch` is not used: the payload is
  // already its msgpack encoding.
  [[nodiscard]] absl::Status publish(const EventBatch& batch, std::string_view payload) override;
  [[nodiscard]] bool reads_events() const override { return false; }
  // Same, for callers that have only the payload.
  [[nodiscard]] absl::Status publish_payload(std::string_view payload);

  // The PUB endpoint in use: after a bind, the resolved one (an ephemeral `*` port is filled in).
  [[nodiscard]] const std::string& endpoint() const { return endpoint_; }
  // The ROUTER endpoint in use (resolved), or empty without replay.
  [[nodiscard]] const std::string& replay_endpoint() const { return replay_endpoint_; }
  // The sequence number the next batch will carry.
  [[nodiscard]] std::uint64_t next_sequence() const { return next_seq_.load(std::memory_order_relaxed); }
  // Replay requests answered so far.
  [[nodiscard]] std::uint64_t replay_requests() const { return replay_requests_.load(std::memory_order_relaxed); }

 private:
  using Buffered = std::pair<std::uint64_t, std::shared_ptr<const std::string>>;
  explicit ZmqPublisher(ZmqPublisherOptions options);
  void serve_replay();
  void answer_replay(std::vector<zmq::message_t>& request);

  const ZmqPublisherOptions options_;
  zmq::context_t context_{1};
  zmq::socket_t pub_;
  std::optional<zmq::socket_t> router_;  // used only by the replay thread once it runs
  std::string endpoint_;
  std::string replay_endpoint_;
  std::atomic<std::uint64_t> next_seq_{0};
  std::atomic<std::uint64_t> replay_requests_{0};

  Mutex mu_;
  std::deque<Buffered> buffer_ ABSL_GUARDED_BY(mu_);  // oldest first, at most replay_buffer_batches

  std::atomic<bool> stop_{false};
  std::thread replay_thread_;
};

// Endpoint rules of the wire format, exposed for the subscriber and tests.
// Whether the PUB side binds `endpoint` (holds `*` or `::`, or is ipc:// / inproc://).
[[nodiscard]] bool zmq_endpoint_binds(std::string_view endpoint);
// `endpoint` checked (tcp://HOST:PORT, ipc://PATH, inproc://NAME) and, with a data-parallel `rank`, made
// that rank's, as vLLM does: a tcp port becomes port + rank (a `*` port stays), an inproc name gets
// `_dp{rank}`, and an ipc path is refused (every rank would bind the same path). InvalidArgument naming
// `field` and the endpoint otherwise.
[[nodiscard]] absl::StatusOr<std::string> zmq_offset_endpoint(std::string_view endpoint,
                                                              std::optional<std::int64_t> rank,
                                                              std::string_view field = "endpoint");

}  // namespace kvbm
