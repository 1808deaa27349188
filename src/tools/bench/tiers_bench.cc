// `kvbm bench tiers`: see tiers_bench.h.
#include "tools/bench/tiers_bench.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <thread>

#include "kvbm/core/model_config.h"
#include "kvbm/core/mutex.h"
#include "kvbm/layout/layout.h"
#include "kvbm/storage/disk_file.h"
#include "kvbm/storage/storage.h"
#include "kvbm/transfer/block_checksums.h"
#include "kvbm/transfer/io_backend.h"
#include "kvbm/transfer/transfer_engine.h"

namespace kvbm::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kLayers = 32;
constexpr std::uint32_t kProbeQueueDepth = 16;
// Bytes per submitted batch (and per probe execute() call): large enough that per-batch costs vanish.
constexpr std::uint64_t kBatchBytes = 64ull << 20;
// Host rows alternate this many slices of memcpy and of kvbm.
constexpr int kSlices = 4;
constexpr double kHostFcTarget = 0.8;
constexpr double kHostLsTarget = 0.6;
constexpr double kDiskTarget = 0.85;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double gbps(std::uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0;
}

// A block of `block_bytes` as 32 layers × K/V chunks of 16 tokens × 2 bytes.
absl::StatusOr<ModelConfig> model_for(std::uint64_t block_bytes) {
  constexpr std::uint64_t kPerInner = std::uint64_t{kLayers} * 2 * 16 * 2;
  if (block_bytes == 0 || block_bytes % kPerInner != 0 || block_bytes % DiskFile::kAlignment != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bench tiers: block size ", block_bytes, " must be a multiple of ", DiskFile::kAlignment));
  }
  ModelConfig m;
  m.num_layers = kLayers;
  m.outer_dim = 2;
  m.page_size = 16;
  m.dtype_bytes = 2;
  m.inner_dim = static_cast<std::uint32_t>(block_bytes / kPerInner);
  if (absl::Status s = m.validate(); !s.ok()) return s;
  return m;
}

std::uint64_t available_memory() {
  const long pages = sysconf(_SC_AVPHYS_PAGES);
  const long page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
}

std::uint64_t free_disk(const std::string& dir) {
  struct statvfs vfs {};
  if (statvfs(dir.c_str(), &vfs) != 0) return 0;
  return static_cast<std::uint64_t>(vfs.f_bavail) * (vfs.f_frsize != 0 ? vfs.f_frsize : vfs.f_bsize);
}

std::string default_dir() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp";
}

// Bytes moved in a measured time.
struct Sample {
  std::uint64_t bytes = 0;
  double seconds = 0;
  Sample& operator+=(const Sample& o) {
    bytes += o.bytes;
    seconds += o.seconds;
    return *this;
  }
  [[nodiscard]] double gbps() const { return bench::gbps(bytes, seconds); }
};

// memcpy of one large buffer, one thread, with memory from the same allocator as the tiers.
class MemcpyLimit {
 public:
  static absl::StatusOr<MemcpyLimit> create(std::uint64_t bytes) {
    auto a = SystemMemory::create({bytes});
    if (!a.ok()) return a.status();
    auto b = SystemMemory::create({bytes});
    if (!b.ok()) return b.status();
    MemcpyLimit limit(*std::move(a), *std::move(b), bytes);
    std::memset(limit.src_->host_region(0).data(), 0x5a, bytes);
    (void)limit.run(0);  // warm-up: one copy
    return limit;
  }

  // Copies the buffer over and over for about `seconds` (at least once).
  Sample run(double seconds) {
    std::byte* src = src_->host_region(0).data();
    std::byte* dst = dst_->host_region(0).data();
    std::uint64_t moved = 0;
    const Clock::time_point start = Clock::now();
    do {
      std::memcpy(dst, src, bytes_);
      moved += bytes_;
    } while (seconds_since(start) < seconds);
    return Sample{moved, seconds_since(start)};
  }

