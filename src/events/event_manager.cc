#include "kvbm/events/event_manager.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "kvbm/events/msgpack_codec.h"

namespace kvbm {
namespace {

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// `out` = the values of `hashes`, in out's existing capacity.
void assign_hashes(std::vector<std::uint64_t>& out, const std::vector<SequenceHash>& hashes) {
  out.clear();
  for (SequenceHash h : hashes) out.push_back(h.value());
}

// The alternative T held by `slot`, made so if it holds another (whose storage is freed here).
template <typename T>
T& hold(KvEvent& slot) {
  if (T* e = std::get_if<T>(&slot)) return *e;
  return slot.emplace<T>();
}

// Without a new string when the slot already held one (a medium name fits std::string's inline buffer).
void set_medium(std::optional<std::string>& medium, const std::string& name) {
  if (!medium) medium.emplace();
  medium->assign(name);
}

std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

void synthesize_block_tokens(std::span<const std::uint64_t> hashes, std::uint32_t block_size,
                             std::vector<std::uint32_t>& out) {
  out.resize(hashes.size() * std::size_t{block_size});
  std::size_t at = 0;
  for (const std::uint64_t h : hashes) {
    for (std::uint32_t i = 0; i < block_size; ++i) out[at++] = static_cast<std::uint32_t>(splitmix64(h + i) >> 33);
  }
}

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
  if (options.max_batch_bytes == 0) {
    return absl::InvalidArgumentError("event manager: max_batch_bytes must be > 0, got 0");
  }
  if (options.max_batch_delay.count() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("event manager: max_batch_delay must be >= 0 ms, got ", options.max_batch_delay.count(), " ms"));
  }
  if (options.data_parallel_rank && *options.data_parallel_rank < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("event manager: data_parallel_rank must be >= 0, got ", *options.data_parallel_rank));
  }
  for (std::size_t i = 0; i < kNumCacheLevels; ++i) {
    if (options.media[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "event manager: the medium of ", std::string(cache_level_name(CacheLevel(i))), " must not be empty"));
    }
  }
  for (std::size_t i = 0; i < publishers.size(); ++i) {
    if (publishers[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("event manager: publishers[", i, "] is null"));
    }
  }
  return std::unique_ptr<EventManager>(new EventManager(options, std::move(publishers)));
}

EventManager::EventManager(EventManagerOptions options, std::vector<std::unique_ptr<EventPublisher>> publishers)
    : options_(options),
      publishers_(std::move(publishers)),
      copy_events_(std::any_of(publishers_.begin(), publishers_.end(),
                               [](const std::unique_ptr<EventPublisher>& p) { return p->reads_events(); })) {
  thread_ = std::thread([this] { run(); });
}

EventManager::~EventManager() { shutdown(); }

// The event is written into its queue slot in place. A slot holds a spent event of an earlier batch
// (see run()), so the hashes reuse its vector's capacity and the spent token ids leave with `event`:
// storage the pools' thread allocated is freed by that thread, and its allocator's caches stay warm.
void EventManager::on_stored(BlocksStored event) {
  push([&](KvEvent& slot) {
    BlockStoredEvent& e = hold<BlockStoredEvent>(slot);
    assign_hashes(e.block_hashes, event.block_hashes);
    e.parent_block_hash.reset();
    if (event.parent_hash) e.parent_block_hash = event.parent_hash->value();
    e.block_size = event.block_size;
    if (event.token_ids.size() == stored_token_count(e)) {
      e.token_ids.swap(event.token_ids);
    } else {  // reported without tokens: see the class comment
      synthesize_block_tokens(e.block_hashes, e.block_size, e.token_ids);
    }
    e.lora_id.reset();
    set_medium(e.medium, options_.media[static_cast<std::size_t>(event.level)]);
    e.lora_name.reset();
  });
}

void EventManager::on_removed(BlocksRemoved event) {
  push([&](KvEvent& slot) {
    BlockRemovedEvent& e = hold<BlockRemovedEvent>(slot);
    assign_hashes(e.block_hashes, event.block_hashes);
    set_medium(e.medium, options_.media[static_cast<std::size_t>(event.level)]);
  });
}

// The wire format's AllBlocksCleared carries no medium: a router drops everything of the worker.
void EventManager::on_cleared(CacheLevel /*level*/) {
  push([](KvEvent& slot) { hold<AllBlocksClearedEvent>(slot); });
}

absl::Status EventManager::enqueue(KvEvent event) {
  if (const auto* s = std::get_if<BlockStoredEvent>(&event)) {
    if (s->token_ids.size() != stored_token_count(*s)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "event manager: BlockStored has ", s->token_ids.size(), " token_ids for ", s->block_hashes.size(),
          " block(s) × block_size ", s->block_size, ", expected ", stored_token_count(*s)));
    }
  }
  push([&](KvEvent& slot) { slot = std::move(event); });
  return absl::OkStatus();
}

