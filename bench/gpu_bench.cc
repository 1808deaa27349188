// kvbm_bench_gpu: the CUDA transfer path against the machine's own limits (issue 2/8 benchmarks).
//
//   limit     one large pinned cudaMemcpy, host → device and device → host
//   kvbm      detail::cuda_transfer of a batch of blocks, pinned FullyContiguous host ↔ device, same layout
//             (ratio to the limit; target ≥ 0.85) and device LayerSeparate (ratio, informative)
//   gather    device LayerSeparate (32 layers × K/V) ↔ pinned FullyContiguous host: kvbm's gather/scatter
//             kernel vs one cudaMemcpyAsync per region on one stream (speedup; target ≥ 5)
// Block sizes 256 KiB and 2 MiB. Figures are printed (a table, then one JSON line), never asserted.
//
//   kvbm_bench_gpu [--total-mib N] [--iters N]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kvbm/layout/layout.h"
#include "kvbm/storage/cuda_memory.h"
#include "kvbm/storage/storage.h"
#include "transfer/cuda_kernels.h"
#include "transfer/cuda_path.h"

namespace kvbm {
namespace {

void check_cuda(cudaError_t error, const char* what) {
  if (error != cudaSuccess) {
    std::fprintf(stderr, "kvbm_bench_gpu: %s failed: %s\n", what, cudaGetErrorString(error));
    std::exit(1);
  }
}

template <typename T>
T value_or_die(absl::StatusOr<T> value, const char* what) {
  if (!value.ok()) {
    std::fprintf(stderr, "kvbm_bench_gpu: %s: %s\n", what, std::string(value.status().message()).c_str());
    std::exit(1);
  }
  return *std::move(value);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Best of `iters` runs of `fn` (after one warm-up), in GB/s for `bytes` per run.
template <typename Fn>
double best_gbps(int iters, std::uint64_t bytes, Fn&& fn) {
  fn();
  double best = 1e30;
  for (int i = 0; i < iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, seconds_since(start));
  }
  return static_cast<double>(bytes) / best / 1e9;
}

struct Tier {
  std::unique_ptr<Layout> layout;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<TierMemory> memory;
};

Tier make_tier(std::unique_ptr<Layout> layout, bool device) {
  Tier tier;
  tier.layout = std::move(layout);
  tier.storage = device ? value_or_die(make_device_memory(tier.layout->region_sizes(), 0), "device memory")
                        : value_or_die(make_pinned_memory(tier.layout->region_sizes()), "pinned memory");
  tier.memory =
      std::make_unique<TierMemory>(value_or_die(TierMemory::bind(tier.layout.get(), tier.storage.get()), "bind"));
  return tier;
}

TransferRequest all_blocks(const Tier& src, const Tier& dst) {
  TransferRequest request;
  request.src.memory = src.memory.get();
  request.dst.memory = dst.memory.get();
  for (std::uint32_t b = 0; b < src.layout->num_blocks(); ++b) request.blocks.push_back({BlockId(b), BlockId(b)});
  return request;
}

void run_kvbm(const TransferRequest& request, detail::ChunkCopyMode mode) {
  const TransferResult result = detail::cuda_transfer_with_mode(request, mode);
  if (!result.status.ok()) {
    std::fprintf(stderr, "kvbm_bench_gpu: transfer failed: %s\n", std::string(result.status.message()).c_str());
    std::exit(1);
  }
}

// The baseline the kernel replaces: one cudaMemcpyAsync per (block, layer, outer) region.
void run_per_region(const TransferRequest& request, cudaStream_t stream, bool src_device) {
  const TierMemory& src = *request.src.memory;
  const TierMemory& dst = *request.dst.memory;
  const ModelConfig& model = src.layout().model();
  auto address = [](const TierMemory& tier, const RegionRef& ref) -> std::byte* {
    if (tier.storage().kind() == StorageKind::kDevice) {
      return static_cast<std::byte*>(tier.storage().device_region(ref.region)) + ref.offset;
    }
    return tier.storage().host_region(ref.region).data() + ref.offset;
  };
  const cudaMemcpyKind kind = src_device ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice;
  for (const BlockCopy& copy : request.blocks) {
    for (std::uint32_t layer = 0; layer < model.num_layers; ++layer) {
      for (std::uint32_t outer = 0; outer < model.outer_dim; ++outer) {
        const RegionRef s = src.layout().region_unchecked(copy.src.value(), layer, outer);
        const RegionRef d = dst.layout().region_unchecked(copy.dst.value(), layer, outer);
        check_cuda(cudaMemcpyAsync(address(dst, d), address(src, s), s.size, kind, stream), "cudaMemcpyAsync");
      }
    }
  }
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

struct Row {
  std::string name;
  std::uint64_t block_bytes;
  double gbps;
  double reference_gbps;
  double ratio;
  const char* target;
};

int run(int argc, char** argv) {
  std::uint64_t total_mib = 512;
  int iters = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--total-mib") == 0) total_mib = std::strtoull(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::atoi(argv[i + 1]);
  }
  if (!cuda_available()) {
    std::printf("kvbm_bench_gpu: no CUDA device; nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("device: %s (sm_%d%d), kernel compiled: %s, batch %llu MiB, best of %d\n", prop.name, prop.major,
              prop.minor, detail::chunk_copy_kernel_compiled() ? "yes" : "no",
              static_cast<unsigned long long>(total_mib), iters);

  const std::uint64_t total = total_mib << 20;
  cudaStream_t stream = nullptr;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");

  // Limits: one large pinned copy each way.
  void* host = nullptr;
  void* device = nullptr;
  check_cuda(cudaHostAlloc(&host, total, cudaHostAllocDefault), "cudaHostAlloc");
  check_cuda(cudaMalloc(&device, total), "cudaMalloc");
  std::memset(host, 1, total);
  const double h2d_limit = best_gbps(iters, total, [&] {
    check_cuda(cudaMemcpyAsync(device, host, total, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync");
    check_cuda(cudaStreamSynchronize(stream), "sync");
  });
  const double d2h_limit = best_gbps(iters, total, [&] {
    check_cuda(cudaMemcpyAsync(host, device, total, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
    check_cuda(cudaStreamSynchronize(stream), "sync");
  });
  check_cuda(cudaFreeHost(host), "cudaFreeHost");
  check_cuda(cudaFree(device), "cudaFree");

  std::vector<Row> rows;
  for (const std::uint32_t inner_dim : {128u, 1024u}) {
    // 32 layers × K/V × 16 tokens × inner_dim × 2 bytes: 256 KiB (chunks of 4 KiB) or 2 MiB (32 KiB).
    const ModelConfig model{
        .num_layers = 32, .outer_dim = 2, .page_size = 16, .inner_dim = inner_dim, .dtype_bytes = 2};
    const std::uint64_t block = model.bytes_per_block();
    const auto blocks = static_cast<std::uint32_t>(std::max<std::uint64_t>(1, total / block));
    const std::uint64_t bytes = std::uint64_t{blocks} * block;
    Tier host_fc = make_tier(value_or_die(FullyContiguousLayout::create(model, blocks), "layout"), false);
    Tier dev_fc = make_tier(value_or_die(FullyContiguousLayout::create(model, blocks), "layout"), true);
    Tier dev_ls = make_tier(value_or_die(LayerSeparateLayout::create(model, blocks, true), "layout"), true);
    const TransferRequest h2d_fc = all_blocks(host_fc, dev_fc);
    const TransferRequest d2h_fc = all_blocks(dev_fc, host_fc);
    const TransferRequest h2d_ls = all_blocks(host_fc, dev_ls);
    const TransferRequest d2h_ls = all_blocks(dev_ls, host_fc);
    const auto kAuto = detail::ChunkCopyMode::kAuto;

    double g = best_gbps(iters, bytes, [&] { run_kvbm(h2d_fc, kAuto); });
    rows.push_back({"h2d fully_contiguous", block, g, h2d_limit, g / h2d_limit, ">= 0.85"});
    g = best_gbps(iters, bytes, [&] { run_kvbm(d2h_fc, kAuto); });
    rows.push_back({"d2h fully_contiguous", block, g, d2h_limit, g / d2h_limit, ">= 0.85"});
    const double h2d_kernel = best_gbps(iters, bytes, [&] { run_kvbm(h2d_ls, kAuto); });
    rows.push_back({"h2d layer_separate (kvbm)", block, h2d_kernel, h2d_limit, h2d_kernel / h2d_limit, "-"});
    const double d2h_kernel = best_gbps(iters, bytes, [&] { run_kvbm(d2h_ls, kAuto); });
    rows.push_back({"d2h layer_separate (kvbm)", block, d2h_kernel, d2h_limit, d2h_kernel / d2h_limit, "-"});
    const double h2d_regions = best_gbps(iters, bytes, [&] { run_per_region(h2d_ls, stream, false); });
    rows.push_back({"h2d layer_separate kernel vs per-region memcpy", block, h2d_kernel, h2d_regions,
                    h2d_kernel / h2d_regions, ">= 5"});
    const double d2h_regions = best_gbps(iters, bytes, [&] { run_per_region(d2h_ls, stream, true); });
    rows.push_back({"d2h layer_separate kernel vs per-region memcpy", block, d2h_kernel, d2h_regions,
                    d2h_kernel / d2h_regions, ">= 5"});
  }
  check_cuda(cudaStreamDestroy(stream), "cudaStreamDestroy");

  std::printf("limits: pinned cudaMemcpy h2d %.2f GB/s, d2h %.2f GB/s\n", h2d_limit, d2h_limit);
  std::printf("%-48s %10s %10s %12s %8s %8s\n", "path", "block", "GB/s", "ref GB/s", "ratio", "target");
  for (const Row& row : rows) {
    std::printf("%-48s %9lluK %10.2f %12.2f %8.2f %8s\n", row.name.c_str(),
                static_cast<unsigned long long>(row.block_bytes >> 10), row.gbps, row.reference_gbps, row.ratio,
                row.target);
  }
  std::printf("{\"limits\": {\"h2d_gbps\": %.3f, \"d2h_gbps\": %.3f}, \"results\": [", h2d_limit, d2h_limit);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::printf(
        "%s{\"path\": \"%s\", \"block_bytes\": %llu, \"gbps\": %.3f, \"reference_gbps\": %.3f, \"ratio\": %.3f}",
        i == 0 ? "" : ", ", rows[i].name.c_str(), static_cast<unsigned long long>(rows[i].block_bytes), rows[i].gbps,
        rows[i].reference_gbps, rows[i].ratio);
  }
  std::printf("]}\n");
  return 0;
}

}  // namespace
}  // namespace kvbm

int main(int argc, char** argv) { return kvbm::run(argc, argv); }
