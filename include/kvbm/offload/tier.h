// Tier<L>: one storage tier as the offload layer and the manager see it — Storage + Layout + BlockPool,
// plus per-block checksums for tiers whose bytes can come back damaged (disk, remote). DESIGN.md §4.
#pragma once

#include <memory>

#include "kvbm/layout/layout.h"
#include "kvbm/offload/persistent_g3.h"
#include "kvbm/pool/block_pool.h"
#include "kvbm/storage/storage.h"
#include "kvbm/transfer/block_checksums.h"
#include "kvbm/transfer/transfer_engine.h"

namespace kvbm {

template <CacheLevel L>
struct Tier {
  std::unique_ptr<Layout> layout;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<TierMemory> memory;
  std::unique_ptr<BlockChecksums> checksums;  // null for memory tiers
  std::unique_ptr<PersistentG3> persist;      // g3 with g3.persist only: the on-disk index
  std::unique_ptr<BlockPool<L>> pool;         // declared last: destroyed first, while its memory exists

  [[nodiscard]] TierView view() const { return TierView{memory.get(), checksums.get()}; }
};

using G1Pool = BlockPool<CacheLevel::kG1>;
using G2Pool = BlockPool<CacheLevel::kG2>;
using G3Pool = BlockPool<CacheLevel::kG3>;
using G1MutableBlock = MutableBlock<CacheLevel::kG1>;
using G1Block = ImmutableBlock<CacheLevel::kG1>;
using G2Block = ImmutableBlock<CacheLevel::kG2>;
using G3Block = ImmutableBlock<CacheLevel::kG3>;

// The tiers of one manager, fastest first. G2 and G3 are optional (null when not configured).
struct TierStack {
  std::unique_ptr<Tier<CacheLevel::kG1>> g1;
  std::unique_ptr<Tier<CacheLevel::kG2>> g2;
  std::unique_ptr<Tier<CacheLevel::kG3>> g3;
};

// The longest prefix of a request found across tiers: g1 first, then g2 continuing where g1 stopped,
// then g3, then g4 (remote: only hashes — nothing is pinned there; onboarding fetches them and a block
// gone meanwhile ends the prefix). Holding a MatchResult pins every G1–G3 block in it.
struct MatchResult {
  std::vector<G1Block> g1;
  std::vector<G2Block> g2;
  std::vector<G3Block> g3;
  std::vector<SequenceHash> g4;
  [[nodiscard]] std::size_t size() const { return g1.size() + g2.size() + g3.size() + g4.size(); }
};

}  // namespace kvbm
