// LatchedIoBackend: an IoBackend whose reads can be held, as a frozen file system holds them (fsfreeze):
// while closed, every execute() that contains a read blocks until open() is called; writes pass. It wraps
// the POSIX backend, so a held read, once let go, reads the real bytes. For tests of what a hung G3 disk
// must not stall (issue 24 item 1).
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>

#include "kvbm/transfer/io_backend.h"

namespace kvbm::testing {

class LatchedIoBackend final : public IoBackend {
 public:
  LatchedIoBackend() : inner_(make_posix_io_backend()) {}
  std::string_view name() const override { return "latched"; }

  void execute(std::span<IoOp> ops) override {
    bool reads = false;
    for (const IoOp& op : ops) reads = reads || op.kind == IoOp::Kind::kRead;
    if (reads) {
      std::unique_lock<std::mutex> lock(mu_);
      ++held_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return open_; });
      --held_;
    }
    inner_->execute(ops);
  }

  // From now on reads block.
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }
  // Lets every held read go, and later ones pass.
  void open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits until at least `n` calls are held.
  void wait_held(std::uint32_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return held_ >= n; });
  }

 private:
  std::unique_ptr<IoBackend> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  std::uint32_t held_ = 0;
};

}  // namespace kvbm::testing
