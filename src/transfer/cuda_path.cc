// The CUDA path of the TransferEngine: host ↔ device and device ↔ device copies (DESIGN.md §4).
//
// Every call runs on a stream of the calling thread (one per device, reused across calls) and ends with
// cudaEventRecord + cudaEventSynchronize, so the result is final when cuda_transfer returns.
//
// Paths, by the two layouts and storages:
//   both block-contiguous   one cudaMemcpyAsync per run of consecutive block ids (cudaMemcpy2DAsync when
//                           a side's block stride is padded)
//   otherwise, both sides   one gather/scatter kernel over a table of (src, dst, bytes) chunks, when the
//   device-visible          kernel was compiled (device memory, or pinned host memory mapped under UVA)
//   otherwise               one cudaMemcpyAsync per chunk, adjacent chunks of a block merged
// Errors: a copy that could not be enqueued fails the blocks it covers; a failed launch or
// synchronisation fails every block of the call. Nothing is reported OK unless its copy completed.
#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kvbm/layout/layout.h"
#include "kvbm/storage/cuda_memory.h"
#include "storage/cuda_device_guard.h"
#include "transfer/cuda_kernels.h"
#include "transfer/cuda_path.h"

namespace kvbm::detail {
namespace {

// Addresses of one side's regions.
struct Side {
  std::vector<std::byte*> copy_base;    // for cudaMemcpy*Async (UVA: host or device address)
  std::vector<std::byte*> kernel_base;  // for the kernel; empty unless every region is device-visible
  int device = -1;                      // device of kDevice storage, else -1
};

absl::StatusOr<Side> resolve_side(const char* what, const TierMemory* tier) {
  if (tier == nullptr) return absl::InvalidArgumentError(absl::StrCat("cuda transfer: ", what, " tier is null"));
  const Storage& storage = tier->storage();
  Side side;
  const std::size_t n = storage.num_regions();
  side.copy_base.resize(n);
  if (storage.kind() == StorageKind::kDevice) {
    for (std::size_t i = 0; i < n; ++i) {
      side.copy_base[i] = static_cast<std::byte*>(storage.device_region(i));
      if (side.copy_base[i] == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("cuda transfer: ", what, " region ", i, " has no device address (not a kvbm DeviceMemory)"));
      }
    }
    cudaPointerAttributes attributes{};
    if (const cudaError_t error = cudaPointerGetAttributes(&attributes, side.copy_base[0]); error != cudaSuccess) {
      (void)cudaGetLastError();
      return absl::InternalError(
          absl::StrCat("cuda transfer: cudaPointerGetAttributes on the ", what, " failed: ", cuda_error(error)));
    }
    side.device = attributes.device;
    side.kernel_base = side.copy_base;
    return side;
  }
  if (!tier->host_addressable()) {
    return absl::InvalidArgumentError(absl::StrCat("cuda transfer: ", what, " storage (",
                                                   std::string(storage_kind_name(storage.kind())),
                                                   ") is neither device memory nor host-addressable"));
  }
  bool mapped = true;
  std::vector<std::byte*> mapped_base(n);
  for (std::size_t i = 0; i < n; ++i) {
    side.copy_base[i] = storage.host_region(i).data();
    if (!mapped) continue;
    // Pinned (registered) host memory has a device address; pageable memory has none.
    cudaPointerAttributes attributes{};
    if (cudaPointerGetAttributes(&attributes, side.copy_base[i]) != cudaSuccess ||
        attributes.type != cudaMemoryTypeHost || attributes.devicePointer == nullptr) {
      (void)cudaGetLastError();
      mapped = false;
      continue;
    }
    mapped_base[i] = static_cast<std::byte*>(attributes.devicePointer);
  }
  if (mapped) side.kernel_base = std::move(mapped_base);
  return side;
}

// The calling thread's stream, completion event and chunk tables on one device. Reused across calls;
// only this thread touches it, and every call synchronises before returning, so the tables are free
// again when the next call starts.
class StreamContext {
 public:
  static absl::StatusOr<StreamContext*> for_device(int device) {
    thread_local std::vector<std::unique_ptr<StreamContext>> contexts;
    for (const auto& context : contexts) {
      if (context->device_ == device) return context.get();
    }
    auto context = std::unique_ptr<StreamContext>(new StreamContext(device));
    if (cudaError_t error = cudaStreamCreateWithFlags(&context->stream_, cudaStreamNonBlocking); error != cudaSuccess) {
      context->stream_ = nullptr;
      return absl::InternalError(
          absl::StrCat("cuda transfer: cudaStreamCreate on device ", device, " failed: ", cuda_error(error)));
    }
    if (cudaError_t error = cudaEventCreateWithFlags(&context->done_, cudaEventDisableTiming | cudaEventBlockingSync);
        error != cudaSuccess) {
      context->done_ = nullptr;
      return absl::InternalError(
          absl::StrCat("cuda transfer: cudaEventCreate on device ", device, " failed: ", cuda_error(error)));
    }
    contexts.push_back(std::move(context));
    return contexts.back().get();
  }
  ~StreamContext() {
    // At process exit the runtime may already be unloading; these then fail harmlessly.
    if (host_table_ != nullptr) (void)cudaFreeHost(host_table_);
    if (device_table_ != nullptr) (void)cudaFree(device_table_);
    if (done_ != nullptr) (void)cudaEventDestroy(done_);
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  }
  StreamContext(const StreamContext&) = delete;
  StreamContext& operator=(const StreamContext&) = delete;

