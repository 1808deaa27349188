// The host ↔ device path of the TransferEngine, implemented in cuda_path.cc (CUDA builds) or
// cuda_path_stub.cc (builds without CUDA, where every call reports Unimplemented).
#pragma once

#include "kvbm/transfer/transfer_engine.h"

namespace kvbm::detail {

// True when this build has the CUDA path and a device is usable.
[[nodiscard]] bool cuda_path_available();
// Copies `request` where at least one side is device memory (host ↔ device, device ↔ device).
// REQUIRES: the request was validated by the engine (ids in range, same model geometry).
[[nodiscard]] TransferResult cuda_transfer(const TransferRequest& request);

}  // namespace kvbm::detail
