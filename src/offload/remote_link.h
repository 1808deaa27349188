// RemoteLink: the link G2 → G4 of the tier chain, over a G4Path (the remote store). Written-through
// blocks are put from G2 (pinned while serialised, or from G2's evicted slots); a touch is the store's
// own business (a read refreshes a key), so it does nothing here. See tier_link.h for the ops.
#pragma once

#include "kvbm/offload/g4_path.h"
#include "offload/tier_link.h"

namespace kvbm::offload {

class RemoteLink final : public TierLink {
 public:
  RemoteLink(ChainContext& ctx, Tier<CacheLevel::kG2>& g2, G4Path& g4)
      : TierLink(ctx, CacheLevel::kG2, CacheLevel::kG4, OffloadMode::kWriteThrough, /*filtered=*/false),
        g2_(g2),
        g4_(g4) {}

 private:
  void process(std::span<const LinkOp> ops, std::span<const BlockId> sources) override;

  Tier<CacheLevel::kG2>& g2_;
  G4Path& g4_;
};

}  // namespace kvbm::offload
