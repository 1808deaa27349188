// The CUDA storage and transfer path. Runs everywhere:
//   build without CUDA        the factories and the path report Unimplemented "built without CUDA"
//   CUDA build, no device     availability is false, allocations fail cleanly; device tests skip
//   CUDA build with a device  byte-exact host → device → host round trips for every layout pair, with
//                             pinned and pageable host memory, and the kernel and per-chunk paths agree;
//                             a device G1's block handles give the device addresses of kvbm's G1 bytes
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kvbm/layout/layout.h"
#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/storage/cuda_memory.h"
#include "kvbm/storage/storage.h"
#include "transfer/cuda_path.h"
#ifdef KVBM_WITH_CUDA
#include <cuda_runtime_api.h>

#include "transfer/cuda_kernels.h"
#endif

namespace kvbm {
namespace {

using ::testing::HasSubstr;

TEST(CudaBuildTest, WithoutCudaEverythingSaysBuiltWithoutCuda) {
  if (built_with_cuda()) GTEST_SKIP() << "this build has CUDA";
  EXPECT_FALSE(cuda_available());
  EXPECT_FALSE(detail::cuda_path_available());

  auto pinned = make_pinned_memory({4096});
  ASSERT_FALSE(pinned.ok());
  EXPECT_EQ(pinned.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(pinned.status().message()), HasSubstr("built without CUDA"));

  auto device = make_device_memory({4096}, 0);
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(device.status().message()), HasSubstr("built without CUDA"));

  auto host = SystemMemory::create({4096});
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ((*host)->device_region(0), nullptr);

  TransferRequest request;
  request.blocks = {{BlockId(0), BlockId(1)}, {BlockId(2), BlockId(3)}};
  const TransferResult result = detail::cuda_transfer(request);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(result.status.message()), HasSubstr("built without CUDA"));
  ASSERT_EQ(result.blocks.size(), 2u);
  for (const absl::Status& status : result.blocks) EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(result.bytes, 0u);
}

TEST(CudaBuildTest, CudaBuildWithoutDeviceFailsCleanly) {
  if (!built_with_cuda()) GTEST_SKIP() << "built without CUDA";
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_FALSE(detail::cuda_path_available());
  auto device = make_device_memory({4096}, 0);
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.status().code(), absl::StatusCode::kFailedPrecondition) << device.status();
  auto pinned = make_pinned_memory({4096});
  EXPECT_FALSE(pinned.ok());  // page-locking needs a driver
}

