#include "kvbm/events/nats_publisher.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <nats/nats.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <utility>

#include "kvbm/core/mutex.h"

namespace kvbm {
namespace {

std::string nats_error(natsStatus s) {
  std::string text = natsStatus_GetText(s);
  // nats_GetLastError() has the detail (which server, which syscall) for the calling thread.
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (detail != nullptr && detail[0] != '\0' && text != detail) absl::StrAppend(&text, " (", std::string(detail), ")");
  return text;
}

absl::Status from_nats(natsStatus s, const std::string& what) {
  if (s == NATS_OK) return absl::OkStatus();
  const std::string message = absl::StrCat(what, ": ", nats_error(s));
  switch (s) {
    case NATS_INSUFFICIENT_BUFFER:
      return absl::ResourceExhaustedError(message);
    case NATS_MAX_PAYLOAD:
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
      return absl::InvalidArgumentError(message);
    case NATS_TIMEOUT:
      return absl::DeadlineExceededError(message);
    default:
      return absl::UnavailableError(message);
  }
}

}  // namespace

absl::Status validate_nats_subject(std::string_view subject) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("nats publisher: subject \"", std::string(subject), "\" ", std::string(why)));
  };
  if (subject.empty()) return absl::InvalidArgumentError("nats publisher: subject must be non-empty");
  for (char c : subject) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      return bad("must not contain whitespace");
    }
    if (c == '*' || c == '>') return bad("must not contain wildcards ('*', '>')");
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return bad("must not contain control characters");
  }
  if (subject.front() == '.' || subject.back() == '.' || subject.find("..") != std::string_view::npos) {
    return bad("must be dot-separated non-empty tokens");
  }
  return absl::OkStatus();
}

// Lives at least as long as the connection: libnats calls its callbacks on its own thread, up to and
// including the closed callback, which the destructor waits for.
struct NatsPublisher::Impl {
  natsOptions* opts = nullptr;
  natsConnection* conn = nullptr;
  std::chrono::milliseconds close_timeout{0};

  std::atomic<std::uint64_t> published{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> published_bytes{0};
  std::atomic<std::uint64_t> disconnects{0};
  std::atomic<std::uint64_t> reconnects{0};

  Mutex mu;
  std::condition_variable closed_cv;  // waits on mu.native()
  bool closed ABSL_GUARDED_BY(mu) = false;

  static void on_disconnected(natsConnection*, void* self) {
    static_cast<Impl*>(self)->disconnects.fetch_add(1, std::memory_order_relaxed);
  }
  static void on_reconnected(natsConnection*, void* self) {
    static_cast<Impl*>(self)->reconnects.fetch_add(1, std::memory_order_relaxed);
  }
  static void on_closed(natsConnection*, void* self) {
    auto* impl = static_cast<Impl*>(self);
    MutexLock lock(&impl->mu);
    impl->closed = true;
    impl->closed_cv.notify_all();
  }

  // Returns whether the closed callback ran within `timeout`.
  bool wait_closed(std::chrono::milliseconds timeout) {
    MutexLock lock(&mu);
    std::unique_lock<std::mutex> native(mu.native(), std::adopt_lock);
    const bool ok = closed_cv.wait_for(native, timeout, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return closed; });
    native.release();
    return ok;
  }
};

