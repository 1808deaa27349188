// PinnedMemory and DeviceMemory through the CUDA runtime (built when KVBM_WITH_CUDA is on).
#include "kvbm/storage/cuda_memory.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <cuda_runtime_api.h>

#include <cstring>
#include <span>
#include <string>
#include <utility>

#include "storage/cuda_device_guard.h"

namespace kvbm {
namespace {

using detail::cuda_error;
using detail::CudaDeviceGuard;

// Out of memory is ResourceExhausted; no usable device or driver is FailedPrecondition; the rest Internal.
absl::Status allocation_error(cudaError_t error, std::string message) {
  (void)cudaGetLastError();  // clear a non-sticky error so later calls are not affected
  message = absl::StrCat(message, ": ", cuda_error(error));
  switch (error) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(message);
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInitializationError:
    case cudaErrorDevicesUnavailable:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status check_region_sizes(const char* what, const std::vector<std::uint64_t>& sizes) {
  if (sizes.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": at least one region is required, got 0"));
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == 0) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": region ", i, " must have size > 0, got 0"));
    }
  }
  return absl::OkStatus();
}

// Page-locked host memory, mapped into the device address space (cudaHostAllocMapped) so kernels can
// read and write it directly, and portable across devices. One allocation per region; owned (RAII).
class PinnedMemory final : public Storage {
 public:
  static absl::StatusOr<std::unique_ptr<Storage>> create(std::vector<std::uint64_t> sizes) {
    if (absl::Status status = check_region_sizes("pinned memory", sizes); !status.ok()) return status;
    std::unique_ptr<PinnedMemory> memory(new PinnedMemory());
    memory->regions_.reserve(sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      void* ptr = nullptr;
      const cudaError_t error = cudaHostAlloc(&ptr, sizes[i], cudaHostAllocPortable | cudaHostAllocMapped);
      if (error != cudaSuccess) {
        return allocation_error(
            error, absl::StrCat("pinned memory: cudaHostAlloc of ", sizes[i], " bytes for region ", i, " failed"));
      }
      std::memset(ptr, 0, sizes[i]);
      memory->regions_.emplace_back(static_cast<std::byte*>(ptr), sizes[i]);
    }
    return std::unique_ptr<Storage>(std::move(memory));
  }
  ~PinnedMemory() override {
    for (std::span<std::byte> region : regions_) (void)cudaFreeHost(region.data());
  }
  PinnedMemory(const PinnedMemory&) = delete;
  PinnedMemory& operator=(const PinnedMemory&) = delete;

  StorageKind kind() const override { return StorageKind::kPinned; }
  std::size_t num_regions() const override { return regions_.size(); }
  std::uint64_t region_size(std::size_t index) const override { return regions_[index].size(); }
  std::span<std::byte> host_region(std::size_t index) const override { return regions_[index]; }

 private:
  PinnedMemory() = default;
  std::vector<std::span<std::byte>> regions_;
};

// Device memory on one GPU: one cudaMalloc per region, owned (RAII). Not host-addressable; its device
// addresses are device_region().
class DeviceMemory final : public Storage {
 public:
  static absl::StatusOr<std::unique_ptr<Storage>> create(std::vector<std::uint64_t> sizes, int device) {
    if (absl::Status status = check_region_sizes("device memory", sizes); !status.ok()) return status;
    int count = 0;
    if (const cudaError_t error = cudaGetDeviceCount(&count); error != cudaSuccess || count == 0) {
      (void)cudaGetLastError();
      return absl::FailedPreconditionError(absl::StrCat("device memory: no CUDA device is usable (",
                                                        error == cudaSuccess ? "0 devices" : cuda_error(error), ")"));
    }
    if (device < 0 || device >= count) {
      return absl::InvalidArgumentError(
          absl::StrCat("device memory: device must be in [0, ", count, "), got ", device));
    }
    CudaDeviceGuard scoped(device);
    if (scoped.status() != cudaSuccess) {
      return absl::InternalError(
          absl::StrCat("device memory: cudaSetDevice(", device, ") failed: ", cuda_error(scoped.status())));
    }
    std::unique_ptr<DeviceMemory> memory(new DeviceMemory(device));
    memory->regions_.reserve(sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      void* ptr = nullptr;
      const cudaError_t error = cudaMalloc(&ptr, sizes[i]);
      if (error != cudaSuccess) {
        return allocation_error(error, absl::StrCat("device memory: cudaMalloc of ", sizes[i], " bytes on device ",
                                                    device, " for region ", i, " failed"));
      }
      memory->regions_.emplace_back(ptr, sizes[i]);
    }
    return std::unique_ptr<Storage>(std::move(memory));
  }
  ~DeviceMemory() override {
    CudaDeviceGuard scoped(device_);
    for (const auto& [ptr, size] : regions_) (void)cudaFree(ptr);
  }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  StorageKind kind() const override { return StorageKind::kDevice; }
  std::size_t num_regions() const override { return regions_.size(); }
  std::uint64_t region_size(std::size_t index) const override { return regions_[index].second; }
  std::span<std::byte> host_region(std::size_t) const override { return {}; }
  void* device_region(std::size_t index) const override {
    return index < regions_.size() ? regions_[index].first : nullptr;
  }
  int device() const override { return device_; }

 private:
  explicit DeviceMemory(int device) : device_(device) {}
  int device_;
  std::vector<std::pair<void*, std::uint64_t>> regions_;
};

}  // namespace

bool built_with_cuda() { return true; }

bool cuda_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

absl::StatusOr<std::unique_ptr<Storage>> make_pinned_memory(std::vector<std::uint64_t> region_sizes) {
  return PinnedMemory::create(std::move(region_sizes));
}

absl::StatusOr<std::unique_ptr<Storage>> make_device_memory(std::vector<std::uint64_t> region_sizes, int device) {
  return DeviceMemory::create(std::move(region_sizes), device);
}

}  // namespace kvbm
