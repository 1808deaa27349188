// PinnedMemory (page-locked host memory) and DeviceMemory (GPU memory), through the CUDA runtime.
//
// Compiled only when the CUDA toolkit is found (CMake option KVBM_WITH_CUDA). In a build without it the
// factories still exist and return Unimplemented("... built without CUDA ..."), so a configuration that
// asks for pinned or device storage fails with a clear error instead of a link error.
//
// Thread-safety: immutable after construction.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "kvbm/storage/storage.h"

namespace kvbm {

// True when this build has CUDA support and a device is present.
[[nodiscard]] bool cuda_available();
[[nodiscard]] bool built_with_cuda();

// Page-locked host memory (cudaHostAlloc), one allocation per region. Host-addressable.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Storage>> make_pinned_memory(std::vector<std::uint64_t> region_sizes);
// Device memory (cudaMalloc) on `device`, one allocation per region. Not host-addressable; its regions'
// device addresses are Storage::device_region(), its ordinal Storage::device().
[[nodiscard]] absl::StatusOr<std::unique_ptr<Storage>> make_device_memory(std::vector<std::uint64_t> region_sizes,
                                                                          int device = 0);

}  // namespace kvbm
