// ZmqSubscriber: receives KV event batches from a ZmqPublisher (or vLLM) and hands them on in sequence
// order, recovering missed batches through the publisher's replay socket (specs/kv-events-wire-format.md).
//
// Delivery: every received batch is delivered once, in increasing sequence order. With `start_seq` and
// a replay socket, the first next() first asks for everything buffered from start_seq on. When a live batch
// arrives with seq > expected (a gap: the subscriber joined late with `start_seq`, or the PUB/SUB
// high-water mark dropped messages), the subscriber asks the replay socket for everything from
// `expected` on, delivers what comes back, and skips live batches it already delivered that way.
// Batches the publisher no longer buffers (or all of a gap, without a replay socket) are counted as
// lost and skipped. A batch that fails to decode is delivered as its error (next() returns it) and the
// sequence moves on. A publisher restart (a live sequence number not above the previous live one: a new
// publisher on the endpoint) is delivered as a batch holding one AllBlocksCleared event, numbered like the
// new publisher's first live batch, and the sequence starts again at 0 (recovered by replay when that
// batch is not 0). A restarted publisher whose first live batch the subscriber sees is numbered above the
// old one's last is taken for a gap (the wire carries no publisher identity).
//
// Thread-safety: not thread-safe; one thread calls next()/run(). Owns its own ZMQ context.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <zmq.hpp>

#include "kvbm/events/kv_event.h"

namespace kvbm {

struct ZmqSubscriberOptions {
  // The publisher's endpoint. Connected to, unless `bind`; a tcp://*:PORT endpoint is connected to as
  // tcp://127.0.0.1:PORT, so the publisher's own bind endpoint can be given.
  std::string endpoint = "tcp://127.0.0.1:5557";
  bool bind = false;
  std::string topic;                           // subscription prefix; empty = everything
  std::optional<std::string> replay_endpoint;  // the publisher's ROUTER; none = gaps are only counted
  // First sequence number wanted: batches from it on are recovered by replay (at the first next(), and
  // when the live stream shows a gap). None = start from whatever arrives first.
  std::optional<std::uint64_t> start_seq;
  std::chrono::milliseconds replay_timeout{2000};  // per replay message; then the gap counts as lost
  int rcvhwm = 100000;                             // receive high-water mark, >= 0
  // Lost batches (see stats().lost) are delivered as one batch holding AllBlocksCleared, numbered like the
  // batch after them: a consumer keeping state (a router's index) drops what it can no longer trust, at
  // the right place in the stream, and rebuilds from what follows.
  bool clear_on_loss = false;
};

struct ZmqSubscriberStats {
  std::uint64_t received = 0;         // live messages received (including duplicates skipped)
  std::uint64_t delivered = 0;        // batches handed on by next()/run(), errors included
  std::uint64_t gaps = 0;             // live batches that arrived after a gap
  std::uint64_t recovered = 0;        // batches delivered from a replay answer
  std::uint64_t lost = 0;             // sequence numbers never delivered
  std::uint64_t malformed = 0;        // messages with a bad frame structure or payload
  std::uint64_t replay_failures = 0;  // replay requests with no (complete) answer
  std::uint64_t restarts = 0;         // publisher restarts seen (each delivered as AllBlocksCleared)
};

class ZmqSubscriber {
 public:
  // InvalidArgument naming the field for a malformed endpoint; Unavailable when a socket cannot be set up.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ZmqSubscriber>> create(ZmqSubscriberOptions options);
  ~ZmqSubscriber();
  ZmqSubscriber(const ZmqSubscriber&) = delete;
  ZmqSubscriber& operator=(const ZmqSubscriber&) = delete;

  // The next batch in sequence order with its sequence number; nullopt when none arrived within
  // `timeout`. An error for a batch (or message) that could not be decoded: call again to go on.
  [[nodiscard]] absl::StatusOr<std::optional<std::pair<std::uint64_t, EventBatch>>> next(
      std::chrono::milliseconds timeout);

  // Calls `on_batch` for every batch until it returns false (→ OK), no batch arrives within
  // `idle_timeout` (→ DeadlineExceeded) or a batch fails to decode (→ its error).
  using Callback = std::function<bool(std::uint64_t seq, const EventBatch& batch)>;
  [[nodiscard]] absl::Status run(const Callback& on_batch, std::chrono::milliseconds idle_timeout);

  [[nodiscard]] const ZmqSubscriberStats& stats() const { return stats_; }
  // The sequence number expected next, once known.
  [[nodiscard]] std::optional<std::uint64_t> expected_seq() const { return expected_; }

 private:
  using Pending = std::pair<std::uint64_t, absl::StatusOr<EventBatch>>;
  explicit ZmqSubscriber(ZmqSubscriberOptions options);
  absl::Status connect_replay();
  // Handles one live message; appends what it makes deliverable to pending_.
  void on_live(std::uint64_t seq, std::string_view payload);
  // Appends a batch holding one AllBlocksCleared, numbered `seq`.
  void push_cleared(std::uint64_t seq);
  // Counts `count` lost batches before `next_seq`; with clear_on_loss, delivers AllBlocksCleared there.
  void note_lost(std::uint64_t count, std::uint64_t next_seq);
  // Asks for every batch from expected_ on and appends the answer to pending_. False on no answer.
  bool replay_from(std::uint64_t start);

  ZmqSubscriberOptions options_;
  std::string endpoint_;
  std::string replay_endpoint_;
  zmq::context_t context_{1};
  zmq::socket_t sub_;
  std::optional<zmq::socket_t> replay_;
  std::optional<std::uint64_t> expected_;
  std::optional<std::uint64_t> last_live_;  // the last live sequence number received
  bool started_ = false;                    // the start_seq catch-up has been done
  std::deque<Pending> pending_;
  ZmqSubscriberStats stats_;
};

}  // namespace kvbm