  [[nodiscard]] cudaStream_t stream() const { return stream_; }

  // Pinned host and device tables of at least `count` entries (grown by doubling).
  absl::Status reserve_tables(std::size_t count) {
    if (count <= capacity_) return absl::OkStatus();
    std::size_t capacity = std::max<std::size_t>(capacity_ * 2, 4096);
    while (capacity < count) capacity *= 2;
    if (host_table_ != nullptr) (void)cudaFreeHost(host_table_);
    if (device_table_ != nullptr) (void)cudaFree(device_table_);
    host_table_ = nullptr;
    device_table_ = nullptr;
    capacity_ = 0;
    const std::size_t bytes = capacity * sizeof(ChunkCopy);
    if (cudaError_t error = cudaHostAlloc(reinterpret_cast<void**>(&host_table_), bytes, cudaHostAllocDefault);
        error != cudaSuccess) {
      host_table_ = nullptr;
      return absl::ResourceExhaustedError(absl::StrCat("cuda transfer: cudaHostAlloc of ", bytes,
                                                       " bytes for the chunk table failed: ", cuda_error(error)));
    }
    if (cudaError_t error = cudaMalloc(reinterpret_cast<void**>(&device_table_), bytes); error != cudaSuccess) {
      device_table_ = nullptr;
      return absl::ResourceExhaustedError(absl::StrCat("cuda transfer: cudaMalloc of ", bytes,
                                                       " bytes for the chunk table failed: ", cuda_error(error)));
    }
    capacity_ = capacity;
    return absl::OkStatus();
  }
  [[nodiscard]] ChunkCopy* host_table() const { return host_table_; }
  [[nodiscard]] ChunkCopy* device_table() const { return device_table_; }

  // Records the completion event and waits for it.
  [[nodiscard]] cudaError_t finish() {
    if (cudaError_t error = cudaEventRecord(done_, stream_); error != cudaSuccess) return error;
    return cudaEventSynchronize(done_);
  }

 private:
  explicit StreamContext(int device) : device_(device) {}
  int device_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t done_ = nullptr;
  ChunkCopy* host_table_ = nullptr;
  ChunkCopy* device_table_ = nullptr;
  std::size_t capacity_ = 0;
};

// A copy in flight for a range of the request's blocks, [first, last].
struct Pending {
  std::size_t first;
  std::size_t last;
};

class Transfer {
 public:
  Transfer(const TransferRequest& request, ChunkCopyMode mode) : request_(request), mode_(mode) {
    result_.blocks.assign(request.blocks.size(), absl::OkStatus());
  }

