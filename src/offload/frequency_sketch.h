// FrequencySketch: approximate per-block sighting counts for the G3 admission filter.
//
// A count-min sketch: 4 rows of saturating u8 counters, `width` counters per row (a power of two ≥ the
// tier's capacity, so ~4 bytes per G3 block). estimate() never undercounts a hash's sightings since the
// last decay; collisions can only overcount. Every `decay_events` additions all counters are halved, so
// popularity fades over time. Thread-safety: none (the OffloadManager guards it).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <vector>

namespace kvbm {

class FrequencySketch {
 public:
  FrequencySketch(std::uint64_t capacity, std::uint32_t decay_events)
      : mask_(std::bit_ceil(std::max<std::uint64_t>(capacity, 1024)) - 1),
        decay_events_(std::max<std::uint32_t>(decay_events, 1)),
        counters_(kRows * (mask_ + 1), 0) {}

  // Counts one sighting; returns the new estimate.
  std::uint32_t add(std::uint64_t hash) {
    std::uint32_t estimate = 255;
    for (std::uint32_t row = 0; row < kRows; ++row) {
      std::uint8_t& c = counters_[index(hash, row)];
      if (c < 255) ++c;
      estimate = std::min<std::uint32_t>(estimate, c);
    }
    if (++additions_ >= decay_events_) decay();
    return estimate;
  }

  [[nodiscard]] std::uint32_t estimate(std::uint64_t hash) const {
    std::uint32_t estimate = 255;
    for (std::uint32_t row = 0; row < kRows; ++row)
      estimate = std::min<std::uint32_t>(estimate, counters_[index(hash, row)]);
    return estimate;
  }

 private:
  static constexpr std::uint32_t kRows = 4;

  [[nodiscard]] std::size_t index(std::uint64_t hash, std::uint32_t row) const {
    // splitmix64 finaliser with a per-row seed: independent enough for four rows.
    std::uint64_t x = hash + 0x9E3779B97F4A7C15ull * (row + 1);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return row * (mask_ + 1) + (x & mask_);
  }

  void decay() {
    for (std::uint8_t& c : counters_) c >>= 1;
    additions_ = 0;
  }

  std::uint64_t mask_;
  std::uint32_t decay_events_;
  std::uint32_t additions_ = 0;
  std::vector<std::uint8_t> counters_;
};

}  // namespace kvbm