template <typename Fill>
void EventManager::push(Fill&& fill) {
  bool wake = false;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      ++stats_.dropped;
      return;
    }
    if (queued() >= options_.queue_capacity) {
      ++head_;  // drop-oldest: its slot is spent
      ++stats_.dropped;
      if (head_ == options_.queue_capacity) {  // as many spent slots in front as live ones: compact
        std::move(queue_.begin() + static_cast<std::ptrdiff_t>(head_),
                  queue_.begin() + static_cast<std::ptrdiff_t>(tail_), queue_.begin());
        tail_ -= head_;
        head_ = 0;
      }
    }
    if (tail_ == queue_.size()) queue_.emplace_back();
    fill(queue_[tail_++]);
    ++accepted_;
    // The publisher thread waits either for a first event or for a full batch.
    wake = queued() == 1 || queued() == options_.max_batch_events;
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
  while (accepted_ - queued() < target || (in_flight_ && in_flight_begin_ < target)) done_cv_.wait(mu_);
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
  // Swapped with queue_: the pools' thread gets back the slots of the events published last time.
  std::vector<KvEvent> taken;
  // More spent slots than this are freed here instead (after a burst), so that they do not hold memory.
  const std::size_t per_batch = options_.max_batch_events;
  const std::size_t keep_slots = std::max<std::size_t>(1024, per_batch <= SIZE_MAX / 4 ? 4 * per_batch : SIZE_MAX);
  std::string payload;  // capacity reused
  mu_.lock();
  for (;;) {
    while (queued() == 0 && !stopping_) work_cv_.wait(mu_);
    if (queued() == 0) break;  // stopping, and everything is published
    // Let the batch fill up to max_batch_events for at most max_batch_delay, unless someone is waiting.
    const auto deadline = std::chrono::steady_clock::now() + options_.max_batch_delay;
    bool timed_out = false;
    while (queued() < per_batch && !stopping_ && flush_waiters_ == 0) {
      if (work_cv_.wait_until(mu_, deadline) == std::cv_status::timeout) {
        timed_out = true;
        break;
      }
    }
    // Everything queued is taken at once, in O(1), so that a pool reporting an event meanwhile never
    // waits for the lock while events are moved; it is published in batches of max_batch_events.
    const std::size_t first = head_;
    std::size_t last = tail_;
    in_flight_begin_ = accepted_ - queued();
    in_flight_ = true;
    taken.swap(queue_);
    head_ = tail_ = 0;
    if (!timed_out && !stopping_ && flush_waiters_ == 0) {
      // Woken by a full batch: publish whole batches only. The events that arrived after it (fewer than
      // max_batch_events) go back to the queue and wait their turn, so batch boundaries never depend on
      // how late this thread woke.
      const std::size_t rest = (last - first) % per_batch;
      if (queue_.size() < rest) queue_.resize(rest);
      std::move(taken.begin() + static_cast<std::ptrdiff_t>(last - rest),
                taken.begin() + static_cast<std::ptrdiff_t>(last), queue_.begin());
      tail_ = rest;
      last -= rest;
    }
    mu_.unlock();

    std::uint64_t sent = 0, batches = 0, errors = 0;
    // Publishes events [begin, end) as one batch, or as two halves (recursively) while its payload is over
    // max_batch_bytes: token ids make BlockStored events large, and NATS refuses a message over its
    // max_payload (1 MiB by default), losing the whole batch.
    const auto publish_range = [&](auto& self, std::size_t begin, std::size_t end) -> void {
      const std::span<const KvEvent> events(taken.data() + begin, end - begin);
      EventBatch batch;
      batch.timestamp = unix_seconds_now();
      batch.data_parallel_rank = options_.data_parallel_rank;
      encode_event_batch(batch.timestamp, events, batch.data_parallel_rank, payload, options_.batch_format);
      if (payload.size() > options_.max_batch_bytes && end - begin > 1) {
        const std::size_t mid = begin + (end - begin) / 2;
        self(self, begin, mid);
        self(self, mid, end);
        return;
      }
      if (copy_events_) batch.events.assign(events.begin(), events.end());
      for (const std::unique_ptr<EventPublisher>& p : publishers_) {
        if (!p->publish(batch, payload).ok()) ++errors;
      }
      ++batches;
    };
    for (std::size_t begin = first, end = 0; begin < last; begin = end) {
      end = begin + std::min(last - begin, per_batch);  // no overflow whatever max_batch_events is
      if (!publishers_.empty()) {
        publish_range(publish_range, begin, end);
      } else {
        ++batches;
      }
      sent += end - begin;
    }
    if (taken.size() > keep_slots) {
      taken.clear();
      taken.shrink_to_fit();
    }

    mu_.lock();
    in_flight_ = false;
    stats_.sent += sent;
    stats_.batches += batches;
    stats_.publish_errors += errors;
    const bool waiters = flush_waiters_ > 0;
    mu_.unlock();
    if (waiters) done_cv_.notify_all();
    mu_.lock();
  }
  mu_.unlock();
}

}  // namespace kvbm
