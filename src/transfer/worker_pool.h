// WorkerPool: the TransferEngine's threads and the queue of shards they take their work from.
//
// A shard is a range [begin, end) of one submitted batch's blocks. The pool knows a batch only as a shared
// pointer to an opaque type; it hands each shard, with the context of the worker that took it, to the
// function it was built with. The queue is FIFO and unbounded: it holds what callers submitted, and they
// bound that (the offload layer caps bytes in flight per tier pair).
//
// Thread-safety: push() may be called from any thread. The destructor lets the workers run every queued
// shard, then joins them (no detached threads, every submitted batch completes).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "kvbm/core/mutex.h"
#include "transfer/disk_path.h"

namespace kvbm::detail {

struct TransferBatch;  // a submitted batch: the engine's, opaque here

// What a worker keeps between shards.
struct WorkerContext {
  BounceBuffer bounce;
};

struct Shard {
  std::shared_ptr<TransferBatch> batch;
  std::size_t begin = 0;
  std::size_t end = 0;
};

class WorkerPool {
 public:
  // Called on a worker thread for every shard, with that worker's context.
  using RunShard = std::function<void(const Shard&, WorkerContext&)>;

  // Starts `threads` workers. REQUIRES: threads ≥ 1.
  WorkerPool(std::uint32_t threads, RunShard run);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `shards` shards of `batch` that split its blocks [0, blocks) into ranges of even size.
  // REQUIRES: 1 ≤ shards ≤ blocks.
  void push(const std::shared_ptr<TransferBatch>& batch, std::size_t blocks, std::size_t shards);

 private:
  void worker_loop();

  const RunShard run_;
  Mutex mu_;
  std::condition_variable cv_;  // waits on mu_.native()
  std::deque<Shard> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;  // last: started once everything above is initialised
};

}  // namespace kvbm::detail
