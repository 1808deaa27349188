#include "kvbm/layout/layout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <random>
#include <ranges>
#include <tuple>
#include <vector>

namespace kvbm {
namespace {

using ::testing::HasSubstr;

// A user-defined layout: one region, blocks stored in reverse order, chunks [outer][layer] inside a block.
class ReversedBlockLayout final : public Layout {
 public:
  static absl::StatusOr<std::unique_ptr<ReversedBlockLayout>> create(const ModelConfig& model,
                                                                     std::uint32_t num_blocks) {
    if (absl::Status status = validate_common(model, num_blocks); !status.ok()) return status;
    return std::unique_ptr<ReversedBlockLayout>(new ReversedBlockLayout(model, num_blocks));
  }
  LayoutKind kind() const override { return LayoutKind::kCustom; }
  std::string name() const override { return "reversed_block"; }
  std::vector<std::uint64_t> region_sizes() const override {
    return {std::uint64_t{num_blocks()} * model().bytes_per_block()};
  }
  RegionRef region_unchecked(std::uint32_t block, std::uint32_t layer, std::uint32_t outer) const override {
    const std::uint64_t slot = num_blocks() - 1 - block;
    const std::uint64_t chunk = std::uint64_t{outer} * model().num_layers + layer;
    return RegionRef{0, (slot * model().num_layers * model().outer_dim + chunk) * chunk_bytes(), chunk_bytes()};
  }

