#include "kvbm/events/zmq_subscriber.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>

#include <array>
#include <vector>
#include <zmq_addon.hpp>

#include "kvbm/events/msgpack_codec.h"
#include "kvbm/events/zmq_publisher.h"
#include "kvbm/events/zmq_wire.h"

namespace kvbm {
namespace {

// A validated endpoint to connect to: tcp://*:PORT means this machine.
absl::StatusOr<std::string> connectable(std::string_view endpoint, std::string_view field) {
  auto checked = zmq_offset_endpoint(endpoint, std::nullopt, field);
  if (!checked.ok()) return checked.status();
  if (checked->starts_with("tcp://*:")) return absl::StrCat("tcp://127.0.0.1:", checked->substr(8));
  return checked;
}

absl::Status socket_error(std::string_view what, std::string_view endpoint, const zmq::error_t& e) {
  const std::string msg =
      absl::StrCat("zmq subscriber: ", std::string(what), " \"", std::string(endpoint), "\": ", e.what());
  if (e.num() == EINVAL || e.num() == EPROTONOSUPPORT) return absl::InvalidArgumentError(msg);
  return absl::UnavailableError(msg);
}

}  // namespace

ZmqSubscriber::ZmqSubscriber(ZmqSubscriberOptions options)
    : options_(std::move(options)), sub_(context_, zmq::socket_type::sub), expected_(options_.start_seq) {}

ZmqSubscriber::~ZmqSubscriber() = default;

absl::StatusOr<std::unique_ptr<ZmqSubscriber>> ZmqSubscriber::create(ZmqSubscriberOptions options) {
  if (options.rcvhwm < 0) {
    return absl::InvalidArgumentError(absl::StrCat("zmq subscriber: rcvhwm must be >= 0, got ", options.rcvhwm));
  }
  if (options.replay_timeout.count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("zmq subscriber: replay_timeout must be > 0 ms, got ", options.replay_timeout.count(), " ms"));
  }
  if (options.start_seq && *options.start_seq == kZmqReplayEndSeq) {
    return absl::InvalidArgumentError("zmq subscriber: start_seq must be < 2^64 - 1");
  }
  absl::StatusOr<std::string> endpoint = options.bind ? zmq_offset_endpoint(options.endpoint, std::nullopt, "endpoint")
                                                      : connectable(options.endpoint, "endpoint");
  if (!endpoint.ok()) return endpoint.status();
  std::string replay;
  if (options.replay_endpoint) {
    auto r = connectable(*options.replay_endpoint, "replay_endpoint");
    if (!r.ok()) return r.status();
    replay = *std::move(r);
  }
  std::unique_ptr<ZmqSubscriber> s(new ZmqSubscriber(std::move(options)));
  s->endpoint_ = *endpoint;
  s->replay_endpoint_ = replay;
  try {
    s->sub_.set(zmq::sockopt::rcvhwm, s->options_.rcvhwm);
    s->sub_.set(zmq::sockopt::linger, 0);
    s->sub_.set(zmq::sockopt::subscribe, s->options_.topic);
    if (s->options_.bind) {
      s->sub_.bind(s->endpoint_);
    } else {
      s->sub_.connect(s->endpoint_);
    }
  } catch (const zmq::error_t& e) {
    return socket_error(s->options_.bind ? "cannot bind endpoint" : "cannot connect endpoint", s->endpoint_, e);
  }
  if (!replay.empty()) {
    if (absl::Status st = s->connect_replay(); !st.ok()) return st;
  }
  return s;
}

