// ZmqPublisher → ZmqSubscriber over tcp loopback: frames and sequence numbers, the replay protocol,
// a late joiner recovering exactly what it missed, and gap detection against a scripted publisher.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <thread>
#include <variant>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "kvbm/events/event_manager.h"
#include "kvbm/events/msgpack_codec.h"
#include "kvbm/events/zmq_publisher.h"
#include "kvbm/events/zmq_subscriber.h"
#include "kvbm/events/zmq_wire.h"

namespace kvbm {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

EventBatch batch_of(std::uint64_t tag) {
  EventBatch b;
  b.timestamp = 1000.0 + static_cast<double>(tag);
  BlockStoredEvent e;
  e.block_hashes = {tag, 0x8000000000000000ull + tag};
  e.token_ids = {1, 2, 3, 4, 5, 6, 7, 8};
  e.block_size = 4;
  e.medium = "GPU";
  b.events.push_back(e);
  return b;
}

std::unique_ptr<ZmqPublisher> make_publisher(bool replay, std::size_t buffer = 10000) {
  ZmqPublisherOptions o;
  o.endpoint = "tcp://127.0.0.1:*";
  if (replay) o.replay_endpoint = "tcp://127.0.0.1:*";
  o.replay_buffer_batches = buffer;
  auto p = ZmqPublisher::create(o);
  EXPECT_TRUE(p.ok()) << p.status();
  return *std::move(p);
}

std::unique_ptr<ZmqSubscriber> make_subscriber(const ZmqPublisher& p, std::optional<std::uint64_t> start = {}) {
  ZmqSubscriberOptions o;
  o.endpoint = p.endpoint();
  if (!p.replay_endpoint().empty()) o.replay_endpoint = p.replay_endpoint();
  o.start_seq = start;
  auto s = ZmqSubscriber::create(o);
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

// PUB/SUB drops what is published before the subscription reached the publisher: publishes probe
// batches until the subscriber sees one. Returns the probe's sequence number.
std::uint64_t sync(ZmqPublisher& p, ZmqSubscriber& s) {
  for (int i = 0; i < 500; ++i) {
    EXPECT_TRUE(p.publish_payload(encode_event_batch(batch_of(9999))).ok());
    auto got = s.next(20ms);
    EXPECT_TRUE(got.ok()) << got.status();
    if (got.ok() && got->has_value()) {
      // Drain the other probes already sent.
      std::uint64_t last = (*got)->first;
      for (;;) {
        auto more = s.next(50ms);
        if (!more.ok() || !more->has_value()) break;
        last = (*more)->first;
      }
      return last;
    }
  }
  ADD_FAILURE() << "subscriber never connected";
  return 0;
}

TEST(ZmqEndpointTest, BindRuleAndPortOffset) {
  EXPECT_TRUE(zmq_endpoint_binds("tcp://*:5557"));
  EXPECT_TRUE(zmq_endpoint_binds("tcp://[::]:5557"));
  EXPECT_TRUE(zmq_endpoint_binds("ipc:///tmp/x"));
  EXPECT_TRUE(zmq_endpoint_binds("inproc://x"));
  EXPECT_FALSE(zmq_endpoint_binds("tcp://10.0.0.1:5557"));
  EXPECT_EQ(*zmq_offset_endpoint("tcp://*:5557", 3), "tcp://*:5560");
  EXPECT_EQ(*zmq_offset_endpoint("tcp://[::1]:5557", 1), "tcp://[::1]:5558");
  EXPECT_EQ(*zmq_offset_endpoint("tcp://127.0.0.1:*", 2), "tcp://127.0.0.1:*");
  EXPECT_EQ(*zmq_offset_endpoint("ipc:///tmp/x", std::nullopt), "ipc:///tmp/x");
  EXPECT_EQ(*zmq_offset_endpoint("inproc://x", std::nullopt), "inproc://x");
  EXPECT_EQ(*zmq_offset_endpoint("tcp://*:5557", std::nullopt), "tcp://*:5557");
  // Issue 26, as vLLM: an inproc name takes the rank as a suffix; an ipc path with a rank is refused
  // (it was used unchanged, so two ranks bound the same path).
  EXPECT_EQ(*zmq_offset_endpoint("inproc://x", 2), "inproc://x_dp2");
  for (const std::int64_t rank : {0, 2}) {
    auto ipc = zmq_offset_endpoint("ipc:///tmp/x", rank);
    ASSERT_FALSE(ipc.ok());
    EXPECT_THAT(std::string(ipc.status().message()),
                HasSubstr("zmq: endpoint \"ipc:///tmp/x\": an ipc:// endpoint cannot take a data-parallel rank"));
  }
  for (const char* bad : {"udp://x:1", "tcp://nohost", "tcp://h:port", "tcp://h:70000", "inproc://", ""}) {
    auto r = zmq_offset_endpoint(bad, 0);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(std::string("\"") + bad + "\""));
  }
  EXPECT_THAT(std::string(zmq_offset_endpoint("tcp://h:65535", 1).status().message()), HasSubstr("exceeds"));
}

TEST(ZmqPublisherTest, BadOptionsNameTheField) {
  ZmqPublisherOptions o;
  o.endpoint = "bogus";
  EXPECT_THAT(std::string(ZmqPublisher::create(o).status().message()), HasSubstr("endpoint \"bogus\""));
  o.endpoint = "tcp://127.0.0.1:*";
  o.replay_endpoint = "tcp://:9";
  EXPECT_THAT(std::string(ZmqPublisher::create(o).status().message()), HasSubstr("replay_endpoint"));
  o.replay_endpoint.reset();
  o.hwm = -1;
  EXPECT_THAT(std::string(ZmqPublisher::create(o).status().message()), HasSubstr("hwm"));
}

TEST(ZmqPublisherTest, ConnectToAHostThatCannotResolveIsRefused) {
  // libzmq took these and "sent" every batch to nowhere.
  for (const char* endpoint : {"tcp://999.0.0.1:1", "tcp://no-such-host.invalid:5557"}) {
    ZmqPublisherOptions o;
    o.endpoint = endpoint;
    auto p = ZmqPublisher::create(o);
    ASSERT_FALSE(p.ok()) << endpoint;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("is not an address or a name that resolves"));
  }
  ZmqPublisherOptions o;
  o.endpoint = "tcp://localhost:1";  // a name that resolves: connecting is fine even with no one there
  EXPECT_TRUE(ZmqPublisher::create(o).ok());
}

