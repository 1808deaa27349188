// EventManager: batching by count and by time, drop-oldest overflow, flush and shutdown, and the events
// a real BlockPool reports reaching a CallbackPublisher.
#include "kvbm/events/event_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kvbm/core/mutex.h"
#include "kvbm/events/msgpack_codec.h"
#include "kvbm/pool/block_pool.h"
#include "support/pool_test_util.h"

namespace kvbm {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Collects batches from a CallbackPublisher; lets tests wait for a number of events.
class Collector {
 public:
  std::unique_ptr<EventPublisher> publisher() {
    return std::make_unique<CallbackPublisher>([this](const EventBatch& b) { add(b); });
  }
  void add(const EventBatch& b) {
    {
      MutexLock lock(&mu_);
      batches_.push_back(b);
    }
    cv_.notify_all();
  }
  // True when at least `n` events arrived within `timeout`.
  bool wait_events(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    MutexLock lock(&mu_);
    while (count_locked() < n) {
      if (cv_.wait_until(mu_, deadline) == std::cv_status::timeout) return count_locked() >= n;
    }
    return true;
  }
  std::vector<EventBatch> batches() {
    MutexLock lock(&mu_);
    return batches_;
  }
  std::vector<std::size_t> batch_sizes() {
    std::vector<std::size_t> out;
    for (const EventBatch& b : batches()) out.push_back(b.events.size());
    return out;
  }
  std::vector<KvEvent> events() {
    std::vector<KvEvent> out;
    for (const EventBatch& b : batches()) out.insert(out.end(), b.events.begin(), b.events.end());
    return out;
  }

 private:
  std::size_t count_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::size_t n = 0;
    for (const EventBatch& b : batches_) n += b.events.size();
    return n;
  }
  Mutex mu_;
  std::condition_variable_any cv_;
  std::vector<EventBatch> batches_ ABSL_GUARDED_BY(mu_);
};

KvEvent removed(std::uint64_t hash) { return BlockRemovedEvent{{hash}, "GPU"}; }

// The synthesized tokens, written from the formula of event_manager.h (not with its code).
std::vector<std::uint32_t> synthesized(const std::vector<std::uint64_t>& hashes, std::uint32_t block_size) {
  std::vector<std::uint32_t> out;
  for (std::uint64_t h : hashes) {
    for (std::uint32_t i = 0; i < block_size; ++i) {
      std::uint64_t z = h + i + 0x9E3779B97F4A7C15ull;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      out.push_back(static_cast<std::uint32_t>((z ^ (z >> 31)) >> 33));
    }
  }
  return out;
}

std::uint64_t first_hash(const KvEvent& e) { return std::get<BlockRemovedEvent>(e).block_hashes.at(0); }

std::unique_ptr<EventManager> make_manager(EventManagerOptions options, Collector& c) {
  std::vector<std::unique_ptr<EventPublisher>> pubs;
  pubs.push_back(c.publisher());
  auto m = EventManager::create(options, std::move(pubs));
  EXPECT_TRUE(m.ok()) << m.status();
  return *std::move(m);
}

TEST(EventManagerTest, OptionsAreValidatedByName) {
  struct Case {
    EventManagerOptions options;
    std::string field;
  };
  std::vector<Case> cases(5);
  cases[4].options.max_batch_bytes = 0;
  cases[4].field = "max_batch_bytes";
  cases[0].options.queue_capacity = 0;
  cases[0].field = "queue_capacity";
  cases[1].options.max_batch_events = 0;
  cases[1].field = "max_batch_events";
  cases[2].options.max_batch_delay = -1ms;
  cases[2].field = "max_batch_delay";
  cases[3].options.data_parallel_rank = -1;
  cases[3].field = "data_parallel_rank";
  for (const Case& c : cases) {
    auto m = EventManager::create(c.options, {});
    ASSERT_FALSE(m.ok()) << c.field;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.field));
  }
  std::vector<std::unique_ptr<EventPublisher>> pubs;
  pubs.push_back(nullptr);
  EXPECT_THAT(std::string(EventManager::create({}, std::move(pubs)).status().message()), HasSubstr("publishers[0]"));
}