  TransferResult run() {
    if (request_.blocks.empty()) return std::move(result_);
    if (absl::Status status = prepare(); !status.ok()) {
      fail_all(status);
      return finish();
    }
    CudaDeviceGuard scoped(device_);
    if (scoped.status() != cudaSuccess) {
      (void)cudaGetLastError();
      fail_all(absl::InternalError(
          absl::StrCat("cuda transfer: cudaSetDevice(", device_, ") failed: ", cuda_error(scoped.status()))));
      return finish();
    }
    absl::StatusOr<StreamContext*> context = StreamContext::for_device(device_);
    if (!context.ok()) {
      fail_all(context.status());
      return finish();
    }
    context_ = *context;

    const Layout& src_layout = request_.src.memory->layout();
    const Layout& dst_layout = request_.dst.memory->layout();
    if (src_layout.block_is_contiguous() && dst_layout.block_is_contiguous()) {
      copy_block_runs();
    } else if (use_kernel()) {
      copy_with_kernel();
    } else {
      copy_per_chunk();
    }
    if (const cudaError_t error = context_->finish(); error != cudaSuccess) {
      (void)cudaGetLastError();
      fail_all(absl::InternalError(absl::StrCat("cuda transfer: the copies of ", request_.blocks.size(),
                                                " blocks did not complete: ", cuda_error(error))));
    }
    return finish();
  }

 private:
  absl::Status prepare() {
    if (request_.src.memory == nullptr || request_.dst.memory == nullptr) {
      return absl::InvalidArgumentError("cuda transfer: source and destination tiers must not be null");
    }
    const Layout& src_layout = request_.src.memory->layout();
    const Layout& dst_layout = request_.dst.memory->layout();
    if (!(src_layout.model() == dst_layout.model())) {
      return absl::InvalidArgumentError(absl::StrCat("cuda transfer: source model ", src_layout.model().to_string(),
                                                     " differs from destination model ",
                                                     dst_layout.model().to_string()));
    }
    absl::StatusOr<Side> src = resolve_side("source", request_.src.memory);
    if (!src.ok()) return src.status();
    absl::StatusOr<Side> dst = resolve_side("destination", request_.dst.memory);
    if (!dst.ok()) return dst.status();
    src_ = *std::move(src);
    dst_ = *std::move(dst);
    device_ = src_.device >= 0 ? src_.device : dst_.device;
    if (device_ < 0 && cudaGetDevice(&device_) != cudaSuccess) {
      (void)cudaGetLastError();
      return absl::FailedPreconditionError("cuda transfer: no CUDA device is usable");
    }
    for (std::size_t i = 0; i < request_.blocks.size(); ++i) {
      const BlockCopy& copy = request_.blocks[i];
      if (copy.src.value() >= src_layout.num_blocks() || copy.dst.value() >= dst_layout.num_blocks()) {
        result_.blocks[i] = absl::InvalidArgumentError(
            absl::StrCat("cuda transfer: block ", i, " (src ", copy.src.value(), " of ", src_layout.num_blocks(),
                         ", dst ", copy.dst.value(), " of ", dst_layout.num_blocks(), ") is out of range"));
      }
    }
    return absl::OkStatus();
  }

  [[nodiscard]] bool use_kernel() const {
    if constexpr (!chunk_copy_kernel_compiled()) return false;
    if (mode_ == ChunkCopyMode::kPerChunk) return false;
    if (src_.kernel_base.empty() || dst_.kernel_base.empty()) return false;
    // Device memory of another GPU is not addressable by this device's kernel without peer access.
    const bool other_gpu = (src_.device >= 0 && src_.device != device_) || (dst_.device >= 0 && dst_.device != device_);
    return !other_gpu;
  }

  [[nodiscard]] bool pending_ok(std::size_t i) const { return result_.blocks[i].ok(); }

  void fail_range(const Pending& pending, const absl::Status& status) {
    for (std::size_t i = pending.first; i <= pending.last; ++i) {
      if (result_.blocks[i].ok()) result_.blocks[i] = status;
    }
  }

  void fail_all(const absl::Status& status) { fail_range({0, request_.blocks.size() - 1}, status); }

  // Byte address of (region, offset) on one side.
  static std::byte* at(const std::vector<std::byte*>& base, const RegionRef& ref) {
    return base[ref.region] + ref.offset;
  }

