#include "kvbm/events/zmq_publisher.h"

#include <absl/status/status.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <netdb.h>
#include <sys/socket.h>

#include <array>
#include <vector>
#include <zmq_addon.hpp>

#include "kvbm/events/zmq_wire.h"

// ThreadSanitizer: libzmq is not instrumented. It hands message buffers between the caller's thread and
// its I/O thread through lock-free queues TSan cannot see, so every received message would be reported
// as a race with the recv() that filled it. Ignore what libzmq's own calls do (its recv/send/memcpy);
// kvbm's accesses stay checked. Defined here because every binary that uses ZMQ through kvbm links this
// object (the subscriber uses zmq_offset_endpoint). A binary may define only one of these.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
extern "C" const char* __tsan_default_suppressions() { return "called_from_lib:libzmq.so\n"; }
#endif
#endif

namespace kvbm {

bool zmq_endpoint_binds(std::string_view endpoint) {
  return endpoint.find('*') != std::string_view::npos || endpoint.find("::") != std::string_view::npos ||
         endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://");
}

absl::StatusOr<std::string> zmq_offset_endpoint(std::string_view endpoint, std::optional<std::int64_t> rank_in,
                                                std::string_view field) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("zmq: ", std::string(field), " \"", std::string(endpoint), "\": ", std::string(why)));
  };
  if (rank_in && *rank_in < 0) return bad(absl::StrCat("data-parallel rank must be >= 0, got ", *rank_in));
  const std::int64_t rank = rank_in.value_or(0);
  if (endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://")) {
    const std::size_t scheme = endpoint.find("://") + 3;
    if (endpoint.size() == scheme) return bad("expected a path or name after the scheme");
    if (!rank_in) return std::string(endpoint);
    // As vLLM: an inproc name gets the rank as a suffix; an ipc path has no port to offset, and leaving it
    // unchanged would have every rank bind the same path.
    if (endpoint.starts_with("inproc://")) return absl::StrCat(std::string(endpoint), "_dp", rank);
    return bad(absl::StrCat("an ipc:// endpoint cannot take a data-parallel rank (", rank,
                            "): every rank would bind the same path; use tcp:// (port + rank) or inproc://"));
  }
  if (!endpoint.starts_with("tcp://")) return bad("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME");
  const std::string_view rest = endpoint.substr(6);
  const std::size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad("expected tcp://HOST:PORT");
  const std::string_view host = rest.substr(0, colon);
  const std::string_view port = rest.substr(colon + 1);
  if (port == "*") return std::string(endpoint);  // ephemeral: nothing to offset
  std::uint32_t value = 0;
  if (!absl::SimpleAtoi(std::string(port), &value) || value > 65535)
    return bad("port must be a number in [0, 65535] or *");
  const std::int64_t offset = static_cast<std::int64_t>(value) + rank;
  if (offset > 65535) return bad(absl::StrCat("port ", value, " + data-parallel rank ", rank, " exceeds 65535"));
  return absl::StrCat("tcp://", std::string(host), ":", offset);
}