TEST(ZmqPublisherTest, PortInUseIsUnavailable) {
  auto first = make_publisher(false);
  ZmqPublisherOptions o;
  o.endpoint = first->endpoint();  // tcp://127.0.0.1:PORT: no `*`, so it would connect...
  const std::string port = o.endpoint.substr(o.endpoint.rfind(':') + 1);
  o.endpoint = "tcp://*:" + port;  // ...while this binds, and the port is taken
  auto second = ZmqPublisher::create(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST(ZmqTest, DataParallelRankOffsetsThePort) {
  auto probe = make_publisher(false);
  const std::string port = probe->endpoint().substr(probe->endpoint().rfind(':') + 1);
  probe.reset();  // free the port; the rank-2 publisher should take port - 2 + 2
  ZmqPublisherOptions o;
  o.endpoint = "tcp://*:" + std::to_string(std::stoi(port) - 2);
  o.data_parallel_rank = 2;
  auto p = ZmqPublisher::create(o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT((*p)->endpoint(), HasSubstr(":" + port));
}

TEST(ZmqTest, PublisherToSubscriberInOrderWithSequenceNumbers) {
  auto p = make_publisher(false);
  auto s = make_subscriber(*p);
  const std::uint64_t base = sync(*p, *s) + 1;
  for (std::uint64_t i = 0; i < 50; ++i) ASSERT_TRUE(p->publish_payload(encode_event_batch(batch_of(i))).ok());
  for (std::uint64_t i = 0; i < 50; ++i) {
    auto got = s->next(5s);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->has_value());
    EXPECT_EQ((*got)->first, base + i);
    EXPECT_EQ((*got)->second, batch_of(i));
  }
  EXPECT_EQ(p->next_sequence(), base + 50);
  EXPECT_EQ(s->stats().gaps, 0u);
  EXPECT_EQ(s->stats().lost, 0u);
}

// A new publisher on the same endpoint numbers from 0 again: the subscriber must not skip its batches as
// duplicates; it delivers the restart as AllBlocksCleared (what the old one held is gone), then the batches.
TEST(ZmqTest, PublisherRestartIsDeliveredAsAllBlocksCleared) {
  std::unique_ptr<ZmqSubscriber> s;
  std::string port;
  {
    auto a = make_publisher(false);
    port = a->endpoint().substr(a->endpoint().rfind(':') + 1);
    s = make_subscriber(*a);
    sync(*a, *s);
    for (std::uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(a->publish_payload(encode_event_batch(batch_of(i))).ok());
    for (std::uint64_t i = 0; i < 100; ++i) {
      auto got = s->next(5s);
      ASSERT_TRUE(got.ok() && got->has_value());
    }
  }
  ZmqPublisherOptions o;
  o.endpoint = "tcp://*:" + port;
  auto b = ZmqPublisher::create(o);
  ASSERT_TRUE(b.ok()) << b.status();
  std::optional<std::pair<std::uint64_t, EventBatch>> first;
  for (int i = 0; i < 500 && !first; ++i) {
    ASSERT_TRUE((*b)->publish_payload(encode_event_batch(batch_of(7))).ok());
    auto got = s->next(20ms);
    ASSERT_TRUE(got.ok()) << got.status();
    first = *std::move(got);
  }
  ASSERT_TRUE(first.has_value()) << "nothing of the restarted publisher was delivered";
  ASSERT_EQ(first->second.events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<AllBlocksClearedEvent>(first->second.events[0]));
  EXPECT_EQ(s->stats().restarts, 1u);
  auto next = s->next(5s);
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->first, first->first);
  EXPECT_EQ((*next)->second, batch_of(7));
}

TEST(ZmqTest, RawFramesMatchTheSpec) {
  auto p = make_publisher(true);
  zmq::context_t ctx;
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");
  sub.connect(p->endpoint());
  std::vector<zmq::message_t> frames;
  for (int i = 0; i < 500 && frames.empty(); ++i) {
    ASSERT_TRUE(p->publish_payload(encode_event_batch(batch_of(1))).ok());
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 20ms) > 0) ASSERT_TRUE(zmq::recv_multipart(sub, std::back_inserter(frames)));
  }
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].size(), 0u);  // empty topic
  ASSERT_EQ(frames[1].size(), 8u);
  const std::uint64_t seq = decode_zmq_seq(frames[1].to_string_view());
  EXPECT_LT(seq, p->next_sequence());
  EXPECT_EQ(frames[1].to_string(), std::string(encode_zmq_seq(seq).data(), 8));
  auto decoded = decode_event_batch(frames[2].to_string_view());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, batch_of(1));

  // Replay from a raw DEALER: exactly the batches from start on, then -1 with an empty payload.
  // Two more batches first: the subscriber may have caught the very first one, so total - 2 is
  // a real sequence number only once at least two exist.
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(p->publish_payload(encode_event_batch(batch_of(1))).ok());
  const std::uint64_t total = p->next_sequence();
  ASSERT_GE(total, 3u);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.connect(p->replay_endpoint());
  const std::uint64_t start = total - 2;
  const auto start_bytes = encode_zmq_seq(start);
  dealer.send(zmq::const_buffer(nullptr, 0), zmq::send_flags::sndmore);
  dealer.send(zmq::buffer(start_bytes), zmq::send_flags::none);
  std::vector<std::uint64_t> seqs;
  for (;;) {
    std::vector<zmq::message_t> reply;
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    ASSERT_GT(zmq::poll(&item, 1, 5s), 0);
    ASSERT_TRUE(zmq::recv_multipart(dealer, std::back_inserter(reply)));
    ASSERT_EQ(reply.size(), 3u);
    EXPECT_EQ(reply[0].size(), 0u);
    ASSERT_EQ(reply[1].size(), 8u);
    const std::uint64_t s = decode_zmq_seq(reply[1].to_string_view());
    if (s == kZmqReplayEndSeq) {
      EXPECT_EQ(reply[1].to_string(), std::string(8, '\xFF'));
      EXPECT_EQ(reply[2].size(), 0u);
      break;
    }
    EXPECT_TRUE(decode_event_batch(reply[2].to_string_view()).ok());
    seqs.push_back(s);
  }
  EXPECT_THAT(seqs, ElementsAre(total - 2, total - 1));
  EXPECT_EQ(p->replay_requests(), 1u);
}

