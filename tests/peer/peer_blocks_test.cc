// Cross-worker reuse end to end: worker A (a helper process) registers a prompt's blocks and publishes
// KV events; worker B (this process) learns from them through ZmqSubscriber + KvIndexer that A holds
// the prefix, resolves it with A's PeerBlockServer, pulls the blocks over UCX (tcp and shared memory)
// into its own G1 (of another layout), verifies and registers them. Plus: a peer whose checksums do not
// match the bytes is refused (DataLoss, nothing registered), and the server's answers to bad requests.
#include "kvbm/peer/peer_blocks.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <sstream>
#include <thread>

#include "kvbm/events/kv_indexer.h"
#include "kvbm/events/zmq_subscriber.h"
#include "peer/ucx_test_util.h"

namespace kvbm {
namespace {

using namespace std::chrono_literals;
using ucx_test::ChildProcess;

using ucx_test::kModel;

// The prompt the helper builds for `seed` (same formula as ucx_peer_helper.cc).
std::vector<std::uint32_t> prompt(std::size_t n, std::uint64_t seed) {
  std::vector<std::uint32_t> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<std::uint32_t>((seed * 7919 + i * 31) % 50000);
  return t;
}

std::unique_ptr<KvBlockManager> make_manager(LayoutKind kind) {
  KvbmConfig config;
  config.model = kModel;
  config.g1.num_blocks = 32;
  config.g1.layout.kind = kind;
  auto kvbm = KvBlockManager::create(config);
  EXPECT_TRUE(kvbm.ok()) << kvbm.status();
  return kvbm.ok() ? *std::move(kvbm) : nullptr;
}

class PeerBlocksTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { ASSERT_EQ(setenv("UCX_TLS", GetParam(), 1), 0); }
  void TearDown() override { unsetenv("UCX_TLS"); }
};

TEST_P(PeerBlocksTest, PullsAPrefixLearnedFromEventsByteExact) {
  constexpr std::uint64_t kSeed = 5;
  constexpr std::size_t kTokens = 42;  // 10 full blocks of 4 tokens + 2
  auto a = ChildProcess::spawn({KVBM_UCX_HELPER, "peer", "64", std::to_string(kTokens), std::to_string(kSeed)});
  ASSERT_NE(a, nullptr);
  auto events = a->expect("EVENTS ", 30s);
  ASSERT_TRUE(events.has_value());
  auto server = a->expect("SERVER ", 30s);
  ASSERT_TRUE(server.has_value());
  std::istringstream ev(*events);
  std::string pub_endpoint;
  std::string replay_endpoint;
  ev >> pub_endpoint >> replay_endpoint;

  // B: a manager with another G1 layout, its agent, a subscriber to A's events and an index.
  auto kvbm = make_manager(LayoutKind::kLayerSeparate);
  ASSERT_NE(kvbm, nullptr);
  auto agent = UcxAgent::create({.worker_id = 0xB});
  ASSERT_TRUE(agent.ok()) << agent.status();
  ZmqSubscriberOptions sub_options;
  sub_options.endpoint = pub_endpoint;
  sub_options.replay_endpoint = replay_endpoint;
  sub_options.start_seq = 0;  // anything published before the subscription reached A is replayed
  auto subscriber = ZmqSubscriber::create(sub_options);
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  KvIndexer indexer;
  const WorkerId worker_a(0xA);

  ASSERT_TRUE(a->write_line("go"));
  ASSERT_EQ(a->expect("REGISTERED ", 30s).value_or("none"), "10");

  const std::vector<std::uint32_t> tokens = prompt(kTokens, kSeed);
  auto seq = kvbm->make_sequence(tokens);
  ASSERT_TRUE(seq.ok());
  ASSERT_EQ(seq->num_full_blocks(), 10u);
  std::vector<std::uint64_t> raw_hashes;
  for (SequenceHash h : seq->sequence_hashes()) raw_hashes.push_back(h.value());

  // Learn from A's events that it holds the whole prefix.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::uint32_t matched = 0;
  while (matched < 10 && std::chrono::steady_clock::now() < deadline) {
    auto next = (*subscriber)->next(100ms);
    ASSERT_TRUE(next.ok()) << next.status();
    if (next->has_value()) ASSERT_TRUE(indexer.apply(worker_a, (*next)->second).ok());
    auto matches = indexer.find_matches(raw_hashes);
    matched = matches.empty() ? 0 : matches[0].matched_blocks;
  }
  ASSERT_EQ(matched, 10u) << "A's events never showed the prefix";
  EXPECT_EQ(indexer.find_matches(raw_hashes)[0].worker, worker_a);

  // B computed the first two blocks itself.
  {
    auto own = kvbm->allocate(2);
    ASSERT_TRUE(own.ok());
    for (std::size_t i = 0; i < 2; ++i) {
      ucx_test::fill_block(kvbm->g1_memory(), (*own)[i].id().value(), raw_hashes[i]);
      ASSERT_TRUE((*own)[i].apply(seq->block(i)).ok());
    }
    auto registered = kvbm->register_blocks(*own);
    ASSERT_TRUE(registered.ok());
    kvbm->release(std::move(*registered));
  }

  auto client = PeerBlockClient::connect(kvbm.get(), agent->get(), {.endpoint = *server});
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->peer_worker_id(), 0xAu);
  auto pulled = (*client)->pull_prefix(*seq);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->local_blocks, 2u);
  EXPECT_EQ(pulled->pulled_blocks, 8u);
  EXPECT_EQ(pulled->pulled_bytes, 8 * kModel.bytes_per_block());
  ASSERT_EQ(pulled->blocks.size(), 10u);
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(pulled->blocks[i].sequence_hash(), seq->sequence_hashes()[i]);
    EXPECT_TRUE(ucx_test::block_matches(kvbm->g1_memory(), pulled->blocks[i].id().value(), raw_hashes[i]))
        << "block " << i << " is not byte-exact";
  }
  kvbm->release(std::move(pulled->blocks));
  // Now local: registered in B's G1, matchable without the peer.
  EXPECT_EQ(kvbm->match_g1(seq->sequence_hashes()).size(), 10u);
  // The lease was released; a second pull finds everything local.
  ASSERT_TRUE(a->write_line("leases"));
  EXPECT_EQ(a->expect("LEASES ", 20s).value_or("none"), "0");
  auto again = (*client)->pull_prefix(*seq);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->local_blocks, 10u);
  EXPECT_EQ(again->pulled_blocks, 0u);
  kvbm->release(std::move(again->blocks));
  client->reset();
  agent->reset();
}

