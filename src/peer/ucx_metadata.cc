// The UCX metadata codec: the blob one agent exports and a peer imports to describe its registered tiers
// (format in kvbm/peer/ucx_agent.h), and the Layout rebuilt from one tier's metadata. No UCX calls.
#include <absl/strings/str_cat.h>

#include <limits>
#include <optional>
#include <utility>

#include "kvbm/core/hashing.h"
#include "kvbm/core/little_endian.h"
#include "kvbm/peer/ucx_agent.h"

namespace kvbm {
namespace {

constexpr std::uint32_t kMaxAddressBytes = 64 * 1024;
constexpr std::uint32_t kMaxRkeyBytes = 64 * 1024;
constexpr std::uint32_t kMaxTiers = kNumCacheLevels;
constexpr std::uint32_t kMaxRegions = 1024;

// ---- blob encoding ----

class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) { append_le<std::uint16_t>(&out_, v); }
  void u32(std::uint32_t v) { append_le<std::uint32_t>(&out_, v); }
  void u64(std::uint64_t v) { append_le<std::uint64_t>(&out_, v); }
  void bytes(std::string_view b) {
    u32(static_cast<std::uint32_t>(b.size()));
    out_.append(b);
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

constexpr std::string_view kWhat = "ucx metadata";  // names the blob in LeReader's truncation errors

// A u32 length in [1, max], then that many bytes.
absl::Status read_bytes(LeReader& r, std::string* v, std::uint32_t max, std::string_view field) {
  std::uint32_t n = 0;
  if (absl::Status s = r.read<std::uint32_t>(&n, field); !s.ok()) return s;
  if (n == 0 || n > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: ", std::string(field), " length must be in [1, ", max, "], got ", n));
  }
  return r.read_bytes(v, n, field);
}

#define KVBM_RETURN_IF_ERROR(expr)            \
  do {                                        \
    if (absl::Status _s = (expr); !_s.ok()) { \
      return _s;                              \
    }                                         \
  } while (0)

absl::Status parse_tier(LeReader& r, std::size_t index, UcxTierMetadata* t) {
  const std::string at = absl::StrCat("tier ", index, " ");
  std::uint8_t level = 0;
  std::uint8_t kind = 0;
  std::uint8_t outer = 0;
  std::uint8_t reserved = 0;
  KVBM_RETURN_IF_ERROR(r.read<std::uint8_t>(&level, at + "level"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint8_t>(&kind, at + "layout"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint8_t>(&outer, at + "outer_contiguous"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint8_t>(&reserved, at + "reserved"));
  if (level >= kNumCacheLevels) {
    return absl::InvalidArgumentError(absl::StrCat("ucx metadata: ", at, "level must be in [0, 3], got ", level));
  }
  if (kind > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: ", at, "layout must be 0 (fully_contiguous) or 1 (layer_separate), got ", kind));
  }
  if (outer > 1 || reserved != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ucx metadata: ", at, "outer_contiguous must be 0 or 1 and reserved 0, got ", outer, ", ", reserved));
  }
  t->level = static_cast<CacheLevel>(level);
  t->layout = kind == 0 ? LayoutKind::kFullyContiguous : LayoutKind::kLayerSeparate;
  t->outer_contiguous = outer == 1;
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->num_blocks, at + "num_blocks"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->model.num_layers, at + "num_layers"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->model.outer_dim, at + "outer_dim"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->model.page_size, at + "page_size"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->model.inner_dim, at + "inner_dim"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->model.dtype_bytes, at + "dtype_bytes"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint64_t>(&t->block_stride, at + "block_stride"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint64_t>(&t->base_offset, at + "base_offset"));
  std::uint32_t num_regions = 0;
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&num_regions, at + "num_regions"));
  if (num_regions == 0 || num_regions > kMaxRegions) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: ", at, "num_regions must be in [1, ", kMaxRegions, "], got ", num_regions));
  }
  t->regions.resize(num_regions);
  for (std::uint32_t i = 0; i < num_regions; ++i) {
    UcxTierMetadata::Region& region = t->regions[i];
    const std::string rat = absl::StrCat(at, "region ", i, " ");
    KVBM_RETURN_IF_ERROR(r.read<std::uint64_t>(&region.address, rat + "address"));
    KVBM_RETURN_IF_ERROR(r.read<std::uint64_t>(&region.size, rat + "size"));
    KVBM_RETURN_IF_ERROR(read_bytes(r, &region.rkey, kMaxRkeyBytes, rat + "rkey"));
    if (region.address == 0 || region.size == 0 ||
        region.address > std::numeric_limits<std::uint64_t>::max() - region.size) {
      return absl::InvalidArgumentError(absl::StrCat("ucx metadata: ", rat, "address 0x", absl::Hex(region.address),
                                                     " + size ", region.size, " is not a valid range"));
    }
  }
  // The layout rebuilt from the model, and every block inside the exported regions.
  auto layout = layout_from_metadata(*t);
  if (!layout.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("ucx metadata: ", at, layout.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string encode_ucx_metadata(const UcxMetadata& m) {
  Writer w;
  w.u32(kUcxBlobMagic);
  w.u16(kUcxBlobVersion);
  w.u16(0);
  w.u64(m.worker_id);
  w.bytes(m.worker_address);
  w.u32(static_cast<std::uint32_t>(m.tiers.size()));
  for (const UcxTierMetadata& t : m.tiers) {
    w.u8(static_cast<std::uint8_t>(t.level));
    w.u8(t.layout == LayoutKind::kFullyContiguous ? 0 : t.layout == LayoutKind::kLayerSeparate ? 1 : 0xff);
    w.u8(t.outer_contiguous ? 1 : 0);
    w.u8(0);
    w.u32(t.num_blocks);
    w.u32(t.model.num_layers);
    w.u32(t.model.outer_dim);
    w.u32(t.model.page_size);
    w.u32(t.model.inner_dim);
    w.u32(t.model.dtype_bytes);
    w.u64(t.block_stride);
    w.u64(t.base_offset);
    w.u32(static_cast<std::uint32_t>(t.regions.size()));
    for (const UcxTierMetadata::Region& r : t.regions) {
      w.u64(r.address);
      w.u64(r.size);
      w.bytes(r.rkey);
    }
  }
  const std::uint64_t sum = xxh3_64(w.out().data(), w.out().size(), 0);
  w.u64(sum);
  return std::move(w.out());
}

absl::StatusOr<UcxMetadata> parse_ucx_metadata(std::string_view blob) {
  if (blob.size() < 8 + 8) {
    return absl::InvalidArgumentError(absl::StrCat("ucx metadata: ", blob.size(), " bytes is too short for a blob"));
  }
  LeReader r(blob, kWhat);
  std::uint32_t magic = 0;
  std::uint16_t version = 0;
  std::uint16_t flags = 0;
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&magic, "magic"));
  if (magic != kUcxBlobMagic) {
    return absl::InvalidArgumentError(absl::StrCat("ucx metadata: magic must be 0x", absl::Hex(kUcxBlobMagic),
                                                   " (\"KVUX\"), got 0x", absl::Hex(magic)));
  }
  KVBM_RETURN_IF_ERROR(r.read<std::uint16_t>(&version, "version"));
  if (version != kUcxBlobVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: version must be ", kUcxBlobVersion, ", got ", version));
  }
  KVBM_RETURN_IF_ERROR(r.read<std::uint16_t>(&flags, "flags"));
  if (flags != 0) return absl::InvalidArgumentError(absl::StrCat("ucx metadata: flags must be 0, got ", flags));
  // The trailing checksum covers everything before it: check it before trusting any length.
  const std::string_view body = blob.substr(0, blob.size() - 8);
  LeReader tail(blob.substr(blob.size() - 8), kWhat);
  std::uint64_t sum = 0;
  KVBM_RETURN_IF_ERROR(tail.read<std::uint64_t>(&sum, "checksum"));
  const std::uint64_t expected = xxh3_64(body.data(), body.size(), 0);
  if (sum != expected) {
    return absl::InvalidArgumentError(absl::StrCat("ucx metadata: checksum mismatch (blob says 0x", absl::Hex(sum),
                                                   ", bytes hash to 0x", absl::Hex(expected), ")"));
  }
  LeReader b(body, kWhat);
  std::uint64_t skip = 0;
  KVBM_RETURN_IF_ERROR(b.read<std::uint64_t>(&skip, "header"));  // magic, version, flags: checked above
  UcxMetadata m;
  KVBM_RETURN_IF_ERROR(b.read<std::uint64_t>(&m.worker_id, "worker_id"));
  KVBM_RETURN_IF_ERROR(read_bytes(b, &m.worker_address, kMaxAddressBytes, "worker_address"));
  std::uint32_t num_tiers = 0;
  KVBM_RETURN_IF_ERROR(b.read<std::uint32_t>(&num_tiers, "num_tiers"));
  if (num_tiers == 0 || num_tiers > kMaxTiers) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: num_tiers must be in [1, ", kMaxTiers, "], got ", num_tiers));
  }
  m.tiers.resize(num_tiers);
  for (std::uint32_t i = 0; i < num_tiers; ++i) {
    KVBM_RETURN_IF_ERROR(parse_tier(b, i, &m.tiers[i]));
    for (std::uint32_t j = 0; j < i; ++j) {
      if (m.tiers[j].level == m.tiers[i].level) {
        return absl::InvalidArgumentError(
            absl::StrCat("ucx metadata: tier ", i, " repeats level ", std::string(cache_level_name(m.tiers[i].level))));
      }
    }
  }
  if (b.pos() != body.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: ", body.size() - b.pos(), " unexpected bytes after the last tier"));
  }
  return m;
}

absl::StatusOr<std::unique_ptr<Layout>> layout_from_metadata(const UcxTierMetadata& t) {
  if (absl::Status s = t.model.validate(); !s.ok()) return s;
  std::unique_ptr<Layout> layout;
  if (t.layout == LayoutKind::kFullyContiguous) {
    // The stride is bytes_per_block rounded up to a power-of-two alignment: find that alignment.
    const std::uint64_t per_block = t.model.bytes_per_block();
    std::optional<std::uint64_t> alignment;
    for (std::uint64_t a = 1; a != 0 && a <= (std::uint64_t{1} << 62); a <<= 1) {
      if (((per_block + a - 1) & ~(a - 1)) == t.block_stride) {
        alignment = a;
        break;
      }
      if (a > t.block_stride) break;
    }
    if (!alignment) {
      return absl::InvalidArgumentError(absl::StrCat("block_stride ", t.block_stride, " is not ", per_block,
                                                     " bytes per block rounded up to a power of two"));
    }
    auto fc =
        FullyContiguousLayout::create(t.model, t.num_blocks, {.alignment = *alignment, .base_offset = t.base_offset});
    if (!fc.ok()) return fc.status();
    layout = *std::move(fc);
  } else if (t.layout == LayoutKind::kLayerSeparate) {
    if (t.block_stride != 0 || t.base_offset != 0) {
      return absl::InvalidArgumentError("block_stride and base_offset must be 0 for layer_separate");
    }
    auto ls = LayerSeparateLayout::create(t.model, t.num_blocks, t.outer_contiguous);
    if (!ls.ok()) return ls.status();
    layout = *std::move(ls);
  } else {
    return absl::InvalidArgumentError("only fully_contiguous and layer_separate layouts can be exported");
  }
  std::vector<std::uint64_t> sizes;
  sizes.reserve(t.regions.size());
  for (const auto& r : t.regions) sizes.push_back(r.size);
  if (absl::Status s = layout->check_storage(sizes); !s.ok()) return s;
  return layout;
}

#undef KVBM_RETURN_IF_ERROR

}  // namespace kvbm
