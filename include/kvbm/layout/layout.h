// Layout: where the bytes of (block, layer, outer) sit in a tier's storage regions (DESIGN.md §2, §4).
//
// A layout is pure arithmetic over a validated geometry; it owns no memory. Storage provides regions
// (one or several byte ranges); a layout says which region and offset each chunk of a block lives at.
// Thread-safety: immutable after construction, safe to share.
//
// Chunk: the bytes of one (block, layer, outer) triple, page_size × inner_dim × dtype_bytes long.
// Canonical order: a block's chunks layer-major, then outer; canonical_chunks() walks it.
#pragma once

#include <absl/status/statusor.h>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "kvbm/core/model_config.h"
#include "kvbm/core/types.h"

namespace kvbm {

// Where one chunk lives: storage region `region`, bytes [offset, offset + size).
struct RegionRef {
  std::uint32_t region = 0;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  friend bool operator==(const RegionRef&, const RegionRef&) = default;
};

// One step of the canonical chunk walk: a chunk's (layer, outer) and its place in canonical order.
struct ChunkCoord {
  std::uint32_t layer = 0;
  std::uint32_t outer = 0;
  std::uint32_t index = 0;  // layer × outer_dim + outer: chunks before this one in canonical order
  friend bool operator==(const ChunkCoord&, const ChunkCoord&) = default;
};

// The chunks of one block in canonical order: layer-major, then outer — (0, 0), (0, 1), (1, 0), ... — with
// index counting 0, 1, 2, ... It is the order a block-contiguous layout stores a block's chunks in, and the
// one order every layout-independent form of a block uses (bounce buffers, checksums, remote values,
// replay's fill pattern), so code that walks a block's chunks takes it from here instead of nesting its
// own loops. A forward range of ChunkCoord values; holds two numbers, not the model.
//   for (const ChunkCoord c : canonical_chunks(model)) use(c.layer, c.outer, c.index);
// REQUIRES: num_layers × outer_dim fits in 32 bits (any model that ModelConfig::validate() accepts).
class CanonicalChunks {
 public:
  class iterator {
   public:
    using iterator_concept = std::forward_iterator_tag;
    using iterator_category = std::input_iterator_tag;  // yields values, not references
    using value_type = ChunkCoord;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    ChunkCoord operator*() const { return at_; }
    iterator& operator++() {
      ++at_.index;
      if (++at_.outer == outer_dim_) {
        at_.outer = 0;
        ++at_.layer;
      }
      return *this;
    }
    iterator operator++(int) {
      iterator before = *this;
      ++*this;
      return before;
    }
    friend bool operator==(const iterator& a, const iterator& b) { return a.at_.index == b.at_.index; }

   private:
    friend class CanonicalChunks;
    iterator(ChunkCoord at, std::uint32_t outer_dim) : at_(at), outer_dim_(outer_dim) {}
    ChunkCoord at_;
    std::uint32_t outer_dim_ = 1;
  };

  explicit CanonicalChunks(const ModelConfig& model) : num_layers_(model.num_layers), outer_dim_(model.outer_dim) {}
  [[nodiscard]] iterator begin() const { return iterator(ChunkCoord{}, outer_dim_); }
  [[nodiscard]] iterator end() const { return iterator(ChunkCoord{num_layers_, 0, size()}, outer_dim_); }
  // Chunks per block: num_layers × outer_dim.
  [[nodiscard]] std::uint32_t size() const { return num_layers_ * outer_dim_; }

 private:
  std::uint32_t num_layers_;
  std::uint32_t outer_dim_;
};

// The canonical chunk walk of a block of `model` (see CanonicalChunks).
[[nodiscard]] inline CanonicalChunks canonical_chunks(const ModelConfig& model) { return CanonicalChunks(model); }

enum class LayoutKind : std::uint8_t { kFullyContiguous, kLayerSeparate, kCustom };

class Layout {
 public:
  virtual ~Layout() = default;

  [[nodiscard]] virtual LayoutKind kind() const = 0;
  [[nodiscard]] virtual std::string name() const = 0;
  [[nodiscard]] const ModelConfig& model() const { return model_; }
  [[nodiscard]] std::uint32_t num_blocks() const { return num_blocks_; }
  [[nodiscard]] std::uint64_t chunk_bytes() const { return model_.bytes_per_chunk(); }
  // Bytes each storage region must have, one entry per region.
  [[nodiscard]] virtual std::vector<std::uint64_t> region_sizes() const = 0;
  // True when a whole block is one contiguous byte range in one region, its chunks in canonical order
  // (canonical_chunks: [layer][outer]), so a copy can move a block in one piece.
  [[nodiscard]] virtual bool block_is_contiguous() const { return false; }

