#include "kvbm/storage/storage.h"

#include <absl/status/status.h>

#include <cstring>

namespace kvbm {

std::string_view storage_kind_name(StorageKind kind) {
  switch (kind) {
    case StorageKind::kSystem:
      return "system";
    case StorageKind::kPinned:
      return "pinned";
    case StorageKind::kDevice:
      return "device";
    case StorageKind::kDisk:
      return "disk";
    case StorageKind::kRemote:
      return "remote";
  }
  return "unknown";
}

std::vector<std::uint64_t> Storage::region_sizes() const {
  std::vector<std::uint64_t> sizes(num_regions());
  for (std::size_t i = 0; i < sizes.size(); ++i) sizes[i] = region_size(i);
  return sizes;
}

std::uint64_t Storage::total_bytes() const {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < num_regions(); ++i) total += region_size(i);
  return total;
}

absl::StatusOr<TierMemory> TierMemory::bind(const Layout* layout, const Storage* storage) {
  if (layout == nullptr) return absl::InvalidArgumentError("TierMemory::bind: layout must not be null");
  if (storage == nullptr) return absl::InvalidArgumentError("TierMemory::bind: storage must not be null");
  if (absl::Status status = layout->check_storage(storage->region_sizes()); !status.ok()) return status;
  bool host = storage->num_regions() > 0;
  bool device = host;
  for (std::size_t i = 0; i < storage->num_regions(); ++i) {
    if (storage->host_region(i).empty()) host = false;
    if (storage->device_region(i) == nullptr) device = false;
  }
  return TierMemory(layout, storage, host, device);
}

TierMemory::TierMemory(const Layout* layout, const Storage* storage, bool host, bool device)
    : layout_(layout), storage_(storage), host_addressable_(host), device_addressable_(device) {}

void TierMemory::pack(std::uint32_t block, std::span<std::byte> out) const {
  std::size_t at = 0;
  for (const ChunkCoord c : canonical_chunks(layout_->model())) {
    const std::span<const std::byte> chunk = this->chunk(block, c.layer, c.outer);
    std::memcpy(out.data() + at, chunk.data(), chunk.size());
    at += chunk.size();
  }
}

bool TierMemory::unpack(std::span<const std::byte> in, std::uint32_t block) const {
  if (in.size() != layout_->model().bytes_per_block()) return false;
  std::size_t at = 0;
  for (const ChunkCoord c : canonical_chunks(layout_->model())) {
    const std::span<std::byte> chunk = this->chunk(block, c.layer, c.outer);
    std::memcpy(chunk.data(), in.data() + at, chunk.size());
    at += chunk.size();
  }
  return true;
}

}  // namespace kvbm
