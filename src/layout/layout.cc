#include "kvbm/layout/layout.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/string_view.h>

namespace kvbm {
namespace {

// Largest total a layout may span. Keeps every offset sum (offset + size, base + blocks × stride) far from
// u64 overflow, and is far beyond any real tier.
constexpr std::uint64_t kMaxLayoutBytes = std::uint64_t{1} << 62;

absl::Status check_total(std::uint32_t num_blocks, std::uint64_t per_block, std::uint64_t base,
                         absl::string_view what) {
  if (base > kMaxLayoutBytes || per_block > (kMaxLayoutBytes - base) / num_blocks) {
    return absl::InvalidArgumentError(absl::StrCat("layout ", what, ": num_blocks (", num_blocks, ") × ", per_block,
                                                   " bytes per block + base_offset (", base,
                                                   ") must be at most 2^62 bytes"));
  }
  return absl::OkStatus();
}

std::uint64_t round_up(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}

}  // namespace

absl::StatusOr<RegionRef> Layout::region(BlockId block, std::uint32_t layer, std::uint32_t outer) const {
  if (block.value() >= num_blocks_) {
    return absl::OutOfRangeError(
        absl::StrCat("layout ", name(), ": block ", block.value(), " out of range, must be < ", num_blocks_));
  }
  if (layer >= model_.num_layers) {
    return absl::OutOfRangeError(
        absl::StrCat("layout ", name(), ": layer ", layer, " out of range, must be < ", model_.num_layers));
  }
  if (outer >= model_.outer_dim) {
    return absl::OutOfRangeError(
        absl::StrCat("layout ", name(), ": outer ", outer, " out of range, must be < ", model_.outer_dim));
  }
  return region_unchecked(block.value(), layer, outer);
}

absl::Status Layout::check_storage(const std::vector<std::uint64_t>& available) const {
  const std::vector<std::uint64_t> needed = region_sizes();
  if (available.size() != needed.size()) {
    return absl::FailedPreconditionError(absl::StrCat("layout ", name(), " needs ", needed.size(),
                                                      " storage region(s), storage has ", available.size()));
  }
  for (std::size_t i = 0; i < needed.size(); ++i) {
    if (available[i] < needed[i]) {
      return absl::FailedPreconditionError(
          absl::StrCat("layout ", name(), ": region ", i, " holds ", available[i], " bytes, layout needs ", needed[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status Layout::validate_common(const ModelConfig& model, std::uint32_t num_blocks) {
  if (absl::Status status = model.validate(); !status.ok()) return status;
  if (num_blocks == 0) return absl::InvalidArgumentError("layout num_blocks must be > 0, got 0");
  return absl::OkStatus();
}

// ---- FullyContiguousLayout ----

absl::StatusOr<std::unique_ptr<FullyContiguousLayout>> FullyContiguousLayout::create(const ModelConfig& model,
                                                                                     std::uint32_t num_blocks,
                                                                                     Options options) {
  if (absl::Status status = validate_common(model, num_blocks); !status.ok()) return status;
  const std::uint64_t a = options.alignment;
  if (a == 0 || (a & (a - 1)) != 0 || a > kMaxLayoutBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("FullyContiguousLayout alignment must be a power of two in [1, 2^62], got ", options.alignment));
  }
  const std::uint64_t stride = round_up(model.bytes_per_block(), a);
  if (absl::Status status = check_total(num_blocks, stride, options.base_offset, "fully_contiguous"); !status.ok()) {
    return status;
  }
  return std::unique_ptr<FullyContiguousLayout>(new FullyContiguousLayout(model, num_blocks, options));
}

FullyContiguousLayout::FullyContiguousLayout(const ModelConfig& model, std::uint32_t num_blocks, Options options)
    : Layout(model, num_blocks),
      chunk_(model.bytes_per_chunk()),
      outer_dim_(model.outer_dim),
      block_stride_(round_up(model.bytes_per_block(), options.alignment)),
      base_offset_(options.base_offset) {}

std::vector<std::uint64_t> FullyContiguousLayout::region_sizes() const {
  return {base_offset_ + std::uint64_t{num_blocks()} * block_stride_};
}

// ---- LayerSeparateLayout ----

absl::StatusOr<std::unique_ptr<LayerSeparateLayout>> LayerSeparateLayout::create(const ModelConfig& model,
                                                                                 std::uint32_t num_blocks,
                                                                                 bool outer_contiguous) {
  if (absl::Status status = validate_common(model, num_blocks); !status.ok()) return status;
  if (absl::Status status = check_total(num_blocks, model.bytes_per_block(), 0, "layer_separate"); !status.ok()) {
    return status;
  }
  return std::unique_ptr<LayerSeparateLayout>(new LayerSeparateLayout(model, num_blocks, outer_contiguous));
}

LayerSeparateLayout::LayerSeparateLayout(const ModelConfig& model, std::uint32_t num_blocks, bool outer_contiguous)
    : Layout(model, num_blocks),
      chunk_(model.bytes_per_chunk()),
      outer_dim_(model.outer_dim),
      outer_contiguous_(outer_contiguous) {}

std::vector<std::uint64_t> LayerSeparateLayout::region_sizes() const {
  return std::vector<std::uint64_t>(model().num_layers, std::uint64_t{num_blocks()} * outer_dim_ * chunk_);
}

}  // namespace kvbm
