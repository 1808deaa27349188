// RedisStore against real redis-server processes (tests/support/redis_server.h), plus the value format and
// placement it relies on.
#include "kvbm/remote/redis_store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <thread>

#include "support/redis_server.h"
#include "support/wait_until.h"

namespace kvbm {
namespace {

using namespace std::chrono_literals;
using kvbm::testing::wait_until;
using testing::RedisServer;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kPayload = 4096 + 24;  // not a power of two on purpose

std::vector<std::byte> block_bytes(std::uint64_t seed, std::size_t n = kPayload) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out(n);
  for (std::byte& b : out) b = static_cast<std::byte>(rng());
  return out;
}

RemoteValue make_value(SequenceHash hash, std::uint64_t fingerprint, std::optional<SequenceHash> parent = {}) {
  RemoteValue v(RemoteBlockInfo{hash, BlockHash{hash.value() * 3 + 1}, parent}, fingerprint, kPayload);
  const std::vector<std::byte> bytes = block_bytes(hash.value());
  std::copy(bytes.begin(), bytes.end(), v.payload().begin());
  v.seal();
  return v;
}

std::vector<SequenceHash> hashes(std::size_t n, std::uint64_t base = 1000) {
  std::vector<SequenceHash> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(SequenceHash{base + i * 7919});
  return out;
}

RedisStore::Options options_for(const std::vector<const RedisServer*>& servers, std::uint64_t fingerprint = 42) {
  RedisStore::Options o;
  for (const RedisServer* s : servers)
    o.endpoints.push_back(RemoteEndpoint{"127.0.0.1", static_cast<std::uint16_t>(s->port())});
  o.key_namespace = "test";
  o.fingerprint = fingerprint;
  o.payload_bytes = kPayload;
  o.connect_timeout_ms = 200;
  o.io_timeout_ms = 300;
  o.max_batch_blocks = 16;
  return o;
}

std::unique_ptr<RedisStore> connected_store(RedisStore::Options o) {
  auto store = RedisStore::create(std::move(o));
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return nullptr;
  EXPECT_TRUE(wait_until([&] { return (*store)->health() == RemoteHealth::kAvailable; }, 10s));
  return *std::move(store);
}

absl::Status put_all(RemoteStore& store, const std::vector<SequenceHash>& keys) {
  std::vector<RemoteValue> values;
  for (SequenceHash h : keys) values.push_back(make_value(h, store.fingerprint()));
  const RemoteResult r = store.put(std::move(values))->wait();
  for (const absl::Status& s : r.blocks) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// ---- format and placement (no server) ----

TEST(RemoteValueTest, RoundTripsAndRejectsEveryKindOfDamage) {
  const SequenceHash h{0x1234};
  RemoteValue v = make_value(h, 7, SequenceHash{99});
  const std::string bytes(v.bytes());
  DecodedValue d;
  ASSERT_TRUE(decode_remote_value(bytes, h, 7, kPayload, &d).ok());
  EXPECT_EQ(d.info.block_hash, BlockHash{0x1234 * 3 + 1});
  ASSERT_TRUE(d.info.parent.has_value());
  EXPECT_EQ(*d.info.parent, SequenceHash{99});
  const std::vector<std::byte> expected = block_bytes(h.value());
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), d.payload.begin(), d.payload.end()));

  EXPECT_EQ(decode_remote_value(bytes, SequenceHash{0x1235}, 7, kPayload, &d).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decode_remote_value(bytes, h, 8, kPayload, &d).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decode_remote_value(bytes, h, 7, kPayload - 1, &d).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(decode_remote_value(bytes.substr(1), h, 7, kPayload, &d).code(), absl::StatusCode::kDataLoss);
  for (std::size_t at : {std::size_t{0}, std::size_t{5}, std::size_t{24}, std::size_t{33}, std::size_t{50},
                         kRemoteHeaderBytes, bytes.size() - 1}) {
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
    EXPECT_EQ(decode_remote_value(damaged, h, 7, kPayload, &d).code(), absl::StatusCode::kDataLoss) << "byte " << at;
  }
}