// A peer that names blocks whose bytes do not match its checksums: nothing is registered.
TEST_P(PeerBlocksTest, ChecksumMismatchIsDataLossAndRegistersNothing) {
  auto a = ChildProcess::spawn({KVBM_UCX_HELPER, "agent", "fc", "8", std::to_string(kModel.num_layers),
                                std::to_string(kModel.outer_dim), std::to_string(kModel.page_size),
                                std::to_string(kModel.inner_dim), std::to_string(kModel.dtype_bytes), "3"});
  ASSERT_NE(a, nullptr);
  auto hex = a->expect("BLOB ", 30s);
  ASSERT_TRUE(hex.has_value());
  const std::string blob = ucx_test::from_hex(*hex).value_or("");

  // A resolution service that lies about the checksums, on the wire protocol of peer_blocks.h.
  zmq::context_t ctx(1);
  zmq::socket_t rep(ctx, zmq::socket_type::rep);
  rep.set(zmq::sockopt::linger, 0);
  rep.bind("tcp://127.0.0.1:*");
  const std::string endpoint = rep.get(zmq::sockopt::last_endpoint);
  std::atomic<bool> stop{false};
  std::thread liar([&] {
    while (!stop.load()) {
      zmq::pollitem_t item{rep.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, 20ms) <= 0) continue;
      zmq::message_t msg;
      if (!rep.recv(msg)) continue;
      const auto op = static_cast<const char*>(msg.data())[0];
      std::string reply(1, '\0');
      if (op == 1) reply += blob;
      if (op == 2) {
        auto u64 = [&](std::uint64_t v) {
          for (int i = 0; i < 8; ++i) reply.push_back(static_cast<char>(v >> (8 * i)));
        };
        u64(77);  // lease id
        reply.append({3, 0, 0, 0});
        for (std::uint32_t b = 0; b < 3; ++b) {
          reply.append({0, 0, 0, 0});  // G1
          reply.append({static_cast<char>(b), 0, 0, 0});
          u64(0xdeadbeef + b);
        }
      }
      (void)rep.send(zmq::buffer(reply), zmq::send_flags::none);
    }
  });
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Joiner() {
      stop.store(true);
      thread.join();
    }
  } joiner{stop, liar};

  auto kvbm = make_manager(LayoutKind::kFullyContiguous);
  ASSERT_NE(kvbm, nullptr);
  auto agent = UcxAgent::create({.worker_id = 0xB});
  ASSERT_TRUE(agent.ok());
  {
    auto client = PeerBlockClient::connect(kvbm.get(), agent->get(), {.endpoint = endpoint});
    ASSERT_TRUE(client.ok()) << client.status();
    auto seq = kvbm->make_sequence(prompt(12, 1));
    ASSERT_TRUE(seq.ok());
    auto pulled = (*client)->pull_prefix(*seq);
    EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDataLoss) << pulled.status();
    EXPECT_TRUE(kvbm->match_g1(seq->sequence_hashes()).empty());
    EXPECT_EQ(kvbm->status().owned, 0u);
    EXPECT_EQ(kvbm->status().active + kvbm->status().inactive, 0u);
  }
  agent->reset();
}