absl::StatusOr<std::unique_ptr<NatsPublisher>> NatsPublisher::create(NatsPublisherOptions options) {
  if (options.servers.empty()) return absl::InvalidArgumentError("nats publisher: servers must be non-empty");
  for (const std::string& url : options.servers) {
    if (url.empty()) return absl::InvalidArgumentError("nats publisher: servers must not contain an empty URL");
  }
  std::string subject =
      options.subject.empty() ? absl::StrCat("kvbm.events.", options.worker_id) : std::move(options.subject);
  if (absl::Status s = validate_nats_subject(subject); !s.ok()) return s;
  if (options.connect_timeout.count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("nats publisher: connect_timeout must be > 0 ms, got ", options.connect_timeout.count()));
  }
  if (options.reconnect_wait.count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("nats publisher: reconnect_wait must be > 0 ms, got ", options.reconnect_wait.count()));
  }
  if (options.reconnect_buffer_bytes == 0 || options.reconnect_buffer_bytes > static_cast<std::size_t>(INT_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat("nats publisher: reconnect_buffer_bytes must be in [1, 2^31), got ",
                                                   options.reconnect_buffer_bytes));
  }

  auto impl = std::make_unique<Impl>();
  impl->close_timeout = options.close_timeout;
  const std::string servers_text = absl::StrJoin(options.servers, ",");
  std::vector<const char*> urls;
  urls.reserve(options.servers.size());
  for (const std::string& url : options.servers) urls.push_back(url.c_str());

  natsStatus s = natsOptions_Create(&impl->opts);
  if (s == NATS_OK) s = natsOptions_SetServers(impl->opts, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK) s = natsOptions_SetNoRandomize(impl->opts, true);
  if (s == NATS_OK) s = natsOptions_SetTimeout(impl->opts, options.connect_timeout.count());
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(impl->opts, true);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(impl->opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(impl->opts, options.reconnect_wait.count());
  if (s == NATS_OK) s = natsOptions_SetReconnectBufSize(impl->opts, static_cast<int>(options.reconnect_buffer_bytes));
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(impl->opts, &Impl::on_disconnected, impl.get());
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(impl->opts, &Impl::on_reconnected, impl.get());
  if (s == NATS_OK) s = natsOptions_SetClosedCB(impl->opts, &Impl::on_closed, impl.get());
  if (s == NATS_OK && options.connect_lazily) {
    s = natsOptions_SetRetryOnFailedConnect(impl->opts, true, &Impl::on_reconnected, impl.get());
  }
  if (s != NATS_OK) {
    absl::Status status = from_nats(s, "nats publisher: options");
    natsOptions_Destroy(impl->opts);
    return status;
  }

  s = natsConnection_Connect(&impl->conn, impl->opts);
  if (s != NATS_OK && !(options.connect_lazily && s == NATS_NOT_YET_CONNECTED)) {
    const std::string detail = nats_error(s);
    natsConnection_Destroy(impl->conn);  // null when the connect failed; accepted
    natsOptions_Destroy(impl->opts);
    return absl::UnavailableError(absl::StrCat("nats publisher: cannot connect to ", servers_text, ": ", detail));
  }
  return std::unique_ptr<NatsPublisher>(new NatsPublisher(std::move(impl), std::move(subject)));
}

NatsPublisher::NatsPublisher(std::unique_ptr<Impl> impl, std::string subject)
    : impl_(std::move(impl)), subject_(std::move(subject)) {}

NatsPublisher::~NatsPublisher() {
  if (connected()) (void)natsConnection_FlushTimeout(impl_->conn, impl_->close_timeout.count());
  natsConnection_Close(impl_->conn);
  // The closed callback is the last one libnats delivers for this connection; until it ran, Impl must stay.
  if (!impl_->wait_closed(std::chrono::seconds(10))) {
    std::fprintf(stderr, "kvbm nats publisher: closed callback not delivered in 10 s; leaking its state\n");
    (void)impl_.release();
    return;
  }
  natsConnection_Destroy(impl_->conn);
  natsOptions_Destroy(impl_->opts);
}

absl::Status NatsPublisher::publish(const EventBatch& /*batch*/, std::string_view payload) {
  if (payload.size() > static_cast<std::size_t>(INT_MAX)) {
    impl_->failed.fetch_add(1, std::memory_order_relaxed);
    return absl::InvalidArgumentError(absl::StrCat("nats publisher: payload of ", payload.size(), " bytes is too big"));
  }
  const natsStatus s =
      natsConnection_Publish(impl_->conn, subject_.c_str(), payload.data(), static_cast<int>(payload.size()));
  if (s != NATS_OK) {
    impl_->failed.fetch_add(1, std::memory_order_relaxed);
    return from_nats(s, absl::StrCat("nats publisher: publish on ", subject_));
  }
  impl_->published.fetch_add(1, std::memory_order_relaxed);
  impl_->published_bytes.fetch_add(payload.size(), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status NatsPublisher::flush(std::chrono::milliseconds timeout) {
  return from_nats(natsConnection_FlushTimeout(impl_->conn, timeout.count()),
                   absl::StrCat("nats publisher: flush on ", subject_));
}

bool NatsPublisher::connected() const { return natsConnection_Status(impl_->conn) == NATS_CONN_STATUS_CONNECTED; }

NatsPublisherStats NatsPublisher::stats() const {
  return NatsPublisherStats{.published = impl_->published.load(std::memory_order_relaxed),
                            .failed = impl_->failed.load(std::memory_order_relaxed),
                            .disconnects = impl_->disconnects.load(std::memory_order_relaxed),
                            .reconnects = impl_->reconnects.load(std::memory_order_relaxed),
                            .published_bytes = impl_->published_bytes.load(std::memory_order_relaxed)};
}

}  // namespace kvbm
