// RecordingEventSink: an EventSink test double that keeps every event it receives, in arrival order.
//
// Thread-safety: every method may be called from any thread (pools report from whichever thread released
// their lock). Accessors return copies taken under the sink's own mutex.
#pragma once

#include <absl/base/thread_annotations.h>

#include <cstddef>
#include <utility>
#include <variant>
#include <vector>

#include "kvbm/core/event_sink.h"
#include "kvbm/core/mutex.h"

namespace kvbm::testing {

struct ClearedEvent {
  CacheLevel level = CacheLevel::kG1;
};

// One recorded event, in the order the sink received it.
using RecordedEvent = std::variant<BlocksStored, BlocksRemoved, ClearedEvent>;

class RecordingEventSink final : public EventSink {
 public:
  void on_stored(BlocksStored event) override {
    MutexLock lock(&mu_);
    events_.emplace_back(std::move(event));
  }
  void on_removed(BlocksRemoved event) override {
    MutexLock lock(&mu_);
    events_.emplace_back(std::move(event));
  }
  void on_cleared(CacheLevel level) override {
    MutexLock lock(&mu_);
    events_.emplace_back(ClearedEvent{level});
  }

  [[nodiscard]] std::vector<RecordedEvent> events() const {
    MutexLock lock(&mu_);
    return events_;
  }
  [[nodiscard]] std::vector<BlocksStored> stored() const { return of_type<BlocksStored>(); }
  [[nodiscard]] std::vector<BlocksRemoved> removed() const { return of_type<BlocksRemoved>(); }
  [[nodiscard]] std::vector<ClearedEvent> cleared() const { return of_type<ClearedEvent>(); }

  // Every sequence hash of every Removed event, flattened in arrival order.
  [[nodiscard]] std::vector<SequenceHash> removed_hashes() const {
    std::vector<SequenceHash> out;
    for (const BlocksRemoved& e : removed()) out.insert(out.end(), e.block_hashes.begin(), e.block_hashes.end());
    return out;
  }
  // Every sequence hash of every Stored event, flattened in arrival order.
  [[nodiscard]] std::vector<SequenceHash> stored_hashes() const {
    std::vector<SequenceHash> out;
    for (const BlocksStored& e : stored()) out.insert(out.end(), e.block_hashes.begin(), e.block_hashes.end());
    return out;
  }

  [[nodiscard]] std::size_t size() const {
    MutexLock lock(&mu_);
    return events_.size();
  }
  // Returns and forgets everything recorded so far.
  [[nodiscard]] std::vector<RecordedEvent> take() {
    MutexLock lock(&mu_);
    return std::exchange(events_, {});
  }
  void clear() {
    MutexLock lock(&mu_);
    events_.clear();
  }

 private:
  template <typename T>
  std::vector<T> of_type() const {
    MutexLock lock(&mu_);
    std::vector<T> out;
    for (const RecordedEvent& e : events_) {
      if (const T* t = std::get_if<T>(&e)) out.push_back(*t);
    }
    return out;
  }

  mutable Mutex mu_;
  std::vector<RecordedEvent> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvbm::testing