TEST(EventManagerTest, BatchesByCount) {
  Collector c;
  auto m = make_manager({.max_batch_events = 4, .max_batch_delay = 60s}, c);
  for (std::uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(m->enqueue(removed(i)).ok());
  ASSERT_TRUE(c.wait_events(8));  // two full batches go out without waiting for the delay
  ASSERT_TRUE(m->enqueue(removed(8)).ok());
  ASSERT_TRUE(m->enqueue(removed(9)).ok());
  m->flush();  // the partial batch goes out now, not after 60 s
  EXPECT_THAT(c.batch_sizes(), ElementsAre(4, 4, 2));
  std::vector<std::uint64_t> order;
  for (const KvEvent& e : c.events()) order.push_back(first_hash(e));
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
  const EventManagerStats s = m->stats();
  EXPECT_EQ(s.sent, 10u);
  EXPECT_EQ(s.batches, 3u);
  EXPECT_EQ(s.dropped, 0u);
}

// Events that arrive while a batch is being published do not change where the next batches start: the
// publisher thread, woken by a full batch, publishes whole batches only and leaves the rest queued.
TEST(EventManagerTest, BatchBoundariesDoNotDependOnWhenThePublisherWakes) {
  Collector c;
  Mutex gate_mu;
  bool first_entered = false, release = false;
  std::condition_variable_any gate_cv;
  std::vector<std::unique_ptr<EventPublisher>> pubs;
  pubs.push_back(std::make_unique<CallbackPublisher>([&](const EventBatch& b) {
    {
      MutexLock lock(&gate_mu);
      if (!first_entered) {
        first_entered = true;
        gate_cv.notify_all();
        while (!release) gate_cv.wait(gate_mu);
      }
    }
    c.add(b);
  }));
  auto created = EventManager::create({.max_batch_events = 4, .max_batch_delay = 60s}, std::move(pubs));
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<EventManager> m = *std::move(created);
  for (std::uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(m->enqueue(removed(i)).ok());
  {
    MutexLock lock(&gate_mu);
    while (!first_entered) gate_cv.wait(gate_mu);  // the first batch is being published
  }
  for (std::uint64_t i = 4; i < 9; ++i) ASSERT_TRUE(m->enqueue(removed(i)).ok());  // one batch and one more
  {
    MutexLock lock(&gate_mu);
    release = true;
  }
  gate_cv.notify_all();
  ASSERT_TRUE(c.wait_events(8));  // the second batch went out; the ninth event must still be queued
  for (std::uint64_t i = 9; i < 12; ++i) ASSERT_TRUE(m->enqueue(removed(i)).ok());  // completes the third batch
  ASSERT_TRUE(c.wait_events(12));  // all three full batches go out without waiting for the 60 s delay
  EXPECT_THAT(c.batch_sizes(), ElementsAre(4, 4, 4));
  std::vector<std::uint64_t> order;
  for (const KvEvent& e : c.events()) order.push_back(first_hash(e));
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
}

TEST(EventManagerTest, BatchesByTime) {
  Collector c;
  auto m = make_manager({.max_batch_events = 1000, .max_batch_delay = 30ms, .data_parallel_rank = 3}, c);
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(m->enqueue(removed(i)).ok());
  ASSERT_TRUE(c.wait_events(3));  // no flush: the delay alone publishes the batch
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  ASSERT_THAT(c.batch_sizes(), ElementsAre(3));
  const EventBatch b = c.batches()[0];
  EXPECT_EQ(b.data_parallel_rank, 3);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(b.timestamp, now, 60.0);
}

TEST(EventManagerTest, OverflowDropsOldestAndCounts) {
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool entered = false;
  bool release = false;
  std::vector<std::uint64_t> got;
  auto blocking = std::make_unique<CallbackPublisher>([&](const EventBatch& b) {
    std::unique_lock lock(gate_mu);
    for (const KvEvent& e : b.events) got.push_back(first_hash(e));
    entered = true;
    gate_cv.notify_all();
    gate_cv.wait(lock, [&] { return release; });
  });
  std::vector<std::unique_ptr<EventPublisher>> pubs;
  pubs.push_back(std::move(blocking));
  auto m =
      *EventManager::create({.queue_capacity = 4, .max_batch_events = 100, .max_batch_delay = 0ms}, std::move(pubs));
  ASSERT_TRUE(m->enqueue(removed(0)).ok());
  {
    std::unique_lock lock(gate_mu);
    gate_cv.wait(lock, [&] { return entered; });  // the publisher thread now holds event 0
  }
  for (std::uint64_t i = 1; i <= 10; ++i) ASSERT_TRUE(m->enqueue(removed(i)).ok());
  EXPECT_EQ(m->stats().dropped, 6u);  // 1..6 pushed out by 7..10
  {
    std::lock_guard lock(gate_mu);
    release = true;
  }
  gate_cv.notify_all();
  m->flush();
  {
    std::lock_guard lock(gate_mu);
    EXPECT_THAT(got, ElementsAre(0, 7, 8, 9, 10));
  }
  const EventManagerStats s = m->stats();
  EXPECT_EQ(s.sent, 5u);
  EXPECT_EQ(s.dropped, 6u);
  EXPECT_EQ(s.batches, 2u);
}

// Batch bounds are computed without overflow: with the largest max_batch_events and a dropped event
// in front, each queued event is published once.
TEST(EventManagerTest, LargestMaxBatchEventsPublishesEachEventOnce) {
  Collector c;
  auto m = make_manager(
      {.queue_capacity = 2, .max_batch_events = std::numeric_limits<std::size_t>::max(), .max_batch_delay = 60s}, c);
  for (std::uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(m->enqueue(removed(i)).ok());
  m->flush();
  std::vector<std::uint64_t> got;
  for (const KvEvent& e : c.events()) got.push_back(first_hash(e));
  EXPECT_THAT(got, ElementsAre(1, 2));
  EXPECT_EQ(m->stats().batches, 1u);
  EXPECT_EQ(m->stats().dropped, 1u);
}

TEST(EventManagerTest, ShutdownFlushesAndLaterEventsCountAsDropped) {
  Collector c;
  auto m = make_manager({.max_batch_events = 1000, .max_batch_delay = 60s}, c);
  for (std::uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(m->enqueue(removed(i)).ok());
  m->shutdown();
  EXPECT_THAT(c.batch_sizes(), ElementsAre(5));
  ASSERT_TRUE(m->enqueue(removed(99)).ok());
  m->flush();  // returns at once after shutdown
  m->shutdown();
  EXPECT_EQ(m->stats().sent, 5u);
  EXPECT_EQ(m->stats().dropped, 1u);
}

TEST(EventManagerTest, DestructorFlushes) {
  Collector c;
  {
    auto m = make_manager({.max_batch_events = 1000, .max_batch_delay = 60s}, c);
    for (std::uint64_t i = 0; i < 7; ++i) ASSERT_TRUE(m->enqueue(removed(i)).ok());
  }
  EXPECT_EQ(c.events().size(), 7u);
}

// Sends only the payload, as ZMQ and NATS do: records every payload and answers `result`.
class PayloadPublisher final : public EventPublisher {
 public:
  explicit PayloadPublisher(absl::Status result = absl::OkStatus()) : result_(std::move(result)) {}
  std::string_view name() const override { return "payload"; }
  bool reads_events() const override { return false; }
  absl::Status publish(const EventBatch&, std::string_view payload) override {
    MutexLock lock(&mu);
    payloads.emplace_back(payload);
    return result_;
  }
  int nonempty_payloads() {
    MutexLock lock(&mu);
    return static_cast<int>(
        std::count_if(payloads.begin(), payloads.end(), [](const std::string& p) { return !p.empty(); }));
  }
  Mutex mu;
  std::vector<std::string> payloads ABSL_GUARDED_BY(mu);

 private:
  const absl::Status result_;
};

TEST(EventManagerTest, PublishErrorsAreCountedAndOtherPublishersStillRun) {
  Collector c;
  auto failing = std::make_unique<PayloadPublisher>(absl::UnavailableError("down"));
  PayloadPublisher* raw = failing.get();
  std::vector<std::unique_ptr<EventPublisher>> pubs;
  pubs.push_back(std::move(failing));
  pubs.push_back(c.publisher());
  auto m = *EventManager::create({.max_batch_events = 2, .max_batch_delay = 60s}, std::move(pubs));
  for (std::uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(m->enqueue(removed(i)).ok());
  m->flush();
  EXPECT_EQ(m->stats().publish_errors, 2u);
  EXPECT_EQ(m->stats().sent, 4u);
  EXPECT_EQ(raw->nonempty_payloads(), 2);  // each got the encoded payload
  EXPECT_EQ(c.events().size(), 4u);
}

// A new event is written over the slot of one published before (see EventManager): each published
// event carries exactly its own fields, whatever the slot held, on both the payload and the batch.
TEST(EventManagerTest, ReusedSlotsCarryOnlyTheNewEventsFields) {
  Collector c;
  auto payload = std::make_unique<PayloadPublisher>();
  PayloadPublisher* raw = payload.get();
  std::vector<std::unique_ptr<EventPublisher>> pubs;
  pubs.push_back(std::move(payload));
  pubs.push_back(c.publisher());
  auto m = *EventManager::create({.max_batch_events = 64, .max_batch_delay = 60s}, std::move(pubs));
  auto stored = [](std::vector<std::uint64_t> hashes, std::optional<std::uint64_t> parent,
                   std::vector<std::uint32_t> tokens, CacheLevel level) {
    BlocksStored e;
    e.level = level;
    for (std::uint64_t h : hashes) e.block_hashes.push_back(SequenceHash{h});
    if (parent) e.parent_hash = SequenceHash{*parent};
    e.token_ids = std::move(tokens);
    e.block_size = 2;
    return e;
  };
  std::vector<KvEvent> expected;
  // Round 1 fills three slots; each later round writes other kinds and fewer fields over them.
  m->on_stored(stored({1, 2, 3}, 7, {10, 11, 12, 13, 14, 15}, CacheLevel::kG1));
  m->on_removed(BlocksRemoved{CacheLevel::kG2, {SequenceHash{4}, SequenceHash{5}}});
  m->on_stored(stored({6}, std::nullopt, {16, 17}, CacheLevel::kG3));
  expected.push_back(BlockStoredEvent{{1, 2, 3}, 7, {10, 11, 12, 13, 14, 15}, 2, std::nullopt, "GPU", std::nullopt});
  expected.push_back(BlockRemovedEvent{{4, 5}, "CPU"});
  expected.push_back(BlockStoredEvent{{6}, std::nullopt, {16, 17}, 2, std::nullopt, "DISK", std::nullopt});
  m->flush();
  m->on_stored(stored({8}, std::nullopt, {}, CacheLevel::kG2));
  m->on_stored(stored({9, 10}, 3, {1, 2, 3, 4}, CacheLevel::kG1));
  m->on_cleared(CacheLevel::kG1);
  expected.push_back(BlockStoredEvent{{8}, std::nullopt, synthesized({8}, 2), 2, std::nullopt, "CPU", std::nullopt});
  expected.push_back(BlockStoredEvent{{9, 10}, 3, {1, 2, 3, 4}, 2, std::nullopt, "GPU", std::nullopt});
  expected.push_back(AllBlocksClearedEvent{});
  m->flush();
  m->on_removed(BlocksRemoved{CacheLevel::kG1, {SequenceHash{11}}});
  ASSERT_TRUE(m->enqueue(BlockRemovedEvent{{12, 13, 14}, std::nullopt}).ok());
  expected.push_back(BlockRemovedEvent{{11}, "GPU"});
  expected.push_back(BlockRemovedEvent{{12, 13, 14}, std::nullopt});
  m->flush();

  EXPECT_EQ(c.events(), expected);
  std::vector<KvEvent> decoded;
  {
    MutexLock lock(&raw->mu);
    for (const std::string& p : raw->payloads) {
      auto batch = decode_event_batch(p);
      ASSERT_TRUE(batch.ok()) << batch.status();
      decoded.insert(decoded.end(), batch->events.begin(), batch->events.end());
    }
  }
  EXPECT_EQ(decoded, expected);
}

// Issue 26: every BlockStored leaves with blocks × block_size tokens; a block reported without them (trace
// replay, identity-only tiers) gets the synthesized ones, real tokens pass unchanged.
TEST(EventManagerTest, StoredWithoutTokensGetsSynthesizedTokens) {
  Collector c;
  auto m = make_manager({.max_batch_delay = 60s}, c);
  m->on_stored(
      BlocksStored{CacheLevel::kG3, {SequenceHash{5}, SequenceHash{0xFFFFFFFFFFFFFFFFull}}, std::nullopt, {}, 16});
  m->on_stored(BlocksStored{CacheLevel::kG1, {SequenceHash{6}}, SequenceHash{5}, {1, 2, 3, 4}, 4});
  m->flush();
  const std::vector<KvEvent> got = c.events();
  ASSERT_EQ(got.size(), 2u);
  const auto& s = std::get<BlockStoredEvent>(got[0]);
  EXPECT_EQ(s.token_ids, synthesized({5, 0xFFFFFFFFFFFFFFFFull}, 16));
  EXPECT_EQ(s.token_ids.size(), 32u);
  EXPECT_NE(std::vector<std::uint32_t>(s.token_ids.begin(), s.token_ids.begin() + 16),
            std::vector<std::uint32_t>(s.token_ids.begin() + 16, s.token_ids.end()));
  EXPECT_EQ(std::get<BlockStoredEvent>(got[1]).token_ids, (std::vector<std::uint32_t>{1, 2, 3, 4}));
}

TEST(EventManagerTest, EnqueueRefusesStoredWithWrongTokenCount) {
  Collector c;
  auto m = make_manager({.max_batch_delay = 60s}, c);
  BlockStoredEvent e;
  e.block_hashes = {1, 2};
  e.block_size = 4;
  e.token_ids = {1, 2, 3};
  const absl::Status s = m->enqueue(e);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("BlockStored has 3 token_ids for 2 block(s) × block_size 4, expected 8"));
  e.token_ids.assign(8, 7);
  ASSERT_TRUE(m->enqueue(e).ok());
  m->flush();
  EXPECT_EQ(c.events(), std::vector<KvEvent>{e});
}

// Issue 26: with tokens in every BlockStored a batch of 256 events can pass NATS's 1 MiB max_payload (a
// replay's 1.4 MB batch was refused and lost). A payload over max_batch_bytes is split in halves.
TEST(EventManagerTest, PayloadsOverMaxBatchBytesAreSplit) {
  auto payload = std::make_unique<PayloadPublisher>();
  PayloadPublisher* raw = payload.get();
  std::vector<std::unique_ptr<EventPublisher>> pubs;
  pubs.push_back(std::move(payload));
  auto m = *EventManager::create({.max_batch_events = 256, .max_batch_delay = 60s, .max_batch_bytes = 2000},
                                 std::move(pubs));
  std::vector<std::uint64_t> expected;
  for (std::uint64_t i = 0; i < 10; ++i) {  // ~640 bytes of tokens each
    m->on_stored(BlocksStored{CacheLevel::kG1, {SequenceHash{i}}, std::nullopt, {}, 128});
    expected.push_back(i);
  }
  BlocksStored huge{CacheLevel::kG1, {SequenceHash{99}}, std::nullopt, {}, 1024};  // alone over the limit
  m->on_stored(huge);
  expected.push_back(99);
  m->flush();
  std::vector<std::uint64_t> got;
  MutexLock lock(&raw->mu);
  EXPECT_GT(raw->payloads.size(), 4u);
  for (const std::string& p : raw->payloads) {
    auto batch = decode_event_batch(p);
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_TRUE(p.size() <= 2000 || batch->events.size() == 1) << p.size();
    for (const KvEvent& e : batch->events) got.push_back(std::get<BlockStoredEvent>(e).block_hashes[0]);
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(m->stats().sent, 11u);
  EXPECT_EQ(m->stats().batches, raw->payloads.size());
}

TEST(EventManagerTest, MediaNamesAndMapBatchFormat) {
  auto payload = std::make_unique<PayloadPublisher>();
  PayloadPublisher* raw = payload.get();
  std::vector<std::unique_ptr<EventPublisher>> pubs;
  pubs.push_back(std::move(payload));
  EventManagerOptions o{.max_batch_delay = 60s, .data_parallel_rank = 1, .batch_format = BatchFormat::kMap};
  o.media[static_cast<std::size_t>(CacheLevel::kG2)] = "cpu_tier";
  auto m = *EventManager::create(o, std::move(pubs));
  m->on_removed(BlocksRemoved{CacheLevel::kG2, {SequenceHash{4}}});
  m->flush();
  MutexLock lock(&raw->mu);
  ASSERT_EQ(raw->payloads.size(), 1u);
  EXPECT_EQ(static_cast<unsigned char>(raw->payloads[0][0]), 0x83u);  // fixmap of 3: ts, events, rank
  auto batch = decode_event_batch(raw->payloads[0]);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->data_parallel_rank, 1);
  EXPECT_EQ(batch->events, (std::vector<KvEvent>{BlockRemovedEvent{{4}, "cpu_tier"}}));

  o.media[static_cast<std::size_t>(CacheLevel::kG3)] = "";
  auto bad = EventManager::create(o, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("medium of G3 must not be empty"));
}

TEST(EventManagerTest, ConcurrentProducersLoseNothingUnlessDropped) {
  Collector c;
  auto m = make_manager({.queue_capacity = 64, .max_batch_events = 16, .max_batch_delay = 1ms}, c);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE(
            m->enqueue(removed(static_cast<std::uint64_t>(t) * kPerThread + static_cast<std::uint64_t>(i))).ok());
        if (i % 500 == 0) m->flush();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  m->flush();
  const EventManagerStats s = m->stats();
  EXPECT_EQ(s.sent + s.dropped, static_cast<std::uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(c.events().size(), s.sent);
  // Per producer, what arrived is in the order it was produced.
  std::vector<std::uint64_t> last(kThreads, 0);
  std::vector<bool> seen(kThreads, false);
  for (const KvEvent& e : c.events()) {
    const std::uint64_t h = first_hash(e);
    const std::size_t t = h / kPerThread;
    if (seen[t]) {
      EXPECT_GT(h, last[t]);
    }
    seen[t] = true;
    last[t] = h;
  }
}

// ---- events from a real pool ----

template <CacheLevel L>
std::unique_ptr<BlockPool<L>> make_pool(EventSink* sink, std::uint32_t num_blocks = 8, std::uint32_t page = 4) {
  auto pool = BlockPool<L>::create({.num_blocks = num_blocks, .page_size = page, .events = sink});
  EXPECT_TRUE(pool.ok()) << pool.status();
  return *std::move(pool);
}

TEST(EventManagerTest, PoolEventsReachTheCallbackWithMediumHashesParentAndTokens) {
  Collector c;
  auto m = make_manager({.max_batch_delay = 1ms}, c);
  auto g1 = make_pool<CacheLevel::kG1>(m.get());
  auto g2 = make_pool<CacheLevel::kG2>(m.get());

  const std::vector<std::uint32_t> tokens = testing::make_tokens(20, 1);
  // One register call of 3 blocks → one Stored event of 3 hashes.
  auto first = testing::register_tokens(*g1, std::span(tokens).subspan(0, 12));
  ASSERT_TRUE(first.ok()) << first.status();
  // A continuation: its parent is the last block of the first call.
  auto second =
      testing::register_tokens(*g1, std::span(tokens).subspan(12, 8), SaltHash{0}, first->back().sequence_hash());
  ASSERT_TRUE(second.ok()) << second.status();
  // Registering the same blocks again is a dedup: no event.
  auto again = testing::register_tokens(*g1, std::span(tokens).subspan(0, 12));
  ASSERT_TRUE(again.ok()) << again.status();
  auto in_g2 = testing::register_tokens(*g2, std::span(tokens).subspan(0, 4));
  ASSERT_TRUE(in_g2.ok()) << in_g2.status();
  m->flush();

  const std::vector<KvEvent> events = c.events();
  ASSERT_EQ(events.size(), 3u);
  const auto& s1 = std::get<BlockStoredEvent>(events[0]);
  EXPECT_EQ(s1.block_hashes.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(s1.block_hashes[i], (*first)[i].sequence_hash().value());
  EXPECT_FALSE(s1.parent_block_hash.has_value());
  EXPECT_EQ(s1.token_ids, std::vector<std::uint32_t>(tokens.begin(), tokens.begin() + 12));
  EXPECT_EQ(s1.block_size, 4u);
  EXPECT_EQ(s1.medium, "GPU");
  EXPECT_FALSE(s1.lora_id.has_value());
  const auto& s2 = std::get<BlockStoredEvent>(events[1]);
  EXPECT_EQ(s2.parent_block_hash, first->back().sequence_hash().value());
  EXPECT_EQ(s2.token_ids, std::vector<std::uint32_t>(tokens.begin() + 12, tokens.end()));
  EXPECT_EQ(std::get<BlockStoredEvent>(events[2]).medium, "CPU");

  // Evicting: release everything, then allocate the whole pool → the 5 registered blocks are removed.
  first->clear();
  second->clear();
  again->clear();
  auto all = g1->allocate(8);
  ASSERT_TRUE(all.ok()) << all.status();
  all->clear();
  m->flush();
  std::vector<std::uint64_t> removed_hashes;
  for (const KvEvent& e : c.events()) {
    if (const auto* r = std::get_if<BlockRemovedEvent>(&e)) {
      EXPECT_EQ(r->medium, "GPU");
      removed_hashes.insert(removed_hashes.end(), r->block_hashes.begin(), r->block_hashes.end());
    }
  }
  EXPECT_EQ(removed_hashes.size(), 5u);

  in_g2->clear();
  ASSERT_TRUE(g2->reset().ok());
  m->flush();
  EXPECT_TRUE(std::holds_alternative<AllBlocksClearedEvent>(c.events().back()));
}

// Calls back into the pool from inside the sink, on the reporting thread: deadlocks if the pool
// reported under its lock.
class ReentrantSink final : public EventSink {
 public:
  explicit ReentrantSink(EventSink* next) : next_(next) {}
  void set_pool(BlockPool<CacheLevel::kG1>* pool) { pool_ = pool; }
  void on_stored(BlocksStored e) override {
    if (pool_ != nullptr) {
      (void)pool_->status();
      for (SequenceHash h : e.block_hashes) EXPECT_TRUE(pool_->contains(h));
    }
    next_->on_stored(std::move(e));
  }
  void on_removed(BlocksRemoved e) override {
    if (pool_ != nullptr) (void)pool_->status();
    next_->on_removed(std::move(e));
  }
  void on_cleared(CacheLevel l) override { next_->on_cleared(l); }

 private:
  EventSink* next_;
  BlockPool<CacheLevel::kG1>* pool_ = nullptr;
};

TEST(EventManagerTest, NoEventsUnderThePoolLock) {
  std::atomic<BlockPool<CacheLevel::kG1>*> pool_ptr{nullptr};
  std::atomic<int> callbacks{0};
  std::vector<std::unique_ptr<EventPublisher>> pubs;
  // The publisher thread also calls into the pool while other threads use it.
  pubs.push_back(std::make_unique<CallbackPublisher>([&](const EventBatch& b) {
    if (BlockPool<CacheLevel::kG1>* p = pool_ptr.load()) {
      for (const KvEvent& e : b.events) {
        if (const auto* s = std::get_if<BlockStoredEvent>(&e)) (void)p->contains(SequenceHash{s->block_hashes[0]});
      }
      (void)p->status();
    }
    callbacks.fetch_add(1);
  }));
  auto m = *EventManager::create({.max_batch_events = 8, .max_batch_delay = 0ms}, std::move(pubs));
  ReentrantSink sink(m.get());
  auto pool = make_pool<CacheLevel::kG1>(&sink, 64, 4);
  sink.set_pool(pool.get());
  pool_ptr.store(pool.get());

  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint32_t i = 0; i < 200; ++i) {
        const std::vector<std::uint32_t> tokens = testing::make_tokens(8, static_cast<std::uint32_t>(t) * 1000 + i);
        auto held = testing::register_tokens(*pool, tokens);
        ASSERT_TRUE(held.ok()) << held.status();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  m->flush();
  pool_ptr.store(nullptr);
  const EventManagerStats s = m->stats();
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_GE(s.sent, 400u);  // 400 Stored events plus the Removed ones of evictions
  EXPECT_GT(callbacks.load(), 0);
}

}  // namespace
}  // namespace kvbm