TEST(RemoteKeyTest, FingerprintSeparatesGeometriesOfEqualSize) {
  const ModelConfig a{.num_layers = 2, .outer_dim = 2, .page_size = 16, .inner_dim = 128, .dtype_bytes = 2};
  const ModelConfig b{.num_layers = 4, .outer_dim = 2, .page_size = 16, .inner_dim = 64, .dtype_bytes = 2};
  ASSERT_EQ(a.bytes_per_block(), b.bytes_per_block());
  EXPECT_NE(model_fingerprint(a), model_fingerprint(b));
  EXPECT_EQ(model_fingerprint(a), model_fingerprint(ModelConfig(a)));
  EXPECT_NE(remote_block_key("ns", 1, SequenceHash{5}), remote_block_key("ns", 2, SequenceHash{5}));
  EXPECT_EQ(remote_block_key("ns", 0xab, SequenceHash{0x5}), "ns:00000000000000ab:0000000000000005");
}

TEST(JumpHashTest, AddingANodeMovesAboutOneInNPlusOneKeysAllToTheNewNode) {
  constexpr std::uint32_t kKeys = 20000;
  std::mt19937_64 rng(1);
  std::vector<std::uint64_t> keys(kKeys);
  for (auto& k : keys) k = rng();
  for (std::uint32_t n = 1; n < 6; ++n) {
    std::uint32_t moved = 0;
    for (std::uint64_t k : keys) {
      const std::uint32_t before = jump_consistent_hash(k, n);
      const std::uint32_t after = jump_consistent_hash(k, n + 1);
      ASSERT_LT(before, n);
      if (before != after) {
        ++moved;
        EXPECT_EQ(after, n);  // only to the new node
      }
    }
    const double expected = static_cast<double>(kKeys) / (n + 1);
    EXPECT_NEAR(moved, expected, expected * 0.1) << n << " → " << n + 1 << " nodes";
  }
}

TEST(G4ConfigTest, ChecksNameTheKey) {
  G4Config c;
  EXPECT_TRUE(c.check().empty());  // off
  c.endpoints = "127.0.0.1:6379,redis-b:6380";
  EXPECT_TRUE(c.check().empty());
  auto parsed = parse_remote_endpoints(c.endpoints);
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[1].host, "redis-b");
  EXPECT_EQ((*parsed)[1].port, 6380);
  for (const char* bad : {"localhost", "h:0", "h:70000", ":1", "a:1,,b:2", "a:1,a:1"}) {
    c.endpoints = bad;
    auto errors = c.check();
    ASSERT_EQ(errors.size(), 1u) << bad;
    EXPECT_NE(errors[0].message().find("g4.endpoints"), std::string::npos) << errors[0];
  }
  c.endpoints = "h:1";
  c.deadline_ms = 0;
  c.key_namespace = "";
  auto errors = c.check();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].message().find("g4.namespace"), std::string::npos);
  EXPECT_NE(errors[1].message().find("g4.deadline_ms"), std::string::npos);
}

// ---- against redis-server ----

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::redis_server_path() == nullptr) GTEST_SKIP() << "redis-server is not installed";
  }
};

TEST_F(RedisStoreTest, PutThenGetIsByteExactAndMissesAreNotFound) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto store = connected_store(options_for({&server}));
  ASSERT_NE(store, nullptr);
  const auto keys = hashes(40);
  ASSERT_TRUE(put_all(*store, keys).ok());
  EXPECT_EQ(server.dbsize(), 40);

  std::vector<SequenceHash> asked = keys;
  asked.push_back(SequenceHash{777});  // never stored
  const RemoteResult r = store->get(asked)->wait();
  ASSERT_EQ(r.blocks.size(), 41u);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(r.blocks[i].ok()) << i << ": " << r.blocks[i];
    const std::vector<std::byte> expected = block_bytes(keys[i].value());
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), r.fetched[i].payload.begin(), r.fetched[i].payload.end()));
    EXPECT_EQ(r.fetched[i].info.sequence_hash, keys[i]);
    EXPECT_EQ(r.fetched[i].info.block_hash, BlockHash{keys[i].value() * 3 + 1});
  }
  EXPECT_EQ(r.blocks[40].code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.ok_prefix(), 40u);

  const RemoteResult e = store->exists(asked)->wait();
  EXPECT_EQ(e.ok_prefix(), 40u);
  EXPECT_EQ(e.blocks[40].code(), absl::StatusCode::kNotFound);

  const RemoteStats s = store->stats();
  EXPECT_EQ(s.puts, 40u);
  EXPECT_EQ(s.put_bytes, 40 * (kPayload + kRemoteHeaderBytes));
  EXPECT_EQ(s.gets, 41u);
  EXPECT_EQ(s.hits, 40u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.get_bytes, 40 * kPayload);
  EXPECT_EQ(s.exists_keys, 41u);
  EXPECT_EQ(s.exists_found, 40u);
  EXPECT_EQ(s.corrupt + s.errors + s.unavailable, 0u);
}

