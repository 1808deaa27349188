// LRU stack distances (Mattson, Gecsei, Slutz and Traiger, 1970) and the one-pass G2 hit curve of
// `kvbm plan` (docs/planning.md has the argument).
//
// LruStackDistance: the depth of a key in an LRU stack (1 = most recent), in O(log n) per access with a
// Fenwick tree over access times: a key's depth is the number of keys whose last access is at or after
// its own. An LRU cache of C entries holds a key exactly when its depth is at most C (inclusion), so one
// pass over an access stream answers every capacity at once.
//
// G2HitCurve: the chain of README.md "Replay semantics" with LRU in G1 and G2, write-through, no G3 or
// G4, G1 fixed, for every G2 capacity at once. G1 does not depend on G2 (it holds every block a request
// reaches either way), so the stream of G2 accesses (step 4) is the same for every G2 capacity, and a
// request's hits are its prefix up to the first block that is neither in G1 nor within the first C of
// G2's LRU stack. One exception breaks LRU's inclusion property: step 4 touches a G2 hit only if it is
// still there, and the request's own write-throughs, inserted before it (tail first), may have evicted
// it. The pass records each capacity range where that happens; capacities in no such range are read off
// the pass, the others are re-simulated exactly (G2 alone over the recorded G1 pass, O(1) per access).
//
// Thread-safety: LruStackDistance is not thread-safe. A computed G2HitCurve is immutable: at() may be
// called from several threads at once.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "kvbm/core/types.h"

namespace kvbm {

class LruStackDistance {
 public:
  static constexpr std::uint64_t kInfinite = std::numeric_limits<std::uint64_t>::max();

  // REQUIRES: keys are < num_keys; at most max_accesses calls to access().
  LruStackDistance(std::uint32_t num_keys, std::uint64_t max_accesses);

  // The key's depth now (1 = most recent), kInfinite before its first access. O(log n).
  [[nodiscard]] std::uint64_t depth(std::uint32_t key) const;
  // Makes `key` the most recent; returns its depth just before. O(log n).
  std::uint64_t access(std::uint32_t key);

 private:
  static constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
  void add(std::uint64_t time, std::int32_t delta);
  [[nodiscard]] std::uint64_t count_before(std::uint64_t time) const;  // marks at times < time

  std::vector<std::int32_t> tree_;   // Fenwick tree: one mark per key, at its last access time
  std::vector<std::uint64_t> last_;  // per key: time of its last access, kNever
  std::uint64_t now_ = 0;            // accesses so far
  std::uint64_t marks_ = 0;          // keys accessed at least once
};

// What a chain with G1 fixed and G2 at `g2_blocks` (no G3) hits over the whole trace, as
// `kvbm replay --no-data` counts it (blocks_hit, tiers.g1.hits, tiers.g2.hits).
struct ChainHits {
  std::uint64_t g2_blocks = 0;
  std::uint64_t blocks_hit = 0;
  std::uint64_t g1_hits = 0;
  std::uint64_t g2_hits = 0;
  bool from_pass = false;  // read off the stack pass; false: re-simulated (see the top of this file)
};

class G2HitCurve {
 public:
  // The G1 pass and the stack pass over `requests` (each request's sequence hashes). FailedPrecondition
  // when a request finds a block in G1 after one it does not (its G1 hits are not a prefix: possible only
  // when a hash follows different parents); then G1 would depend on G2 (step 1 holds G1 hits only inside
  // the matched prefix) and the pass does not apply. InvalidArgument for g1_blocks outside
  // [1, TierConfig::kMaxBlocks] (check_tier_blocks).
  [[nodiscard]] static absl::StatusOr<G2HitCurve> compute(std::span<const std::vector<SequenceHash>> requests,
                                                          std::uint64_t g1_blocks);

  // Exact hits at this G2 capacity (0 = no G2): from the pass when no deviation range covers it, else
  // re-simulated.
  [[nodiscard]] ChainHits at(std::uint64_t g2_blocks) const;
  // Whether at(g2_blocks) is read off the pass.
  [[nodiscard]] bool exact_from_pass(std::uint64_t g2_blocks) const;

  [[nodiscard]] std::uint64_t g1_blocks() const { return g1_blocks_; }
  [[nodiscard]] std::uint64_t requests() const { return offsets_.size() - 1; }
  [[nodiscard]] std::uint64_t blocks_total() const { return ids_.size(); }
  [[nodiscard]] std::uint32_t distinct_blocks() const { return distinct_; }
  // Blocks left uncached because every G1 slot was held (the same at every G2 capacity).
  [[nodiscard]] std::uint64_t blocks_uncached() const { return uncached_; }
  // Hits of an unlimited cache: each request's longest prefix of blocks seen in earlier requests
  // (= `kvbm replay --g1-blocks unlimited`).
  [[nodiscard]] std::uint64_t attainable_hits() const { return attainable_; }
  // The smallest G2 capacity from which on nothing changes any more (every block G2 could serve is kept).
  [[nodiscard]] std::uint64_t saturation_blocks() const { return saturation_; }
  // Touches of a G2 hit whose block an earlier write-through of the same request had evicted, at some
  // capacity of the pure LRU model; and the capacities so affected, as disjoint [lo, hi] ranges.
  [[nodiscard]] std::uint64_t deviations() const { return deviations_; }
  [[nodiscard]] const std::vector<std::pair<std::uint64_t, std::uint64_t>>& deviation_ranges() const { return ranges_; }

 private:
  G2HitCurve() = default;
  [[nodiscard]] ChainHits simulate(std::uint64_t g2_blocks) const;

  // Per block reference, request after request.
  static constexpr std::uint8_t kG1AtStart = 1;  // in G1 when the request began (step 1)
  static constexpr std::uint8_t kG1Held = 2;     // found in G1 by step 2: no G2 access in step 4
  static constexpr std::uint8_t kReached = 4;    // reached by step 2 (not cut off by a full G1)
  std::vector<std::uint32_t> ids_;               // dense block ids
  std::vector<std::uint8_t> flags_;
  std::vector<std::uint64_t> offsets_;  // request r is [offsets_[r], offsets_[r + 1])
  std::uint32_t distinct_ = 0;
  std::uint64_t g1_blocks_ = 0;
  std::uint64_t uncached_ = 0;
  std::uint64_t attainable_ = 0;
  std::uint64_t g1_hits_ = 0;           // the same at every capacity (G1 hits are a prefix)
  std::vector<std::uint64_t> g2_need_;  // per G2 hit of the pure model: the least capacity, sorted
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges_;
  std::uint64_t deviations_ = 0;
  std::uint64_t saturation_ = 0;
};

}  // namespace kvbm
