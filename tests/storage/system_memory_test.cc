#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "kvbm/layout/layout.h"
#include "kvbm/storage/storage.h"

namespace kvbm {
namespace {

using ::testing::HasSubstr;

TEST(SystemMemoryTest, RegionsAreAlignedSizedAndZero) {
  for (std::size_t alignment : {std::size_t{4096}, std::size_t{1} << 16, std::size_t{1} << 21}) {
    SCOPED_TRACE(alignment);
    auto memory = SystemMemory::create({100, 8192, 12345}, {.alignment = alignment, .zero_fill = true});
    ASSERT_TRUE(memory.ok()) << memory.status();
    const SystemMemory& m = **memory;
    EXPECT_EQ(m.kind(), StorageKind::kSystem);
    ASSERT_EQ(m.num_regions(), 3u);
    EXPECT_EQ(m.region_sizes(), (std::vector<std::uint64_t>{100, 8192, 12345}));
    EXPECT_EQ(m.total_bytes(), 100u + 8192u + 12345u);
    for (std::size_t i = 0; i < m.num_regions(); ++i) {
      std::span<std::byte> region = m.host_region(i);
      EXPECT_EQ(region.size(), m.region_size(i));
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(region.data()) % alignment, 0u);
      for (std::byte b : region) ASSERT_EQ(b, std::byte{0});
    }
  }
}

TEST(SystemMemoryTest, WriteAndReadEveryByte) {
  auto memory = SystemMemory::create({5000, 3, 70000}, {.alignment = 4096, .zero_fill = false, .huge_pages = true});
  ASSERT_TRUE(memory.ok()) << memory.status();
  for (std::size_t r = 0; r < (*memory)->num_regions(); ++r) {
    std::span<std::byte> region = (*memory)->host_region(r);
    for (std::size_t i = 0; i < region.size(); ++i) region[i] = static_cast<std::byte>((i * 31 + r) & 0xFF);
  }
  for (std::size_t r = 0; r < (*memory)->num_regions(); ++r) {
    std::span<std::byte> region = (*memory)->host_region(r);
    for (std::size_t i = 0; i < region.size(); ++i) {
      ASSERT_EQ(region[i], static_cast<std::byte>((i * 31 + r) & 0xFF)) << "region " << r << " byte " << i;
    }
  }
}

TEST(SystemMemoryTest, RejectsBadInput) {
  for (std::size_t bad : {std::size_t{0}, std::size_t{1024}, std::size_t{6000}, std::size_t{12288}}) {
    auto memory = SystemMemory::create({4096}, {.alignment = bad});
    ASSERT_FALSE(memory.ok()) << bad;
    EXPECT_EQ(memory.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(memory.status().message()), HasSubstr("alignment"));
  }
  auto zero = SystemMemory::create({4096, 0});
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(zero.status().message()), HasSubstr("region 1"));
  EXPECT_FALSE(SystemMemory::create({}).ok());
}

TEST(SystemMemoryTest, ImpossibleSizeIsResourceExhausted) {
  auto memory = SystemMemory::create({std::uint64_t{1} << 60});
  ASSERT_FALSE(memory.ok());
  EXPECT_EQ(memory.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(memory.status().message()), HasSubstr(std::to_string(std::uint64_t{1} << 60)));
}

