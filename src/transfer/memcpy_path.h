// The host ↔ host path of the TransferEngine: memcpy between two host-addressable tiers (DESIGN.md §4).
#pragma once

#include <absl/status/status.h>

#include <cstddef>
#include <cstdint>

#include "kvbm/transfer/transfer_engine.h"

namespace kvbm::detail {

// A memcpy batch larger than this is split across the workers.
inline constexpr std::uint64_t kMemcpySplitBytes = 8ull << 20;

// Copies blocks [begin, end) of `request` and sets their statuses (a memcpy cannot fail: all OK).
// REQUIRES: plan_transfer(request) chose TransferPath::kMemcpy.
void run_memcpy(const TransferRequest& request, std::size_t begin, std::size_t end, absl::Status* statuses);

}  // namespace kvbm::detail
