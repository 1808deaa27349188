// EventManager: turns what block pools report (EventSink) into published KV event batches (DESIGN.md §5).
//
// The pools call on_stored / on_removed / on_cleared after releasing their locks; each call becomes one
// KvEvent (one BlockStored per register call) and is appended to a bounded FIFO queue. Every BlockStored
// leaves with blocks × block_size token ids (the wire format's rule, which routers enforce): a pool that
// reports a block without its tokens (trace replay registers hash ids only; a G3 file re-indexed at
// start-up; keep_tokens = false) gets synthesize_block_tokens() of its hashes instead. One publisher
// thread takes every queued event at once — as soon as `max_batch_events` are waiting, or
// `max_batch_delay` after the first one arrived, whichever is first — and publishes them in batches of
// at most `max_batch_events` (split further while a payload is over `max_batch_bytes`): it encodes each
// batch once (encode_event_batch) and hands it to every EventPublisher in order. Taking the queue is a swap, so a pool
// reporting an event meanwhile does not wait for the lock while events are moved.
//
// Drop policy: when the queue holds `queue_capacity` events, a new event pushes out the OLDEST queued
// one (a router would rather miss history than the present); every event dropped that way, or reported
// after shutdown(), is counted in stats().dropped. Events already taken by the publisher thread are
// not dropped, so up to 2 × queue_capacity events may be held while a publisher is slow.
//
// Memory: the publisher thread hands the slots of published events back with the next swap, and a new
// event is written over a spent one — its hash vector reused, its token ids freed by the thread that
// allocated them (the pools'), which keeps that thread's allocator caches warm. Up to
// max(1,024, 4 × max_batch_events) spent events are kept that way; more are freed after a burst.
//
// Thread-safety: every method may be called from any thread. Publishers are called only from the
// publisher thread, never under the manager's lock or a pool's lock, so a publisher may call back into
// a pool or block. The manager owns its publishers.
#pragma once

#include <absl/base/thread_annotations.h>
#include <absl/status/statusor.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kvbm/core/event_sink.h"
#include "kvbm/core/mutex.h"
#include "kvbm/events/event_publisher.h"
#include "kvbm/events/kv_event.h"
#include "kvbm/events/msgpack_codec.h"

namespace kvbm {

struct EventManagerOptions {
  std::size_t queue_capacity = 65536;             // events, > 0; the oldest is dropped beyond this
  std::size_t max_batch_events = 256;             // events per published batch, > 0
  std::chrono::milliseconds max_batch_delay{10};  // how long a batch may wait to fill, >= 0
  // A batch whose payload is larger is split in halves (down to single events), > 0. Below NATS's
  // default max_payload (1 MiB), which refuses larger messages.
  std::size_t max_batch_bytes = 1000000;
  std::optional<std::int64_t> data_parallel_rank;  // the batch's third item; >= 0 when set
  BatchFormat batch_format = BatchFormat::kArray;  // shape B; kMap = shape C (specs/kv-events-wire-format.md)
  // The `medium` of each tier's events, indexed by CacheLevel; each non-empty.
  std::array<std::string, kNumCacheLevels> media = {"GPU", "CPU", "DISK", "REMOTE"};
};

// The tokens kvbm publishes for a block it holds without them: token i of the block with hash h is
// splitmix64(h + i) >> 33 (31 bits; splitmix64 as in Steele et al.: z += 0x9E3779B97F4A7C15, then
// z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9, z = (z ^ z >> 27) * 0x94D049BB133111EB, z ^ z >> 31). Distinct
// blocks get distinct token blocks, deterministically. `out` is overwritten (its capacity reused) with
// hashes.size() × block_size tokens.
void synthesize_block_tokens(std::span<const std::uint64_t> hashes, std::uint32_t block_size,
                             std::vector<std::uint32_t>& out);

// Counters since creation. sent + dropped + (queued or in flight) = every event reported.
struct EventManagerStats {
  std::uint64_t sent = 0;            // events in batches handed to every publisher
  std::uint64_t dropped = 0;         // events pushed out of a full queue, or reported after shutdown
  std::uint64_t batches = 0;         // batches published
  std::uint64_t publish_errors = 0;  // publish() calls that returned an error (one per publisher per batch)
};

// An in-process publisher: calls a function with every batch (on the publisher thread).
class CallbackPublisher final : public EventPublisher {
 public:
  using Callback = std::function<void(const EventBatch&)>;
  explicit CallbackPublisher(Callback callback, std::string name = "callback")
      : callback_(std::move(callback)), name_(std::move(name)) {}
  [[nodiscard]] std::string_view name() const override { return name_; }
  [[nodiscard]] absl::Status publish(const EventBatch& batch, std::string_view payload) override;