TEST(CudaMemoryTest, RejectsBadRegionSizes) {
  if (!built_with_cuda()) GTEST_SKIP() << "built without CUDA";
  for (const auto& sizes : {std::vector<std::uint64_t>{}, std::vector<std::uint64_t>{4096, 0}}) {
    auto pinned = make_pinned_memory(sizes);
    ASSERT_FALSE(pinned.ok());
    EXPECT_EQ(pinned.status().code(), absl::StatusCode::kInvalidArgument);
    auto device = make_device_memory(sizes, 0);
    ASSERT_FALSE(device.ok());
    EXPECT_EQ(device.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// ---- With a device ---------------------------------------------------------------------------------

enum class LayoutChoice { kFullyContiguous, kFullyContiguousAligned, kLayerSeparateOuter, kLayerSeparateBlock };

std::string layout_choice_name(LayoutChoice choice) {
  switch (choice) {
    case LayoutChoice::kFullyContiguous:
      return "FC";
    case LayoutChoice::kFullyContiguousAligned:
      return "FCaligned";
    case LayoutChoice::kLayerSeparateOuter:
      return "LSouter";
    case LayoutChoice::kLayerSeparateBlock:
      return "LSblock";
  }
  return "?";
}

std::unique_ptr<Layout> make_layout(LayoutChoice choice, const ModelConfig& model, std::uint32_t blocks) {
  switch (choice) {
    case LayoutChoice::kFullyContiguous:
      return *FullyContiguousLayout::create(model, blocks);
    case LayoutChoice::kFullyContiguousAligned:
      return *FullyContiguousLayout::create(model, blocks, {.alignment = 4096, .base_offset = 64});
    case LayoutChoice::kLayerSeparateOuter:
      return *LayerSeparateLayout::create(model, blocks, true);
    case LayoutChoice::kLayerSeparateBlock:
      return *LayerSeparateLayout::create(model, blocks, false);
  }
  return nullptr;
}

enum class HostKind { kPinned, kPageable };

// A layout and the storage bound to it.
struct Tier {
  std::unique_ptr<Layout> layout;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<TierMemory> memory;
};

Tier make_tier(LayoutChoice choice, const ModelConfig& model, std::uint32_t blocks, StorageKind kind) {
  Tier tier;
  tier.layout = make_layout(choice, model, blocks);
  EXPECT_NE(tier.layout, nullptr);
  absl::StatusOr<std::unique_ptr<Storage>> storage = absl::InternalError("unset");
  if (kind == StorageKind::kDevice) {
    storage = make_device_memory(tier.layout->region_sizes(), 0);
  } else if (kind == StorageKind::kPinned) {
    storage = make_pinned_memory(tier.layout->region_sizes());
  } else {
    auto system = SystemMemory::create(tier.layout->region_sizes());
    if (system.ok()) {
      storage = std::unique_ptr<Storage>(std::move(*system));
    } else {
      storage = system.status();
    }
  }
  EXPECT_TRUE(storage.ok()) << storage.status();
  if (!storage.ok()) return tier;
  tier.storage = std::move(*storage);
  auto bound = TierMemory::bind(tier.layout.get(), tier.storage.get());
  EXPECT_TRUE(bound.ok()) << bound.status();
  if (bound.ok()) tier.memory = std::make_unique<TierMemory>(*bound);
  return tier;
}

void fill_random(const Tier& tier, std::uint32_t seed) {
  std::mt19937 rng(seed);
  for (std::size_t r = 0; r < tier.storage->num_regions(); ++r) {
    for (std::byte& b : tier.storage->host_region(r)) b = static_cast<std::byte>(rng() & 0xFF);
  }
}

// Expects every chunk of `a`'s block `ia` to equal `b`'s block `ib`.
void expect_block_equal(const Tier& a, std::uint32_t ia, const Tier& b, std::uint32_t ib) {
  const ModelConfig& model = a.layout->model();
  for (std::uint32_t layer = 0; layer < model.num_layers; ++layer) {
    for (std::uint32_t outer = 0; outer < model.outer_dim; ++outer) {
      const auto x = a.memory->chunk(ia, layer, outer);
      const auto y = b.memory->chunk(ib, layer, outer);
      ASSERT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end()))
          << "block " << ia << " -> " << ib << " layer " << layer << " outer " << outer;
    }
  }
}

TransferRequest request_for(const Tier& src, const Tier& dst, const std::vector<std::uint32_t>& src_ids,
                            const std::vector<std::uint32_t>& dst_ids) {
  TransferRequest request;
  request.src.memory = src.memory.get();
  request.dst.memory = dst.memory.get();
  for (std::size_t i = 0; i < src_ids.size(); ++i) request.blocks.push_back({BlockId(src_ids[i]), BlockId(dst_ids[i])});
  return request;
}

void expect_all_ok(const TransferResult& result, std::uint64_t block_bytes) {
  ASSERT_TRUE(result.status.ok()) << result.status;
  for (const absl::Status& status : result.blocks) ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(result.bytes, block_bytes * result.blocks.size());
}

class CudaDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!built_with_cuda()) GTEST_SKIP() << "built without CUDA";
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(CudaDeviceTest, MemoryKindsAndRegions) {
  auto pinned = make_pinned_memory({4096, 100});
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ((*pinned)->kind(), StorageKind::kPinned);
  EXPECT_EQ((*pinned)->host_region(1).size(), 100u);
  EXPECT_EQ((*pinned)->device_region(0), nullptr);
  EXPECT_EQ((*pinned)->device(), -1);
  auto device = make_device_memory({4096, 100}, 0);
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ((*device)->kind(), StorageKind::kDevice);
  EXPECT_TRUE((*device)->host_region(0).empty());
  EXPECT_NE((*device)->device_region(0), nullptr);
  EXPECT_NE((*device)->device_region(1), nullptr);
  EXPECT_EQ((*device)->device_region(2), nullptr);
  EXPECT_EQ((*device)->device(), 0);
  auto bad = make_device_memory({4096}, 1 << 20);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(detail::cuda_path_available());
}

