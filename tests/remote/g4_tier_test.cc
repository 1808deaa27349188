// G4 as a tier of KvBlockManager, on a real redis-server (tests/support/redis_server.h): write-through from
// G2, match continuing after G1–G3, onboarding through G2 byte-exact, two managers sharing one Redis,
// model fingerprints, damaged values, and Redis going away and coming back while the manager serves.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <numeric>
#include <thread>

#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/remote/redis_store.h"
#include "support/block_bytes.h"
#include "support/engine_request.h"
#include "support/recording_event_sink.h"
#include "support/redis_server.h"
#include "support/wait_until.h"

namespace kvbm {
namespace {

using namespace std::chrono_literals;
using kvbm::testing::wait_until;
using testing::make_seq;
using testing::RedisServer;
using testing::run_request;
using testing::wrong_bytes;

// 2 layers × 2 × 4 tokens × 64 × 2 bytes = 2 KiB per block.
const ModelConfig kModel{.num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 64, .dtype_bytes = 2};

KvbmConfig g4_config(const RedisServer& server, std::uint32_t g1 = 4, std::uint32_t g2 = 8) {
  KvbmConfig config;
  config.model = kModel;
  config.g1.num_blocks = g1;
  config.g2.num_blocks = g2;
  config.offload.batch_blocks = 8;
  config.g4.endpoints = server.endpoint();
  config.g4.key_namespace = "g4test";
  // Generous: these tests check what is found, not how fast (sanitizer builds are slow). The deadline
  // itself is exercised in RedisDownOrStoppedKeepsTheManagerServing and redis_store_test.
  config.g4.deadline_ms = 5000;
  config.g4.connect_timeout_ms = 200;
  config.g4.io_timeout_ms = 300;
  return config;
}

std::unique_ptr<KvBlockManager> make_manager(const KvbmConfig& config) {
  auto m = KvBlockManager::create(config);
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return nullptr;
  EXPECT_TRUE(wait_until([&] { return (*m)->offload_stats().g4.health == RemoteHealth::kAvailable; }, 10s));
  return *std::move(m);
}

class G4TierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::redis_server_path() == nullptr) GTEST_SKIP() << "redis-server is not installed";
    ASSERT_TRUE(server_.start());
  }
  RedisServer server_;
};

