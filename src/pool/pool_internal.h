// Entry points shared by the pool's own translation units, not part of the public API.
#pragma once

#include "kvbm/pool/block_pool.h"

namespace kvbm::detail {

// Records whether slot `id`'s token row holds the block's tokens. Called only by the slot's owner.
void set_row_has_tokens(PoolCore* core, BlockId id, bool has);

}  // namespace kvbm::detail
