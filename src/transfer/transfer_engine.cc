// TransferEngine: validation, the memcpy and disk paths, and the worker pool (DESIGN.md §4).
//
// A submitted batch is validated as a whole first; a request-level error completes it at once. A valid
// batch becomes one or more shards (disjoint ranges of its blocks) on the engine's queue: a large memcpy
// or disk batch is split so that every worker can take part. Each shard writes the statuses of its own
// blocks; the shard that finishes last assembles the result and completes the batch, so no worker ever
// waits for another.
#include "kvbm/transfer/transfer_engine.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "kvbm/layout/layout.h"
#include "kvbm/storage/disk_file.h"
#include "transfer/cuda_path.h"

namespace kvbm {

// ---------------------------------------------------------------------------------------------------------
// TransferCompletion

bool TransferCompletion::done() const {
  MutexLock lock(&mu_);
  return done_;
}

const TransferResult& TransferCompletion::wait() const {
  MutexLock lock(&mu_);
  // The condition variable needs the std::mutex underneath; the MutexLock keeps owning it.
  std::unique_lock<std::mutex> native(mu_.native(), std::adopt_lock);
  while (!done_) cv_.wait(native);
  native.release();
  return result_;  // immutable once done_
}

std::optional<TransferResult> TransferCompletion::poll() const {
  MutexLock lock(&mu_);
  if (!done_) return std::nullopt;
  return result_;
}

void TransferCompletion::complete(TransferResult result) {
  {
    MutexLock lock(&mu_);
    result_ = std::move(result);
    done_ = true;
  }
  cv_.notify_all();
}

namespace {

constexpr std::uint64_t kIoAlignment = DiskFile::kAlignment;
// A memcpy batch larger than this is split across the workers.
constexpr std::uint64_t kSplitBytes = 8ull << 20;
// Disk blocks handed to one IoBackend::execute call: many more than the ring keeps in flight, so that its
// sliding window stays full instead of draining after every few blocks (the bounce buffer is this big).
constexpr std::uint64_t kIoGroupBytes = 16ull << 20;

enum class Path : std::uint8_t { kMemcpy, kDiskWrite, kDiskRead, kCuda };

// What validation found out about a request: the path, and for the disk path where the blocks sit.
struct Plan {
  Path path = Path::kMemcpy;
  const DiskFile* disk = nullptr;
  std::uint64_t disk_base = 0;    // file offset of block 0
  std::uint64_t disk_stride = 0;  // file bytes per block (a multiple of kIoAlignment)
};

std::string side_name(const TierMemory& m) {
  return absl::StrCat(std::string(storage_kind_name(m.storage().kind())), " (", m.layout().name(), ")");
}

// The disk side of a host ↔ disk request must be block-contiguous, 4 KiB aligned, and a DiskFile.
absl::Status plan_disk(const TierMemory& disk_side, const TierView& disk_view, Plan* plan) {
  const auto* file = dynamic_cast<const DiskFile*>(&disk_side.storage());
  if (file == nullptr) {
    return absl::InvalidArgumentError("transfer: the disk side's storage must be a DiskFile");
  }
  const auto* layout = dynamic_cast<const FullyContiguousLayout*>(&disk_side.layout());
  if (layout == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("transfer: the disk side's layout must be block-contiguous ",
                                                   "(fully_contiguous), got ", disk_side.layout().name()));
  }
  const std::uint64_t base = layout->region_unchecked(0, 0, 0).offset;
  if (layout->block_stride() % kIoAlignment != 0 || base % kIoAlignment != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("transfer: the disk side's block stride (%d) and base offset (%d) must be multiples of %d "
                        "for direct I/O; create its layout with alignment %d",
                        layout->block_stride(), base, kIoAlignment, kIoAlignment));
  }
  if (layout->block_stride() > (1ull << 30)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("transfer: disk block stride %d is over the 1 GiB an I/O may move", layout->block_stride()));
  }
  if (disk_view.checksums == nullptr) {
    return absl::InvalidArgumentError("transfer: the disk side needs its BlockChecksums (TierView::checksums)");
  }
  plan->disk = file;
  plan->disk_base = file->region_offset(0) + base;
  plan->disk_stride = layout->block_stride();
  return absl::OkStatus();
}