 private:
  Callback callback_;
  std::string name_;
};

class EventManager final : public EventSink {
 public:
  // InvalidArgument naming the field for bad options, or for a null publisher. Starts the publisher
  // thread. Publishers may be empty (events are then counted as sent and discarded).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<EventManager>> create(
      EventManagerOptions options, std::vector<std::unique_ptr<EventPublisher>> publishers);
  // shutdown(): flushes what is queued, then joins the publisher thread.
  ~EventManager() override;
  EventManager(const EventManager&) = delete;
  EventManager& operator=(const EventManager&) = delete;

  // EventSink. Never block on publishing: they only enqueue.
  void on_stored(BlocksStored event) override;
  void on_removed(BlocksRemoved event) override;
  void on_cleared(CacheLevel level) override;

  // Enqueues an event as is (for callers that build KvEvents themselves). InvalidArgument, and nothing
  // queued, for a BlockStored whose token_ids are not blocks × block_size long.
  [[nodiscard]] absl::Status enqueue(KvEvent event);

  // Returns once every event enqueued before the call has been published or dropped. Publishes what is
  // queued now, without waiting for max_batch_delay.
  void flush();
  // Stops accepting events (later ones count as dropped), publishes everything queued, joins the thread.
  // Idempotent.
  void shutdown();

  [[nodiscard]] EventManagerStats stats() const;
  [[nodiscard]] const EventManagerOptions& options() const { return options_; }
  // The i-th publisher given to create(). REQUIRES: i < num_publishers().
  [[nodiscard]] EventPublisher& publisher(std::size_t i) { return *publishers_[i]; }
  [[nodiscard]] std::size_t num_publishers() const { return publishers_.size(); }

 private:
  EventManager(EventManagerOptions options, std::vector<std::unique_ptr<EventPublisher>> publishers);
  void run();
  // Appends one event, written by fill(KvEvent& slot) into its slot under the lock (drop-oldest first).
  template <typename Fill>
  void push(Fill&& fill);

  const EventManagerOptions options_;
  const std::vector<std::unique_ptr<EventPublisher>> publishers_;  // used by the publisher thread only
  const bool copy_events_;  // some publisher reads batch.events (EventPublisher::reads_events)

  mutable Mutex mu_;
  std::condition_variable_any work_cv_;  // publisher thread waits: events, flush or stop
  std::condition_variable_any done_cv_;  // flush() waits: progress
  // The queued events are queue_[head_, tail_); the other slots hold spent events (dropped, or
  // published and handed back by the publisher thread), overwritten as events arrive. Drop-oldest
  // advances head_; the publisher thread takes the whole vector (swap) and resets both.
  std::vector<KvEvent> queue_ ABSL_GUARDED_BY(mu_);
  std::size_t head_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t tail_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t queued() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return tail_ - head_; }
  // Events ever accepted into the queue. They leave it only from the front (taken by the publisher
  // thread or dropped), so the front's accept index is accepted_ - queued().
  std::uint64_t accepted_ ABSL_GUARDED_BY(mu_) = 0;
  // The events being published (taken from the queue), if any: the accept index of the first.
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  std::uint64_t in_flight_begin_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t flush_waiters_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  EventManagerStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
  Mutex shutdown_mu_;  // serializes shutdown() callers around the join
};

}  // namespace kvbm
