// cpp-httplib (Debian ships it as a shared library; this is the only kvbm source that includes it) throws
// and starts threads, so it stays here, behind MetricsServer, away from anything on the hot path. Its
// exceptions never leave: handlers do not throw, and a failed bind is reported as a Status.
#include "kvbm/metrics/metrics_server.h"

#include <absl/strings/str_cat.h>
#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace kvbm::metrics {

class MetricsServer::Impl {
 public:
  explicit Impl(const Registry* registry) : registry_(registry) {
    // Two workers: a scrape is one render; more threads would only cost memory.
    server_.new_task_queue = [] { return new httplib::ThreadPool(2); };
    // httplib's default sets SO_REUSEPORT, which would let a second server share the port silently: a port
    // in use must be an error. SO_REUSEADDR still allows a quick restart over TIME_WAIT connections.
    server_.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    server_.set_keep_alive_max_count(1);  // no idle keep-alive connection can hold up stop()
    server_.set_read_timeout(1, 0);
    server_.set_write_timeout(1, 0);
    server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(registry_->render(), "text/plain; version=0.0.4; charset=utf-8");
    });
  }

  ~Impl() { stop(); }

  // Port listened on, or the errno of the failure (negated).
  int bind(const std::string& host, std::uint16_t port) {
    errno = 0;
    if (port == 0) {
      const int p = server_.bind_to_any_port(host);
      return p > 0 ? p : -(errno != 0 ? errno : EADDRNOTAVAIL);
    }
    return server_.bind_to_port(host, port) ? port : -(errno != 0 ? errno : EADDRNOTAVAIL);
  }

  void run() {
    MutexLock lock(&stop_mu_);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() only works once the listen loop runs: wait for it (microseconds).
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }

  void stop() {
    MutexLock lock(&stop_mu_);
    if (!thread_.joinable()) return;
    server_.stop();
    thread_.join();
  }

 private:
  const Registry* registry_;
  httplib::Server server_;
  Mutex stop_mu_;
  std::thread thread_ ABSL_GUARDED_BY(stop_mu_);  // joinable while serving
};

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::start(const Registry* registry, const std::string& bind,
                                                                    std::uint16_t port) {
  auto impl = std::make_unique<Impl>(registry);
  const int bound = impl->bind(bind, port);
  if (bound < 0) {
    const int err = -bound;
    const std::string where = absl::StrCat(bind, ":", port);
    if (err == EADDRINUSE) {
      return absl::AlreadyExistsError(
          absl::StrCat("metrics: cannot listen on ", where, ": port ", port, " is already in use (metrics.port)"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("metrics: cannot listen on ", where, " (metrics.bind / metrics.port): ", std::strerror(err)));
  }
  impl->run();
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl), bind, static_cast<std::uint16_t>(bound)));
}

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl, std::string bind, std::uint16_t port)
    : impl_(std::move(impl)), bind_(std::move(bind)), port_(port) {}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::stop() { impl_->stop(); }

}  // namespace kvbm::metrics