TEST(ZmqTest, TopicFrameAndSubscriptionFilter) {
  ZmqPublisherOptions o;
  o.endpoint = "tcp://127.0.0.1:*";
  o.topic = "kv@worker-1";
  auto p = *ZmqPublisher::create(o);
  ZmqSubscriberOptions so;
  so.endpoint = p->endpoint();
  so.topic = "kv@worker-1";
  auto s = *ZmqSubscriber::create(so);
  sync(*p, *s);
  ZmqSubscriberOptions other = so;
  other.topic = "kv@worker-2";
  auto s2 = *ZmqSubscriber::create(other);
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(p->publish_payload(encode_event_batch(batch_of(5))).ok());
  auto got = s->next(5s);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->second, batch_of(5));
  auto none = s2->next(200ms);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(ZmqTest, LateJoinerRecoversExactlyTheMissingBatches) {
  auto p = make_publisher(true);
  for (std::uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(p->publish_payload(encode_event_batch(batch_of(i))).ok());
  // Joins after batches 0..19 went out to nobody, wanting everything from 5 on.
  auto s = make_subscriber(*p, 5);
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 500 && seqs.empty(); ++i) {
    ASSERT_TRUE(p->publish_payload(encode_event_batch(batch_of(20 + static_cast<std::uint64_t>(i)))).ok());
    auto got = s->next(20ms);
    ASSERT_TRUE(got.ok()) << got.status();
    if (got->has_value()) seqs.push_back((*got)->first);
  }
  ASSERT_THAT(seqs, ElementsAre(5));
  const std::uint64_t published = p->next_sequence();
  for (;;) {
    auto got = s->next(300ms);
    ASSERT_TRUE(got.ok()) << got.status();
    if (!got->has_value()) break;
    EXPECT_EQ((*got)->second, batch_of((*got)->first));
    seqs.push_back((*got)->first);
  }
  // 5, 6, ..., published - 1: each once, in order, nothing before 5.
  ASSERT_EQ(seqs.size(), published - 5);
  for (std::size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], 5 + i);
  EXPECT_GE(s->stats().recovered, 15u);
  EXPECT_EQ(s->stats().lost, 0u);
}

