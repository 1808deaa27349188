// make_event_manager: the events.* keys made into publishers (issue 26). Endpoint errors surface when the
// pipeline is made, naming the key; the rank offsets tcp ports, suffixes inproc names and is refused for
// ipc paths; batch format and media reach the payload.
#include "kvbm/events/events_from_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "kvbm/events/zmq_publisher.h"

namespace kvbm {
namespace {

using ::testing::HasSubstr;

TEST(EventsFromConfigTest, NoEndpointNoPublishers) {
  auto m = make_event_manager(EventsConfig{});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->num_publishers(), 0u);
}

TEST(EventsFromConfigTest, EndpointErrorsNameTheKeyAtStart) {
  struct Case {
    EventsConfig config;
    std::string message;
  };
  std::vector<Case> cases(4);
  cases[0].config.endpoint = "tcp://999.0.0.1:1";
  cases[0].message = "events.endpoint: zmq: endpoint \"tcp://999.0.0.1:1\": host \"999.0.0.1\"";
  cases[1].config.endpoint = "ipc:///tmp/kvbm-events-test";
  cases[1].config.data_parallel_rank = 1;
  cases[1].message =
      "events.endpoint: zmq: endpoint \"ipc:///tmp/kvbm-events-test\": an ipc:// endpoint cannot "
      "take a data-parallel rank";
  cases[2].config.replay_endpoint = "tcp://127.0.0.1:*";
  cases[2].message = "events.replay_endpoint \"tcp://127.0.0.1:*\" needs events.endpoint";
  cases[3].config.endpoint = "udp://x:1";
  cases[3].message = "events.endpoint: zmq: endpoint \"udp://x:1\": expected tcp://HOST:PORT";
  for (const Case& c : cases) {
    auto m = make_event_manager(c.config);
    ASSERT_FALSE(m.ok()) << c.message;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.message));
  }
}

// The pipeline publishes on the rank's endpoint (inproc name + _dp<rank>), with the rank in every batch,
// the map batch shape and the configured medium names (their encoding: event_manager_test).
TEST(EventsFromConfigTest, RankFormatAndMediaReachThePipeline) {
  EventsConfig config;
  config.endpoint = "inproc://kvbm-events-from-config";
  config.data_parallel_rank = 3;
  config.topic = "kv";
  config.batch_format = BatchFormat::kMap;
  config.media[1] = "host";
  auto m = make_event_manager(config);
  ASSERT_TRUE(m.ok()) << m.status();
  auto& zmq_pub = static_cast<ZmqPublisher&>((*m)->publisher(0));
  EXPECT_EQ(zmq_pub.endpoint(), "inproc://kvbm-events-from-config_dp3");
  (*m)->on_stored(BlocksStored{CacheLevel::kG2, {SequenceHash{9}}, std::nullopt, {1, 2}, 2});
  (*m)->flush();
  EXPECT_EQ(zmq_pub.next_sequence(), 1u);
  EXPECT_EQ((*m)->stats().sent, 1u);
  EXPECT_EQ((*m)->options().data_parallel_rank, 3);
  EXPECT_EQ((*m)->options().batch_format, BatchFormat::kMap);
  EXPECT_EQ((*m)->options().media[1], "host");
}

TEST(EventsFromConfigTest, TcpRankOffsetsThePort) {
  // Find a free port pair by binding an ephemeral one first.
  EventsConfig probe;
  probe.endpoint = "tcp://127.0.0.1:*";
  auto first = make_event_manager(probe);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string ephemeral = static_cast<ZmqPublisher&>((*first)->publisher(0)).endpoint();
  const int port = std::stoi(ephemeral.substr(ephemeral.rfind(':') + 1));
  first->reset();
  EventsConfig config;
  config.endpoint = "tcp://*:" + std::to_string(port - 2);
  config.data_parallel_rank = 2;
  auto m = make_event_manager(config);
  ASSERT_TRUE(m.ok()) << m.status();
  const std::string bound = static_cast<ZmqPublisher&>((*m)->publisher(0)).endpoint();
  EXPECT_EQ(bound.substr(bound.rfind(':') + 1), std::to_string(port));
}

}  // namespace
}  // namespace kvbm