absl::StatusOr<Plan> validate(const TransferRequest& request) {
  if (request.src.memory == nullptr || request.dst.memory == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "transfer: ", request.src.memory == nullptr ? "source" : "destination", " tier memory must not be null"));
  }
  const TierMemory& src = *request.src.memory;
  const TierMemory& dst = *request.dst.memory;
  const ModelConfig& sm = src.layout().model();
  const ModelConfig& dm = dst.layout().model();
  if (sm.num_layers != dm.num_layers || sm.outer_dim != dm.outer_dim || sm.bytes_per_chunk() != dm.bytes_per_chunk()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "transfer: source and destination block geometries differ: ", sm.to_string(), " vs ", dm.to_string()));
  }
  const std::uint32_t src_blocks = src.layout().num_blocks();
  const std::uint32_t dst_blocks = dst.layout().num_blocks();
  for (std::size_t i = 0; i < request.blocks.size(); ++i) {
    const BlockCopy& c = request.blocks[i];
    if (c.src.value() >= src_blocks) {
      return absl::InvalidArgumentError(absl::StrFormat("transfer: blocks[%d].src = %d is out of range (source has %d)",
                                                        i, c.src.value(), src_blocks));
    }
    if (c.dst.value() >= dst_blocks) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "transfer: blocks[%d].dst = %d is out of range (destination has %d)", i, c.dst.value(), dst_blocks));
    }
  }
  // Two copies into one destination block would race (and leave its checksum ambiguous).
  if (request.blocks.size() > 1) {
    std::vector<std::pair<std::uint32_t, std::size_t>> dsts;
    dsts.reserve(request.blocks.size());
    for (std::size_t i = 0; i < request.blocks.size(); ++i) dsts.emplace_back(request.blocks[i].dst.value(), i);
    std::sort(dsts.begin(), dsts.end());
    for (std::size_t i = 1; i < dsts.size(); ++i) {
      if (dsts[i].first == dsts[i - 1].first) {
        return absl::InvalidArgumentError(absl::StrFormat("transfer: blocks[%d].dst = %d repeats blocks[%d].dst",
                                                          dsts[i].second, dsts[i].first, dsts[i - 1].second));
      }
    }
  }

  Plan plan;
  const StorageKind sk = src.storage().kind();
  const StorageKind dk = dst.storage().kind();
  if (sk == StorageKind::kDevice || dk == StorageKind::kDevice) {
    if (!detail::cuda_path_available()) {
#ifdef KVBM_WITH_CUDA
      return absl::UnimplementedError(absl::StrCat("transfer: ", side_name(src), " -> ", side_name(dst),
                                                   " needs the CUDA path, but there is no CUDA device"));
#else
      return absl::UnimplementedError(absl::StrCat("transfer: ", side_name(src), " -> ", side_name(dst),
                                                   " needs the CUDA path: kvbm was built without CUDA"));
#endif
    }
    plan.path = Path::kCuda;
    return plan;
  }
  if (src.host_addressable() && dst.host_addressable()) {
    plan.path = Path::kMemcpy;
    return plan;
  }
  if (sk == StorageKind::kDisk && dk == StorageKind::kDisk) {
    return absl::UnimplementedError("transfer: disk -> disk is not supported; copy through a host tier");
  }
  if (src.host_addressable() && dk == StorageKind::kDisk) {
    plan.path = Path::kDiskWrite;
    if (absl::Status s = plan_disk(dst, request.dst, &plan); !s.ok()) return s;
    return plan;
  }
  if (sk == StorageKind::kDisk && dst.host_addressable()) {
    plan.path = Path::kDiskRead;
    if (absl::Status s = plan_disk(src, request.src, &plan); !s.ok()) return s;
    return plan;
  }
  return absl::UnimplementedError(
      absl::StrCat("transfer: no path from ", side_name(src), " to ", side_name(dst), " in this build"));
}

// A 4 KiB-aligned buffer that grows on demand and is reused across batches (one per worker).
class BounceBuffer {
 public:
  BounceBuffer() = default;
  ~BounceBuffer() { std::free(data_); }
  BounceBuffer(const BounceBuffer&) = delete;
  BounceBuffer& operator=(const BounceBuffer&) = delete;

  // At least `bytes` bytes, 4 KiB aligned; null when memory cannot be had.
  std::byte* get(std::uint64_t bytes) {
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

 private:
  std::byte* data_ = nullptr;
  std::uint64_t capacity_ = 0;
};

// What a worker keeps between tasks.
struct WorkerContext {
  BounceBuffer bounce;
};

// Tallies of one shard, added to the engine's stats when it ends.
struct ShardCounts {
  std::uint64_t checksum_failures = 0;
  std::uint64_t io_errors = 0;
};

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
        pending_(whole_ ? 1 : std::size_t{model_.num_layers} * model_.outer_dim) {}
  HostCopier(const HostCopier&) = delete;
  HostCopier& operator=(const HostCopier&) = delete;
  ~HostCopier() { flush(); }

