// The host ↔ disk path of the TransferEngine (disk_path.h).
#include "transfer/disk_path.h"

#include <absl/strings/str_format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kvbm/layout/layout.h"
#include "kvbm/storage/disk_file.h"

namespace kvbm::detail {

BounceBuffer::~BounceBuffer() { std::free(data_); }

std::byte* BounceBuffer::get(std::uint64_t bytes) {
  if (bytes <= capacity_) return data_;
  std::free(data_);
  capacity_ = 0;
  const std::uint64_t rounded = (bytes + kIoAlignment - 1) / kIoAlignment * kIoAlignment;
  data_ = static_cast<std::byte*>(std::aligned_alloc(kIoAlignment, rounded));
  if (data_ == nullptr) return nullptr;
  // Padding past a block's bytes goes to disk too; make it deterministic.
  std::memset(data_, 0, rounded);
  capacity_ = rounded;
  return data_;
}

namespace {

// Gathers a host block's chunks in canonical order [layer][outer] into `out` (bytes_per_block bytes).
void gather(const TierMemory& host, std::uint32_t block, std::byte* out) {
  const ModelConfig& model = host.layout().model();
  if (host.layout().block_is_contiguous()) {
    std::memcpy(out, host.chunk(block, 0, 0).data(), model.bytes_per_block());
    return;
  }
  const std::uint64_t chunk = model.bytes_per_chunk();
  for (const ChunkCoord c : canonical_chunks(model)) {
    std::memcpy(out, host.chunk(block, c.layer, c.outer).data(), chunk);
    out += chunk;
  }
}

// The inverse of gather().
void scatter(const std::byte* in, const TierMemory& host, std::uint32_t block) {
  const ModelConfig& model = host.layout().model();
  if (host.layout().block_is_contiguous()) {
    std::memcpy(host.chunk(block, 0, 0).data(), in, model.bytes_per_block());
    return;
  }
  const std::uint64_t chunk = model.bytes_per_chunk();
  for (const ChunkCoord c : canonical_chunks(model)) {
    std::memcpy(host.chunk(block, c.layer, c.outer).data(), in, chunk);
    in += chunk;
  }
}

// The status of a finished I/O that should have moved `op.length` bytes.
absl::Status io_status(const IoOp& op, std::uint64_t file_block, std::uint64_t* io_errors) {
  const bool write = op.kind == IoOp::Kind::kWrite;
  if (op.result == static_cast<std::int64_t>(op.length)) return absl::OkStatus();
  ++*io_errors;
  if (op.result < 0) {
    const int err = static_cast<int>(-op.result);
    const std::string msg = absl::StrFormat("transfer: I/O error %s disk block %d at offset %d: %s",
                                            write ? "writing" : "reading", file_block, op.offset, std::strerror(err));
    return err == ENOSPC ? absl::ResourceExhaustedError(msg) : absl::InternalError(msg);
  }
  return absl::InternalError(absl::StrFormat("transfer: short %s of disk block %d at offset %d: %d of %d bytes",
                                             write ? "write" : "read", file_block, op.offset, op.result, op.length));
}

// The host block's own bytes when the disk I/O can use them in place: a block-contiguous layout whose
// block is exactly one disk stride long and 4 KiB aligned (O_DIRECT's rule). Saves the bounce copy. A read
// then lands in the destination before it is verified: a block that fails is reported failed, and its
// destination bytes are garbage, as the caller must assume of any failed block's destination.
std::byte* direct_buffer(const TierMemory& host, std::uint32_t block, std::uint64_t stride) {
  if (!host.layout().block_is_contiguous() || host.layout().model().bytes_per_block() != stride) return nullptr;
  std::byte* p = host.chunk(block, 0, 0).data();
  return reinterpret_cast<std::uintptr_t>(p) % kIoAlignment == 0 ? p : nullptr;
}

}  // namespace

void run_disk(const TransferRequest& request, const TransferPlan& plan, std::size_t begin, std::size_t end,
              std::uint64_t group_max, IoBackend& io, BounceBuffer& bounce, absl::Status* statuses,
              TransferCounts* counts) {
  const bool write = plan.path == TransferPath::kDiskWrite;
  const TierMemory& host = write ? *request.src.memory : *request.dst.memory;
  BlockChecksums& sums = write ? *request.dst.checksums : *request.src.checksums;
  const std::uint64_t block_bytes = host.layout().model().bytes_per_block();
  const std::uint64_t stride = plan.disk_stride;
  const std::size_t group = std::max<std::size_t>(1, std::min<std::size_t>(group_max, end - begin));
  std::byte* buffers = bounce.get(group * stride);
  if (buffers == nullptr) {
    for (std::size_t i = begin; i < end; ++i) {
      statuses[i] = absl::ResourceExhaustedError(
          absl::StrFormat("transfer: cannot allocate %d bytes of bounce buffers", group * stride));
    }
    return;
  }
  std::vector<IoOp> ops(group);
  std::vector<std::uint64_t> checksums(group);
  for (std::size_t first = begin; first < end; first += group) {
    const std::size_t n = std::min(group, end - first);
    for (std::size_t k = 0; k < n; ++k) {
      const BlockCopy& c = request.blocks[first + k];
      const std::uint32_t file_block = write ? c.dst.value() : c.src.value();
      const std::uint32_t host_block = write ? c.src.value() : c.dst.value();
      std::byte* const direct = direct_buffer(host, host_block, stride);
      std::byte* buf = direct != nullptr ? direct : buffers + k * stride;
      IoOp& op = ops[k];
      op = IoOp{};
      op.kind = write ? IoOp::Kind::kWrite : IoOp::Kind::kRead;
      op.fd = plan.disk->fd();
      op.offset = plan.disk_base + std::uint64_t{file_block} * stride;
      op.buffer = buf;
      op.length = static_cast<std::uint32_t>(stride);
      if (write) {
        if (direct == nullptr) gather(host, c.src.value(), buf);
        checksums[k] = block_checksum(std::span<const std::byte>(buf, block_bytes), c.tag);
        // From here until record(), the block reads back as a miss, whatever reaches the disk.
        sums.invalidate(c.dst);
      }
    }
    io.execute(std::span<IoOp>(ops.data(), n));
    for (std::size_t k = 0; k < n; ++k) {
      const BlockCopy& c = request.blocks[first + k];
      const std::uint32_t file_block = write ? c.dst.value() : c.src.value();
      absl::Status s = io_status(ops[k], file_block, &counts->io_errors);
      if (s.ok()) {
        const std::byte* buf = ops[k].buffer;
        if (write) {
          sums.record(c.dst, c.tag, checksums[k]);
        } else {
          s = sums.verify(c.src, c.tag, block_checksum(std::span<const std::byte>(buf, block_bytes), c.tag));
          if (!s.ok()) {
            ++counts->checksum_failures;
          } else if (buf != direct_buffer(host, c.dst.value(), stride)) {
            scatter(buf, host, c.dst.value());
          }
        }
      }
      statuses[first + k] = std::move(s);
    }
  }
}

}  // namespace kvbm::detail
