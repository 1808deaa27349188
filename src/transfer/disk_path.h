// The host ↔ disk path of the TransferEngine: whole blocks through an IoBackend (DESIGN.md §4).
//
// One I/O per block, many blocks per IoBackend::execute call. A block whose host bytes direct I/O can use in
// place (block-contiguous, one disk stride long, 4 KiB aligned) is read or written there; any other goes
// through a 4 KiB-aligned bounce buffer, gathered into canonical chunk order before a write and scattered
// after a read. Every block written records its checksum (bound to its tag); every block read is verified
// against it, and a mismatch fails the block with DataLoss.
#pragma once

#include <absl/status/status.h>

#include <cstddef>
#include <cstdint>

#include "kvbm/transfer/io_backend.h"
#include "kvbm/transfer/transfer_engine.h"
#include "transfer/transfer_plan.h"

namespace kvbm::detail {

// Disk blocks handed to one IoBackend::execute call: many more than the ring keeps in flight, so that its
// sliding window stays full instead of draining after every few blocks (the bounce buffer is this big).
inline constexpr std::uint64_t kIoGroupBytes = 16ull << 20;

// A 4 KiB-aligned buffer that grows on demand and is reused across batches (one per worker).
class BounceBuffer {
 public:
  BounceBuffer() = default;
  ~BounceBuffer();
  BounceBuffer(const BounceBuffer&) = delete;
  BounceBuffer& operator=(const BounceBuffer&) = delete;

  // At least `bytes` bytes, 4 KiB aligned; null when memory cannot be had.
  std::byte* get(std::uint64_t bytes);

 private:
  std::byte* data_ = nullptr;
  std::uint64_t capacity_ = 0;
};

// Runs blocks [begin, end) of a host ↔ disk request: up to `group_max` blocks per IoBackend::execute call.
// Sets their statuses and adds the I/O errors and checksum failures it meets to `counts`.
// REQUIRES: `plan` is plan_transfer(request), with TransferPath::kDiskWrite or kDiskRead.
void run_disk(const TransferRequest& request, const TransferPlan& plan, std::size_t begin, std::size_t end,
              std::uint64_t group_max, IoBackend& io, BounceBuffer& bounce, absl::Status* statuses,
              TransferCounts* counts);

}  // namespace kvbm::detail