  void copy_block_runs() {
    const Layout& src_layout = request_.src.memory->layout();
    const Layout& dst_layout = request_.dst.memory->layout();
    const std::uint64_t bytes = src_layout.model().bytes_per_block();
    const std::size_t n = request_.blocks.size();
    std::size_t i = 0;
    while (i < n) {
      if (!pending_ok(i)) {
        ++i;
        continue;
      }
      const RegionRef src0 = src_layout.region_unchecked(request_.blocks[i].src.value(), 0, 0);
      const RegionRef dst0 = dst_layout.region_unchecked(request_.blocks[i].dst.value(), 0, 0);
      // Extend the run while ids are consecutive on both sides and each side advances by its stride.
      std::size_t end = i + 1;
      std::uint64_t src_stride = 0;
      std::uint64_t dst_stride = 0;
      while (end < n && pending_ok(end) &&
             request_.blocks[end].src.value() == request_.blocks[end - 1].src.value() + 1 &&
             request_.blocks[end].dst.value() == request_.blocks[end - 1].dst.value() + 1) {
        const RegionRef s = src_layout.region_unchecked(request_.blocks[end].src.value(), 0, 0);
        const RegionRef d = dst_layout.region_unchecked(request_.blocks[end].dst.value(), 0, 0);
        const std::uint64_t k = end - i;
        if (s.region != src0.region || d.region != dst0.region || s.offset <= src0.offset || d.offset <= dst0.offset) {
          break;
        }
        if (k == 1) {
          src_stride = s.offset - src0.offset;
          dst_stride = d.offset - dst0.offset;
          if (src_stride < bytes || dst_stride < bytes) break;
        } else if (s.offset != src0.offset + k * src_stride || d.offset != dst0.offset + k * dst_stride) {
          break;
        }
        ++end;
      }
      const std::uint64_t count = end - i;
      std::byte* src = at(src_.copy_base, src0);
      std::byte* dst = at(dst_.copy_base, dst0);
      cudaError_t error = cudaSuccess;
      if (count == 1) {
        error = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, context_->stream());
      } else if (src_stride == bytes && dst_stride == bytes) {
        error = cudaMemcpyAsync(dst, src, count * bytes, cudaMemcpyDefault, context_->stream());
      } else {
        // Padded blocks (an aligned stride) on either side: one strided copy that touches only block bytes.
        error =
            cudaMemcpy2DAsync(dst, dst_stride, src, src_stride, bytes, count, cudaMemcpyDefault, context_->stream());
      }
      if (error != cudaSuccess) {
        (void)cudaGetLastError();
        fail_range({i, end - 1},
                   absl::InternalError(absl::StrCat("cuda transfer: copy of ", count, " blocks (", count * bytes,
                                                    " bytes) failed: ", cuda_error(error))));
      }
      i = end;
    }
  }

  // Calls `emit(src, dst, bytes)` for every chunk of block copy `i`, merging chunks adjacent on both sides.
  template <typename Emit>
  void for_each_chunk(std::size_t i, const std::vector<std::byte*>& src_base, const std::vector<std::byte*>& dst_base,
                      Emit&& emit) const {
    const Layout& src_layout = request_.src.memory->layout();
    const Layout& dst_layout = request_.dst.memory->layout();
    const ModelConfig& model = src_layout.model();
    const std::uint32_t s = request_.blocks[i].src.value();
    const std::uint32_t d = request_.blocks[i].dst.value();
    std::byte* run_src = nullptr;
    std::byte* run_dst = nullptr;
    std::uint64_t run_bytes = 0;
    for (const ChunkCoord c : canonical_chunks(model)) {
      const RegionRef src_ref = src_layout.region_unchecked(s, c.layer, c.outer);
      const RegionRef dst_ref = dst_layout.region_unchecked(d, c.layer, c.outer);
      std::byte* src = at(src_base, src_ref);
      std::byte* dst = at(dst_base, dst_ref);
      if (run_bytes > 0 && src == run_src + run_bytes && dst == run_dst + run_bytes) {
        run_bytes += src_ref.size;
        continue;
      }
      if (run_bytes > 0) emit(run_src, run_dst, run_bytes);
      run_src = src;
      run_dst = dst;
      run_bytes = src_ref.size;
    }
    if (run_bytes > 0) emit(run_src, run_dst, run_bytes);
  }