TEST(ZmqTest, BatchesNoLongerBufferedCountAsLost) {
  auto p = make_publisher(true, /*buffer=*/4);
  for (std::uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(p->publish_payload(encode_event_batch(batch_of(i))).ok());
  auto s = make_subscriber(*p, 0);
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 500 && seqs.empty(); ++i) {
    ASSERT_TRUE(p->publish_payload(encode_event_batch(batch_of(10 + static_cast<std::uint64_t>(i)))).ok());
    auto got = s->next(20ms);
    ASSERT_TRUE(got.ok()) << got.status();
    if (got->has_value()) seqs.push_back((*got)->first);
  }
  ASSERT_EQ(seqs.size(), 1u);
  // The buffer holds the last 4 batches only: everything older than those is lost.
  const std::uint64_t first = seqs[0];
  EXPECT_GT(first, 0u);
  EXPECT_EQ(s->stats().lost, first);
}

// clear_on_loss: the batches the publisher no longer buffers come as one AllBlocksCleared batch in their
// place, numbered like the first batch after them, which follows.
TEST(ZmqTest, ClearOnLossDeliversAllBlocksClearedWhereBatchesWereLost) {
  auto p = make_publisher(true, /*buffer=*/4);
  for (std::uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(p->publish_payload(encode_event_batch(batch_of(i))).ok());
  ZmqSubscriberOptions o;
  o.endpoint = p->endpoint();
  o.replay_endpoint = p->replay_endpoint();
  o.start_seq = 0;
  o.clear_on_loss = true;
  auto s = ZmqSubscriber::create(o);
  ASSERT_TRUE(s.ok()) << s.status();
  std::optional<std::pair<std::uint64_t, EventBatch>> first;
  for (int i = 0; i < 500 && !first; ++i) {
    ASSERT_TRUE(p->publish_payload(encode_event_batch(batch_of(10 + static_cast<std::uint64_t>(i)))).ok());
    auto got = (*s)->next(20ms);
    ASSERT_TRUE(got.ok()) << got.status();
    first = *std::move(got);
  }
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(first->second.events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<AllBlocksClearedEvent>(first->second.events[0]));
  EXPECT_GT((*s)->stats().lost, 0u);
  EXPECT_EQ(first->first, (*s)->stats().lost);  // numbered like the first batch after the lost ones
  auto next = (*s)->next(5s);
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->first, first->first);
  EXPECT_EQ((*next)->second, batch_of(first->first));
}