TEST_F(G4TierTest, BlocksEvictedFromG1AndG2ComeBackFromG4ByteExact) {
  auto m = make_manager(g4_config(server_));
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(m->has_tier(CacheLevel::kG4));
  const TokenBlockSequence first = make_seq(*m, 100, 4);
  EXPECT_EQ(run_request(*m, first), 0u);
  m->flush();
  EXPECT_EQ(server_.dbsize(), 4);
  EXPECT_EQ(m->offload_stats().g4.g2_to_g4, 4u);

  // Three more requests push `first` out of G1 (4 blocks) and G2 (8 blocks).
  for (std::uint32_t t : {1000u, 2000u, 3000u}) {
    run_request(*m, make_seq(*m, t, 4));
    m->flush();
  }
  MatchResult match = m->match(first.sequence_hashes());
  EXPECT_EQ(match.g1.size() + match.g2.size() + match.g3.size(), 0u);
  ASSERT_EQ(match.g4.size(), 4u);
  EXPECT_EQ(match.size(), 4u);

  auto blocks = m->onboard(std::move(match))->wait();
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  ASSERT_EQ(blocks->size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*blocks)[i].sequence_hash(), first.sequence_hashes()[i]);
    EXPECT_EQ(wrong_bytes((*blocks)[i], m->model()), 0u) << "block " << i;
  }
  m->release(*std::move(blocks));
  const OffloadStats s = m->offload_stats();
  EXPECT_EQ(s.g4_to_g1, 4u);
  EXPECT_EQ(s.g4.g4_to_g2, 4u);
  EXPECT_EQ(s.g4.hits, 4u);
  EXPECT_EQ(s.g4.store.hits, 4u);
  EXPECT_EQ(s.g4.fetch_corrupt, 0u);
  // Fetched blocks are cached in G2 again: the next match finds them above G4.
  MatchResult again = m->match(first.sequence_hashes());
  EXPECT_EQ(again.g4.size(), 0u);
  EXPECT_EQ(again.size(), 4u);

  // The metrics endpoint's text carries the same G4 figures.
  const std::string text = m->metrics().render();
  EXPECT_THAT(text, ::testing::HasSubstr("kvbm_offload_blocks_total{src=\"g2\",dst=\"g4\"} " +
                                         std::to_string(m->offload_stats().g4.g2_to_g4) + "\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("kvbm_onboard_blocks_total{src=\"g4\",dst=\"g2\"} 4\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("kvbm_g4_hit_blocks_total 4\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("kvbm_g4_errors_total{kind=\"corrupt\"} 0\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("kvbm_g4_available 1\n"));
}

// Issue 26 item 4: what kvbm puts in G4 is reported as Stored with medium REMOTE (and the blocks'
// tokens); a key it put and later finds gone (deleted here, as expiry or Redis eviction would) is reported
// Removed once; a key it never put is not.
TEST_F(G4TierTest, PutsAreStoredEventsAndKeysFoundGoneAreRemoved) {
  testing::RecordingEventSink sink;
  auto created = KvBlockManager::create(g4_config(server_), &sink);
  ASSERT_TRUE(created.ok()) << created.status();
  KvBlockManager& m = **created;
  ASSERT_TRUE(wait_until([&] { return m.offload_stats().g4.health == RemoteHealth::kAvailable; }, 10s));
  const TokenBlockSequence prompt = make_seq(m, 100, 4);
  run_request(m, prompt);
  m.flush();
  std::vector<SequenceHash> in_g4;
  for (const BlocksStored& e : sink.stored()) {
    if (e.level != CacheLevel::kG4) continue;
    ASSERT_EQ(e.token_ids.size(), e.block_hashes.size() * m.page_size());
    for (std::size_t i = 0; i < e.block_hashes.size(); ++i) {
      const std::size_t at = static_cast<std::size_t>(
          std::find(prompt.sequence_hashes().begin(), prompt.sequence_hashes().end(), e.block_hashes[i]) -
          prompt.sequence_hashes().begin());
      ASSERT_LT(at, 4u);
      const TokenBlock b = prompt.block(at);
      EXPECT_TRUE(std::equal(b.tokens.begin(), b.tokens.end(), e.token_ids.begin() + i * m.page_size()));
      in_g4.push_back(e.block_hashes[i]);
    }
  }
  ASSERT_EQ(in_g4.size(), 4u);

  // Block 2 disappears from Redis; a lookup past G1/G2 finds it gone.
  auto store = RedisStore::create(g4_config(server_).g4, model_fingerprint(kModel), kModel.bytes_per_block());
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_NE(server_.command({"DEL", (*store)->key_of(prompt.sequence_hashes()[2])}), nullptr);
  ASSERT_TRUE(m.reset().ok());  // G1 and G2 forget the prompt; G4 keeps what Redis has
  sink.clear();
  MatchResult found = m.match(prompt.sequence_hashes());
  EXPECT_EQ(found.g4.size(), 2u);
  found = MatchResult{};
  (void)m.match(prompt.sequence_hashes());  // reported once
  const TokenBlockSequence never_put = make_seq(m, 900, 2);
  (void)m.match(never_put.sequence_hashes());
  m.flush();
  std::vector<SequenceHash> removed;
  for (const BlocksRemoved& e : sink.removed()) {
    if (e.level == CacheLevel::kG4) removed.insert(removed.end(), e.block_hashes.begin(), e.block_hashes.end());
  }
  EXPECT_EQ(removed, std::vector<SequenceHash>{prompt.sequence_hashes()[2]});
}

TEST_F(G4TierTest, TwoWorkersSharingOneRedisReuseEachOthersBlocks) {
  auto a = make_manager(g4_config(server_, 16, 16));
  auto b = make_manager(g4_config(server_, 16, 16));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const TokenBlockSequence prompt = make_seq(*a, 7, 6);
  EXPECT_EQ(run_request(*a, prompt), 0u);
  a->flush();
  // B never saw the prompt: it finds all of it in G4, and the bytes are A's.
  EXPECT_EQ(run_request(*b, prompt), 6u);
  EXPECT_EQ(b->offload_stats().g4_to_g1, 6u);
  // A longer prompt on B: the shared prefix from G4, the rest computed (and put for A).
  const TokenBlockSequence longer = make_seq(*b, 7, 9);
  EXPECT_EQ(run_request(*b, longer), 6u);
  b->flush();
  EXPECT_EQ(server_.dbsize(), 9);
}

TEST_F(G4TierTest, AnotherModelNeverReadsTheBlocks) {
  auto a = make_manager(g4_config(server_));
  ASSERT_NE(a, nullptr);
  KvbmConfig other = g4_config(server_);
  other.model = ModelConfig{.num_layers = 4, .outer_dim = 2, .page_size = 4, .inner_dim = 32, .dtype_bytes = 2};
  ASSERT_EQ(other.model.bytes_per_block(), kModel.bytes_per_block());  // same size, other geometry
  auto b = make_manager(other);
  ASSERT_NE(b, nullptr);
  const TokenBlockSequence prompt = make_seq(*a, 1, 4);
  run_request(*a, prompt);
  a->flush();
  EXPECT_EQ(server_.dbsize(), 4);
  MatchResult match = b->match(prompt.sequence_hashes());
  EXPECT_EQ(match.size(), 0u);
  // Same hashes, same namespace: only the fingerprint differs, and B computes its own.
  EXPECT_EQ(run_request(*b, prompt), 0u);
  b->flush();
  EXPECT_EQ(server_.dbsize(), 8);
  // And another namespace is another world too.
  KvbmConfig ns = g4_config(server_);
  ns.g4.key_namespace = "elsewhere";
  auto c = make_manager(ns);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->match(prompt.sequence_hashes()).size(), 0u);
}

TEST_F(G4TierTest, DamagedValueEndsThePrefixNeverWrongBytes) {
  auto a = make_manager(g4_config(server_));
  auto b = make_manager(g4_config(server_));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const TokenBlockSequence prompt = make_seq(*a, 50, 4);
  run_request(*a, prompt);
  a->flush();
  auto store = RedisStore::create(
      RedisStore::Options{.endpoints = {RemoteEndpoint{"127.0.0.1", static_cast<std::uint16_t>(server_.port())}},
                          .key_namespace = "g4test",
                          .fingerprint = model_fingerprint(kModel),
                          .payload_bytes = kModel.bytes_per_block()});
  ASSERT_TRUE(store.ok());
  auto r = server_.command({"SETRANGE", (*store)->key_of(prompt.sequence_hashes()[2]), "1000", "garbage"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_INTEGER);

  MatchResult match = b->match(prompt.sequence_hashes());
  EXPECT_EQ(match.g4.size(), 4u);  // exists does not read values
  auto blocks = b->onboard(std::move(match))->wait();
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  ASSERT_EQ(blocks->size(), 2u);  // cut at the damaged block
  for (const G1Block& blk : *blocks) EXPECT_EQ(wrong_bytes(blk, b->model()), 0u);
  b->release(*std::move(blocks));
  const OffloadStats s = b->offload_stats();
  EXPECT_EQ(s.g4.fetch_corrupt, 1u);
  EXPECT_EQ(s.g4.store.corrupt, 1u);
  EXPECT_GE(s.onboard_truncated, 1u);
}

TEST_F(G4TierTest, RedisDownOrStoppedKeepsTheManagerServing) {
  KvbmConfig config = g4_config(server_);
  config.g4.deadline_ms = 200;
  auto m = make_manager(config);
  ASSERT_NE(m, nullptr);
  const TokenBlockSequence first = make_seq(*m, 10, 4);
  run_request(*m, first);
  m->flush();
  ASSERT_EQ(server_.dbsize(), 4);

  // Stopped: lookups give up at the deadline (G4 is then skipped), and G1 still serves.
  server_.pause();
  const TokenBlockSequence fresh = make_seq(*m, 5000, 4);
  EXPECT_EQ(run_request(*m, fresh), 0u);
  m->flush();                             // `fresh` reaches G2 (its G1 blocks are unpinned), whatever G4 does meanwhile
  EXPECT_EQ(run_request(*m, first), 4u);  // out of G1 (evicted by `fresh`), still in G2
  m->flush();
  OffloadStats s = m->offload_stats();
  EXPECT_GE(s.g4.deadline_missed + s.g4.unavailable, 1u);

  // Killed: Unavailable; requests are still served from G1/G2 and counted as G4 misses.
  server_.kill();
  for (std::uint32_t t : {6000u, 7000u, 8000u}) {
    run_request(*m, make_seq(*m, t, 4));
    m->flush();
  }
  EXPECT_TRUE(wait_until([&] { return m->offload_stats().g4.health == RemoteHealth::kUnavailable; }, 10s));
  s = m->offload_stats();
  EXPECT_GT(s.g4.unavailable + s.g4.put_dropped + s.g4.put_failed, 0u);

  // Back (empty): the manager reconnects by itself and writes through again.
  ASSERT_TRUE(server_.restart());
  ASSERT_TRUE(wait_until([&] { return m->offload_stats().g4.health == RemoteHealth::kAvailable; }, 10s));
  const std::uint64_t put_before = m->offload_stats().g4.g2_to_g4;
  const TokenBlockSequence later = make_seq(*m, 9000, 4);
  run_request(*m, later);
  m->flush();
  EXPECT_EQ(m->offload_stats().g4.g2_to_g4, put_before + 4);
  EXPECT_EQ(server_.dbsize(), 4);
}

TEST(G4ConfigValidationTest, ErrorsNameTheKeys) {
  KvbmConfig c;
  c.model = kModel;
  c.g4.endpoints = "127.0.0.1:1";
  absl::Status s = c.validate();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("g4 needs a g2 tier"), std::string::npos) << s;
  c.g2.num_blocks = 8;
  EXPECT_TRUE(c.validate().ok()) << c.validate();
  c.g4.endpoints = "nohost";
  s = c.validate();
  EXPECT_NE(s.message().find("g4.endpoints"), std::string::npos) << s;

  auto parsed = KvbmConfig::from_toml(
      "[g2]\nnum_blocks = 8\n[g4]\nendpoints = \"10.0.0.1:6379,10.0.0.2:6379\"\nnamespace = \"llama\"\n"
      "ttl_seconds = 3600\ndeadline_ms = 15\nmax_batch_blocks = 32\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->g4.endpoints, "10.0.0.1:6379,10.0.0.2:6379");
  EXPECT_EQ(parsed->g4.key_namespace, "llama");
  EXPECT_EQ(parsed->g4.ttl_seconds, 3600u);
  EXPECT_EQ(parsed->g4.deadline_ms, 15u);
  EXPECT_EQ(parsed->g4.max_batch_blocks, 32u);
  EXPECT_TRUE(parsed->validate().ok());
  EXPECT_FALSE(KvbmConfig::from_toml("[g4]\ndeadline_ms = 0\n").ok());
  KvbmConfig env;
  ASSERT_TRUE(env.apply_env([](const char* name) -> const char* {
                   return std::string(name) == "KVBM_G4_NAMESPACE" ? "from-env" : nullptr;
                 })
                  .ok());
  EXPECT_EQ(env.g4.key_namespace, "from-env");
}

TEST(G4ConfigValidationTest, ManagerStartsWhileRedisIsDown) {
  if (testing::redis_server_path() == nullptr) GTEST_SKIP() << "redis-server is not installed";
  RedisServer server;
  ASSERT_TRUE(server.start());
  KvbmConfig config = g4_config(server);
  server.kill();  // nothing listens on the port now
  auto m = KvBlockManager::create(config);
  ASSERT_TRUE(m.ok()) << m.status();
  const TokenBlockSequence seq = make_seq(**m, 1, 3);
  EXPECT_EQ(run_request(**m, seq), 0u);
  EXPECT_EQ(run_request(**m, seq), 3u);  // G1 serves
  (*m)->flush();
}

}  // namespace
}  // namespace kvbm
