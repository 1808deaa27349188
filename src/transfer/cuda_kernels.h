// Private to the CUDA transfer path: the gather/scatter kernel (cuda_kernels.cu, compiled by nvcc when
// KVBM_CUDA_KERNELS is defined) and a path-selecting entry point for tests and benchmarks.
//
// This header is included by nvcc-compiled code, so it uses only the CUDA runtime API and the standard
// library — no absl, no kvbm public headers.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace kvbm {
struct TransferRequest;
struct TransferResult;
}  // namespace kvbm

namespace kvbm::detail {

// One contiguous copy: `bytes` from `src` to `dst`, both device-visible addresses (device memory, or
// mapped pinned host memory under UVA).
struct ChunkCopy {
  const void* src;
  void* dst;
  std::uint64_t bytes;
};

// Chunks larger than this are split before they enter the kernel's table, so one huge chunk cannot
// serialise the copy on a single multiprocessor.
inline constexpr std::uint64_t kMaxKernelChunkBytes = std::uint64_t{64} << 10;

// Enqueues one kernel on `stream` that performs the `count` copies of `device_table` (a device-visible
// array of ChunkCopy). One thread block per chunk; 16-byte vector copies where src, dst and bytes are all
// 16-byte aligned, byte copies otherwise. Returns the launch error (cudaSuccess when enqueued).
// REQUIRES: count > 0; the table stays valid until the stream reaches the kernel's completion.
cudaError_t launch_chunk_copy_kernel(const ChunkCopy* device_table, std::uint64_t count, cudaStream_t stream);

// How cuda_transfer copies the chunks of a request whose two layouts are not both block-contiguous.
enum class ChunkCopyMode : std::uint8_t {
  kAuto,      // the kernel when it was compiled and both sides are device-visible, else kPerChunk
  kKernel,    // the kernel when possible (same as kAuto; named for tests)
  kPerChunk,  // one cudaMemcpyAsync per (coalesced) chunk
};

// cuda_transfer (cuda_path.h) with the chunk path chosen by `mode`. Defined in cuda_path.cc.
[[nodiscard]] TransferResult cuda_transfer_with_mode(const TransferRequest& request, ChunkCopyMode mode);

// True when this build compiled the kernel.
[[nodiscard]] constexpr bool chunk_copy_kernel_compiled() {
#ifdef KVBM_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

}  // namespace kvbm::detail
