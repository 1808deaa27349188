// DLPack (v0.8 ABI: the structs of dlpack.h, which NumPy and PyTorch consume) and where kvbm memory sits
// in DLPack's terms. Header-only and free of pybind11, so the mapping is unit-tested in C++
// (tests/python/dlpack_device_test.cc).
#pragma once

#include <cstdint>
#include <optional>

#include "kvbm/storage/storage.h"

namespace kvbm::python {

struct DLDevice {
  std::int32_t device_type;  // kDLCPU, kDLCUDA
  std::int32_t device_id;
  friend bool operator==(const DLDevice&, const DLDevice&) = default;
};
struct DLDataType {
  std::uint8_t code;  // kDLInt 0, kDLUInt 1, kDLFloat 2, kDLBfloat 4, kDLComplex 5
  std::uint8_t bits;
  std::uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  std::int32_t ndim;
  DLDataType dtype;
  std::int64_t* shape;
  std::int64_t* strides;  // in elements
  std::uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};
constexpr std::int32_t kDLCPU = 1;
constexpr std::int32_t kDLCUDA = 2;

// The DLPack device of memory of `kind` (`device` is Storage::device(): the CUDA ordinal of device memory).
//   system, pinned  (kDLCPU, 0). Pinned memory is host memory every consumer can read as such; DLPack's
//                   kDLCUDAHost would also say it is page-locked, but torch.from_dlpack refuses that device
//                   type ("Unsupported device_type: 3", PyTorch 1.13), so it would only make the view unusable.
//   device          (kDLCUDA, device)
//   disk, remote    nullopt: the CPU cannot address them, no tensor can be made.
[[nodiscard]] constexpr std::optional<DLDevice> dlpack_device(StorageKind kind, int device) {
  switch (kind) {
    case StorageKind::kSystem:
    case StorageKind::kPinned:
      return DLDevice{kDLCPU, 0};
    case StorageKind::kDevice:
      return DLDevice{kDLCUDA, device};
    case StorageKind::kDisk:
    case StorageKind::kRemote:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace kvbm::python