// A fresh DEALER each time: after a timed-out request, a late answer on the old socket must not be
// mistaken for the answer to the next one.
absl::Status ZmqSubscriber::connect_replay() {
  try {
    replay_.reset();
    replay_.emplace(context_, zmq::socket_type::dealer);
    replay_->set(zmq::sockopt::linger, 0);
    replay_->set(zmq::sockopt::rcvhwm, 0);
    replay_->connect(replay_endpoint_);
  } catch (const zmq::error_t& e) {
    replay_.reset();
    return socket_error("cannot connect replay_endpoint", replay_endpoint_, e);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::pair<std::uint64_t, EventBatch>>> ZmqSubscriber::next(
    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!started_) {
    // Catch up at once with what the publisher buffered since start_seq; gaps later are found live.
    started_ = true;
    if (expected_ && replay_ && !replay_from(*expected_)) ++stats_.replay_failures;
  }
  while (pending_.empty()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    try {
      zmq::pollitem_t item{sub_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::max(left, std::chrono::milliseconds(0))) <= 0) {
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        continue;  // interrupted
      }
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(sub_, std::back_inserter(frames), zmq::recv_flags::dontwait)) continue;
      ++stats_.received;
      if (frames.size() != 3 || frames[1].size() != 8) {
        ++stats_.malformed;
        return absl::InvalidArgumentError(
            absl::StrCat("zmq subscriber: expected 3 frames [topic, seq (8 bytes), payload], got ", frames.size(),
                         frames.size() >= 2 ? absl::StrCat(" with a ", frames[1].size(), "-byte second frame") : ""));
      }
      on_live(decode_zmq_seq(frames[1].to_string_view()), frames[2].to_string_view());
    } catch (const zmq::error_t& e) {
      return absl::UnavailableError(absl::StrCat("zmq subscriber: receiving on \"", endpoint_, "\": ", e.what()));
    }
  }
  Pending p = std::move(pending_.front());
  pending_.pop_front();
  ++stats_.delivered;
  if (!p.second.ok()) {
    ++stats_.malformed;
    return absl::Status(p.second.status().code(),
                        absl::StrCat("batch ", p.first, ": ", std::string(p.second.status().message())));
  }
  return std::make_optional(std::make_pair(p.first, *std::move(p.second)));
}

void ZmqSubscriber::push_cleared(std::uint64_t seq) {
  EventBatch cleared;
  cleared.events.emplace_back(AllBlocksClearedEvent{});
  pending_.emplace_back(seq, std::move(cleared));
}

void ZmqSubscriber::note_lost(std::uint64_t count, std::uint64_t next_seq) {
  stats_.lost += count;
  if (options_.clear_on_loss) push_cleared(next_seq);
}

void ZmqSubscriber::on_live(std::uint64_t seq, std::string_view payload) {
  // One PUB connection delivers in order, so a live number not above the last live one is a new publisher
  // on the endpoint (a restart): what the old one held is gone, and its numbering starts again at 0.
  if (last_live_ && seq <= *last_live_) {
    ++stats_.restarts;
    push_cleared(seq);
    expected_ = 0;
  }
  last_live_ = seq;
  if (expected_ && seq < *expected_) return;  // already delivered (from a replay answer)
  if (expected_ && seq > *expected_) {
    ++stats_.gaps;
    if (replay_) {
      if (!replay_from(*expected_)) ++stats_.replay_failures;
    }
    if (seq < *expected_) return;  // the replay answer held it
  }
  if (expected_ && seq > *expected_) note_lost(seq - *expected_, seq);
  pending_.emplace_back(seq, decode_event_batch(payload));
  expected_ = seq + 1;
}

bool ZmqSubscriber::replay_from(std::uint64_t start) {
  try {
    const std::array<char, 8> start_bytes = encode_zmq_seq(start);
    replay_->send(zmq::const_buffer(nullptr, 0), zmq::send_flags::sndmore);
    replay_->send(zmq::buffer(start_bytes), zmq::send_flags::none);
    for (;;) {
      zmq::pollitem_t item{replay_->handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, options_.replay_timeout) <= 0) break;
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(*replay_, std::back_inserter(frames), zmq::recv_flags::dontwait)) continue;
      // [b"", seq, payload] as a DEALER sees the ROUTER's [identity, b"", seq, payload].
      if (frames.size() != 3 || frames[0].size() != 0 || frames[1].size() != 8) {
        ++stats_.malformed;
        continue;
      }
      const std::uint64_t seq = decode_zmq_seq(frames[1].to_string_view());
      if (seq == kZmqReplayEndSeq) return true;
      if (seq < *expected_) continue;
      if (seq > *expected_) note_lost(seq - *expected_, seq);  // no longer buffered by the publisher
      pending_.emplace_back(seq, decode_event_batch(frames[2].to_string_view()));
      ++stats_.recovered;
      expected_ = seq + 1;
    }
  } catch (const zmq::error_t&) {
    // Treated like a timeout below.
  }
  (void)connect_replay();  // drop whatever the old socket may still receive
  return false;
}

absl::Status ZmqSubscriber::run(const Callback& on_batch, std::chrono::milliseconds idle_timeout) {
  for (;;) {
    auto b = next(idle_timeout);
    if (!b.ok()) return b.status();
    if (!b->has_value()) {
      return absl::DeadlineExceededError(
          absl::StrCat("zmq subscriber: no batch within ", idle_timeout.count(), " ms on \"", endpoint_, "\""));
    }
    if (!on_batch((*b)->first, (*b)->second)) return absl::OkStatus();
  }
}

}  // namespace kvbm
