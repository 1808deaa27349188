// IntrusiveLists: several doubly linked lists over the block ids [0, capacity) of one pool, with the
// links stored in two flat arrays (8 bytes per block), so every operation is O(1) and allocation-free.
// A block is in at most one list at a time. Thread-safety: none; owned by one eviction policy.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvbm::eviction {

class IntrusiveLists {
 public:
  static constexpr std::uint32_t kNone = 0xFFFFFFFFu;

  IntrusiveLists(std::uint32_t capacity, std::uint32_t num_lists)
      : capacity_(capacity), prev_(capacity + num_lists, kNone), next_(capacity + num_lists, kNone) {
    for (std::uint32_t l = 0; l < num_lists; ++l) {
      const std::uint32_t s = sentinel(l);
      prev_[s] = next_[s] = s;
    }
  }

  [[nodiscard]] std::size_t memory_bytes() const {
    return (prev_.capacity() + next_.capacity()) * sizeof(std::uint32_t);
  }
  [[nodiscard]] bool contains(std::uint32_t id) const { return next_[id] != kNone; }
  [[nodiscard]] bool empty(std::uint32_t list) const { return next_[sentinel(list)] == sentinel(list); }
  // Oldest element; REQUIRES: !empty(list).
  [[nodiscard]] std::uint32_t front(std::uint32_t list) const { return next_[sentinel(list)]; }
  // The element after `id` in its list, or kNone when `id` is the newest. REQUIRES: contains(id).
  [[nodiscard]] std::uint32_t after(std::uint32_t id) const { return next_[id] >= capacity_ ? kNone : next_[id]; }

  void push_back(std::uint32_t list, std::uint32_t id) { link_before(sentinel(list), id); }
  void push_front(std::uint32_t list, std::uint32_t id) { link_before(next_[sentinel(list)], id); }
  void remove(std::uint32_t id) {
    assert(contains(id));
    next_[prev_[id]] = next_[id];
    prev_[next_[id]] = prev_[id];
    prev_[id] = next_[id] = kNone;
  }

 private:
  [[nodiscard]] std::uint32_t sentinel(std::uint32_t list) const { return capacity_ + list; }
  void link_before(std::uint32_t at, std::uint32_t id) {
    assert(!contains(id));
    prev_[id] = prev_[at];
    next_[id] = at;
    next_[prev_[at]] = id;
    prev_[at] = id;
  }

  std::uint32_t capacity_;
  std::vector<std::uint32_t> prev_;
  std::vector<std::uint32_t> next_;
};

}  // namespace kvbm::eviction