namespace {

// libzmq accepts a connect to a host that can never be reached (tcp://999.0.0.1:1) and keeps retrying in
// the background: every batch would then be "sent" to nowhere. Resolve the host once, up front.
absl::Status check_connect_host(std::string_view endpoint) {
  if (!endpoint.starts_with("tcp://")) return absl::OkStatus();
  std::string_view rest = endpoint.substr(6);
  if (const std::size_t semi = rest.find(';'); semi != std::string_view::npos) rest = rest.substr(semi + 1);
  const std::size_t colon = rest.rfind(':');
  std::string host(rest.substr(0, colon == std::string_view::npos ? rest.size() : colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (found != nullptr) freeaddrinfo(found);
  if (rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("zmq: endpoint \"", std::string(endpoint), "\": host \"", host,
                                                   "\" is not an address or a name that resolves (", gai_strerror(rc),
                                                   "); expected tcp://HOST:PORT"));
  }
  return absl::OkStatus();
}

absl::Status zmq_error(std::string_view what, std::string_view endpoint, const zmq::error_t& e) {
  const std::string msg = absl::StrCat("zmq: ", std::string(what), " \"", std::string(endpoint), "\": ", e.what());
  if (e.num() == EINVAL || e.num() == EPROTONOSUPPORT || e.num() == ENOCOMPATPROTO) {
    return absl::InvalidArgumentError(msg);
  }
  return absl::UnavailableError(msg);
}

std::string last_endpoint(const zmq::socket_t& s) { return s.get(zmq::sockopt::last_endpoint); }

}  // namespace

ZmqPublisher::ZmqPublisher(ZmqPublisherOptions options)
    : options_(std::move(options)), pub_(context_, zmq::socket_type::pub) {}

absl::StatusOr<std::unique_ptr<ZmqPublisher>> ZmqPublisher::create(ZmqPublisherOptions options) {
  if (options.hwm < 0) return absl::InvalidArgumentError(absl::StrCat("zmq: hwm must be >= 0, got ", options.hwm));
  if (options.replay_endpoint && options.replay_buffer_batches == 0) {
    return absl::InvalidArgumentError("zmq: replay_buffer_batches must be > 0 when replay_endpoint is set, got 0");
  }
  if (options.replay_poll_interval.count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("zmq: replay_poll_interval must be > 0 ms, got ", options.replay_poll_interval.count(), " ms"));
  }
  const std::optional<std::int64_t> rank = options.data_parallel_rank;
  auto endpoint = zmq_offset_endpoint(options.endpoint, rank, "endpoint");
  if (!endpoint.ok()) return endpoint.status();
  std::optional<std::string> replay;
  if (options.replay_endpoint) {
    auto r = zmq_offset_endpoint(*options.replay_endpoint, rank, "replay_endpoint");
    if (!r.ok()) return r.status();
    replay = *std::move(r);
  }

  if (!zmq_endpoint_binds(*endpoint)) {
    if (absl::Status s = check_connect_host(*endpoint); !s.ok()) return s;
  }

  std::unique_ptr<ZmqPublisher> p(new ZmqPublisher(std::move(options)));
  try {
    p->pub_.set(zmq::sockopt::sndhwm, p->options_.hwm);
    p->pub_.set(zmq::sockopt::linger, static_cast<int>(p->options_.linger.count()));
    // Queue only to peers that completed a connection. Without this, a connecting PUB keeps batches for
    // a peer that is not there, and closing lingers to deliver them: the session reconnects meanwhile,
    // and a peer that is not ZMTP (an HTTP server on that port) is taken for a ZMTP 1.0 one, whose
    // phantom subscription libzmq 4.3.4 pushes into the closing pipe and asserts on the EAGAIN
    // (zmtp_engine.cpp:463, process_routing_id_msg), aborting the process. A bound PUB behaves so already.
    p->pub_.set(zmq::sockopt::immediate, 1);
  } catch (const zmq::error_t& e) {
    return zmq_error("configuring PUB socket for", *endpoint, e);
  }
  try {
    if (zmq_endpoint_binds(*endpoint)) {
      p->pub_.bind(*endpoint);
      p->endpoint_ = last_endpoint(p->pub_);
    } else {
      p->pub_.connect(*endpoint);
      p->endpoint_ = *endpoint;
    }
  } catch (const zmq::error_t& e) {
    return zmq_error(zmq_endpoint_binds(*endpoint) ? "cannot bind endpoint" : "cannot connect endpoint", *endpoint, e);
  }
  if (replay) {
    try {
      p->router_.emplace(p->context_, zmq::socket_type::router);
      // Unlimited: a replay answer may be the whole buffer, and ROUTER drops what exceeds the HWM.
      p->router_->set(zmq::sockopt::sndhwm, 0);
      p->router_->set(zmq::sockopt::linger, 0);
      p->router_->bind(*replay);
      p->replay_endpoint_ = last_endpoint(*p->router_);
    } catch (const zmq::error_t& e) {
      return zmq_error("cannot bind replay_endpoint", *replay, e);
    }
    p->replay_thread_ = std::thread([raw = p.get()] { raw->serve_replay(); });
  }
  return p;
}