 private:
  MemcpyLimit(std::unique_ptr<SystemMemory> src, std::unique_ptr<SystemMemory> dst, std::uint64_t bytes)
      : src_(std::move(src)), dst_(std::move(dst)), bytes_(bytes) {}
  std::unique_ptr<SystemMemory> src_;
  std::unique_ptr<SystemMemory> dst_;
  std::uint64_t bytes_;
};

// The disk limit: sequential O_DIRECT writes or reads of the probe's own file, one block per I/O,
// kProbeQueueDepth in flight (one thread, one io_uring ring; POSIX where io_uring is unavailable).
class DiskProbe {
 public:
  static absl::StatusOr<std::unique_ptr<DiskProbe>> create(const std::string& dir, std::uint64_t bytes,
                                                           std::uint64_t block) {
    auto probe = std::unique_ptr<DiskProbe>(new DiskProbe(block));
    absl::StatusOr<std::unique_ptr<IoBackend>> io = make_uring_io_backend(probe->depth_);
    if (!io.ok()) io = make_posix_io_backend();
    probe->io_ = *std::move(io);
    DiskFile::Options options;
    options.directory = dir;
    options.name_prefix = "kvbm-bench-probe";
    auto file = DiskFile::create({bytes / block * block}, options);
    if (!file.ok()) return file.status();
    probe->file_ = *std::move(file);
    const std::uint64_t buffer_bytes = std::uint64_t{probe->threads_} * probe->depth_ * block;
    probe->buffers_.reset(static_cast<std::byte*>(std::aligned_alloc(DiskFile::kAlignment, buffer_bytes)));
    if (probe->buffers_ == nullptr) return absl::ResourceExhaustedError("bench tiers: cannot allocate probe buffers");
    std::memset(probe->buffers_.get(), 0xa5, buffer_bytes);
    const std::uint64_t blocks = probe->file_->file_bytes() / block;
    probe->per_call_ = std::clamp<std::uint64_t>(kBatchBytes / block / probe->threads_, probe->depth_, blocks);
    probe->spans_ = std::max<std::uint64_t>(1, blocks / probe->per_call_);
    // A file's first pass converts fallocated extents and is slower than later ones; the G3 tier gets the
    // same untimed first pass before it is measured.
    if (auto first = probe->run(IoOp::Kind::kWrite, 0, /*one_pass=*/true); !first.ok()) return first.status();
    return probe;
  }

  // I/Os for about `seconds`, continuing where the last call of the same kind stopped; with `one_pass`,
  // every block once.
  absl::StatusOr<Sample> run(IoOp::Kind kind, double seconds, bool one_pass = false) {
    std::atomic<std::uint64_t>& cursor = kind == IoOp::Kind::kWrite ? write_cursor_ : read_cursor_;
    const std::uint64_t first_span = cursor.load();
    std::atomic<std::uint64_t> moved{0};
    std::atomic<bool> failed{false};
    Mutex error_mu;
    absl::Status error;
    const Clock::time_point start = Clock::now();
    auto submitter = [&](std::uint32_t t) {
      std::vector<IoOp> ops(per_call_);
      std::byte* own = buffers_.get() + std::uint64_t{t} * depth_ * block_;
      while (!failed.load(std::memory_order_relaxed)) {
        std::uint64_t span = cursor.fetch_add(1, std::memory_order_relaxed);
        if (one_pass ? span - first_span >= spans_ : seconds_since(start) >= seconds) break;
        span %= spans_;
        for (std::uint64_t i = 0; i < per_call_; ++i) {
          IoOp& op = ops[i];
          op = IoOp{};
          op.kind = kind;
          op.fd = file_->fd();
          op.offset = file_->region_offset(0) + (span * per_call_ + i) * block_;
          op.buffer = own + (i % depth_) * block_;
          op.length = static_cast<std::uint32_t>(block_);
        }
        io_->execute(ops);
        for (const IoOp& op : ops) {
          if (op.result != static_cast<std::int64_t>(op.length)) {
            MutexLock lock(&error_mu);
            error = absl::InternalError(absl::StrFormat("bench tiers: disk probe %s at offset %d returned %d of %d",
                                                        kind == IoOp::Kind::kWrite ? "write" : "read", op.offset,
                                                        op.result, op.length));
            failed.store(true);
            return;
          }
        }
        moved.fetch_add(per_call_ * block_, std::memory_order_relaxed);
      }
    };
    std::vector<std::thread> workers;
    for (std::uint32_t t = 0; t < threads_; ++t) workers.emplace_back(submitter, t);
    for (std::thread& w : workers) w.join();
    const double elapsed = seconds_since(start);
    if (failed.load()) {
      MutexLock lock(&error_mu);
      return error;
    }
    return Sample{moved.load(), elapsed};
  }