TEST_F(RedisStoreTest, TtlIsSetWhenConfigured) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto o = options_for({&server});
  o.ttl_seconds = 600;
  auto store = connected_store(o);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(put_all(*store, {SequenceHash{5}}).ok());
  auto ttl = server.command({"TTL", store->key_of(SequenceHash{5})});
  ASSERT_TRUE(ttl && ttl->type == REDIS_REPLY_INTEGER);
  EXPECT_GT(ttl->integer, 0);
  EXPECT_LE(ttl->integer, 600);
}

TEST_F(RedisStoreTest, TwoNodesSpreadKeysAndServeThemAll) {
  RedisServer a, b;
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  auto store = connected_store(options_for({&a, &b}));
  ASSERT_NE(store, nullptr);
  const auto keys = hashes(200);
  ASSERT_TRUE(put_all(*store, keys).ok());
  const long long on_a = a.dbsize(), on_b = b.dbsize();
  EXPECT_EQ(on_a + on_b, 200);
  EXPECT_GT(on_a, 60);  // jump hash: about half each
  EXPECT_GT(on_b, 60);
  for (SequenceHash h : keys) {
    const RedisServer& holder = store->node_of(h) == 0 ? a : b;
    auto r = holder.command({"EXISTS", store->key_of(h)});
    ASSERT_TRUE(r && r->type == REDIS_REPLY_INTEGER);
    EXPECT_EQ(r->integer, 1);
  }
  const RemoteResult r = store->get(keys)->wait();
  EXPECT_EQ(r.ok_prefix(), 200u);
}

TEST_F(RedisStoreTest, KilledNodeIsUnavailableWithinTheDeadlineThenReconnects) {
  RedisServer a, b;
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  auto store = connected_store(options_for({&a, &b}));
  ASSERT_NE(store, nullptr);
  const auto keys = hashes(64);
  ASSERT_TRUE(put_all(*store, keys).ok());

  b.kill();
  // Engine-style calls: each bounded by a deadline. Keys on b fail (Unavailable, or not answered in time);
  // keys on a are still served.
  for (int round = 0; round < 5; ++round) {
    auto op = store->exists(keys);
    // The dead node answers at once (refused / reset), so this returns long before the bound; the bound is
    // generous only for slow sanitizer builds, where a short one could cut the live node's answer too.
    const RemoteResult r = op->result_by(Clock::now() + 5s);
    if (!op->done()) store->report_deadline_missed(*op, r);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (store->node_of(keys[i]) == 0) {
        EXPECT_TRUE(r.blocks[i].ok() || r.blocks[i].code() == absl::StatusCode::kDeadlineExceeded) << r.blocks[i];
      } else {
        EXPECT_FALSE(r.blocks[i].ok());
      }
    }
  }
  EXPECT_TRUE(wait_until([&] { return store->health() == RemoteHealth::kDegraded; }, 5s));
  EXPECT_FALSE(store->node_up(1));
  // Down: calls to b fail at once, without waiting.
  const RemoteResult fast = store->get(keys)->result_by(Clock::now() + 5s);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (store->node_of(keys[i]) == 1) EXPECT_EQ(fast.blocks[i].code(), absl::StatusCode::kUnavailable);
  }
  EXPECT_GT(store->stats().unavailable, 0u);
  const RemoteStats before = store->stats();
  EXPECT_GE(before.disconnects, 1u);

  // b comes back (empty: no persistence); the store reconnects by itself.
  ASSERT_TRUE(b.restart());
  ASSERT_TRUE(wait_until([&] { return store->health() == RemoteHealth::kAvailable; }, 10s));
  EXPECT_GT(store->stats().reconnects, before.reconnects);
  ASSERT_TRUE(put_all(*store, keys).ok());
  EXPECT_EQ(store->get(keys)->wait().ok_prefix(), keys.size());
}

TEST_F(RedisStoreTest, StoppedNodeHonoursTheDeadlineAndRecovers) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto store = connected_store(options_for({&server}));
  ASSERT_NE(store, nullptr);
  const auto keys = hashes(8);
  ASSERT_TRUE(put_all(*store, keys).ok());

  server.pause();  // SIGSTOP: connected, silent
  auto op = store->get(keys);
  const RemoteResult r = op->result_by(Clock::now() + 30ms);
  ASSERT_FALSE(op->done());
  for (const absl::Status& s : r.blocks) EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  store->report_deadline_missed(*op, r);
  EXPECT_EQ(store->health(), RemoteHealth::kUnavailable);
  // Marked slow: the next call fails at once instead of queueing behind the stuck one.
  auto next = store->exists(keys);
  EXPECT_TRUE(next->done());
  EXPECT_EQ(next->wait().blocks[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->stats().timeouts, keys.size());
  // The stuck pipeline ends by the I/O timeout (the op completes, as Unavailable).
  const RemoteResult late = op->wait();
  EXPECT_EQ(late.blocks[0].code(), absl::StatusCode::kUnavailable);

  server.resume();
  ASSERT_TRUE(wait_until([&] { return store->health() == RemoteHealth::kAvailable; }, 10s));
  const RemoteResult again = store->get(keys)->wait();
  EXPECT_EQ(again.ok_prefix(), keys.size());
}

