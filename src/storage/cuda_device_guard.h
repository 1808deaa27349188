// What the CUDA code of the storage and transfer layers shares: a guard that makes a device current for a
// scope, and the text of a CUDA error. Private to kvbm (storage owns it; transfer, above storage, uses it),
// and CUDA builds only: it includes the CUDA runtime's header.
#pragma once

#include <absl/strings/str_cat.h>
#include <cuda_runtime_api.h>

#include <string>

namespace kvbm::detail {

// "cudaErrorMemoryAllocation: out of memory": the error's name, then its description.
inline std::string cuda_error(cudaError_t error) {
  return absl::StrCat(std::string(cudaGetErrorName(error)), ": ", std::string(cudaGetErrorString(error)));
}

// Makes `device` current for the guard's lifetime, then restores the caller's device (when there was one
// to restore). Whether the switch worked is status(): a guard that failed to switch leaves the caller's
// device current. Thread-safety: the current device is per host thread; a guard belongs to the thread that
// made it.
class CudaDeviceGuard {
 public:
  explicit CudaDeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    status_ = cudaSetDevice(device);
  }
  ~CudaDeviceGuard() {
    if (previous_ >= 0) (void)cudaSetDevice(previous_);
  }
  CudaDeviceGuard(const CudaDeviceGuard&) = delete;
  CudaDeviceGuard& operator=(const CudaDeviceGuard&) = delete;

  [[nodiscard]] cudaError_t status() const { return status_; }

 private:
  int previous_ = -1;
  cudaError_t status_ = cudaSuccess;
};

}  // namespace kvbm::detail
