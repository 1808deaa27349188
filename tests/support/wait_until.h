// Polling for tests that wait on another thread or process: `done` is checked every 10 ms until it holds
// or `timeout` passes.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace kvbm::testing {

// True once `done` holds; false when `timeout` passed first.
inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace kvbm::testing
