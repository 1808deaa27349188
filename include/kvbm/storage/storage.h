// Storage: the byte regions that back one tier (DESIGN.md §2, §4).
//
// A Storage owns one or more regions of memory (or, for disk and remote tiers, addressable ranges).
// It knows nothing of blocks: a Layout maps blocks onto its regions. Thread-safety: the region list is
// immutable after construction; the bytes themselves are synchronised by whoever owns the blocks.
#pragma once

#include <absl/status/statusor.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kvbm/layout/layout.h"

namespace kvbm {

enum class StorageKind : std::uint8_t { kSystem, kPinned, kDevice, kDisk, kRemote };
[[nodiscard]] std::string_view storage_kind_name(StorageKind kind);

class Storage {
 public:
  virtual ~Storage() = default;
  [[nodiscard]] virtual StorageKind kind() const = 0;
  [[nodiscard]] virtual std::size_t num_regions() const = 0;
  [[nodiscard]] virtual std::uint64_t region_size(std::size_t index) const = 0;
  // Host-addressable bytes of region `index`; empty for storage the CPU cannot address (device, disk).
  [[nodiscard]] virtual std::span<std::byte> host_region(std::size_t index) const = 0;
  // The device address of region `index` on GPU device(): for CUDA calls and kernels, never dereferenced on
  // the host. Null for storage that is not device memory (and for an index out of range).
  [[nodiscard]] virtual void* device_region(std::size_t /*index*/) const { return nullptr; }
  // The CUDA device ordinal of device memory; -1 for every other kind.
  [[nodiscard]] virtual int device() const { return -1; }

  [[nodiscard]] std::vector<std::uint64_t> region_sizes() const;
  [[nodiscard]] std::uint64_t total_bytes() const;
};

// System memory: one aligned allocation per region, owned (RAII).
class SystemMemory final : public Storage {
 public:
  struct Options {
    std::size_t alignment = 4096;  // power of two ≥ 4096
    bool zero_fill = true;         // zero the bytes up front (touches every page)
    bool huge_pages = false;       // madvise(MADV_HUGEPAGE): transparent huge pages where the kernel allows
  };
  // REQUIRES: at least one region, every size > 0. ResourceExhausted when memory cannot be had.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SystemMemory>> create(std::vector<std::uint64_t> region_sizes,
                                                                            Options options);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SystemMemory>> create(std::vector<std::uint64_t> region_sizes) {
    return create(std::move(region_sizes), Options{});
  }
  // Regions sized for `layout`.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SystemMemory>> for_layout(const Layout& layout, Options options);
  ~SystemMemory() override;
  SystemMemory(const SystemMemory&) = delete;
  SystemMemory& operator=(const SystemMemory&) = delete;

  StorageKind kind() const override { return StorageKind::kSystem; }
  std::size_t num_regions() const override { return regions_.size(); }
  std::uint64_t region_size(std::size_t index) const override { return regions_[index].size(); }
  std::span<std::byte> host_region(std::size_t index) const override { return regions_[index]; }

 private:
  SystemMemory() = default;
  std::vector<std::span<std::byte>> regions_;
  std::vector<std::size_t> mapped_bytes_;
};

// One chunk of a block in device memory: its address on CUDA device `device` and its size in bytes. The
// address is for CUDA calls and kernels on that device; the host must never dereference it. Empty (size 0,
// device -1) where the chunk is not in device memory.
struct DeviceChunk {
  std::uintptr_t address = 0;
  std::uint64_t size = 0;
  int device = -1;
  [[nodiscard]] bool empty() const { return size == 0; }
};

// TierMemory: a Layout bound to a Storage that can hold it. Resolves a block's chunks to host bytes.
// Owns neither; both must outlive it. Thread-safety: immutable, safe to share.
class TierMemory {
 public:
  // FailedPrecondition when the storage cannot hold the layout (region count or size).
  [[nodiscard]] static absl::StatusOr<TierMemory> bind(const Layout* layout, const Storage* storage);

  [[nodiscard]] const Layout& layout() const { return *layout_; }
  [[nodiscard]] const Storage& storage() const { return *storage_; }
  [[nodiscard]] bool host_addressable() const { return host_addressable_; }
  // Whether every region is device memory (Storage::device_region is set): device_chunk() then resolves.
  [[nodiscard]] bool device_addressable() const { return device_addressable_; }
  // Host bytes of (block, layer, outer). REQUIRES: host_addressable() and indices in range.
  [[nodiscard]] std::span<std::byte> chunk(std::uint32_t block, std::uint32_t layer, std::uint32_t outer) const {
    const RegionRef ref = layout_->region_unchecked(block, layer, outer);
    return storage_->host_region(ref.region).subspan(ref.offset, ref.size);
  }
  // Device address and size of (block, layer, outer). REQUIRES: device_addressable() and indices in range.
  [[nodiscard]] DeviceChunk device_chunk(std::uint32_t block, std::uint32_t layer, std::uint32_t outer) const {
    const RegionRef ref = layout_->region_unchecked(block, layer, outer);
    return {reinterpret_cast<std::uintptr_t>(storage_->device_region(ref.region)) + ref.offset, ref.size,
            storage_->device()};
  }
  // Copies block `block`'s bytes, in canonical order (canonical_chunks), into `out`, whatever the layout.
  // REQUIRES: host_addressable(), out.size() == the model's bytes per block.
  void pack(std::uint32_t block, std::span<std::byte> out) const;
  // The reverse: `in` (canonical order) into block `block`. False, with the block's bytes unspecified, when
  // `in` is not exactly one block. REQUIRES: host_addressable().
  [[nodiscard]] bool unpack(std::span<const std::byte> in, std::uint32_t block) const;

 private:
  TierMemory(const Layout* layout, const Storage* storage, bool host, bool device);
  const Layout* layout_;
  const Storage* storage_;
  bool host_addressable_;
  bool device_addressable_;
};

}  // namespace kvbm
