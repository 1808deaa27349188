// Layout: where the bytes of (block, layer, outer) sit in a tier's storage regions (DESIGN.md §2, §4).
//
// A layout is pure arithmetic over a validated geometry; it owns no memory. Storage provides regions
// (one or several byte ranges); a layout says which region and offset each chunk of a block lives at.
// Thread-safety: immutable after construction, safe to share.
//
// Chunk: the bytes of one (block, layer, outer) triple, page_size × inner_dim × dtype_bytes long.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
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
  // True when a whole block is one contiguous byte range in one region, laid [layer][outer] in order,
  // so a copy can move a block in one piece.
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