 private:
  explicit DiskProbe(std::uint64_t block) : block_(block), threads_(1), depth_(kProbeQueueDepth) {}

  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  const std::uint64_t block_;
  const std::uint32_t threads_;
  const std::uint32_t depth_;  // I/Os in flight per submitting thread
  std::unique_ptr<IoBackend> io_;
  std::unique_ptr<DiskFile> file_;
  std::unique_ptr<std::byte, Free> buffers_;
  std::uint64_t per_call_ = 0;  // consecutive blocks per execute() call (one span)
  std::uint64_t spans_ = 0;
  std::atomic<std::uint64_t> write_cursor_{0};
  std::atomic<std::uint64_t> read_cursor_{0};
};

// One tier for the benchmark.
struct Tier {
  std::unique_ptr<Layout> layout;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<BlockChecksums> checksums;
  std::optional<TierMemory> memory;
  TierView view() { return TierView{&*memory, checksums.get()}; }
};

absl::StatusOr<Tier> make_tier(std::unique_ptr<Layout> layout, std::unique_ptr<Storage> storage) {
  Tier t;
  t.layout = std::move(layout);
  t.storage = std::move(storage);
  auto memory = TierMemory::bind(t.layout.get(), t.storage.get());
  if (!memory.ok()) return memory.status();
  t.memory = *memory;
  return t;
}

absl::StatusOr<Tier> host_tier(const ModelConfig& model, std::uint32_t blocks, bool layer_separate) {
  std::unique_ptr<Layout> layout;
  if (layer_separate) {
    auto l = LayerSeparateLayout::create(model, blocks, /*outer_contiguous=*/true);
    if (!l.ok()) return l.status();
    layout = *std::move(l);
  } else {
    auto l = FullyContiguousLayout::create(model, blocks, {.alignment = DiskFile::kAlignment});
    if (!l.ok()) return l.status();
    layout = *std::move(l);
  }
  auto storage = SystemMemory::for_layout(*layout, {});
  if (!storage.ok()) return storage.status();
  for (std::size_t i = 0; i < (*storage)->num_regions(); ++i) {
    std::span<std::byte> region = (*storage)->host_region(i);
    std::memset(region.data(), 0x3c, region.size());
  }
  return make_tier(std::move(layout), *std::move(storage));
}

absl::StatusOr<Tier> disk_tier(const ModelConfig& model, std::uint32_t blocks, const std::string& dir) {
  auto layout = FullyContiguousLayout::create(model, blocks, {.alignment = DiskFile::kAlignment});
  if (!layout.ok()) return layout.status();
  DiskFile::Options options;
  options.directory = dir;
  options.name_prefix = "kvbm-bench-g3";
  auto file = DiskFile::for_layout(**layout, options);
  if (!file.ok()) return file.status();
  auto tier = make_tier(*std::move(layout), *std::move(file));
  if (!tier.ok()) return tier.status();
  tier->checksums = std::make_unique<BlockChecksums>(blocks);
  return tier;
}

