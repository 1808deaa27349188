// Request-level validation of a TransferEngine batch and the copy path it takes (DESIGN.md §4).
//
// plan_transfer() looks at a request as a whole, before any block is copied: a request it refuses
// completes at once with that error on every block; a request it accepts gets a plan, which the engine
// shards and hands to the plan's path (memcpy_path.h, disk_path.h, cuda_path.h).
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>

#include "kvbm/storage/disk_file.h"
#include "kvbm/transfer/transfer_engine.h"

namespace kvbm::detail {

// O_DIRECT's rule for disk I/O: buffers, file offsets and lengths are multiples of this.
inline constexpr std::uint64_t kIoAlignment = DiskFile::kAlignment;

// The copy path of a request, chosen by its two storage kinds.
enum class TransferPath : std::uint8_t { kMemcpy, kDiskWrite, kDiskRead, kCuda };

// What validation found out about a request: the path, and for the disk path where the blocks sit.
struct TransferPlan {
  TransferPath path = TransferPath::kMemcpy;
  const DiskFile* disk = nullptr;
  std::uint64_t disk_base = 0;    // file offset of block 0
  std::uint64_t disk_stride = 0;  // file bytes per block (a multiple of kIoAlignment)
};

// Failures a path counts beside its per-block statuses; the engine adds them to TransferStats.
struct TransferCounts {
  std::uint64_t checksum_failures = 0;
  std::uint64_t io_errors = 0;
};

// Checks what concerns the whole request and picks its path: both tiers present, the same block geometry,
// every block id in range, no destination block twice, a supported storage pair and, for host ↔ disk, a
// disk side that direct I/O can serve (a DiskFile, block-contiguous, 4 KiB aligned, with checksums).
// InvalidArgument or Unimplemented naming what is wrong.
[[nodiscard]] absl::StatusOr<TransferPlan> plan_transfer(const TransferRequest& request);

}  // namespace kvbm::detail
