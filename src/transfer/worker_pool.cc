// WorkerPool: the TransferEngine's threads and their queue of shards (worker_pool.h).
#include "transfer/worker_pool.h"

#include <mutex>
#include <utility>

namespace kvbm::detail {

WorkerPool::WorkerPool(std::uint32_t threads, RunShard run) : run_(std::move(run)) {
  workers_.reserve(threads);
  for (std::uint32_t i = 0; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

WorkerPool::~WorkerPool() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void WorkerPool::push(const std::shared_ptr<TransferBatch>& batch, std::size_t blocks, std::size_t shards) {
  {
    MutexLock lock(&mu_);
    for (std::size_t s = 0; s < shards; ++s) {
      queue_.push_back(Shard{batch, blocks * s / shards, blocks * (s + 1) / shards});
    }
  }
  if (shards == 1) {
    cv_.notify_one();
  } else {
    cv_.notify_all();
  }
}

void WorkerPool::worker_loop() {
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
    run_(shard, context);
  }
}

}  // namespace kvbm::detail
