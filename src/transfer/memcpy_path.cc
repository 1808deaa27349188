// The host ↔ host path of the TransferEngine (memcpy_path.h).
#include "transfer/memcpy_path.h"

#include <cstring>
#include <vector>

#include "kvbm/layout/layout.h"

namespace kvbm::detail {
namespace {

// Copies between two host-addressable tiers, one segment per block (both layouts block-contiguous) or one
// per (layer, outer) chunk. Segment k of consecutive blocks is often adjacent to segment k of the block
// before on both sides (blocks allocated in order; LayerSeparate chunks of neighbouring blocks); such runs
// are merged into one memcpy, which is what lets a chunked copy come close to one large memcpy. Merging
// reorders copies, which is safe because destinations are distinct and, unless both sides share a storage
// (then every segment is copied at once with memmove), never overlap a source.
class HostCopier {
 public:
  HostCopier(const TierMemory& src, const TierMemory& dst)
      : src_(src),
        dst_(dst),
        model_(src.layout().model()),
        whole_(src.layout().block_is_contiguous() && dst.layout().block_is_contiguous()),
        overlap_(&src.storage() == &dst.storage()),
        pending_(whole_ ? 1 : canonical_chunks(model_).size()) {}
  HostCopier(const HostCopier&) = delete;
  HostCopier& operator=(const HostCopier&) = delete;
  ~HostCopier() { flush(); }

  void copy(std::uint32_t sb, std::uint32_t db) {
    if (whole_) {
      add(0, dst_.chunk(db, 0, 0).data(), src_.chunk(sb, 0, 0).data(), model_.bytes_per_block());
      return;
    }
    const std::uint64_t chunk = model_.bytes_per_chunk();
    for (const ChunkCoord c : canonical_chunks(model_)) {
      add(c.index, dst_.chunk(db, c.layer, c.outer).data(), src_.chunk(sb, c.layer, c.outer).data(), chunk);
    }
  }

  // Copies every pending segment.
  void flush() {
    for (Segment& p : pending_) {
      if (p.bytes > 0) std::memcpy(p.dst, p.src, p.bytes);
      p.bytes = 0;
    }
  }

 private:
  struct Segment {
    std::byte* dst = nullptr;
    const std::byte* src = nullptr;
    std::uint64_t bytes = 0;
  };

  void add(std::size_t k, std::byte* dst, const std::byte* src, std::uint64_t bytes) {
    if (overlap_) {
      std::memmove(dst, src, bytes);
      return;
    }
    Segment& p = pending_[k];
    if (p.bytes > 0 && p.dst + p.bytes == dst && p.src + p.bytes == src) {
      p.bytes += bytes;
      return;
    }
    if (p.bytes > 0) std::memcpy(p.dst, p.src, p.bytes);
    p = Segment{dst, src, bytes};
  }

  const TierMemory& src_;
  const TierMemory& dst_;
  const ModelConfig& model_;
  const bool whole_;
  const bool overlap_;
  std::vector<Segment> pending_;
};

}  // namespace

void run_memcpy(const TransferRequest& request, std::size_t begin, std::size_t end, absl::Status* statuses) {
  HostCopier copier(*request.src.memory, *request.dst.memory);
  for (std::size_t i = begin; i < end; ++i) copier.copy(request.blocks[i].src.value(), request.blocks[i].dst.value());
  copier.flush();
  for (std::size_t i = begin; i < end; ++i) statuses[i] = absl::OkStatus();
}

}  // namespace kvbm::detail