struct RoundTripCase {
  LayoutChoice host;
  LayoutChoice device;
  HostKind host_kind;
  bool aligned_chunks;  // 16-byte multiple chunks (vector copies) or odd-sized ones (byte copies)
};

std::string case_name(const ::testing::TestParamInfo<RoundTripCase>& info) {
  return layout_choice_name(info.param.host) + "_" + layout_choice_name(info.param.device) + "_" +
         (info.param.host_kind == HostKind::kPinned ? "pinned" : "pageable") +
         (info.param.aligned_chunks ? "_aligned" : "_odd");
}

ModelConfig model_for(bool aligned_chunks) {
  if (aligned_chunks)
    return ModelConfig{.num_layers = 4, .outer_dim = 2, .page_size = 4, .inner_dim = 32, .dtype_bytes = 2};
  return ModelConfig{.num_layers = 3, .outer_dim = 2, .page_size = 5, .inner_dim = 3, .dtype_bytes = 1};
}

class CudaRoundTripTest : public CudaDeviceTest, public ::testing::WithParamInterface<RoundTripCase> {};

TEST_P(CudaRoundTripTest, HostToDeviceToHostIsByteExact) {
  const RoundTripCase& c = GetParam();
  const ModelConfig model = model_for(c.aligned_chunks);
  constexpr std::uint32_t kBlocks = 12;
  const StorageKind host_kind = c.host_kind == HostKind::kPinned ? StorageKind::kPinned : StorageKind::kSystem;
  Tier source = make_tier(c.host, model, kBlocks, host_kind);
  Tier device = make_tier(c.device, model, kBlocks, StorageKind::kDevice);
  Tier back = make_tier(c.host, model, kBlocks, host_kind);
  ASSERT_TRUE(source.memory && device.memory && back.memory);
  fill_random(source, 7);

  // Runs of consecutive ids (coalesced copies) and scattered ones, in both directions.
  const std::vector<std::uint32_t> host_ids = {0, 1, 2, 3, 7, 5, 9, 10, 11};
  const std::vector<std::uint32_t> device_ids = {4, 5, 6, 7, 0, 11, 1, 2, 3};
  expect_all_ok(detail::cuda_transfer(request_for(source, device, host_ids, device_ids)), model.bytes_per_block());
  const std::vector<std::uint32_t> back_ids = {11, 10, 9, 8, 0, 1, 2, 3, 4};
  expect_all_ok(detail::cuda_transfer(request_for(device, back, device_ids, back_ids)), model.bytes_per_block());
  for (std::size_t i = 0; i < host_ids.size(); ++i) expect_block_equal(source, host_ids[i], back, back_ids[i]);

  // Device → device, across the other layout choice.
  Tier device2 = make_tier(c.host, model, kBlocks, StorageKind::kDevice);
  Tier back2 = make_tier(c.device, model, kBlocks, host_kind);
  ASSERT_TRUE(device2.memory && back2.memory);
  std::vector<std::uint32_t> all(kBlocks);
  std::iota(all.begin(), all.end(), 0u);
  expect_all_ok(detail::cuda_transfer(request_for(device, device2, all, all)), model.bytes_per_block());
  expect_all_ok(detail::cuda_transfer(request_for(device2, back2, all, all)), model.bytes_per_block());
  for (std::size_t i = 0; i < host_ids.size(); ++i) expect_block_equal(source, host_ids[i], back2, device_ids[i]);
}