  void copy(std::uint32_t sb, std::uint32_t db) {
    if (whole_) {
      add(0, dst_.chunk(db, 0, 0).data(), src_.chunk(sb, 0, 0).data(), model_.bytes_per_block());
      return;
    }
    const std::uint64_t chunk = model_.bytes_per_chunk();
    std::size_t k = 0;
    for (std::uint32_t layer = 0; layer < model_.num_layers; ++layer) {
      for (std::uint32_t outer = 0; outer < model_.outer_dim; ++outer) {
        add(k++, dst_.chunk(db, layer, outer).data(), src_.chunk(sb, layer, outer).data(), chunk);
      }
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

// Gathers a host block's chunks in canonical order [layer][outer] into `out` (bytes_per_block bytes).
void gather(const TierMemory& host, std::uint32_t block, std::byte* out) {
  const ModelConfig& model = host.layout().model();
  if (host.layout().block_is_contiguous()) {
    std::memcpy(out, host.chunk(block, 0, 0).data(), model.bytes_per_block());
    return;
  }
  const std::uint64_t chunk = model.bytes_per_chunk();
  for (std::uint32_t layer = 0; layer < model.num_layers; ++layer) {
    for (std::uint32_t outer = 0; outer < model.outer_dim; ++outer) {
      std::memcpy(out, host.chunk(block, layer, outer).data(), chunk);
      out += chunk;
    }
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
  for (std::uint32_t layer = 0; layer < model.num_layers; ++layer) {
    for (std::uint32_t outer = 0; outer < model.outer_dim; ++outer) {
      std::memcpy(host.chunk(block, layer, outer).data(), in, chunk);
      in += chunk;
    }
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

// Runs blocks [begin, end) of a host ↔ disk request: up to `group` blocks per IoBackend::execute call.
void run_disk(const TransferRequest& request, const Plan& plan, std::size_t begin, std::size_t end,
              std::uint64_t group_max, IoBackend& io, BounceBuffer& bounce, absl::Status* statuses,
              ShardCounts* counts) {
  const bool write = plan.path == Path::kDiskWrite;
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

void run_memcpy(const TransferRequest& request, std::size_t begin, std::size_t end, absl::Status* statuses) {
  HostCopier copier(*request.src.memory, *request.dst.memory);
  for (std::size_t i = begin; i < end; ++i) copier.copy(request.blocks[i].src.value(), request.blocks[i].dst.value());
  copier.flush();
  for (std::size_t i = begin; i < end; ++i) statuses[i] = absl::OkStatus();
}

// I/Os in flight in one execute() call of the default backend (one call per worker at a time).
std::uint32_t ring_depth(const TransferEngine::Options& options) { return options.io_queue_depth; }

TransferResult whole_request_failure(const TransferRequest& request, const absl::Status& status) {
  TransferResult result;
  result.status = status;
  result.blocks.assign(request.blocks.size(), status);
  return result;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// TransferEngine::Impl

class TransferEngine::Impl {
 public:
  Impl(const Options& options, std::shared_ptr<IoBackend> io) : options_(options), io_(std::move(io)) {
    workers_.reserve(options_.threads);
    for (std::uint32_t i = 0; i < options_.threads; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  ~Impl() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  std::shared_ptr<TransferCompletion> submit(TransferRequest request) {
    auto completion = std::make_shared<TransferCompletion>();
    absl::StatusOr<Plan> plan = validate(request);
    if (!plan.ok()) {
      completion->complete(finish_failed(request, plan.status()));
      return completion;
    }
    if (request.blocks.empty()) {
      batches_.fetch_add(1, std::memory_order_relaxed);
      completion->complete(TransferResult{});
      return completion;
    }
    auto batch = std::make_shared<Batch>();
    batch->request = std::move(request);
    batch->plan = *plan;
    batch->completion = completion;
    batch->statuses.resize(batch->request.blocks.size());

    const std::size_t n = batch->request.blocks.size();
    const std::uint64_t bytes = n * batch->request.src.memory->layout().model().bytes_per_block();
    std::size_t shards = 1;
    switch (batch->plan.path) {
      case Path::kMemcpy:
        if (bytes > kSplitBytes) shards = std::min<std::size_t>(options_.threads, n);
        break;
      case Path::kDiskRead:
      case Path::kDiskWrite:
        // Shards overlap one's I/O with another's gather, checksum or scatter.
        shards = std::min<std::size_t>(options_.threads, n);
        break;
      case Path::kCuda:
        break;
    }
    shards = std::max<std::size_t>(1, shards);
    batch->shards_left.store(static_cast<std::uint32_t>(shards), std::memory_order_relaxed);
    {
      MutexLock lock(&mu_);
      for (std::size_t s = 0; s < shards; ++s) {
        queue_.push_back(Shard{batch, n * s / shards, n * (s + 1) / shards});
      }
    }
    if (shards == 1) {
      cv_.notify_one();
    } else {
      cv_.notify_all();
    }
    return completion;
  }

  TransferResult run(const TransferRequest& request) {
    absl::StatusOr<Plan> plan = validate(request);
    if (!plan.ok()) return finish_failed(request, plan.status());
    if (plan->path == Path::kCuda) return finish_cuda(request);
    std::vector<absl::Status> statuses(request.blocks.size());
    WorkerContext context;
    ShardCounts counts = run_range(request, *plan, 0, request.blocks.size(), context, statuses.data());
    return finish(request, std::move(statuses), counts);
  }

  TransferStats stats() const {
    TransferStats s;
    s.batches = batches_.load(std::memory_order_relaxed);
    s.blocks_ok = blocks_ok_.load(std::memory_order_relaxed);
    s.blocks_failed = blocks_failed_.load(std::memory_order_relaxed);
    s.bytes = bytes_.load(std::memory_order_relaxed);
    s.checksum_failures = checksum_failures_.load(std::memory_order_relaxed);
    s.io_errors = io_errors_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  // A submitted batch, shared by its shards.
  struct Batch {
    TransferRequest request;
    Plan plan;
    std::shared_ptr<TransferCompletion> completion;
    std::vector<absl::Status> statuses;  // each shard writes only its own range
    std::atomic<std::uint32_t> shards_left{0};
    std::atomic<std::uint64_t> checksum_failures{0};
    std::atomic<std::uint64_t> io_errors{0};
  };
  struct Shard {
    std::shared_ptr<Batch> batch;
    std::size_t begin = 0;
    std::size_t end = 0;
  };

  void worker_loop() {
    WorkerContext context;
    for (;;) {
      Shard shard;
      {
        MutexLock lock(&mu_);
        std::unique_lock<std::mutex> native(mu_.native(), std::adopt_lock);
        while (queue_.empty() && !stopping_) cv_.wait(native);
        native.release();
        // Stopping drains the queue first: every submitted batch completes.
        if (queue_.empty()) return;
        shard = std::move(queue_.front());
        queue_.pop_front();
      }
      run_shard(shard, context);
    }
  }

  void run_shard(const Shard& shard, WorkerContext& context) {
    Batch& b = *shard.batch;
    if (b.plan.path == Path::kCuda) {
      b.completion->complete(finish_cuda(b.request));
      return;
    }
    const ShardCounts counts = run_range(b.request, b.plan, shard.begin, shard.end, context, b.statuses.data());
    b.checksum_failures.fetch_add(counts.checksum_failures, std::memory_order_relaxed);
    b.io_errors.fetch_add(counts.io_errors, std::memory_order_relaxed);
    // The last shard sees every other shard's statuses (acq_rel orders their writes before its reads).
    if (b.shards_left.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    const ShardCounts total{b.checksum_failures.load(std::memory_order_relaxed),
                            b.io_errors.load(std::memory_order_relaxed)};
    b.completion->complete(finish(b.request, std::move(b.statuses), total));
  }

  ShardCounts run_range(const TransferRequest& request, const Plan& plan, std::size_t begin, std::size_t end,
                        WorkerContext& context, absl::Status* statuses) {
    ShardCounts counts;
    switch (plan.path) {
      case Path::kMemcpy:
        run_memcpy(request, begin, end, statuses);
        break;
      case Path::kDiskRead:
      case Path::kDiskWrite:
        run_disk(request, plan, begin, end,
                 std::max<std::uint64_t>(ring_depth(options_), kIoGroupBytes / plan.disk_stride), *io_, context.bounce,
                 statuses, &counts);
        break;
      case Path::kCuda:
        break;  // never sharded: finish_cuda()
    }
    return counts;
  }

  TransferResult finish_cuda(const TransferRequest& request) {
    TransferResult result = detail::cuda_transfer(request);
    ShardCounts counts;
    for (const absl::Status& s : result.blocks) {
      if (!s.ok() && s.code() != absl::StatusCode::kDataLoss) ++counts.io_errors;
    }
    return finish(request, std::move(result.blocks), counts);
  }

  // Assembles a batch's result from its per-block statuses and adds it to the stats. A result the CUDA
  // path returned with the wrong number of statuses fails every block rather than guessing.
  TransferResult finish(const TransferRequest& request, std::vector<absl::Status> statuses, ShardCounts counts) {
    if (statuses.size() != request.blocks.size()) {
      return finish_failed(request, absl::InternalError(absl::StrFormat(
                                        "transfer: the copy path returned %d block statuses for %d blocks",
                                        statuses.size(), request.blocks.size())));
    }
    TransferResult result;
    result.blocks = std::move(statuses);
    const std::uint64_t block_bytes = request.src.memory->layout().model().bytes_per_block();
    std::size_t failed = 0;
    std::size_t first_failed = 0;
    for (std::size_t i = 0; i < result.blocks.size(); ++i) {
      if (result.blocks[i].ok()) {
        result.bytes += block_bytes;
      } else if (failed++ == 0) {
        first_failed = i;
      }
    }
    if (failed > 0) {
      const absl::Status& first = result.blocks[first_failed];
      result.status =
          absl::Status(first.code(), absl::StrFormat("%d of %d blocks failed; blocks[%d]: %s", failed,
                                                     result.blocks.size(), first_failed, std::string(first.message())));
    }
    batches_.fetch_add(1, std::memory_order_relaxed);
    blocks_ok_.fetch_add(result.blocks.size() - failed, std::memory_order_relaxed);
    blocks_failed_.fetch_add(failed, std::memory_order_relaxed);
    bytes_.fetch_add(result.bytes, std::memory_order_relaxed);
    checksum_failures_.fetch_add(counts.checksum_failures, std::memory_order_relaxed);
    io_errors_.fetch_add(counts.io_errors, std::memory_order_relaxed);
    return result;
  }

  TransferResult finish_failed(const TransferRequest& request, const absl::Status& status) {
    batches_.fetch_add(1, std::memory_order_relaxed);
    blocks_failed_.fetch_add(request.blocks.size(), std::memory_order_relaxed);
    return whole_request_failure(request, status);
  }

  const Options options_;
  // Shared with TransferEngine::io_, which is destroyed before impl_: this reference keeps the backend
  // alive until the workers are joined.
  const std::shared_ptr<IoBackend> io_;

  Mutex mu_;
  std::condition_variable cv_;  // waits on mu_.native()
  std::deque<Shard> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;

  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> blocks_ok_{0};
  std::atomic<std::uint64_t> blocks_failed_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<std::uint64_t> checksum_failures_{0};
  std::atomic<std::uint64_t> io_errors_{0};
};

// ---------------------------------------------------------------------------------------------------------
// TransferEngine

absl::StatusOr<std::unique_ptr<TransferEngine>> TransferEngine::create(Options options) {
  if (options.threads == 0) return absl::InvalidArgumentError("TransferEngine: threads must be >= 1, got 0");
  if (options.threads > 256) {
    return absl::InvalidArgumentError(absl::StrCat("TransferEngine: threads must be <= 256, got ", options.threads));
  }
  if (options.io_queue_depth == 0 || options.io_queue_depth > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("TransferEngine: io_queue_depth must be in [1, 4096], got ", options.io_queue_depth));
  }
  std::shared_ptr<IoBackend> io = options.io;
  if (io == nullptr) io = make_default_io_backend(ring_depth(options));
  auto impl = std::make_unique<Impl>(options, io);
  return std::unique_ptr<TransferEngine>(new TransferEngine(std::move(impl), std::move(io)));
}

TransferEngine::TransferEngine(std::unique_ptr<Impl> impl, std::shared_ptr<IoBackend> io)
    : impl_(std::move(impl)), io_(std::move(io)) {}

// Impl's destructor drains the queue and joins the workers.
TransferEngine::~TransferEngine() = default;

std::shared_ptr<TransferCompletion> TransferEngine::submit(TransferRequest request) {
  return impl_->submit(std::move(request));
}

TransferResult TransferEngine::run(const TransferRequest& request) { return impl_->run(request); }

TransferStats TransferEngine::stats() const { return impl_->stats(); }

}  // namespace kvbm