ZmqPublisher::~ZmqPublisher() {
  stop_.store(true, std::memory_order_relaxed);
  if (replay_thread_.joinable()) replay_thread_.join();
}

absl::Status ZmqPublisher::publish(const EventBatch& /*batch*/, std::string_view payload) {
  return publish_payload(payload);
}

absl::Status ZmqPublisher::publish_payload(std::string_view payload) {
  const std::uint64_t seq = next_seq_.load(std::memory_order_relaxed);
  const std::array<char, 8> seq_bytes = encode_zmq_seq(seq);
  try {
    // PUB never blocks: beyond the HWM (or with no subscriber) the message is dropped, as in vLLM.
    pub_.send(zmq::buffer(options_.topic), zmq::send_flags::sndmore);
    pub_.send(zmq::buffer(seq_bytes), zmq::send_flags::sndmore);
    pub_.send(zmq::buffer(payload.data(), payload.size()), zmq::send_flags::none);
  } catch (const zmq::error_t& e) {
    return absl::UnavailableError(absl::StrCat("zmq: publishing batch ", seq, " on \"", endpoint_, "\": ", e.what()));
  }
  // The sequence number is consumed even if sending failed: subscribers see a gap and can replay it.
  next_seq_.store(seq + 1, std::memory_order_relaxed);
  if (router_) {
    auto copy = std::make_shared<const std::string>(payload);
    MutexLock lock(&mu_);
    buffer_.emplace_back(seq, std::move(copy));
    while (buffer_.size() > options_.replay_buffer_batches) buffer_.pop_front();
  }
  return absl::OkStatus();
}

void ZmqPublisher::serve_replay() {
  zmq::socket_t& router = *router_;
  while (!stop_.load(std::memory_order_relaxed)) {
    try {
      zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, options_.replay_poll_interval) <= 0) continue;
      std::vector<zmq::message_t> request;
      if (!zmq::recv_multipart(router, std::back_inserter(request), zmq::recv_flags::dontwait)) continue;
      answer_replay(request);
    } catch (const zmq::error_t&) {
      // ETERM or an interrupted poll: the loop condition decides whether to go on.
    }
  }
}

void ZmqPublisher::answer_replay(std::vector<zmq::message_t>& request) {
  // [identity, b"", start_seq]; anything else is ignored (a ROUTER cannot answer a malformed peer).
  if (request.size() != 3 || request[1].size() != 0 || request[2].size() != 8) return;
  const std::uint64_t start = decode_zmq_seq(request[2].to_string_view());
  // Counted before answering: a client that has read the end marker must see its request counted.
  replay_requests_.fetch_add(1, std::memory_order_relaxed);
  std::vector<Buffered> answer;
  {
    MutexLock lock(&mu_);
    for (const Buffered& b : buffer_) {
      if (b.first >= start) answer.push_back(b);
    }
  }
  const std::string identity = request[0].to_string();
  for (const Buffered& b : answer) {
    const std::array<char, 8> seq = encode_zmq_seq(b.first);
    router_->send(zmq::buffer(identity), zmq::send_flags::sndmore);
    router_->send(zmq::const_buffer(nullptr, 0), zmq::send_flags::sndmore);
    router_->send(zmq::buffer(seq), zmq::send_flags::sndmore);
    router_->send(zmq::buffer(*b.second), zmq::send_flags::none);
  }
  const std::array<char, 8> end = encode_zmq_seq(kZmqReplayEndSeq);
  router_->send(zmq::buffer(identity), zmq::send_flags::sndmore);
  router_->send(zmq::const_buffer(nullptr, 0), zmq::send_flags::sndmore);
  router_->send(zmq::buffer(end), zmq::send_flags::sndmore);
  router_->send(zmq::const_buffer(nullptr, 0), zmq::send_flags::none);
}

}  // namespace kvbm
