// Mutex: a std::mutex carrying clang thread-safety capability annotations.
//
// Why not absl::Mutex: Debian's libabsl is built without ThreadSanitizer, so absl::Mutex's lock and
// unlock are invisible to TSan and every guarded access would be reported as a race. std::mutex goes
// through pthread, which TSan intercepts. The annotations are Abseil's, so `ABSL_GUARDED_BY(mu_)` and
// `-Wthread-safety` work exactly as with absl::Mutex.
#pragma once

#include <absl/base/thread_annotations.h>

#include <condition_variable>
#include <mutex>

namespace kvbm {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  [[nodiscard]] bool try_lock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }
  // For condition variables: the underlying mutex. The caller must already hold *this.
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

// Scoped lock of a kvbm::Mutex.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* mu_;
};

}  // namespace kvbm