TEST_F(RedisStoreTest, ValueDamagedBehindOurBackIsAMissNeverWrongBytes) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto store = connected_store(options_for({&server}));
  ASSERT_NE(store, nullptr);
  const auto keys = hashes(5);
  ASSERT_TRUE(put_all(*store, keys).ok());
  // One payload byte flipped, one header byte, one value moved under another block's key, and one key
  // turned into a list (GET answers with an error).
  auto r1 = server.command({"SETRANGE", store->key_of(keys[1]), "100", "X"});
  ASSERT_TRUE(r1 && r1->type == REDIS_REPLY_INTEGER);
  auto r2 = server.command({"SETRANGE", store->key_of(keys[2]), "26", "\x7f"});
  ASSERT_TRUE(r2 && r2->type == REDIS_REPLY_INTEGER);
  auto r3 = server.command({"COPY", store->key_of(keys[0]), store->key_of(keys[3]), "REPLACE"});
  ASSERT_TRUE(r3 && r3->type == REDIS_REPLY_INTEGER && r3->integer == 1);
  ASSERT_TRUE(server.command({"DEL", store->key_of(keys[4])}));
  ASSERT_TRUE(server.command({"RPUSH", store->key_of(keys[4]), "x"}));

  const RemoteResult r = store->get(keys)->wait();
  EXPECT_TRUE(r.blocks[0].ok());
  EXPECT_EQ(r.blocks[1].code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(r.blocks[2].code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(r.blocks[3].code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(r.blocks[4].code(), absl::StatusCode::kInternal);
  EXPECT_EQ(r.ok_prefix(), 1u);
  EXPECT_EQ(store->stats().corrupt, 3u);
  EXPECT_EQ(store->stats().errors, 1u);
  // The connection stayed in step: the next call is answered normally.
  EXPECT_EQ(store->get(std::span<const SequenceHash>(keys).first(1))->wait().ok_prefix(), 1u);
}

TEST_F(RedisStoreTest, AnotherFingerprintNeverSeesTheBlocks) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto a = connected_store(options_for({&server}, 1));
  auto b = connected_store(options_for({&server}, 2));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const auto keys = hashes(10);
  ASSERT_TRUE(put_all(*a, keys).ok());
  EXPECT_EQ(b->exists(keys)->wait().ok_prefix(), 0u);
  EXPECT_EQ(b->get(keys)->wait().ok_prefix(), 0u);
  EXPECT_EQ(a->get(keys)->wait().ok_prefix(), keys.size());
}

TEST_F(RedisStoreTest, NoServerAtAllIsUnavailableNotAnError) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto o = options_for({&server});
  server.kill();
  auto store = RedisStore::create(o);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(wait_until([&] { return !(*store)->node_up(0) && (*store)->stats().unavailable == 0; }, 1s));
  const auto keys = hashes(3);
  const RemoteResult r = (*store)->exists(keys)->result_by(Clock::now() + 100ms);
  for (const absl::Status& s : r.blocks) EXPECT_FALSE(s.ok());
  std::vector<RemoteValue> values;
  values.push_back(make_value(keys[0], o.fingerprint));
  const RemoteResult p = (*store)->put(std::move(values))->wait();  // bounded: fails, never hangs
  EXPECT_FALSE(p.blocks[0].ok());
  (*store)->shutdown();
}

TEST_F(RedisStoreTest, ConcurrentCallersFromManyThreads) {
  RedisServer a, b;
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  auto store = connected_store(options_for({&a, &b}));
  ASSERT_NE(store, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const auto keys = hashes(32, 100000 * (t + 1));
      if (!put_all(*store, keys).ok()) ++failures;
      for (int i = 0; i < 5; ++i) {
        if (store->get(keys)->wait().ok_prefix() != keys.size()) ++failures;
        if (store->exists(keys)->wait().ok_prefix() != keys.size()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace kvbm