  // The chunk of (block, layer, outer). Unchecked: REQUIRES block < num_blocks, layer < num_layers,
  // outer < outer_dim. Hot paths (transfers) call this per chunk.
  [[nodiscard]] virtual RegionRef region_unchecked(std::uint32_t block, std::uint32_t layer,
                                                   std::uint32_t outer) const = 0;
  // Same, with OutOfRange naming the index that is out of range.
  [[nodiscard]] absl::StatusOr<RegionRef> region(BlockId block, std::uint32_t layer, std::uint32_t outer) const;

  // Checks that `available` storage regions can hold this layout: same count, each large enough.
  [[nodiscard]] absl::Status check_storage(const std::vector<std::uint64_t>& available) const;

 protected:
  Layout(const ModelConfig& model, std::uint32_t num_blocks) : model_(model), num_blocks_(num_blocks) {}
  // Validates the model and num_blocks (> 0) shared by every layout.
  [[nodiscard]] static absl::Status validate_common(const ModelConfig& model, std::uint32_t num_blocks);

 private:
  ModelConfig model_;
  std::uint32_t num_blocks_;
};

// One region; block b at base_offset + b × block_stride, where block_stride is bytes_per_block rounded up
// to `alignment`. Inside a block, chunks are [layer][outer].
class FullyContiguousLayout final : public Layout {
 public:
  struct Options {
    std::uint64_t alignment = 1;    // power of two ≥ 1, applied to the block stride
    std::uint64_t base_offset = 0;  // bytes skipped at the start of the region
  };
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FullyContiguousLayout>> create(const ModelConfig& model,
                                                                                     std::uint32_t num_blocks,
                                                                                     Options options);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FullyContiguousLayout>> create(const ModelConfig& model,
                                                                                     std::uint32_t num_blocks) {
    return create(model, num_blocks, Options{});
  }

  LayoutKind kind() const override { return LayoutKind::kFullyContiguous; }
  std::string name() const override { return "fully_contiguous"; }
  std::vector<std::uint64_t> region_sizes() const override;
  bool block_is_contiguous() const override { return true; }
  RegionRef region_unchecked(std::uint32_t block, std::uint32_t layer, std::uint32_t outer) const override {
    return RegionRef{0, base_offset_ + block * block_stride_ + (std::uint64_t{layer} * outer_dim_ + outer) * chunk_,
                     chunk_};
  }
  [[nodiscard]] std::uint64_t block_stride() const { return block_stride_; }

 private:
  FullyContiguousLayout(const ModelConfig& model, std::uint32_t num_blocks, Options options);
  std::uint64_t chunk_;
  std::uint64_t outer_dim_;
  std::uint64_t block_stride_;
  std::uint64_t base_offset_;
};

// One region per layer (as engines that allocate a KV tensor per layer do). Within a layer's region,
// outer_contiguous = true lays chunks out [outer][block] (all K blocks, then all V blocks);
// outer_contiguous = false lays them out [block][outer].
class LayerSeparateLayout final : public Layout {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<LayerSeparateLayout>> create(const ModelConfig& model,
                                                                                   std::uint32_t num_blocks,
                                                                                   bool outer_contiguous);

  LayoutKind kind() const override { return LayoutKind::kLayerSeparate; }
  std::string name() const override {
    return outer_contiguous_ ? "layer_separate_outer_contiguous" : "layer_separate_block_contiguous";
  }
  std::vector<std::uint64_t> region_sizes() const override;
  RegionRef region_unchecked(std::uint32_t block, std::uint32_t layer, std::uint32_t outer) const override {
    const std::uint64_t index =
        outer_contiguous_ ? std::uint64_t{outer} * num_blocks() + block : std::uint64_t{block} * outer_dim_ + outer;
    return RegionRef{layer, index * chunk_, chunk_};
  }
  [[nodiscard]] bool outer_contiguous() const { return outer_contiguous_; }

 private:
  LayerSeparateLayout(const ModelConfig& model, std::uint32_t num_blocks, bool outer_contiguous);
  std::uint64_t chunk_;
  std::uint64_t outer_dim_;
  bool outer_contiguous_;
};

// A user-defined layout plugs in by deriving from Layout and returning LayoutKind::kCustom. It is
// validated like any other: Layout::check_storage and the property checks in tests apply unchanged.

}  // namespace kvbm
