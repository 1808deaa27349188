// Factories for the policies that live in their own files (see include/kvbm/pool/eviction_policy.h).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kvbm/pool/eviction_policy.h"

namespace kvbm::eviction {

[[nodiscard]] std::unique_ptr<EvictionPolicy> make_s3fifo(std::uint32_t capacity);
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_slru(std::uint32_t capacity);
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_lfu(std::uint32_t capacity);
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_learned(std::uint32_t capacity);
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_adaptive(std::uint32_t capacity);
// `inner` decides among chain tails (blocks with no cached child); blocks with cached children wait in an
// LRU list that is only evicted from when no tail is left. Reports `kind`.
[[nodiscard]] std::unique_ptr<EvictionPolicy> make_prefix_aware(EvictionPolicyKind kind,
                                                                std::unique_ptr<EvictionPolicy> inner,
                                                                std::uint32_t capacity);

// Whether a slot's next insert is the same block coming back (it was erased: matched, so reused) or a
// different block (the slot was evicted, or never used). Policies that count reuse keep one per slot.
// Allocated bytes of a per-slot (or ghost) array.
template <typename T>
[[nodiscard]] std::size_t bytes_of(const std::vector<T>& v) {
  return v.capacity() * sizeof(T);
}

enum class SlotHistory : std::uint8_t { kFresh, kInactive, kReturning, kPinned };

}  // namespace kvbm::eviction
