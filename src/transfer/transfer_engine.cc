// TransferEngine: the batch lifecycle (DESIGN.md §4) — validate, shard, run on the workers, complete.
//
// A submitted batch is validated as a whole first (transfer_plan.h); a request-level error completes it at
// once. A valid batch becomes one or more shards (disjoint ranges of its blocks) on the worker pool of its
// medium (worker_pool.h; one for host copies, one for disk I/O): a large memcpy or disk batch is split so
// that every worker can take part. Each shard runs its plan's path (memcpy_path.h, disk_path.h,
// cuda_path.h) and writes the statuses of its own blocks; the shard that finishes last assembles the result
// and completes the batch, so no worker ever waits for another.
#include "kvbm/transfer/transfer_engine.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <utility>

#include "transfer/cuda_path.h"
#include "transfer/disk_path.h"
#include "transfer/memcpy_path.h"
#include "transfer/transfer_plan.h"
#include "transfer/worker_pool.h"

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

bool TransferCompletion::wait_until(std::chrono::steady_clock::time_point deadline) const {
  MutexLock lock(&mu_);
  std::unique_lock<std::mutex> native(mu_.native(), std::adopt_lock);
  while (!done_ && cv_.wait_until(native, deadline) != std::cv_status::timeout) {
  }
  const bool done = done_;
  native.release();
  return done;
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

namespace detail {

// A submitted batch, shared by its shards.
struct TransferBatch {
  TransferRequest request;
  TransferPlan plan;
  std::shared_ptr<TransferCompletion> completion;
  std::vector<absl::Status> statuses;  // each shard writes only its own range
  std::atomic<std::uint32_t> shards_left{0};
  std::atomic<std::uint64_t> checksum_failures{0};
  std::atomic<std::uint64_t> io_errors{0};
};

}  // namespace detail

namespace {

using detail::Shard;
using detail::TransferBatch;
using detail::TransferCounts;
using detail::TransferPath;
using detail::TransferPlan;
using detail::WorkerContext;

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
  Impl(const Options& options, std::shared_ptr<IoBackend> io)
      : options_(options),
        io_(std::move(io)),
        host_pool_(options_.threads, [this](const Shard& shard, WorkerContext& context) { run_shard(shard, context); }),
        disk_pool_(options_.threads,
                   [this](const Shard& shard, WorkerContext& context) { run_shard(shard, context); }) {}

  std::shared_ptr<TransferCompletion> submit(TransferRequest request) {
    auto completion = std::make_shared<TransferCompletion>();
    absl::StatusOr<TransferPlan> plan = detail::plan_transfer(request);
    if (!plan.ok()) {
      completion->complete(finish_failed(request, plan.status()));
      return completion;
    }
    if (request.blocks.empty()) {
      batches_.fetch_add(1, std::memory_order_relaxed);
      completion->complete(TransferResult{});
      return completion;
    }
    auto batch = std::make_shared<TransferBatch>();
    batch->request = std::move(request);
    batch->plan = *plan;
    batch->completion = completion;
    batch->statuses.resize(batch->request.blocks.size());

    const std::size_t n = batch->request.blocks.size();
    const std::uint64_t bytes = n * batch->request.src.memory->layout().model().bytes_per_block();
    std::size_t shards = 1;
    switch (batch->plan.path) {
      case TransferPath::kMemcpy:
        if (bytes > detail::kMemcpySplitBytes) shards = std::min<std::size_t>(options_.threads, n);
        break;
      case TransferPath::kDiskRead:
      case TransferPath::kDiskWrite:
        // Shards overlap one's I/O with another's gather, checksum or scatter.
        shards = std::min<std::size_t>(options_.threads, n);
        break;
      case TransferPath::kCuda:
        break;
    }
    shards = std::max<std::size_t>(1, shards);
    batch->shards_left.store(static_cast<std::uint32_t>(shards), std::memory_order_relaxed);
    const bool disk = batch->plan.path == TransferPath::kDiskRead || batch->plan.path == TransferPath::kDiskWrite;
    (disk ? disk_pool_ : host_pool_).push(batch, n, shards);
    return completion;
  }

  TransferResult run(const TransferRequest& request) {
    absl::StatusOr<TransferPlan> plan = detail::plan_transfer(request);
    if (!plan.ok()) return finish_failed(request, plan.status());
    if (plan->path == TransferPath::kCuda) return finish_cuda(request);
    std::vector<absl::Status> statuses(request.blocks.size());
    WorkerContext context;
    TransferCounts counts = run_range(request, *plan, 0, request.blocks.size(), context, statuses.data());
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
  void run_shard(const Shard& shard, WorkerContext& context) {
    TransferBatch& b = *shard.batch;
    if (b.plan.path == TransferPath::kCuda) {
      b.completion->complete(finish_cuda(b.request));
      return;
    }
    const TransferCounts counts = run_range(b.request, b.plan, shard.begin, shard.end, context, b.statuses.data());
    b.checksum_failures.fetch_add(counts.checksum_failures, std::memory_order_relaxed);
    b.io_errors.fetch_add(counts.io_errors, std::memory_order_relaxed);
    // The last shard sees every other shard's statuses (acq_rel orders their writes before its reads).
    if (b.shards_left.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    const TransferCounts total{b.checksum_failures.load(std::memory_order_relaxed),
                               b.io_errors.load(std::memory_order_relaxed)};
    b.completion->complete(finish(b.request, std::move(b.statuses), total));
  }

  TransferCounts run_range(const TransferRequest& request, const TransferPlan& plan, std::size_t begin, std::size_t end,
                           WorkerContext& context, absl::Status* statuses) {
    TransferCounts counts;
    switch (plan.path) {
      case TransferPath::kMemcpy:
        detail::run_memcpy(request, begin, end, statuses);
        break;
      case TransferPath::kDiskRead:
      case TransferPath::kDiskWrite:
        detail::run_disk(request, plan, begin, end,
                         std::max<std::uint64_t>(ring_depth(options_), detail::kIoGroupBytes / plan.disk_stride), *io_,
                         context.bounce, statuses, &counts);
        break;
      case TransferPath::kCuda:
        break;  // never sharded: finish_cuda()
    }
    return counts;
  }

  TransferResult finish_cuda(const TransferRequest& request) {
    TransferResult result = detail::cuda_transfer(request);
    TransferCounts counts;
    for (const absl::Status& s : result.blocks) {
      if (!s.ok() && s.code() != absl::StatusCode::kDataLoss) ++counts.io_errors;
    }
    return finish(request, std::move(result.blocks), counts);
  }

  // Assembles a batch's result from its per-block statuses and adds it to the stats. A result the CUDA
  // path returned with the wrong number of statuses fails every block rather than guessing.
  TransferResult finish(const TransferRequest& request, std::vector<absl::Status> statuses, TransferCounts counts) {
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

  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> blocks_ok_{0};
  std::atomic<std::uint64_t> blocks_failed_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<std::uint64_t> checksum_failures_{0};
  std::atomic<std::uint64_t> io_errors_{0};

  // Last: their destructors run every queued shard (which uses the members above) and join the workers
  // before anything else is destroyed. One pool per medium, so that host copies (memcpy, CUDA) never
  // queue behind disk I/O: a hung disk holds only the disk pool's workers.
  detail::WorkerPool host_pool_;
  detail::WorkerPool disk_pool_;
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

absl::Status TransferEngine::check_path(const TierView& src, const TierView& dst) {
  return detail::plan_transfer(TransferRequest{src, dst, {}}).status();
}

}  // namespace kvbm
