// MetricsServer: serves a Registry as Prometheus text over HTTP (cpp-httplib) on a background thread.
//
//   GET /metrics  → 200, Content-Type "text/plain; version=0.0.4; charset=utf-8", Registry::render()
//   anything else → 404
//
// Kept off the hot path: recording never touches the server; a scrape renders on one of the server's two
// worker threads. Connections are not kept alive and reads time out after a second, so stop() returns
// promptly (within about a second even while a client stalls) and joins every thread it started.
//
// Thread-safety: port() is safe from any thread; stop() may be called concurrently and repeatedly.
// The registry must outlive the server (or at least its stop()).
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "kvbm/core/mutex.h"
#include "kvbm/metrics/metrics.h"

namespace kvbm::metrics {

class MetricsServer {
 public:
  // Listens on `bind`:`port` (port 0: any free port, see port()). Errors: InvalidArgument for an address
  // that does not parse; AlreadyExists when the port is in use (or the address is not local), naming both.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<MetricsServer>> start(const Registry* registry,
                                                                            const std::string& bind,
                                                                            std::uint16_t port);
  ~MetricsServer();  // stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port actually listened on.
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] const std::string& bind_address() const { return bind_; }
  // Stops accepting, finishes the scrape in progress (if any) and joins the threads. Idempotent.
  void stop();

 private:
  class Impl;
  MetricsServer(std::unique_ptr<Impl> impl, std::string bind, std::uint16_t port);

  std::unique_ptr<Impl> impl_;
  const std::string bind_;
  const std::uint16_t port_;
};

}  // namespace kvbm::metrics