  void copy_per_chunk() {
    for (std::size_t i = 0; i < request_.blocks.size(); ++i) {
      if (!pending_ok(i)) continue;
      cudaError_t first_error = cudaSuccess;
      for_each_chunk(i, src_.copy_base, dst_.copy_base, [&](std::byte* src, std::byte* dst, std::uint64_t bytes) {
        if (first_error != cudaSuccess) return;
        first_error = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, context_->stream());
      });
      if (first_error != cudaSuccess) {
        (void)cudaGetLastError();
        result_.blocks[i] = absl::InternalError(
            absl::StrCat("cuda transfer: chunk copy of block ", i, " failed: ", cuda_error(first_error)));
      }
    }
  }

  void copy_with_kernel() {
    // Table of every chunk of every block, split to at most kMaxKernelChunkBytes each.
    std::vector<ChunkCopy> table;
    table.reserve(request_.blocks.size() * std::size_t{request_.src.memory->layout().model().num_layers} * 2);
    for (std::size_t i = 0; i < request_.blocks.size(); ++i) {
      if (!pending_ok(i)) continue;
      for_each_chunk(i, src_.kernel_base, dst_.kernel_base, [&](std::byte* src, std::byte* dst, std::uint64_t bytes) {
        for (std::uint64_t offset = 0; offset < bytes; offset += kMaxKernelChunkBytes) {
          table.push_back(ChunkCopy{src + offset, dst + offset, std::min(kMaxKernelChunkBytes, bytes - offset)});
        }
      });
    }
    if (table.empty()) return;
    if (absl::Status status = context_->reserve_tables(table.size()); !status.ok()) {
      fail_all(status);
      return;
    }
    std::copy(table.begin(), table.end(), context_->host_table());
    cudaError_t error = cudaMemcpyAsync(context_->device_table(), context_->host_table(),
                                        table.size() * sizeof(ChunkCopy), cudaMemcpyHostToDevice, context_->stream());
#ifdef KVBM_CUDA_KERNELS
    if (error == cudaSuccess)
      error = launch_chunk_copy_kernel(context_->device_table(), table.size(), context_->stream());
#else
    if (error == cudaSuccess) error = cudaErrorNotSupported;  // unreachable: use_kernel() is false
#endif
    if (error != cudaSuccess) {
      (void)cudaGetLastError();
      fail_all(absl::InternalError(absl::StrCat("cuda transfer: gather/scatter kernel over ", table.size(),
                                                " chunks could not be launched: ", cuda_error(error))));
    }
  }

  TransferResult finish() {
    std::size_t failed = 0;
    const absl::Status* first = nullptr;
    const std::uint64_t block_bytes =
        request_.src.memory != nullptr ? request_.src.memory->layout().model().bytes_per_block() : 0;
    result_.bytes = 0;
    for (const absl::Status& status : result_.blocks) {
      if (status.ok()) {
        result_.bytes += block_bytes;
      } else {
        ++failed;
        if (first == nullptr) first = &status;
      }
    }
    if (first == nullptr) {
      result_.status = absl::OkStatus();
    } else {
      result_.status =
          absl::Status(first->code(), absl::StrCat(failed, " of ", result_.blocks.size(),
                                                   " blocks failed; first: ", std::string(first->message())));
    }
    return std::move(result_);
  }

  const TransferRequest& request_;
  ChunkCopyMode mode_;
  TransferResult result_;
  Side src_;
  Side dst_;
  int device_ = -1;
  StreamContext* context_ = nullptr;
};

}  // namespace

bool cuda_path_available() { return cuda_available(); }

TransferResult cuda_transfer_with_mode(const TransferRequest& request, ChunkCopyMode mode) {
  return Transfer(request, mode).run();
}

TransferResult cuda_transfer(const TransferRequest& request) {
  return cuda_transfer_with_mode(request, ChunkCopyMode::kAuto);
}

}  // namespace kvbm::detail