 private:
  ReversedBlockLayout(const ModelConfig& model, std::uint32_t num_blocks) : Layout(model, num_blocks) {}
};

// Checks every chunk of `layout`: inside its region, chunk-sized, no two overlapping, and (when no padding
// is expected) the region sizes add up to num_blocks × bytes_per_block.
void check_layout_properties(const Layout& layout, bool padded) {
  SCOPED_TRACE(layout.name() + " " + layout.model().to_string() + " blocks=" + std::to_string(layout.num_blocks()));
  const ModelConfig& model = layout.model();
  const std::vector<std::uint64_t> sizes = layout.region_sizes();
  ASSERT_FALSE(sizes.empty());
  std::vector<std::tuple<std::uint32_t, std::uint64_t, std::uint64_t>> chunks;  // region, begin, end
  chunks.reserve(std::size_t{layout.num_blocks()} * model.num_layers * model.outer_dim);
  for (std::uint32_t b = 0; b < layout.num_blocks(); ++b) {
    std::uint64_t block_min = ~std::uint64_t{0};
    std::uint64_t block_max = 0;
    for (std::uint32_t l = 0; l < model.num_layers; ++l) {
      for (std::uint32_t o = 0; o < model.outer_dim; ++o) {
        const RegionRef ref = layout.region_unchecked(b, l, o);
        absl::StatusOr<RegionRef> checked = layout.region(BlockId{b}, l, o);
        ASSERT_TRUE(checked.ok()) << checked.status();
        ASSERT_EQ(*checked, ref);
        ASSERT_EQ(ref.size, layout.chunk_bytes());
        ASSERT_EQ(ref.size, model.bytes_per_chunk());
        ASSERT_LT(ref.region, sizes.size());
        ASSERT_LE(ref.offset + ref.size, sizes[ref.region]);
        chunks.emplace_back(ref.region, ref.offset, ref.offset + ref.size);
        block_min = std::min(block_min, ref.offset);
        block_max = std::max(block_max, ref.offset + ref.size);
      }
    }
    if (layout.block_is_contiguous()) {
      ASSERT_EQ(block_max - block_min, model.bytes_per_block());
      // [layer][outer] order inside the block.
      const RegionRef first = layout.region_unchecked(b, 0, 0);
      const RegionRef last = layout.region_unchecked(b, model.num_layers - 1, model.outer_dim - 1);
      ASSERT_EQ(first.offset, block_min);
      ASSERT_EQ(last.offset + last.size, block_max);
    }
  }
  std::sort(chunks.begin(), chunks.end());
  for (std::size_t i = 1; i < chunks.size(); ++i) {
    if (std::get<0>(chunks[i]) == std::get<0>(chunks[i - 1])) {
      ASSERT_LE(std::get<2>(chunks[i - 1]), std::get<1>(chunks[i]))
          << "chunks overlap in region " << std::get<0>(chunks[i]);
    }
  }
  std::uint64_t total = 0;
  for (std::uint64_t s : sizes) total += s;
  const std::uint64_t needed = std::uint64_t{layout.num_blocks()} * model.bytes_per_block();
  if (padded) {
    ASSERT_GE(total, needed);
  } else {
    ASSERT_EQ(total, needed);
  }
  EXPECT_TRUE(layout.check_storage(sizes).ok());
}

ModelConfig random_model(std::mt19937_64& rng) {
  auto pick = [&](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  ModelConfig model;
  model.num_layers = pick(1, 6);
  model.outer_dim = pick(1, 2);
  model.page_size = pick(1, 8);
  model.inner_dim = pick(1, 12);
  model.dtype_bytes = pick(1, 4);
  return model;
}

TEST(LayoutPropertyTest, RandomShapesAllLayouts) {
  std::mt19937_64 rng(20240601);
  for (int iteration = 0; iteration < 2000; ++iteration) {
    const ModelConfig model = random_model(rng);
    const std::uint32_t num_blocks = std::uniform_int_distribution<std::uint32_t>(1, 9)(rng);
    switch (iteration % 5) {
      case 0: {
        auto layout = FullyContiguousLayout::create(model, num_blocks);
        ASSERT_TRUE(layout.ok()) << layout.status();
        EXPECT_EQ((*layout)->block_stride(), model.bytes_per_block());
        ASSERT_NO_FATAL_FAILURE(check_layout_properties(**layout, false));
        break;
      }
      case 1: {
        FullyContiguousLayout::Options options;
        options.alignment = std::uint64_t{1} << std::uniform_int_distribution<int>(0, 10)(rng);
        options.base_offset = std::uniform_int_distribution<std::uint64_t>(0, 100)(rng);
        auto layout = FullyContiguousLayout::create(model, num_blocks, options);
        ASSERT_TRUE(layout.ok()) << layout.status();
        EXPECT_EQ((*layout)->block_stride() % options.alignment, 0u);
        EXPECT_LT((*layout)->block_stride() - model.bytes_per_block(), options.alignment);
        EXPECT_EQ((*layout)->region_sizes()[0], options.base_offset + num_blocks * (*layout)->block_stride());
        ASSERT_NO_FATAL_FAILURE(check_layout_properties(**layout, true));
        break;
      }
      case 2:
      case 3: {
        auto layout = LayerSeparateLayout::create(model, num_blocks, iteration % 5 == 2);
        ASSERT_TRUE(layout.ok()) << layout.status();
        EXPECT_EQ((*layout)->region_sizes().size(), model.num_layers);
        ASSERT_NO_FATAL_FAILURE(check_layout_properties(**layout, false));
        break;
      }
      default: {
        auto layout = ReversedBlockLayout::create(model, num_blocks);
        ASSERT_TRUE(layout.ok()) << layout.status();
        EXPECT_EQ((*layout)->kind(), LayoutKind::kCustom);
        ASSERT_NO_FATAL_FAILURE(check_layout_properties(**layout, false));
        break;
      }
    }
  }
}

static_assert(std::ranges::forward_range<CanonicalChunks>);
static_assert(std::forward_iterator<CanonicalChunks::iterator>);

TEST(CanonicalChunksTest, LayerMajorThenOuter) {
  ModelConfig model;
  model.num_layers = 3;
  model.outer_dim = 2;
  std::vector<ChunkCoord> walked;
  for (const ChunkCoord c : canonical_chunks(model)) walked.push_back(c);
  const std::vector<ChunkCoord> expected = {{0, 0, 0}, {0, 1, 1}, {1, 0, 2}, {1, 1, 3}, {2, 0, 4}, {2, 1, 5}};
  EXPECT_EQ(walked, expected);
  EXPECT_EQ(canonical_chunks(model).size(), 6u);

  model.outer_dim = 1;  // MLA: one chunk per layer
  walked.clear();
  for (const ChunkCoord c : canonical_chunks(model)) walked.push_back(c);
  EXPECT_EQ(walked, (std::vector<ChunkCoord>{{0, 0, 0}, {1, 0, 1}, {2, 0, 2}}));
}

// For every shape: each (layer, outer) once, index = layer × outer_dim + outer counting up from 0, and the
// order in which a block-contiguous layout stores a block's chunks.
TEST(CanonicalChunksTest, EveryChunkOnceInBlockContiguousOrder) {
  std::mt19937_64 rng(20240602);
  for (int iteration = 0; iteration < 200; ++iteration) {
    const ModelConfig model = random_model(rng);
    auto layout = FullyContiguousLayout::create(model, 2);
    ASSERT_TRUE(layout.ok()) << layout.status();
    const CanonicalChunks chunks = canonical_chunks(model);
    ASSERT_EQ(chunks.size(), model.num_layers * model.outer_dim);
    ASSERT_EQ(std::ranges::distance(chunks), static_cast<std::ptrdiff_t>(chunks.size()));
    std::uint32_t next = 0;
    for (const ChunkCoord c : chunks) {
      ASSERT_EQ(c.index, next++);
      ASSERT_LT(c.layer, model.num_layers);
      ASSERT_LT(c.outer, model.outer_dim);
      ASSERT_EQ(c.index, c.layer * model.outer_dim + c.outer);
      EXPECT_EQ((*layout)->region_unchecked(1, c.layer, c.outer).offset,
                (*layout)->block_stride() + std::uint64_t{c.index} * model.bytes_per_chunk());
    }
  }
}

TEST(CanonicalChunksTest, StopsEarly) {
  ModelConfig model;
  model.num_layers = 4;
  model.outer_dim = 2;
  const CanonicalChunks chunks = canonical_chunks(model);
  const auto found = std::ranges::find_if(chunks, [](ChunkCoord c) { return c.layer == 2; });
  ASSERT_NE(found, chunks.end());
  EXPECT_EQ(*found, (ChunkCoord{2, 0, 4}));
}

TEST(LayoutTest, LayerSeparateOrderings) {
  ModelConfig model{.num_layers = 2, .outer_dim = 2, .page_size = 1, .inner_dim = 1, .dtype_bytes = 1};
  auto outer = LayerSeparateLayout::create(model, 3, true);
  auto block = LayerSeparateLayout::create(model, 3, false);
  ASSERT_TRUE(outer.ok() && block.ok());
  // outer_contiguous: all K blocks, then all V blocks.
  EXPECT_EQ((*outer)->region_unchecked(2, 1, 0), (RegionRef{1, 2, 1}));
  EXPECT_EQ((*outer)->region_unchecked(0, 1, 1), (RegionRef{1, 3, 1}));
  // block_contiguous: K,V of block 0, then of block 1...
  EXPECT_EQ((*block)->region_unchecked(0, 0, 1), (RegionRef{0, 1, 1}));
  EXPECT_EQ((*block)->region_unchecked(2, 0, 0), (RegionRef{0, 4, 1}));
  EXPECT_EQ((*outer)->name(), "layer_separate_outer_contiguous");
  EXPECT_EQ((*block)->name(), "layer_separate_block_contiguous");
  EXPECT_FALSE((*outer)->block_is_contiguous());
}

TEST(LayoutTest, AlignmentMustBePowerOfTwo) {
  for (std::uint64_t bad :
       {std::uint64_t{0}, std::uint64_t{3}, std::uint64_t{6}, std::uint64_t{4097}, std::uint64_t{1} << 63}) {
    auto layout = FullyContiguousLayout::create(ModelConfig{}, 4, {.alignment = bad, .base_offset = 0});
    ASSERT_FALSE(layout.ok()) << bad;
    EXPECT_EQ(layout.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(layout.status().message()), HasSubstr("alignment"));
  }
  EXPECT_TRUE(FullyContiguousLayout::create(ModelConfig{}, 4, {.alignment = 4096, .base_offset = 0}).ok());
}

TEST(LayoutTest, InvalidModelAndZeroBlocksRejected) {
  ModelConfig bad;
  bad.outer_dim = 3;
  auto a = FullyContiguousLayout::create(bad, 4);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(std::string(a.status().message()), HasSubstr("ModelConfig.outer_dim"));
  auto b = LayerSeparateLayout::create(ModelConfig{}, 0, true);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("num_blocks"));
}

TEST(LayoutTest, HugeGeometryRejectedInsteadOfOverflowing) {
  const ModelConfig max{ModelConfig::kMaxLayers, 2, ModelConfig::kMaxPageSize, ModelConfig::kMaxInnerDim,
                        ModelConfig::kMaxDtypeBytes};  // 2^51 bytes per block
  for (std::uint32_t blocks : {std::uint32_t{1} << 12, ~std::uint32_t{0}}) {
    auto fc = FullyContiguousLayout::create(max, blocks);
    ASSERT_FALSE(fc.ok());
    EXPECT_EQ(fc.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(fc.status().message()), HasSubstr("num_blocks"));
    auto ls = LayerSeparateLayout::create(max, blocks, false);
    ASSERT_FALSE(ls.ok());
    EXPECT_EQ(ls.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(FullyContiguousLayout::create(max, 1u << 11).ok());  // exactly 2^62
  auto offset = FullyContiguousLayout::create(ModelConfig{}, 1, {.alignment = 1, .base_offset = ~std::uint64_t{0}});
  EXPECT_FALSE(offset.ok());
}

TEST(LayoutTest, IndexOutOfRangeNamesIndexAndLimit) {
  ModelConfig model{.num_layers = 3, .outer_dim = 2, .page_size = 4, .inner_dim = 8, .dtype_bytes = 2};
  auto layout = FullyContiguousLayout::create(model, 5);
  ASSERT_TRUE(layout.ok());
  auto block = (*layout)->region(BlockId{5}, 0, 0);
  EXPECT_EQ(block.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(block.status().message()), HasSubstr("block 5"));
  EXPECT_THAT(std::string(block.status().message()), HasSubstr("< 5"));
  auto layer = (*layout)->region(BlockId{0}, 3, 0);
  EXPECT_EQ(layer.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(layer.status().message()), HasSubstr("layer 3"));
  EXPECT_THAT(std::string(layer.status().message()), HasSubstr("< 3"));
  auto outer = (*layout)->region(BlockId{4}, 2, 2);
  EXPECT_EQ(outer.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(outer.status().message()), HasSubstr("outer 2"));
  EXPECT_THAT(std::string(outer.status().message()), HasSubstr("< 2"));
  EXPECT_TRUE((*layout)->region(BlockId{4}, 2, 1).ok());
}

TEST(LayoutTest, CheckStorageErrors) {
  ModelConfig model{.num_layers = 3, .outer_dim = 2, .page_size = 4, .inner_dim = 8, .dtype_bytes = 2};
  auto fc = FullyContiguousLayout::create(model, 5);
  ASSERT_TRUE(fc.ok());
  const std::uint64_t need = 5 * model.bytes_per_block();
  absl::Status count = (*fc)->check_storage({need, need, need});
  EXPECT_EQ(count.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(count.message(), "layout fully_contiguous needs 1 storage region(s), storage has 3");
  absl::Status small = (*fc)->check_storage({need - 1});
  EXPECT_EQ(small.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(small.message()),
              HasSubstr("region 0 holds " + std::to_string(need - 1) + " bytes, layout needs " + std::to_string(need)));
  EXPECT_TRUE((*fc)->check_storage({need + 100}).ok());

  auto ls = LayerSeparateLayout::create(model, 5, true);
  ASSERT_TRUE(ls.ok());
  const std::uint64_t per_layer = 5 * 2 * model.bytes_per_chunk();
  absl::Status second = (*ls)->check_storage({per_layer, per_layer - 1, per_layer});
  EXPECT_THAT(std::string(second.message()), HasSubstr("region 1 holds"));
  EXPECT_EQ((*ls)->check_storage({per_layer}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE((*ls)->check_storage({per_layer, per_layer, per_layer}).ok());
}

}  // namespace
}  // namespace kvbm
