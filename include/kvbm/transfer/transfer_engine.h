// TransferEngine: copies batches of blocks between two tiers (DESIGN.md §4).
//
// One submit() moves many blocks from one (storage, layout) to another, whatever the two layouts, and
// returns a completion to wait on or poll. The path is chosen by the two storage kinds:
//   host ↔ host   memcpy (block-contiguous layouts copy whole blocks; others chunk by chunk), split over
//                 the engine's threads for large batches
//   host ↔ disk   IoBackend (io_uring by default): whole blocks through 4 KiB-aligned bounce buffers,
//                 one I/O per block, io_queue_depth in flight; checksummed on write, verified on read
//   host ↔ device CUDA streams and events; a gather/scatter kernel for many small LayerSeparate chunks
//                 (CUDA builds only; otherwise Unimplemented "built without CUDA")
// A failed or short transfer is never reported as success: every block has its own status, and the
// batch status is OK only when every block is. A failed block's destination bytes are unspecified (a
// disk read straight into a 4 KiB-aligned host block lands before it is verified).
//
// Thread-safety: submit() and run() may be called from any thread. Work runs on the engine's own
// threads, `threads` per medium: host copies (memcpy, CUDA) and disk I/O have separate queues and workers,
// so a host copy never waits behind a slow or hung disk. The destructor finishes every submitted batch and
// joins them (no detached threads).
// Both tiers' memory must outlive the batches that use it; the caller keeps the blocks it copies pinned
// (source) and owned (destination) until the completion is done.
#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "kvbm/core/mutex.h"
#include "kvbm/core/types.h"
#include "kvbm/storage/storage.h"
#include "kvbm/transfer/block_checksums.h"
#include "kvbm/transfer/io_backend.h"

namespace kvbm {

// One side of a transfer: a tier's memory, plus its checksums where the tier needs them (disk, remote).
struct TierView {
  const TierMemory* memory = nullptr;
  BlockChecksums* checksums = nullptr;
};

struct BlockCopy {
  BlockId src;
  BlockId dst;
  std::uint64_t tag = 0;  // bound into the destination's checksum / verified against the source's
};

struct TransferRequest {
  TierView src;
  TierView dst;
  std::vector<BlockCopy> blocks;
};

struct TransferResult {
  absl::Status status;               // OK iff every block is OK
  std::vector<absl::Status> blocks;  // one per BlockCopy, in order (empty when the request failed as a whole)
  std::uint64_t bytes = 0;           // bytes of the blocks that arrived intact
  // How block `i` fared: its own status, or the request's when the request failed as a whole.
  [[nodiscard]] const absl::Status& block(std::size_t i) const { return blocks.empty() ? status : blocks[i]; }
};

// Completion of one submitted batch, made and completed by the TransferEngine that took it. Thread-safe.
class TransferCompletion {
 public:
  [[nodiscard]] bool done() const;
  // Blocks until done.
  const TransferResult& wait() const;
  // Blocks until done or `deadline`, whichever comes first; whether it is done.
  [[nodiscard]] bool wait_until(std::chrono::steady_clock::time_point deadline) const;
  // The result if done, else nullopt (poll).
  [[nodiscard]] std::optional<TransferResult> poll() const;

 private:
  // Only the engine completes a batch (TransferEngine::Impl, a member of the friend, calls this).
  friend class TransferEngine;
  void complete(TransferResult result);

  mutable Mutex mu_;
  mutable std::condition_variable cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  TransferResult result_ ABSL_GUARDED_BY(mu_);
};

struct TransferStats {
  std::uint64_t batches = 0;
  std::uint64_t blocks_ok = 0;
  std::uint64_t blocks_failed = 0;
  std::uint64_t bytes = 0;
  std::uint64_t checksum_failures = 0;  // DataLoss on read-back
  std::uint64_t io_errors = 0;          // failed or short I/O
};

class TransferEngine {
 public:
  struct Options {
    std::uint32_t threads = 2;  // worker threads per medium (host copies, disk I/O), ≥ 1
    // Disk I/Os in flight, all workers together: the default backend's rings hold io_queue_depth / threads
    // each, and each worker keeps its ring full over many blocks per call. A custom backend sets its own.
    std::uint32_t io_queue_depth = 16;
    std::shared_ptr<IoBackend> io;  // null: make_default_io_backend()
  };
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TransferEngine>> create(Options options);
  ~TransferEngine();
  TransferEngine(const TransferEngine&) = delete;
  TransferEngine& operator=(const TransferEngine&) = delete;

  // Queues a batch. Errors that concern the whole request (unsupported storage pair, block id out of
  // range, models that differ) complete it at once with InvalidArgument / Unimplemented.
  [[nodiscard]] std::shared_ptr<TransferCompletion> submit(TransferRequest request);
  // Runs a batch on the calling thread and returns its result.
  [[nodiscard]] TransferResult run(const TransferRequest& request);
  // Whether batches from `src` to `dst` have a copy path that both sides suit (the request-level checks of
  // submit(), without blocks): for callers that validate a pair of tiers once, when they are built.
  [[nodiscard]] static absl::Status check_path(const TierView& src, const TierView& dst);

  [[nodiscard]] TransferStats stats() const;
  [[nodiscard]] const IoBackend& io() const { return *io_; }

 private:
  class Impl;
  explicit TransferEngine(std::unique_ptr<Impl> impl, std::shared_ptr<IoBackend> io);
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<IoBackend> io_;
};

}  // namespace kvbm
