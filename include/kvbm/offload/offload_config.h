// OffloadConfig: how blocks move down the tiers (see offload_manager.h). Part of KvbmConfig.
#pragma once

#include <cstdint>

namespace kvbm {

// When a block is copied to the tier below.
enum class OffloadMode : std::uint8_t {
  kWriteThrough,  // as soon as it is registered above (default)
  kWriteBack,     // when the tier above evicts it (copied before the slot is reused)
  kNone,          // never
};

struct OffloadConfig {
  OffloadMode g1_to_g2 = OffloadMode::kWriteThrough;
  OffloadMode g2_to_g3 = OffloadMode::kWriteThrough;
  // Frequency filter in front of G3: only blocks seen at least this often go to disk (0 or 1: off).
  std::uint32_t g3_min_frequency = 2;
  // Every this many sightings, all frequency counts are halved, so old popularity fades.
  std::uint32_t frequency_decay_events = 100000;
  std::uint32_t batch_blocks = 64;                   // blocks per transfer batch
  std::uint64_t max_bytes_in_flight = 256ull << 20;  // per tier pair
  std::uint32_t queue_capacity = 65536;              // queued offloads per tier pair; beyond: dropped, counted
  bool onboard_direct = false;                       // G3 → G1 directly instead of through G2
  std::uint32_t transfer_threads = 2;
};

}  // namespace kvbm
