// The gather/scatter kernel of the CUDA transfer path (see cuda_kernels.h).
#include "transfer/cuda_kernels.h"

#include <algorithm>
#include <cstdint>

namespace kvbm::detail {
namespace {

constexpr unsigned kThreads = 256;
// Grid size cap; blocks loop over the table beyond it.
constexpr std::uint64_t kMaxGrid = 1u << 16;

__global__ void __launch_bounds__(kThreads) chunk_copy_kernel(const ChunkCopy* table, std::uint64_t count) {
  for (std::uint64_t c = blockIdx.x; c < count; c += gridDim.x) {
    const ChunkCopy chunk = table[c];
    const auto src_addr = reinterpret_cast<std::uintptr_t>(chunk.src);
    const auto dst_addr = reinterpret_cast<std::uintptr_t>(chunk.dst);
    if (((src_addr | dst_addr | chunk.bytes) & 15u) == 0) {
      const uint4* src = static_cast<const uint4*>(chunk.src);
      uint4* dst = static_cast<uint4*>(chunk.dst);
      const std::uint64_t n = chunk.bytes / 16;
      for (std::uint64_t i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
    } else {
      const unsigned char* src = static_cast<const unsigned char*>(chunk.src);
      unsigned char* dst = static_cast<unsigned char*>(chunk.dst);
      for (std::uint64_t i = threadIdx.x; i < chunk.bytes; i += blockDim.x) dst[i] = src[i];
    }
  }
}

}  // namespace

cudaError_t launch_chunk_copy_kernel(const ChunkCopy* device_table, std::uint64_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  const auto grid = static_cast<unsigned>(std::min(count, kMaxGrid));
  chunk_copy_kernel<<<grid, kThreads, 0, stream>>>(device_table, count);
  return cudaGetLastError();
}

}  // namespace kvbm::detail
