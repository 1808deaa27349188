// io_uring backend: batched submissions through a small pool of rings.
//
// A ring is not thread-safe, so each execute() call takes one ring from a free list for its whole
// duration (creating a new one while fewer than kMaxRings exist, otherwise waiting for one) and gives it
// back at the end. Within a call up to queue_depth ops are in flight at once; an op that comes back short
// is resubmitted for its remainder, exactly like the pread/pwrite loop, until it is complete, hits end of
// file (0) or fails — so a result below the length always means EOF or an error.
#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <liburing.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include "kvbm/transfer/io_backend.h"

namespace kvbm {
namespace {

constexpr std::uint32_t kMaxQueueDepth = 4096;

struct Ring {
  io_uring ring{};
  bool initialized = false;
  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring() {
    if (initialized) io_uring_queue_exit(&ring);
  }
};

absl::StatusOr<std::unique_ptr<Ring>> make_ring(std::uint32_t queue_depth) {
  auto ring = std::make_unique<Ring>();
  const int rc = io_uring_queue_init(queue_depth, &ring->ring, 0);
  if (rc < 0) {
    return absl::UnavailableError(
        absl::StrCat("io_uring: cannot set up a ring of depth ", queue_depth, ": ", std::strerror(-rc)));
  }
  ring->initialized = true;
  return ring;
}

class UringIoBackend final : public IoBackend {
 public:
  UringIoBackend(std::uint32_t queue_depth, std::unique_ptr<Ring> first)
      : queue_depth_(queue_depth), max_rings_(std::max(4U, std::thread::hardware_concurrency())) {
    MutexLock lock(&mu_);
    free_.push_back(std::move(first));
    num_rings_ = 1;
  }

  std::string_view name() const override { return "io_uring"; }

  void execute(std::span<IoOp> ops) override {
    if (ops.empty()) return;
    std::unique_ptr<Ring> ring = acquire();
    const bool healthy = run(ring->ring, ops);
    release(std::move(ring), healthy);
  }

 private:
  std::unique_ptr<Ring> acquire() {
    {
      MutexLock lock(&mu_);
      for (;;) {
        if (!free_.empty()) {
          std::unique_ptr<Ring> ring = std::move(free_.back());
          free_.pop_back();
          return ring;
        }
        if (num_rings_ < max_rings_) {
          ++num_rings_;
          break;
        }
        wait_for_ring();
      }
    }
    // Created outside the lock: ring setup is a syscall plus mmaps.
    absl::StatusOr<std::unique_ptr<Ring>> ring = make_ring(queue_depth_);
    if (ring.ok()) return *std::move(ring);
    // Out of rings (e.g. memlock limit): wait for one of the existing ones instead.
    MutexLock lock(&mu_);
    --num_rings_;
    while (free_.empty()) wait_for_ring();
    std::unique_ptr<Ring> reused = std::move(free_.back());
    free_.pop_back();
    return reused;
  }

  void wait_for_ring() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::unique_lock<std::mutex> native(mu_.native(), std::adopt_lock);
    ring_freed_.wait(native);
    native.release();
  }

  void release(std::unique_ptr<Ring> ring, bool healthy) {
    {
      MutexLock lock(&mu_);
      if (healthy) {
        free_.push_back(std::move(ring));
      } else {
        --num_rings_;
      }
    }
    ring_freed_.notify_one();
    // A broken ring (if any) is destroyed here, outside the lock.
  }

  // Runs every op to completion on `ring`. Returns false when the ring must not be reused: submission
  // failed outright, so SQEs may be left in its queue.
  bool run(io_uring& ring, std::span<IoOp> ops) {
    std::vector<std::uint64_t> done(ops.size(), 0);
    std::vector<bool> finished(ops.size(), false);
    std::deque<std::size_t> pending;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (ops[i].length == 0) {
        ops[i].result = 0;
        finished[i] = true;
      } else {
        pending.push_back(i);
      }
    }
    std::uint32_t in_flight = 0;
    while (!pending.empty() || in_flight > 0) {
      while (!pending.empty() && in_flight < queue_depth_) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        if (sqe == nullptr) break;
        const std::size_t i = pending.front();
        pending.pop_front();
        IoOp& op = ops[i];
        const std::uint64_t offset = op.offset + done[i];
        const auto remaining = static_cast<unsigned>(op.length - done[i]);
        if (op.kind == IoOp::Kind::kRead) {
          io_uring_prep_read(sqe, op.fd, op.buffer + done[i], remaining, offset);
        } else {
          io_uring_prep_write(sqe, op.fd, op.buffer + done[i], remaining, offset);
        }
        io_uring_sqe_set_data64(sqe, i);
        ++in_flight;
      }
      const int submitted = io_uring_submit_and_wait(&ring, 1);
      if (submitted < 0 && submitted != -EINTR && submitted != -EAGAIN && submitted != -EBUSY) {
        fail_all(ops, done, finished, submitted);
        return false;
      }
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0;
      unsigned reaped = 0;
      io_uring_for_each_cqe(&ring, head, cqe) {
        ++reaped;
        const auto i = static_cast<std::size_t>(io_uring_cqe_get_data64(cqe));
        if (complete(ops[i], done[i], cqe->res)) {
          finished[i] = true;
        } else {
          pending.push_back(i);
        }
      }
      io_uring_cq_advance(&ring, reaped);
      in_flight -= reaped;
    }
    return true;
  }

  // Applies one completion to `op`. Returns true when the op is finished (result set), false when its
  // remainder must be submitted again.
  static bool complete(IoOp& op, std::uint64_t& done, int res) {
    if (res == -EINTR || res == -EAGAIN) return false;
    if (res < 0) {
      // As in the pread loop: bytes already moved are reported, the error only when nothing moved.
      op.result = done == 0 ? res : static_cast<std::int64_t>(done);
      return true;
    }
    done += static_cast<std::uint64_t>(res);
    if (res > 0 && done < op.length) return false;
    op.result = static_cast<std::int64_t>(done);
    return true;
  }

  // The ring is unusable: every op not yet finished fails with `error` (or reports its partial bytes).
  static void fail_all(std::span<IoOp> ops, const std::vector<std::uint64_t>& done, const std::vector<bool>& finished,
                       int error) {
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (!finished[i]) ops[i].result = done[i] == 0 ? error : static_cast<std::int64_t>(done[i]);
    }
  }

  const std::uint32_t queue_depth_;
  const std::uint32_t max_rings_;
  Mutex mu_;
  std::condition_variable ring_freed_;
  std::vector<std::unique_ptr<Ring>> free_ ABSL_GUARDED_BY(mu_);
  std::uint32_t num_rings_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<IoBackend>> make_uring_io_backend(std::uint32_t queue_depth) {
  if (queue_depth == 0 || queue_depth > kMaxQueueDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("io_uring queue_depth must be in [1, ", kMaxQueueDepth, "], got ", queue_depth));
  }
  absl::StatusOr<std::unique_ptr<Ring>> first = make_ring(queue_depth);
  if (!first.ok()) return first.status();
  return std::make_unique<UringIoBackend>(queue_depth, *std::move(first));
}

}  // namespace kvbm
