// The CUDA transfer path in a build without CUDA: every block reports Unimplemented.
#include <absl/status/status.h>

#include "transfer/cuda_path.h"

namespace kvbm::detail {

bool cuda_path_available() { return false; }

TransferResult cuda_transfer(const TransferRequest& request) {
  const absl::Status status = absl::UnimplementedError(
      "host <-> device transfer: kvbm was built without CUDA (KVBM_WITH_CUDA=OFF or no toolkit found)");
  TransferResult result;
  result.blocks.assign(request.blocks.size(), status);
  result.status = status;
  return result;
}

}  // namespace kvbm::detail