INSTANTIATE_TEST_SUITE_P(Transports, PeerBlocksTest, ::testing::Values("tcp", "sm"), [](const auto& info) {
  return std::string(info.param == std::string("tcp") ? "tcp" : "shm");
});

// The server's answers to malformed requests and to hashes it does not hold (one process, no transfer).
TEST(PeerBlockServerTest, AnswersBadRequestsWithErrors) {
  auto kvbm = make_manager(LayoutKind::kFullyContiguous);
  ASSERT_NE(kvbm, nullptr);
  auto agent = UcxAgent::create({});
  ASSERT_TRUE(agent.ok());
  auto server = PeerBlockServer::create(kvbm.get(), agent->get(), {});
  ASSERT_TRUE(server.ok()) << server.status();
  zmq::context_t ctx(1);
  zmq::socket_t req(ctx, zmq::socket_type::req);
  req.set(zmq::sockopt::linger, 0);
  req.set(zmq::sockopt::rcvtimeo, 10000);
  req.connect((*server)->endpoint());
  auto call = [&](const std::string& request) {
    (void)req.send(zmq::buffer(request), zmq::send_flags::none);
    zmq::message_t reply;
    if (!req.recv(reply)) return std::string("timeout");
    return std::string(static_cast<const char*>(reply.data()), reply.size());
  };
  EXPECT_EQ(call(std::string(1, '\x09'))[0], static_cast<char>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(call(std::string("\x02\x01", 2))[0], static_cast<char>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(call(std::string("\x03\x01\x00\x00\x00\x00\x00\x00\x00", 9))[0],
            static_cast<char>(absl::StatusCode::kNotFound));
  std::string resolve("\x02", 1);
  resolve.append(8, '\0');                       // lease: server default
  resolve.append(std::string("\x01\0\0\0", 4));  // one hash
  resolve.append(8, '\x11');
  const std::string none = call(resolve);
  ASSERT_EQ(none.size(), 13u);
  EXPECT_EQ(none[0], 0);
  EXPECT_EQ(none.substr(1), std::string(12, '\0'));  // lease 0, no blocks
  EXPECT_EQ(call(std::string(1, '\x01'))[0], 0);     // metadata
  EXPECT_EQ((*server)->active_leases(), 0u);
  EXPECT_GE((*server)->stats().bad_requests, 2u);
  server->reset();
  agent->reset();
}

}  // namespace
}  // namespace kvbm
