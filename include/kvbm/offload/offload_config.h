// OffloadConfig: how blocks move along the tier chain (see offload_manager.h). Part of KvbmConfig.
#pragma once

#include <cstdint>

namespace kvbm {

// When a link copies a block into the tier below it.
enum class OffloadMode : std::uint8_t {
  kWriteThrough,  // when the block above becomes inactive after its registration (default)
  kWriteBack,     // when the tier above evicts it (copied before the slot is reused)
  kNone,          // never
};

// What a link does when it cannot keep up.
enum class OffloadBacklog : std::uint8_t {
  // Nothing is lost (default): a full queue makes the producer do the oldest queued copies itself, and an
  // eviction of a block whose copy is still queued makes that copy first.
  kWait,
  // A copy that finds its queue full, or whose block is evicted before its turn, is dropped and counted
  // (OffloadStats dropped_queue_full, dropped_evicted): the engine never waits for the tier below.
  kDrop,
};

struct OffloadConfig {
  OffloadMode g1_to_g2 = OffloadMode::kWriteThrough;
  OffloadMode g2_to_g3 = OffloadMode::kWriteThrough;
  // Frequency filter in front of G3: only blocks seen at least this often go to disk (0 or 1: off).
  std::uint32_t g3_min_frequency = 2;
  // Every this many sightings, all frequency counts are halved, so old popularity fades.
  std::uint32_t frequency_decay_events = 100000;
  std::uint32_t batch_blocks = 64;                   // blocks per transfer batch
  std::uint64_t max_bytes_in_flight = 256ull << 20;  // per link
  std::uint32_t queue_capacity = 65536;              // queued copies per link
  OffloadBacklog backlog = OffloadBacklog::kWait;
  std::uint32_t transfer_threads = 2;
};

}  // namespace kvbm