// Moves the working set src → dst (block i → block i, tag i) in batches, two batches in flight, for
// about `seconds` (or exactly once over every block with `one_pass`), continuing from *cursor. Fails on
// any block error.
absl::StatusOr<Sample> measure_engine(TransferEngine& engine, Tier& src, Tier& dst, std::uint32_t blocks,
                                      double seconds, std::uint64_t* cursor, bool one_pass = false) {
  const std::uint64_t block_bytes = src.layout->model().bytes_per_block();
  const std::uint32_t per_batch = static_cast<std::uint32_t>(
      std::clamp<std::uint64_t>(kBatchBytes / block_bytes, 1, std::max<std::uint32_t>(1, blocks / 2)));
  std::deque<std::shared_ptr<TransferCompletion>> in_flight;
  std::uint64_t moved = 0;
  std::uint64_t submitted = 0;
  absl::Status failure;
  auto reap = [&] {
    const TransferResult r = in_flight.front()->wait();
    if (!r.status.ok() && failure.ok()) failure = r.status;
    moved += r.bytes;
    in_flight.pop_front();
  };
  const Clock::time_point start = Clock::now();
  while (one_pass ? submitted < blocks : seconds_since(start) < seconds) {
    TransferRequest request{src.view(), dst.view(), {}};
    const std::uint64_t n = one_pass ? std::min<std::uint64_t>(per_batch, blocks - submitted) : per_batch;
    request.blocks.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto b = static_cast<std::uint32_t>(*cursor);
      request.blocks.push_back(BlockCopy{BlockId(b), BlockId(b), b});
      *cursor = (*cursor + 1) % blocks;
    }
    submitted += n;
    in_flight.push_back(engine.submit(std::move(request)));
    if (in_flight.size() >= 2) reap();
    if (!failure.ok()) break;
  }
  while (!in_flight.empty()) reap();
  const double elapsed = seconds_since(start);
  if (!failure.ok()) return failure;
  return Sample{moved, elapsed};
}

}  // namespace

