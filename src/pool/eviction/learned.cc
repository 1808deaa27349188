// The `learned` policy's factory; the policy itself is in learned.h (adaptive.cc runs it too).
#include "pool/eviction/learned.h"

namespace kvbm::eviction {

std::unique_ptr<EvictionPolicy> make_learned(std::uint32_t capacity) {
  return std::make_unique<LearnedPolicy>(capacity);
}

}  // namespace kvbm::eviction