// A scripted publisher (raw PUB + ROUTER) that skips a sequence number: the subscriber asks for it and
// delivers it in order.
class ScriptedPublisher {
 public:
  ScriptedPublisher() : pub_(ctx_, zmq::socket_type::pub), router_(ctx_, zmq::socket_type::router) {
    pub_.bind("tcp://127.0.0.1:*");
    router_.bind("tcp://127.0.0.1:*");
  }
  std::string endpoint() const { return pub_.get(zmq::sockopt::last_endpoint); }
  std::string replay_endpoint() const { return router_.get(zmq::sockopt::last_endpoint); }
  void send(std::uint64_t seq, const std::string& payload) {
    const auto b = encode_zmq_seq(seq);
    pub_.send(zmq::const_buffer(nullptr, 0), zmq::send_flags::sndmore);
    pub_.send(zmq::buffer(b), zmq::send_flags::sndmore);
    pub_.send(zmq::buffer(payload), zmq::send_flags::none);
  }
  // Answers one replay request with `seqs` (payload batch_of(seq)) then -1; returns the start asked for.
  std::uint64_t answer(const std::vector<std::uint64_t>& seqs) {
    std::vector<zmq::message_t> req;
    if (!zmq::recv_multipart(router_, std::back_inserter(req))) return ~0ull;
    const std::uint64_t start = decode_zmq_seq(req[2].to_string_view());
    auto reply = [&](std::uint64_t seq, const std::string& payload) {
      const auto b = encode_zmq_seq(seq);
      router_.send(zmq::buffer(req[0].to_string()), zmq::send_flags::sndmore);
      router_.send(zmq::const_buffer(nullptr, 0), zmq::send_flags::sndmore);
      router_.send(zmq::buffer(b), zmq::send_flags::sndmore);
      router_.send(zmq::buffer(payload), zmq::send_flags::none);
    };
    for (std::uint64_t s : seqs) reply(s, encode_event_batch(batch_of(s)));
    reply(kZmqReplayEndSeq, "");
    return start;
  }

 private:
  zmq::context_t ctx_;
  zmq::socket_t pub_;
  zmq::socket_t router_;
};

TEST(ZmqTest, GapIsDetectedAndRecoveredThroughReplay) {
  ScriptedPublisher sp;
  ZmqSubscriberOptions o;
  o.endpoint = sp.endpoint();
  o.replay_endpoint = sp.replay_endpoint();
  auto s = *ZmqSubscriber::create(o);
  // Wait for the subscription with probes 100, 101, ... (the first one seen becomes the baseline).
  std::uint64_t seq = 100;
  std::optional<std::uint64_t> baseline;
  for (int i = 0; i < 500 && !baseline; ++i) {
    sp.send(seq, encode_event_batch(batch_of(seq)));
    ++seq;
    auto got = s->next(20ms);
    ASSERT_TRUE(got.ok());
    if (got->has_value()) baseline = (*got)->first;
  }
  ASSERT_TRUE(baseline);
  // Drain the probes, then skip two sequence numbers.
  for (;;) {
    auto got = s->next(100ms);
    ASSERT_TRUE(got.ok());
    if (!got->has_value()) break;
  }
  const std::uint64_t expected = *s->expected_seq();
  ASSERT_EQ(expected, seq);
  std::thread router([&] { EXPECT_EQ(sp.answer({expected, expected + 1}), expected); });
  sp.send(expected + 2, encode_event_batch(batch_of(expected + 2)));
  std::vector<std::uint64_t> got_seqs;
  for (int i = 0; i < 3; ++i) {
    auto got = s->next(5s);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->has_value());
    EXPECT_EQ((*got)->second, batch_of((*got)->first));
    got_seqs.push_back((*got)->first);
  }
  router.join();
  EXPECT_THAT(got_seqs, ElementsAre(expected, expected + 1, expected + 2));
  EXPECT_EQ(s->stats().gaps, 1u);
  EXPECT_EQ(s->stats().recovered, 2u);
  EXPECT_EQ(s->stats().lost, 0u);

  // A gap the replay cannot fill: counted as lost, the live batch still delivered.
  std::thread router2([&] { EXPECT_EQ(sp.answer({}), expected + 3); });
  sp.send(expected + 5, encode_event_batch(batch_of(expected + 5)));
  auto got = s->next(5s);
  router2.join();
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->first, expected + 5);
  EXPECT_EQ(s->stats().lost, 2u);

  // A malformed message: an error for that call, then the stream goes on.
  sp.send(expected + 6, "not msgpack");
  auto bad = s->next(5s);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  sp.send(expected + 7, encode_event_batch(batch_of(expected + 7)));
  auto good = s->next(5s);
  ASSERT_TRUE(good.ok() && good->has_value());
  EXPECT_EQ((*good)->first, expected + 7);
}

