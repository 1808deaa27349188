// BlockChecksums: per-block integrity records of a tier whose bytes can come back damaged (disk, remote).
//
// When a block is written to such a tier, the transfer engine records xxh3_64(block bytes, seed = tag),
// where the tag is what the caller bound the copy to (kvbm passes the block's sequence hash, so a block
// read back under the wrong hash fails as surely as a flipped bit). Reading the block back recomputes and
// compares: a mismatch is DataLoss, and the block is a miss, never handed out. Bytes are hashed in
// canonical order (layer by layer, outer by outer), whatever the layout.
//
// Thread-safety: all methods are thread-safe. Each entry is written by the one transfer that owns the
// block's slot at that moment.
#pragma once

#include <absl/status/status.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "kvbm/core/mutex.h"
#include "kvbm/core/types.h"

namespace kvbm {

[[nodiscard]] std::uint64_t block_checksum(std::span<const std::byte> bytes, std::uint64_t tag);

class BlockChecksums {
 public:
  explicit BlockChecksums(std::uint32_t num_blocks);

  // Forget `block` (before it is overwritten).
  void invalidate(BlockId block);
  void record(BlockId block, std::uint64_t tag, std::uint64_t checksum);
  // OK when `block` holds what was recorded for `tag`; DataLoss naming block and tag otherwise
  // (never written, written under another tag, or bytes differ).
  [[nodiscard]] absl::Status verify(BlockId block, std::uint64_t tag, std::uint64_t checksum) const;
  // What is recorded for `block` (the persistent G3 index writes it into the slot's header); nullopt when
  // nothing is (never written, invalidated, or out of range).
  struct Recorded {
    std::uint64_t tag = 0;
    std::uint64_t checksum = 0;
  };
  [[nodiscard]] std::optional<Recorded> recorded(BlockId block) const;

 private:
  struct Entry {
    std::uint64_t tag = 0;
    std::uint64_t checksum = 0;
    bool valid = false;
  };
  mutable Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvbm
