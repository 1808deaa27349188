// Tier<L>: one storage tier as the offload layer and the manager see it — Storage + Layout + BlockPool,
// plus per-block checksums for tiers whose bytes can come back damaged (disk, remote), and the hooks of
// its kind (persistence). DESIGN.md §4.
//
// A tier without memory (`memory == null`) holds identities only: its pool is the whole tier. The tier
// chain then moves no bytes but follows exactly the same steps (kvbm replay --no-data).
#pragma once

#include <absl/status/status.h>

#include <memory>
#include <span>
#include <vector>

#include "kvbm/layout/layout.h"
#include "kvbm/pool/block_pool.h"
#include "kvbm/storage/storage.h"
#include "kvbm/transfer/block_checksums.h"
#include "kvbm/transfer/transfer_engine.h"

namespace kvbm {

// What a tier kind adds around the copies into it. The tier chain calls these; a kind that needs nothing
// (memory) has none. The persistent disk tier (offload/persistent_g3.h) is the one in kvbm today.
class TierHooks {
 public:
  virtual ~TierHooks() = default;
  // `slots` are about to be overwritten by copies: whatever they held stops being valid now.
  virtual void before_write(std::span<const BlockId> slots) = 0;
  // A copy into `slot` completed intact and `identity` is about to be registered there.
  virtual void after_write(BlockId slot, const BlockIdentity& identity) = 0;
  // Every registration of the tier was dropped (KvBlockManager::reset).
  [[nodiscard]] virtual absl::Status after_reset() = 0;
  // The blocks in `slots` were read back damaged and dropped from the pool (BlockPool::discard): nothing
  // the kind keeps (a persistent index) may bring them back.
  virtual void after_damaged(std::span<const BlockId> slots) = 0;
};

template <CacheLevel L>
struct Tier {
  std::unique_ptr<Layout> layout;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<TierMemory> memory;         // null: identities only
  std::unique_ptr<BlockChecksums> checksums;  // null for memory tiers
  std::unique_ptr<TierHooks> hooks;           // null: a kind without hooks
  std::unique_ptr<BlockPool<L>> pool;         // declared last: destroyed first, while its memory exists

  [[nodiscard]] bool has_bytes() const { return memory != nullptr; }
  [[nodiscard]] TierView view() const { return TierView{memory.get(), checksums.get()}; }
};

using G1Pool = BlockPool<CacheLevel::kG1>;
using G2Pool = BlockPool<CacheLevel::kG2>;
using G3Pool = BlockPool<CacheLevel::kG3>;
using G1MutableBlock = MutableBlock<CacheLevel::kG1>;
using G2MutableBlock = MutableBlock<CacheLevel::kG2>;
using G1Block = ImmutableBlock<CacheLevel::kG1>;
using G2Block = ImmutableBlock<CacheLevel::kG2>;
using G3Block = ImmutableBlock<CacheLevel::kG3>;

// The tiers of one manager, fastest first. G2 and G3 are optional (null when not configured). G4, the
// remote tier, has a pool here only when the tiers hold identities (kvbm replay --no-data: G4 modelled at
// its planned capacity); with bytes its store is reached through the offload layer (G4Path).
struct TierStack {
  std::unique_ptr<Tier<CacheLevel::kG1>> g1;
  std::unique_ptr<Tier<CacheLevel::kG2>> g2;
  std::unique_ptr<Tier<CacheLevel::kG3>> g3;
  std::unique_ptr<Tier<CacheLevel::kG4>> g4;
};

// The longest prefix of a request found across the tiers, each block credited to the first tier holding
// it (G1, then G2, then G3, then G4): `tiers[i]` says where block i of the prefix is, and the i-th block
// found in tier T is the next unused entry of T's vector. G1 blocks are held; G2/G3 blocks are pinned for
// the copy up (pin_for_copy: their eviction order does not change); G4 holds only hashes (nothing is
// pinned there: a block gone before the fetch ends the prefix). Dropping a MatchResult releases all of it.
struct MatchResult {
  std::vector<G1Block> g1;
  std::vector<G2Block> g2;
  std::vector<G3Block> g3;
  std::vector<SequenceHash> g4;
  std::vector<CacheLevel> tiers;
  [[nodiscard]] std::size_t size() const { return tiers.size(); }
  // Whether every block is already in G1 (nothing to onboard).
  [[nodiscard]] bool resident() const { return g1.size() == tiers.size(); }
};

}  // namespace kvbm
