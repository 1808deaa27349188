// Request-level validation of a TransferEngine batch and the copy path it takes (transfer_plan.h).
#include "transfer/transfer_plan.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "kvbm/layout/layout.h"
#include "transfer/cuda_path.h"

namespace kvbm::detail {
namespace {

std::string side_name(const TierMemory& m) {
  return absl::StrCat(std::string(storage_kind_name(m.storage().kind())), " (", m.layout().name(), ")");
}

// The disk side of a host ↔ disk request must be block-contiguous, 4 KiB aligned, and a DiskFile.
absl::Status plan_disk(const TierMemory& disk_side, const TierView& disk_view, TransferPlan* plan) {
  const auto* file = dynamic_cast<const DiskFile*>(&disk_side.storage());
  if (file == nullptr) {
    return absl::InvalidArgumentError("transfer: the disk side's storage must be a DiskFile");
  }
  const auto* layout = dynamic_cast<const FullyContiguousLayout*>(&disk_side.layout());
  if (layout == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("transfer: the disk side's layout must be block-contiguous ",
                                                   "(fully_contiguous), got ", disk_side.layout().name()));
  }
  const std::uint64_t base = layout->region_unchecked(0, 0, 0).offset;
  if (layout->block_stride() % kIoAlignment != 0 || base % kIoAlignment != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("transfer: the disk side's block stride (%d) and base offset (%d) must be multiples of %d "
                        "for direct I/O; create its layout with alignment %d",
                        layout->block_stride(), base, kIoAlignment, kIoAlignment));
  }
  if (layout->block_stride() > (1ull << 30)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("transfer: disk block stride %d is over the 1 GiB an I/O may move", layout->block_stride()));
  }
  if (disk_view.checksums == nullptr) {
    return absl::InvalidArgumentError("transfer: the disk side needs its BlockChecksums (TierView::checksums)");
  }
  plan->disk = file;
  plan->disk_base = file->region_offset(0) + base;
  plan->disk_stride = layout->block_stride();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TransferPlan> plan_transfer(const TransferRequest& request) {
  if (request.src.memory == nullptr || request.dst.memory == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "transfer: ", request.src.memory == nullptr ? "source" : "destination", " tier memory must not be null"));
  }
  const TierMemory& src = *request.src.memory;
  const TierMemory& dst = *request.dst.memory;
  const ModelConfig& sm = src.layout().model();
  const ModelConfig& dm = dst.layout().model();
  if (sm.num_layers != dm.num_layers || sm.outer_dim != dm.outer_dim || sm.bytes_per_chunk() != dm.bytes_per_chunk()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "transfer: source and destination block geometries differ: ", sm.to_string(), " vs ", dm.to_string()));
  }
  const std::uint32_t src_blocks = src.layout().num_blocks();
  const std::uint32_t dst_blocks = dst.layout().num_blocks();
  for (std::size_t i = 0; i < request.blocks.size(); ++i) {
    const BlockCopy& c = request.blocks[i];
    if (c.src.value() >= src_blocks) {
      return absl::InvalidArgumentError(absl::StrFormat("transfer: blocks[%d].src = %d is out of range (source has %d)",
                                                        i, c.src.value(), src_blocks));
    }
    if (c.dst.value() >= dst_blocks) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "transfer: blocks[%d].dst = %d is out of range (destination has %d)", i, c.dst.value(), dst_blocks));
    }
  }
  // Two copies into one destination block would race (and leave its checksum ambiguous).
  if (request.blocks.size() > 1) {
    std::vector<std::pair<std::uint32_t, std::size_t>> dsts;
    dsts.reserve(request.blocks.size());
    for (std::size_t i = 0; i < request.blocks.size(); ++i) dsts.emplace_back(request.blocks[i].dst.value(), i);
    std::sort(dsts.begin(), dsts.end());
    for (std::size_t i = 1; i < dsts.size(); ++i) {
      if (dsts[i].first == dsts[i - 1].first) {
        return absl::InvalidArgumentError(absl::StrFormat("transfer: blocks[%d].dst = %d repeats blocks[%d].dst",
                                                          dsts[i].second, dsts[i].first, dsts[i - 1].second));
      }
    }
  }

  TransferPlan plan;
  const StorageKind sk = src.storage().kind();
  const StorageKind dk = dst.storage().kind();
  if (sk == StorageKind::kDevice || dk == StorageKind::kDevice) {
    if (!detail::cuda_path_available()) {
#ifdef KVBM_WITH_CUDA
      return absl::UnimplementedError(absl::StrCat("transfer: ", side_name(src), " -> ", side_name(dst),
                                                   " needs the CUDA path, but there is no CUDA device"));
#else
      return absl::UnimplementedError(absl::StrCat("transfer: ", side_name(src), " -> ", side_name(dst),
                                                   " needs the CUDA path: kvbm was built without CUDA"));
#endif
    }
    plan.path = TransferPath::kCuda;
    return plan;
  }
  if (src.host_addressable() && dst.host_addressable()) {
    plan.path = TransferPath::kMemcpy;
    return plan;
  }
  if (sk == StorageKind::kDisk && dk == StorageKind::kDisk) {
    return absl::UnimplementedError("transfer: disk -> disk is not supported; copy through a host tier");
  }
  if (src.host_addressable() && dk == StorageKind::kDisk) {
    plan.path = TransferPath::kDiskWrite;
    if (absl::Status s = plan_disk(dst, request.dst, &plan); !s.ok()) return s;
    return plan;
  }
  if (sk == StorageKind::kDisk && dst.host_addressable()) {
    plan.path = TransferPath::kDiskRead;
    if (absl::Status s = plan_disk(src, request.src, &plan); !s.ok()) return s;
    return plan;
  }
  return absl::UnimplementedError(
      absl::StrCat("transfer: no path from ", side_name(src), " to ", side_name(dst), " in this build"));
}

}  // namespace kvbm::detail
