// EventSink: where a block pool reports what it stored and removed (DESIGN.md §5).
//
// The pool calls a sink only after releasing its lock, so a sink may block or call back into kvbm.
// Implementations must be thread-safe: several pools (and threads) may report into one sink.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kvbm/core/types.h"

namespace kvbm {

// Blocks registered in a tier for the first time, in chain order, by one register call.
struct BlocksStored {
  CacheLevel level = CacheLevel::kG1;
  std::vector<SequenceHash> block_hashes;   // sequence hashes: each names its whole prefix
  std::optional<SequenceHash> parent_hash;  // parent of block_hashes[0], if any
  std::vector<std::uint32_t> token_ids;     // tokens of exactly these blocks (empty when not kept)
  std::uint32_t block_size = 0;
};

// Registered blocks that left a tier (evicted or reset), each reported once.
struct BlocksRemoved {
  CacheLevel level = CacheLevel::kG1;
  std::vector<SequenceHash> block_hashes;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void on_stored(BlocksStored event) = 0;
  virtual void on_removed(BlocksRemoved event) = 0;
  // Every block of `level` was dropped at once.
  virtual void on_cleared(CacheLevel level) = 0;
};

// Discards everything. The default sink.
class NullEventSink final : public EventSink {
 public:
  void on_stored(BlocksStored) override {}
  void on_removed(BlocksRemoved) override {}
  void on_cleared(CacheLevel) override {}
};

}  // namespace kvbm