std::vector<RoundTripCase> all_cases() {
  std::vector<RoundTripCase> cases;
  const LayoutChoice layouts[] = {LayoutChoice::kFullyContiguous, LayoutChoice::kFullyContiguousAligned,
                                  LayoutChoice::kLayerSeparateOuter, LayoutChoice::kLayerSeparateBlock};
  for (LayoutChoice host : layouts) {
    for (LayoutChoice device : layouts) {
      for (HostKind kind : {HostKind::kPinned, HostKind::kPageable}) {
        for (bool aligned : {true, false}) cases.push_back({host, device, kind, aligned});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllLayoutPairs, CudaRoundTripTest, ::testing::ValuesIn(all_cases()), case_name);

#ifdef KVBM_WITH_CUDA
TEST_F(CudaDeviceTest, KernelAndPerChunkPathsAgree) {
  // Chunks of 64 KiB + 16 bytes: split across kernel table entries; LayerSeparate forces the chunk paths.
  const ModelConfig model{.num_layers = 8, .outer_dim = 2, .page_size = 1, .inner_dim = 4097, .dtype_bytes = 16};
  constexpr std::uint32_t kBlocks = 6;
  Tier source = make_tier(LayoutChoice::kFullyContiguous, model, kBlocks, StorageKind::kPinned);
  Tier device = make_tier(LayoutChoice::kLayerSeparateOuter, model, kBlocks, StorageKind::kDevice);
  Tier by_kernel = make_tier(LayoutChoice::kFullyContiguousAligned, model, kBlocks, StorageKind::kPinned);
  Tier by_chunk = make_tier(LayoutChoice::kFullyContiguousAligned, model, kBlocks, StorageKind::kPinned);
  ASSERT_TRUE(source.memory && device.memory && by_kernel.memory && by_chunk.memory);
  fill_random(source, 11);
  const std::vector<std::uint32_t> ids = {5, 0, 3, 1, 4, 2};
  const std::vector<std::uint32_t> dev_ids = {0, 1, 2, 3, 4, 5};
  expect_all_ok(
      detail::cuda_transfer_with_mode(request_for(source, device, ids, dev_ids), detail::ChunkCopyMode::kKernel),
      model.bytes_per_block());
  expect_all_ok(
      detail::cuda_transfer_with_mode(request_for(device, by_kernel, dev_ids, ids), detail::ChunkCopyMode::kKernel),
      model.bytes_per_block());
  expect_all_ok(
      detail::cuda_transfer_with_mode(request_for(device, by_chunk, dev_ids, ids), detail::ChunkCopyMode::kPerChunk),
      model.bytes_per_block());
  for (std::uint32_t b = 0; b < kBlocks; ++b) {
    expect_block_equal(by_kernel, b, by_chunk, b);
    expect_block_equal(source, b, by_kernel, b);
  }
}
#endif

TEST_F(CudaDeviceTest, OutOfRangeBlockFailsOnlyThatBlock) {
  const ModelConfig model = model_for(true);
  Tier host = make_tier(LayoutChoice::kFullyContiguous, model, 4, StorageKind::kPinned);
  Tier device = make_tier(LayoutChoice::kLayerSeparateOuter, model, 4, StorageKind::kDevice);
  ASSERT_TRUE(host.memory && device.memory);
  const TransferResult result = detail::cuda_transfer(request_for(host, device, {0, 1, 9}, {0, 1, 2}));
  EXPECT_FALSE(result.status.ok());
  ASSERT_EQ(result.blocks.size(), 3u);
  EXPECT_TRUE(result.blocks[0].ok());
  EXPECT_TRUE(result.blocks[1].ok());
  EXPECT_EQ(result.blocks[2].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.bytes, 2 * model.bytes_per_block());
}

// A device G1 through the manager's block handles: memory_kind() and device_id() say where the bytes are, and
// device_chunk() is the device address of kvbm's own G1 bytes for (layer, outer): what an engine writes there
// through CUDA is what kvbm copies down to G2.
#ifdef KVBM_WITH_CUDA
TEST_F(CudaDeviceTest, DeviceG1HandlesGiveTheDeviceAddressesOfTheirChunks) {
  KvbmConfig config;
  config.model = ModelConfig{.num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 64, .dtype_bytes = 2};
  config.g1.num_blocks = 4;
  config.g1.memory = MemoryKind::kDevice;
  config.g1.layout.kind = LayoutKind::kLayerSeparate;
  config.g2.num_blocks = 1;  // one slot: the block written through to G2 is slot 0 there
  auto kvbm = KvBlockManager::create(config);
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  KvBlockManager& m = **kvbm;
  const Storage* g1 = m.tier_storage(CacheLevel::kG1);
  ASSERT_NE(g1, nullptr);
  EXPECT_EQ(g1->kind(), StorageKind::kDevice);

  std::vector<std::uint32_t> tokens(config.model.page_size);
  std::iota(tokens.begin(), tokens.end(), 7u);
  auto seq = m.make_sequence(tokens);
  ASSERT_TRUE(seq.ok()) << seq.status();
  auto blocks = m.allocate(1);
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  G1MutableBlock& b = (*blocks)[0];
  EXPECT_EQ(b.memory_kind(), StorageKind::kDevice);
  EXPECT_EQ(b.device_id(), 0);
  const std::uint64_t chunk_bytes = config.model.bytes_per_chunk();
  auto pattern = [&](std::uint32_t layer, std::uint32_t outer) {
    std::vector<std::byte> bytes(chunk_bytes);
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(i * 7 + layer * 31 + outer * 3);
    return bytes;
  };
  for (std::uint32_t layer = 0; layer < config.model.num_layers; ++layer) {
    for (std::uint32_t outer = 0; outer < config.model.outer_dim; ++outer) {
      EXPECT_TRUE(b.chunk(layer, outer).empty()) << "device bytes are not host bytes";
      const DeviceChunk chunk = b.device_chunk(layer, outer);
      const RegionRef ref = m.g1_layout().region_unchecked(b.id().value(), layer, outer);
      EXPECT_EQ(chunk.address, reinterpret_cast<std::uintptr_t>(g1->device_region(ref.region)) + ref.offset);
      EXPECT_EQ(chunk.size, chunk_bytes);
      EXPECT_EQ(chunk.device, 0);
      cudaPointerAttributes attributes{};
      ASSERT_EQ(cudaPointerGetAttributes(&attributes, reinterpret_cast<void*>(chunk.address)), cudaSuccess);
      EXPECT_EQ(attributes.type, cudaMemoryTypeDevice);
      EXPECT_EQ(attributes.device, 0);
      const std::vector<std::byte> want = pattern(layer, outer);
      ASSERT_EQ(cudaMemcpy(reinterpret_cast<void*>(chunk.address), want.data(), want.size(), cudaMemcpyHostToDevice),
                cudaSuccess);
    }
  }
  ASSERT_TRUE(b.apply(seq->block(0)).ok());
  auto registered = m.register_blocks(std::span<G1MutableBlock>(*blocks));
  ASSERT_TRUE(registered.ok()) << registered.status();
  const SequenceHash hash = (*registered)[0].sequence_hash();
  {
    const G1Block& r = (*registered)[0];
    EXPECT_EQ(r.memory_kind(), StorageKind::kDevice);
    EXPECT_EQ(r.device_id(), 0);
    const DeviceChunk chunk = r.device_chunk(1, 1);
    std::vector<std::byte> got(chunk.size);
    ASSERT_EQ(cudaMemcpy(got.data(), reinterpret_cast<const void*>(chunk.address), got.size(), cudaMemcpyDeviceToHost),
              cudaSuccess);
    EXPECT_EQ(got, pattern(1, 1));
  }
  registered->clear();  // released: written through to G2
  m.flush();
  ASSERT_TRUE(m.tier_contains(CacheLevel::kG2, hash));
  const TierMemory* g2 = m.tier_memory(CacheLevel::kG2);
  ASSERT_NE(g2, nullptr);
  for (std::uint32_t layer = 0; layer < config.model.num_layers; ++layer) {
    for (std::uint32_t outer = 0; outer < config.model.outer_dim; ++outer) {
      const std::span<const std::byte> copied = g2->chunk(0, layer, outer);
      const std::vector<std::byte> want = pattern(layer, outer);
      EXPECT_TRUE(std::equal(copied.begin(), copied.end(), want.begin(), want.end()))
          << "layer " << layer << " outer " << outer;
    }
  }
}
#endif

// With CUDA built and no device, a device G1 fails at construction naming the tier and the cause.
TEST(CudaBuildTest, DeviceG1WithoutDeviceFailsNamingTheTier) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  KvbmConfig config;
  config.g1.num_blocks = 4;
  config.g1.memory = MemoryKind::kDevice;
  auto kvbm = KvBlockManager::create(config);
  ASSERT_FALSE(kvbm.ok());
  EXPECT_THAT(std::string(kvbm.status().message()), HasSubstr("g1: device memory"));
  EXPECT_THAT(std::string(kvbm.status().message()),
              built_with_cuda() ? HasSubstr("no CUDA device is usable") : HasSubstr("built without CUDA"));
}

}  // namespace
}  // namespace kvbm
