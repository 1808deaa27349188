// Bandwidth between tiers in windows of trace time (see kvbm/replay/bandwidth.h).
#include "kvbm/replay/bandwidth.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace kvbm {
namespace {

constexpr std::array<TierPairInfo, kNumTierPairs> kPairs = {{
    {CacheLevel::kG1, CacheLevel::kG2, "g1_to_g2", "G1→G2"},
    {CacheLevel::kG2, CacheLevel::kG3, "g2_to_g3", "G2→G3"},
    {CacheLevel::kG2, CacheLevel::kG4, "g2_to_g4", "G2→G4"},
    {CacheLevel::kG3, CacheLevel::kG2, "g3_to_g2", "G3→G2"},
    {CacheLevel::kG2, CacheLevel::kG1, "g2_to_g1", "G2→G1"},
    {CacheLevel::kG3, CacheLevel::kG1, "g3_to_g1", "G3→G1"},
    {CacheLevel::kG4, CacheLevel::kG1, "g4_to_g1", "G4→G1"},
}};

std::int64_t window_of(double timestamp_ms) {
  // Timestamps past 2^53 ms (285,000 years) share windows; no trace gets there.
  constexpr double kLimit = 9.0e15;
  return static_cast<std::int64_t>(std::floor(std::clamp(timestamp_ms, -kLimit, kLimit) / BandwidthMeter::kWindowMs));
}

// The nearest-rank percentile (1..100) of n windows, of which the sorted `busy` ones have moves and the rest
// are empty (0). Integer ranks: 99 % of 200 windows is rank 198 exactly.
std::uint64_t nearest_rank(const std::vector<std::uint64_t>& busy, std::uint64_t n, std::uint64_t percent) {
  if (n == 0) return 0;
  const std::uint64_t rank = std::max<std::uint64_t>(1, (percent * n + 99) / 100);
  const std::uint64_t empty = n - busy.size();
  return rank <= empty ? 0 : busy[rank - empty - 1];
}

}  // namespace

const TierPairInfo& tier_pair_info(TierPair pair) { return kPairs[static_cast<int>(pair)]; }

BlocksByPair blocks_moved_by_pair(const OffloadStats& s) {
  BlocksByPair b{};
  b[static_cast<int>(TierPair::kG1ToG2)] = s.links[static_cast<int>(CacheLevel::kG2)].written;
  b[static_cast<int>(TierPair::kG2ToG3)] = s.links[static_cast<int>(CacheLevel::kG3)].written;
  b[static_cast<int>(TierPair::kG2ToG4)] = s.links[static_cast<int>(CacheLevel::kG4)].written;
  b[static_cast<int>(TierPair::kG3ToG2)] = s.links[static_cast<int>(CacheLevel::kG2)].staged;
  b[static_cast<int>(TierPair::kG2ToG1)] = s.onboarded_from[static_cast<int>(CacheLevel::kG2)];
  b[static_cast<int>(TierPair::kG3ToG1)] = s.onboarded_from[static_cast<int>(CacheLevel::kG3)];
  b[static_cast<int>(TierPair::kG4ToG1)] = s.onboarded_from[static_cast<int>(CacheLevel::kG4)];
  return b;
}

void BandwidthMeter::add(double timestamp_ms, const BlocksByPair& blocks) {
  if (!std::isfinite(timestamp_ms)) return;
  first_ms_ = any_ ? std::min(first_ms_, timestamp_ms) : timestamp_ms;
  last_ms_ = any_ ? std::max(last_ms_, timestamp_ms) : timestamp_ms;
  any_ = true;
  if (std::all_of(blocks.begin(), blocks.end(), [](std::uint64_t n) { return n == 0; })) return;
  BlocksByPair& w = windows_[window_of(timestamp_ms)];
  for (int p = 0; p < kNumTierPairs; ++p) w[p] += blocks[p];
}

BandwidthReport BandwidthMeter::finish(std::uint64_t bytes_per_block) const {
  BandwidthReport r;
  r.window_s = kWindowMs / 1000;
  if (!any_ || !(last_ms_ > first_ms_)) return r;
  r.measured = true;
  r.first_ms = first_ms_;
  r.last_ms = last_ms_;
  r.windows = static_cast<std::uint64_t>(window_of(last_ms_) - window_of(first_ms_)) + 1;
  std::vector<std::uint64_t> busy;
  for (int p = 0; p < kNumTierPairs; ++p) {
    busy.clear();
    std::uint64_t total = 0;
    for (const auto& [window, blocks] : windows_) {
      if (blocks[p] == 0) continue;
      busy.push_back(blocks[p]);
      total += blocks[p];
    }
    std::sort(busy.begin(), busy.end());
    const double per_s = static_cast<double>(bytes_per_block) / r.window_s;
    PairBandwidth& out = r.pairs[p];
    out.bytes = total * bytes_per_block;
    out.mean_bytes_per_s = static_cast<double>(total) * per_s / static_cast<double>(r.windows);
    out.p99_bytes_per_s = static_cast<double>(nearest_rank(busy, r.windows, 99)) * per_s;
    out.max_bytes_per_s = busy.empty() ? 0 : static_cast<double>(busy.back()) * per_s;
  }
  return r;
}

}  // namespace kvbm