TEST(ZmqTest, HighWaterMarkDropsAreRecoveredByReplay) {
  ZmqPublisherOptions po;
  po.endpoint = "tcp://127.0.0.1:*";
  po.replay_endpoint = "tcp://127.0.0.1:*";
  po.hwm = 2;
  auto p = *ZmqPublisher::create(po);
  ZmqSubscriberOptions so;
  so.endpoint = p->endpoint();
  so.replay_endpoint = p->replay_endpoint();
  so.rcvhwm = 2;
  auto s = *ZmqSubscriber::create(so);
  const std::uint64_t base = sync(*p, *s) + 1;
  // Large batches, published without reading: the kernel buffers and both HWMs overflow.
  EventBatch big = batch_of(0);
  auto& big_stored = std::get<BlockStoredEvent>(big.events[0]);
  big_stored.block_size = 32 * 1024;  // 2 blocks × 32 Ki tokens: a large payload that is still valid
  big_stored.token_ids.assign(64 * 1024, 7);
  const std::string payload = encode_event_batch(big);
  constexpr std::uint64_t kBatches = 200;
  for (std::uint64_t i = 0; i < kBatches; ++i) ASSERT_TRUE(p->publish_payload(payload).ok());
  // The last batches may be dropped with nothing after them to reveal the gap: small tail batches,
  // published once the subscriber has drained, reveal it.
  const std::string tail = encode_event_batch(batch_of(1));
  const std::uint64_t want = base + kBatches;
  std::uint64_t next = base;
  for (int idle = 0; next <= want && idle < 20;) {
    auto got = s->next(300ms);
    ASSERT_TRUE(got.ok()) << got.status();
    if (!got->has_value()) {
      ++idle;
      ASSERT_TRUE(p->publish_payload(tail).ok());
      continue;
    }
    ASSERT_EQ((*got)->first, next);
    ++next;
  }
  EXPECT_GT(next, want);
  EXPECT_EQ(s->stats().lost, 0u);
  RecordProperty("gaps", static_cast<int>(s->stats().gaps));
  RecordProperty("recovered", static_cast<int>(s->stats().recovered));
}

TEST(ZmqTest, EventManagerThroughZmq) {
  ZmqPublisherOptions po;
  po.endpoint = "tcp://127.0.0.1:*";
  po.replay_endpoint = "tcp://127.0.0.1:*";
  auto pub = *ZmqPublisher::create(po);
  ZmqPublisher* raw = pub.get();
  std::vector<std::unique_ptr<EventPublisher>> pubs;
  pubs.push_back(std::move(pub));
  auto m =
      *EventManager::create({.max_batch_events = 2, .max_batch_delay = 60s, .data_parallel_rank = 0}, std::move(pubs));
  auto s = make_subscriber(*raw, 0);  // replay recovers whatever went out before the subscription
  for (std::uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(m->enqueue(BlockRemovedEvent{{i}, "CPU"}).ok());
  m->flush();
  std::vector<std::uint64_t> hashes;
  // The subscriber learns of the gap on the first live batch it sees: keep publishing until it has all.
  for (int i = 0; i < 500 && hashes.size() < 6; ++i) {
    auto got = s->next(20ms);
    ASSERT_TRUE(got.ok()) << got.status();
    if (!got->has_value()) {
      ASSERT_TRUE(m->enqueue(AllBlocksClearedEvent{}).ok());
      m->flush();
      continue;
    }
    EXPECT_EQ((*got)->second.data_parallel_rank, 0);
    for (const KvEvent& e : (*got)->second.events) {
      if (const auto* r = std::get_if<BlockRemovedEvent>(&e)) hashes.push_back(r->block_hashes[0]);
    }
  }
  EXPECT_THAT(hashes, ElementsAre(0, 1, 2, 3, 4, 5));
}

}  // namespace
}  // namespace kvbm