TEST(TierMemoryTest, ChunksMatchLayoutOffsets) {
  ModelConfig model{.num_layers = 3, .outer_dim = 2, .page_size = 4, .inner_dim = 8, .dtype_bytes = 2};
  std::vector<std::unique_ptr<Layout>> layouts;
  layouts.push_back(*FullyContiguousLayout::create(model, 7, {.alignment = 256, .base_offset = 64}));
  layouts.push_back(*LayerSeparateLayout::create(model, 7, true));
  layouts.push_back(*LayerSeparateLayout::create(model, 7, false));
  for (const auto& layout : layouts) {
    SCOPED_TRACE(layout->name());
    auto memory = SystemMemory::for_layout(*layout, {});
    ASSERT_TRUE(memory.ok()) << memory.status();
    EXPECT_EQ((*memory)->region_sizes(), layout->region_sizes());
    auto tier = TierMemory::bind(layout.get(), memory->get());
    ASSERT_TRUE(tier.ok()) << tier.status();
    EXPECT_TRUE(tier->host_addressable());
    EXPECT_EQ(&tier->layout(), layout.get());
    EXPECT_EQ(&tier->storage(), memory->get());
    // Tag every chunk with its own id, then read the tags back through the region bytes.
    for (std::uint32_t b = 0; b < layout->num_blocks(); ++b) {
      for (std::uint32_t l = 0; l < model.num_layers; ++l) {
        for (std::uint32_t o = 0; o < model.outer_dim; ++o) {
          const RegionRef ref = layout->region_unchecked(b, l, o);
          std::span<std::byte> chunk = tier->chunk(b, l, o);
          ASSERT_EQ(chunk.size(), layout->chunk_bytes());
          ASSERT_EQ(chunk.data(), (*memory)->host_region(ref.region).data() + ref.offset);
          std::fill(chunk.begin(), chunk.end(), static_cast<std::byte>(b * 16 + l * 2 + o));
        }
      }
    }
    for (std::uint32_t b = 0; b < layout->num_blocks(); ++b) {
      for (std::uint32_t l = 0; l < model.num_layers; ++l) {
        for (std::uint32_t o = 0; o < model.outer_dim; ++o) {
          const RegionRef ref = layout->region_unchecked(b, l, o);
          std::span<std::byte> bytes = (*memory)->host_region(ref.region).subspan(ref.offset, ref.size);
          for (std::byte v : bytes) ASSERT_EQ(v, static_cast<std::byte>(b * 16 + l * 2 + o));
        }
      }
    }
  }
}

TEST(TierMemoryTest, BindMismatchErrors) {
  ModelConfig model{.num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 8, .dtype_bytes = 2};
  auto fc = FullyContiguousLayout::create(model, 4);
  ASSERT_TRUE(fc.ok());
  auto three = SystemMemory::create({4096, 4096, 4096});
  ASSERT_TRUE(three.ok());
  auto count = TierMemory::bind(fc->get(), three->get());
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(count.status().message(), "layout fully_contiguous needs 1 storage region(s), storage has 3");

  const std::uint64_t need = (*fc)->region_sizes()[0];
  auto small = SystemMemory::create({need - 1});
  ASSERT_TRUE(small.ok());
  auto size = TierMemory::bind(fc->get(), small->get());
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(size.status().message()),
              HasSubstr("region 0 holds " + std::to_string(need - 1) + " bytes, layout needs " + std::to_string(need)));

  EXPECT_EQ(TierMemory::bind(nullptr, small->get()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TierMemory::bind(fc->get(), nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

// Storage the CPU cannot address binds but is not host addressable.
class OpaqueStorage final : public Storage {
 public:
  StorageKind kind() const override { return StorageKind::kDevice; }
  std::size_t num_regions() const override { return 1; }
  std::uint64_t region_size(std::size_t) const override { return 1u << 20; }
  std::span<std::byte> host_region(std::size_t) const override { return {}; }
};

TEST(TierMemoryTest, NonHostStorageIsNotHostAddressable) {
  auto fc = FullyContiguousLayout::create(ModelConfig{}, 2);
  ASSERT_TRUE(fc.ok());
  OpaqueStorage storage;
  auto tier = TierMemory::bind(fc->get(), &storage);
  ASSERT_TRUE(tier.ok()) << tier.status();
  EXPECT_FALSE(tier->host_addressable());
  EXPECT_EQ(storage_kind_name(storage.kind()), "device");
  EXPECT_EQ(storage_kind_name(StorageKind::kSystem), "system");
}

}  // namespace
}  // namespace kvbm
