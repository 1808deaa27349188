// PinnedMemory and DeviceMemory in a build without CUDA: the factories exist and say why they fail.
#include <absl/status/status.h>
#include <absl/strings/str_cat.h>

#include "kvbm/storage/cuda_memory.h"

namespace kvbm {

bool built_with_cuda() { return false; }
bool cuda_available() { return false; }

absl::StatusOr<std::unique_ptr<Storage>> make_pinned_memory(std::vector<std::uint64_t>) {
  return absl::UnimplementedError(
      "pinned memory: kvbm was built without CUDA (KVBM_WITH_CUDA=OFF or no toolkit found)");
}

absl::StatusOr<std::unique_ptr<Storage>> make_device_memory(std::vector<std::uint64_t>, int device) {
  return absl::UnimplementedError(absl::StrCat(
      "device memory (device ", device, "): kvbm was built without CUDA (KVBM_WITH_CUDA=OFF or no toolkit found)"));
}

}  // namespace kvbm
