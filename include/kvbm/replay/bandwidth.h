// Bandwidth between tiers in trace time: the real bytes a replay moves between each pair of tiers, bucketed
// into windows of the trace's own clock, so a planner can hold them against PCIe, NVMe or a network.
//
// Each request's moves are credited to that request's timestamp: the blocks its match onboarded, and the
// copies down its allocations, registrations and releases started (under the replay's inline scheduler they
// are all done before the next request). Wall time plays no part, so the figures are the same on any
// machine, at any --speed or --timing, and in data and identities-only modes.
//
// Windows are whole seconds of the trace's clock, [k s, (k+1) s), from the one holding the earliest
// timestamp to the one holding the latest; windows without moves count as 0. A trace whose requests all
// have one timestamp (a hand-made list without times) gives no time to divide by: no figures.
//
// Thread-safety: BandwidthMeter is a plain value, used by one thread.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <array>
#include <cstdint>

#include "kvbm/core/types.h"
#include "kvbm/offload/offload_manager.h"

namespace kvbm {

// The pairs of tiers blocks move between, in the report's order: down, staged, up.
enum class TierPair : std::uint8_t { kG1ToG2, kG2ToG3, kG2ToG4, kG3ToG2, kG2ToG1, kG3ToG1, kG4ToG1 };
inline constexpr int kNumTierPairs = 7;

struct TierPairInfo {
  CacheLevel from, to;
  const char* key;    // JSON: "g1_to_g2"
  const char* label;  // text: "G1→G2"
};
[[nodiscard]] const TierPairInfo& tier_pair_info(TierPair pair);

using BlocksByPair = std::array<std::uint64_t, kNumTierPairs>;

// Blocks moved per pair so far, from the tier chain's counters: written into G2, G3 and G4 (write-through
// and write-back), G3 blocks staged into G2 on their way up, and blocks onboarded into G1 by origin. The
// same counters as the report's `moved down` / `moved up` lines.
[[nodiscard]] BlocksByPair blocks_moved_by_pair(const OffloadStats& stats);

struct PairBandwidth {
  std::uint64_t bytes = 0;  // real bytes moved over the whole trace
  // Over the windows: bytes / window_s on average (every window of the span, empty ones as 0), at the 99th
  // percentile (nearest rank) and in the busiest window.
  double mean_bytes_per_s = 0, p99_bytes_per_s = 0, max_bytes_per_s = 0;
};

struct BandwidthReport {
  // False when no time passed between the first and the last request (every timestamp equal), or when the
  // replay does not move blocks between tiers (the offline optimum): no figures.
  bool measured = false;
  double window_s = 1;
  std::uint64_t windows = 0;         // from the earliest timestamp's window to the latest's
  double first_ms = 0, last_ms = 0;  // the earliest and latest request timestamps
  std::array<PairBandwidth, kNumTierPairs> pairs{};

  [[nodiscard]] const PairBandwidth& operator[](TierPair p) const { return pairs[static_cast<int>(p)]; }
};

// Collects blocks moved per request into 1 s windows of trace time. Memory: one entry per window with
// moves (never per empty window, however long the span).
class BandwidthMeter {
 public:
  static constexpr double kWindowMs = 1000;

  // Blocks moved on behalf of a request that arrived at `timestamp_ms` (finite; any order).
  void add(double timestamp_ms, const BlocksByPair& blocks);
  // The figures in real bytes (bytes_per_block of the real model). measured = false when fewer than two
  // distinct timestamps were seen.
  [[nodiscard]] BandwidthReport finish(std::uint64_t bytes_per_block) const;

 private:
  bool any_ = false;
  double first_ms_ = 0, last_ms_ = 0;
  absl::flat_hash_map<std::int64_t, BlocksByPair> windows_;  // window index → blocks moved in it
};

}  // namespace kvbm