absl::StatusOr<TiersReport> run_tiers_bench(const TiersOptions& options) {
  if (!(options.seconds > 0)) return absl::InvalidArgumentError("bench tiers: --seconds must be > 0");
  if (options.block_bytes.empty()) return absl::InvalidArgumentError("bench tiers: no block sizes");
  const Clock::time_point wall = Clock::now();
  TiersReport report;
  report.dir = options.dir.empty() ? default_dir() : options.dir;
  const std::uint64_t largest_block = *std::max_element(options.block_bytes.begin(), options.block_bytes.end());

  // Working set per tier: two host tiers must fit in a quarter of free memory each at most, and the
  // probe file plus the G3 file in the disk's free space with room to spare.
  std::uint64_t total = options.total_bytes;
  const std::uint64_t mem = available_memory();
  if (mem > 0) total = std::min(total, mem / 4);
  const std::uint64_t disk = free_disk(report.dir);
  if (disk == 0) {
    return absl::InvalidArgumentError(absl::StrCat("bench tiers: cannot use directory '", report.dir, "'"));
  }
  total = std::min(total, disk / 4);
  total = total / largest_block * largest_block;
  if (total < 4 * largest_block) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bench tiers: working set %d bytes is under 4 blocks of %d (memory %d free, disk %d free)",
                        total, largest_block, mem, disk));
  }
  report.total_bytes = total;

  auto memcpy_limit = MemcpyLimit::create(std::min<std::uint64_t>(total, 256ull << 20));
  if (!memcpy_limit.ok()) return memcpy_limit.status();
  auto engine = TransferEngine::create({});
  if (!engine.ok()) return engine.status();
  report.io_backend = std::string((*engine)->io().name());

  for (const std::uint64_t block : options.block_bytes) {
    auto model = model_for(block);
    if (!model.ok()) return model.status();
    auto probe = DiskProbe::create(report.dir, total, block);
    if (!probe.ok()) return probe.status();
    const auto blocks = static_cast<std::uint32_t>(total / block);
    for (const bool layer_separate : {false, true}) {
      const std::string layout_name = layer_separate ? "layer_separate" : "fully_contiguous";
      const double host_target = layer_separate ? kHostLsTarget : kHostFcTarget;
      auto g1 = host_tier(*model, blocks, layer_separate);
      if (!g1.ok()) return g1.status();
      auto g2 = host_tier(*model, blocks, layer_separate);
      if (!g2.ok()) return g2.status();
      auto g3 = disk_tier(*model, blocks, report.dir);
      if (!g3.ok()) return g3.status();
      report.direct_io = static_cast<const DiskFile&>(*g3->storage).direct_io();
      auto fail = [&](const char* path, const absl::Status& s) {
        return absl::Status(
            s.code(), absl::StrCat("bench tiers: ", path, " ", layout_name, " ", block, " B blocks: ", s.message()));
      };

      // Host rows: slices of memcpy and of kvbm alternate, so that the ratio compares figures taken under
      // the same conditions even when other load on the machine drifts during the run.
      struct HostStep {
        const char* path;
        Tier* src;
        Tier* dst;
      };
      for (const HostStep& step : {HostStep{"g1->g2", &*g1, &*g2}, HostStep{"g2->g1", &*g2, &*g1}}) {
        Sample limit;
        Sample kvbm;
        std::uint64_t cursor = 0;
        for (int slice = 0; slice < kSlices; ++slice) {
          limit += memcpy_limit->run(options.seconds / kSlices);
          auto s = measure_engine(**engine, *step.src, *step.dst, blocks, options.seconds / kSlices, &cursor);
          if (!s.ok()) return fail(step.path, s.status());
          kvbm += *s;
        }
        report.limits.memcpy_gbps = std::max(report.limits.memcpy_gbps, limit.gbps());
        report.rows.push_back(TiersRow{step.path, layout_name, block, kvbm.gbps(), limit.gbps(),
                                       kvbm.gbps() / limit.gbps(), host_target});
      }

      // Disk rows: an untimed first pass writes every G3 block (as the probe's file got one); then each
      // direction alternates slices of the probe and of kvbm, like the host rows.
      std::uint64_t cursor = 0;
      if (auto s = measure_engine(**engine, *g2, *g3, blocks, 0, &cursor, /*one_pass=*/true); !s.ok()) {
        return fail("g2->g3", s.status());
      }
      struct DiskStep {
        const char* path;
        Tier* src;
        Tier* dst;
        IoOp::Kind kind;
      };
      for (const DiskStep& step :
           {DiskStep{"g2->g3", &*g2, &*g3, IoOp::Kind::kWrite}, DiskStep{"g3->g2", &*g3, &*g2, IoOp::Kind::kRead}}) {
        Sample limit;
        Sample kvbm;
        cursor = 0;
        for (int slice = 0; slice < kSlices; ++slice) {
          auto p = (*probe)->run(step.kind, options.seconds / kSlices);
          if (!p.ok()) return p.status();
          limit += *p;
          auto s = measure_engine(**engine, *step.src, *step.dst, blocks, options.seconds / kSlices, &cursor);
          if (!s.ok()) return fail(step.path, s.status());
          kvbm += *s;
        }
        double& best = step.kind == IoOp::Kind::kWrite ? report.limits.disk_write_gbps : report.limits.disk_read_gbps;
        best = std::max(best, limit.gbps());
        report.rows.push_back(TiersRow{step.path, layout_name, block, kvbm.gbps(), limit.gbps(),
                                       kvbm.gbps() / limit.gbps(), kDiskTarget});
      }
    }
  }
  report.wall_seconds = seconds_since(wall);
  return report;
}

}  // namespace kvbm::bench
