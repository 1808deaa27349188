#include "kvbm/events/event_manager.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "kvbm/events/msgpack_codec.h"

namespace kvbm {
namespace {

std::vector<std::uint64_t> hash_values(const std::vector<SequenceHash>& hashes) {
  std::vector<std::uint64_t> out;
  out.reserve(hashes.size());
  for (SequenceHash h : hashes) out.push_back(h.value());
  return out;
}

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

absl::Status CallbackPublisher::publish(const EventBatch& batch, std::string_view /*payload*/) {
  if (callback_) callback_(batch);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EventManager>> EventManager::create(
    EventManagerOptions options, std::vector<std::unique_ptr<EventPublisher>> publishers) {
  if (options.queue_capacity == 0) {
    return absl::InvalidArgumentError("event manager: queue_capacity must be > 0, got 0");
  }
  if (options.max_batch_events == 0) {
    return absl::InvalidArgumentError("event manager: max_batch_events must be > 0, got 0");
  }
  if (options.max_batch_delay.count() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("event manager: max_batch_delay must be >= 0 ms, got ", options.max_batch_delay.count(), " ms"));
  }
  if (options.data_parallel_rank && *options.data_parallel_rank < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("event manager: data_parallel_rank must be >= 0, got ", *options.data_parallel_rank));
  }
  for (std::size_t i = 0; i < publishers.size(); ++i) {
    if (publishers[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("event manager: publishers[", i, "] is null"));
    }
  }
  return std::unique_ptr<EventManager>(new EventManager(options, std::move(publishers)));
}

EventManager::EventManager(EventManagerOptions options, std::vector<std::unique_ptr<EventPublisher>> publishers)
    : options_(options), publishers_(std::move(publishers)) {
  thread_ = std::thread([this] { run(); });
}

EventManager::~EventManager() { shutdown(); }

void EventManager::on_stored(BlocksStored event) {
  BlockStoredEvent e;
  e.block_hashes = hash_values(event.block_hashes);
  if (event.parent_hash) e.parent_block_hash = event.parent_hash->value();
  e.token_ids = std::move(event.token_ids);
  e.block_size = event.block_size;
  e.medium = std::string(cache_level_medium(event.level));
  enqueue(std::move(e));
}

void EventManager::on_removed(BlocksRemoved event) {
  BlockRemovedEvent e;
  e.block_hashes = hash_values(event.block_hashes);
  e.medium = std::string(cache_level_medium(event.level));
  enqueue(std::move(e));
}

// The wire format's AllBlocksCleared carries no medium: a router drops everything of the worker.
void EventManager::on_cleared(CacheLevel /*level*/) { enqueue(AllBlocksClearedEvent{}); }

void EventManager::enqueue(KvEvent event) {
  bool wake = false;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      ++stats_.dropped;
      return;
    }
    if (queue_.size() >= options_.queue_capacity) {
      queue_.pop_front();  // drop-oldest
      ++stats_.dropped;
    }
    queue_.push_back(std::move(event));
    ++accepted_;
    // The publisher thread waits either for a first event or for a full batch.
    wake = queue_.size() == 1 || queue_.size() == options_.max_batch_events;
  }
  if (wake) work_cv_.notify_one();
}

void EventManager::flush() {
  MutexLock lock(&mu_);
  const std::uint64_t target = accepted_;
  ++flush_waiters_;
  work_cv_.notify_one();
  // Done when every event accepted before the call has left the queue and is not in the batch being
  // published (a batch in flight that starts at or after `target` holds only newer events).
  while (accepted_ - queue_.size() < target || (in_flight_ && in_flight_begin_ < target)) done_cv_.wait(mu_);
  --flush_waiters_;
}

void EventManager::shutdown() {
  MutexLock serialize(&shutdown_mu_);
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

EventManagerStats EventManager::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

void EventManager::run() {
  mu_.lock();
  for (;;) {
    while (queue_.empty() && !stopping_) work_cv_.wait(mu_);
    if (queue_.empty()) break;  // stopping, and everything is published
    // Let the batch fill up to max_batch_events for at most max_batch_delay, unless someone is waiting.
    const auto deadline = std::chrono::steady_clock::now() + options_.max_batch_delay;
    while (queue_.size() < options_.max_batch_events && !stopping_ && flush_waiters_ == 0) {
      if (work_cv_.wait_until(mu_, deadline) == std::cv_status::timeout) break;
    }
    const std::size_t n = std::min(queue_.size(), options_.max_batch_events);
    std::vector<KvEvent> events;
    events.reserve(n);
    in_flight_begin_ = accepted_ - queue_.size();
    in_flight_ = true;
    for (std::size_t i = 0; i < n; ++i) {
      events.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    mu_.unlock();

    EventBatch batch;
    batch.timestamp = unix_seconds_now();
    batch.events = std::move(events);
    batch.data_parallel_rank = options_.data_parallel_rank;
    std::uint64_t errors = 0;
    if (!publishers_.empty()) {
      const std::string payload = encode_event_batch(batch);
      for (const std::unique_ptr<EventPublisher>& p : publishers_) {
        if (!p->publish(batch, payload).ok()) ++errors;
      }
    }

    mu_.lock();
    in_flight_ = false;
    stats_.sent += n;
    ++stats_.batches;
    stats_.publish_errors += errors;
    const bool waiters = flush_waiters_ > 0;
    mu_.unlock();
    if (waiters) done_cv_.notify_all();
    mu_.lock();
  }
  mu_.unlock();
}

}  // namespace kvbm
