// KvBlockManager with G1 + G2 + G3: offload, eviction cascades, onboarding, faults, concurrency.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>
#include <thread>

#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/storage/disk_file.h"
#include "support/block_bytes.h"
#include "support/latched_io_backend.h"
#include "support/recording_event_sink.h"
#include "support/wait_until.h"

namespace kvbm {
namespace {

using testing::fill;
using testing::wrong_bytes;

KvbmConfig tiered_config(std::uint32_t g1, std::uint32_t g2, std::uint32_t g3) {
  KvbmConfig config;
  // 2 layers × 2 × 4 tokens × 64 × 2 bytes = 2 KiB per block.
  config.model = ModelConfig{.num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 64, .dtype_bytes = 2};
  config.g1.num_blocks = g1;
  config.g2.num_blocks = g2;
  config.g3.num_blocks = g3;
  config.g3.directory = ::testing::TempDir();
  config.offload.g3_min_frequency = 0;
  config.offload.batch_blocks = 8;
  return config;
}

// Registers a request's blocks that are not cached yet (as an engine would) and releases them.
TokenBlockSequence run_request(KvBlockManager& m, std::uint32_t first_token, std::size_t blocks) {
  std::vector<std::uint32_t> tokens(blocks * m.page_size());
  std::iota(tokens.begin(), tokens.end(), first_token);
  auto seq = m.make_sequence(tokens);
  EXPECT_TRUE(seq.ok());
  auto hits = m.match_and_onboard(seq->sequence_hashes());
  EXPECT_TRUE(hits.ok()) << hits.status();
  const std::size_t have = hits.ok() ? hits->size() : 0;
  auto fresh = m.allocate(blocks - have);
  EXPECT_TRUE(fresh.ok()) << fresh.status();
  for (std::size_t i = 0; i < fresh->size(); ++i) {
    TokenBlock tb = seq->block(have + i);
    fill((*fresh)[i], tb.sequence_hash, m.model());
    EXPECT_TRUE((*fresh)[i].apply(tb).ok());
  }
  auto registered = m.register_blocks(*fresh);
  EXPECT_TRUE(registered.ok()) << registered.status();
  m.release(*std::move(registered));
  if (hits.ok()) m.release(*std::move(hits));
  return *std::move(seq);
}

TEST(MultiTierTest, NarrowTierAccessorsAreNullForAbsentTiers) {
  auto kvbm = KvBlockManager::create(tiered_config(4, 8, 64));
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  const KvBlockManager& m = **kvbm;
  for (CacheLevel level : {CacheLevel::kG1, CacheLevel::kG2, CacheLevel::kG3}) {
    EXPECT_NE(m.tier_memory(level), nullptr) << cache_level_name(level);
    EXPECT_NE(m.tier_layout(level), nullptr) << cache_level_name(level);
    EXPECT_NE(m.tier_storage(level), nullptr) << cache_level_name(level);
  }
  EXPECT_EQ(m.tier_memory(CacheLevel::kG1), &m.g1_memory());
  EXPECT_EQ(m.tier_layout(CacheLevel::kG1), &m.g1_layout());
  EXPECT_EQ(m.tier_memory(CacheLevel::kG4), nullptr);
  EXPECT_EQ(m.tier_layout(CacheLevel::kG4), nullptr);
  EXPECT_EQ(m.tier_storage(CacheLevel::kG4), nullptr);
  EXPECT_FALSE(m.g3_persist_stats().has_value());  // G3 without g3.persist

  auto g1_only = KvBlockManager::create(tiered_config(4, 0, 0));
  ASSERT_TRUE(g1_only.ok()) << g1_only.status();
  EXPECT_EQ((*g1_only)->tier_memory(CacheLevel::kG2), nullptr);
  EXPECT_EQ((*g1_only)->tier_storage(CacheLevel::kG3), nullptr);
  EXPECT_FALSE((*g1_only)->tier_contains(CacheLevel::kG2, SequenceHash{1}));
  EXPECT_FALSE((*g1_only)->g3_persist_stats().has_value());
}

TEST(MultiTierTest, TierContainsFollowsTheBlocksDownTheTiers) {
  auto kvbm = KvBlockManager::create(tiered_config(4, 8, 64));
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  KvBlockManager& m = **kvbm;
  TokenBlockSequence seq = run_request(m, 100, 2);
  m.flush();
  for (SequenceHash h : seq.sequence_hashes()) {
    EXPECT_TRUE(m.tier_contains(CacheLevel::kG1, h));
    EXPECT_TRUE(m.tier_contains(CacheLevel::kG2, h));
    EXPECT_TRUE(m.tier_contains(CacheLevel::kG3, h));
    EXPECT_FALSE(m.tier_contains(CacheLevel::kG4, h));
  }
  EXPECT_FALSE(m.tier_contains(CacheLevel::kG1, SequenceHash{12345}));
}

TEST(MultiTierTest, EvictedFromG1IsFoundInG2ThenG3) {
  auto kvbm = KvBlockManager::create(tiered_config(4, 8, 64));
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  KvBlockManager& m = **kvbm;

  TokenBlockSequence first = run_request(m, 100, 4);
  m.flush();
  EXPECT_EQ(m.status(CacheLevel::kG2).inactive, 4u);
  EXPECT_EQ(m.status(CacheLevel::kG3).inactive, 4u);

  // Push `first` out of G1 (4 blocks), then out of G2 (8 blocks).
  run_request(m, 1000, 4);
  m.flush();
  MatchResult in_g2 = m.match(first.sequence_hashes());
  EXPECT_EQ(in_g2.g1.size(), 0u);
  EXPECT_EQ(in_g2.g2.size(), 4u);
  in_g2 = MatchResult{};
  run_request(m, 2000, 4);
  m.flush();
  run_request(m, 3000, 4);
  m.flush();
  MatchResult in_g3 = m.match(first.sequence_hashes());
  EXPECT_EQ(in_g3.g1.size() + in_g3.g2.size(), 0u);
  ASSERT_EQ(in_g3.g3.size(), 4u);

  // Onboarding brings the prefix back into G1 byte-exact (read straight from disk); once released, the
  // blocks are staged into G2 (onboarding goes through G2) and touched in G3.
  const auto onboard_started = std::chrono::steady_clock::now();
  auto op = m.onboard(std::move(in_g3));
  auto blocks = op->wait();
  const double onboard_wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - onboard_started).count();
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  ASSERT_EQ(blocks->size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*blocks)[i].sequence_hash(), first.sequence_hashes()[i]);
    EXPECT_EQ(wrong_bytes((*blocks)[i], m.model()), 0u) << "block " << i;
  }
  // The operation's own latency: some time passed (a disk read), within what the caller saw.
  EXPECT_GT(op->latency_seconds(), 0.0);
  EXPECT_LE(op->latency_seconds(), onboard_wall);
  EXPECT_EQ(m.offload_stats().g3_to_g2, 0u) << "staged into G2 only when released";
  m.release(*std::move(blocks));
  m.flush();
  for (SequenceHash h : first.sequence_hashes()) EXPECT_TRUE(m.tier_contains(CacheLevel::kG2, h));
  const OffloadStats stats = m.offload_stats();
  EXPECT_EQ(stats.g3_to_g2, 4u);
  EXPECT_EQ(stats.g3_to_g1, 4u);
  EXPECT_EQ(stats.checksum_failures, 0u);
  EXPECT_EQ(m.status(CacheLevel::kG2).inactive + m.status(CacheLevel::kG2).active, 8u);
}

// Issue 26: the Stored events of G2 and G3 (offloads) and of G1 blocks onboarded from below carry the
// blocks' own tokens, blocks × page_size of them, as G1's do (they were empty before).
TEST(MultiTierTest, StoredEventsOfEveryTierCarryTheBlocksTokens) {
  testing::RecordingEventSink sink;
  auto kvbm = KvBlockManager::create(tiered_config(4, 8, 64), &sink);
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  KvBlockManager& m = **kvbm;
  std::map<std::uint64_t, std::vector<std::uint32_t>> tokens_of;
  const auto remember = [&](const TokenBlockSequence& seq) {
    for (std::size_t i = 0; i < seq.num_full_blocks(); ++i) {
      const TokenBlock b = seq.block(i);
      tokens_of[b.sequence_hash.value()].assign(b.tokens.begin(), b.tokens.end());
    }
  };
  const TokenBlockSequence first = run_request(m, 100, 4);
  remember(first);
  m.flush();
  for (std::uint32_t t : {1000u, 2000u, 3000u}) {  // first: out of G1, then out of G2
    remember(run_request(m, t, 4));
    m.flush();
  }
  MatchResult in_g3 = m.match(first.sequence_hashes());
  ASSERT_EQ(in_g3.g3.size(), 4u);
  auto blocks = m.onboard(std::move(in_g3))->wait();
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  m.release(*std::move(blocks));
  m.flush();

  std::array<std::size_t, kNumCacheLevels> blocks_stored{};
  std::size_t onboarded_g1 = 0;
  for (const BlocksStored& e : sink.stored()) {
    ASSERT_EQ(e.token_ids.size(), e.block_hashes.size() * m.page_size()) << cache_level_name(e.level);
    for (std::size_t i = 0; i < e.block_hashes.size(); ++i) {
      const std::vector<std::uint32_t> got(e.token_ids.begin() + static_cast<std::ptrdiff_t>(i * m.page_size()),
                                           e.token_ids.begin() + static_cast<std::ptrdiff_t>((i + 1) * m.page_size()));
      EXPECT_EQ(got, tokens_of.at(e.block_hashes[i].value())) << cache_level_name(e.level) << " block " << i;
      if (e.level == CacheLevel::kG1 && e.block_hashes[i] == first.sequence_hashes()[0]) ++onboarded_g1;
    }
    blocks_stored[static_cast<std::size_t>(e.level)] += e.block_hashes.size();
  }
  EXPECT_EQ(onboarded_g1, 2u);  // registered by the request, then again when onboarded from G3
  EXPECT_GE(blocks_stored[static_cast<std::size_t>(CacheLevel::kG2)], 16u);
  EXPECT_GE(blocks_stored[static_cast<std::size_t>(CacheLevel::kG3)], 16u);
}

// Blocks a request reuses from G2 are touched there when released, not copied again.
TEST(MultiTierTest, G2HitsAreTouchedNotCopiedAgain) {
  auto kvbm = KvBlockManager::create(tiered_config(4, 8, 32));
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  KvBlockManager& m = **kvbm;
  TokenBlockSequence first = run_request(m, 7, 3);
  run_request(m, 500, 4);  // pushes `first` out of G1
  m.flush();
  const OffloadStats before = m.offload_stats();
  MatchResult match = m.match(first.sequence_hashes());
  ASSERT_EQ(match.g2.size(), 3u);
  auto blocks = m.onboard(std::move(match))->wait();
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 3u);
  for (const G1Block& b : *blocks) EXPECT_EQ(wrong_bytes(b, m.model()), 0u);
  m.release(*std::move(blocks));
  m.flush();
  const OffloadStats after = m.offload_stats();
  EXPECT_EQ(after.g2_to_g1 - before.g2_to_g1, 3u);
  EXPECT_EQ(after.g1_to_g2, before.g1_to_g2) << "nothing is written to G2 again";
  EXPECT_EQ(after.links[1].touched - before.links[1].touched, 3u);
}

TEST(MultiTierTest, G3HitsAreReadStraightIntoG1) {
  KvbmConfig config = tiered_config(4, 4, 32);
  auto kvbm = KvBlockManager::create(config);
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  KvBlockManager& m = **kvbm;
  TokenBlockSequence first = run_request(m, 7, 3);
  m.flush();
  run_request(m, 500, 4);
  m.flush();
  run_request(m, 900, 4);
  m.flush();
  MatchResult match = m.match(first.sequence_hashes());
  ASSERT_EQ(match.g3.size(), 3u);
  auto blocks = m.onboard(std::move(match))->wait();
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 3u);
  for (const G1Block& b : *blocks) EXPECT_EQ(wrong_bytes(b, m.model()), 0u);
  EXPECT_EQ(m.offload_stats().g3_to_g1, 3u);
  EXPECT_EQ(m.offload_stats().g3_to_g2, 0u);
  m.release(*std::move(blocks));
  m.flush();
  EXPECT_EQ(m.offload_stats().g3_to_g2, 3u);
}

TEST(MultiTierTest, MixedPrefixAcrossAllTiers) {
  auto kvbm = KvBlockManager::create(tiered_config(8, 8, 64));
  ASSERT_TRUE(kvbm.ok());
  KvBlockManager& m = **kvbm;
  TokenBlockSequence seq = run_request(m, 1, 6);
  m.flush();
  // Evict everything from G1 and G2, then re-cache the first 2 blocks in G1 and the next 2 in G2.
  run_request(m, 10000, 8);
  m.flush();
  run_request(m, 20000, 8);
  m.flush();
  {
    MatchResult two = m.match(seq.sequence_hashes().first(4));
    ASSERT_EQ(two.g3.size(), 4u);
    auto back = m.onboard(std::move(two))->wait();  // now in G2 (staged) and G1
    ASSERT_TRUE(back.ok());
  }
  MatchResult match = m.match(seq.sequence_hashes());
  EXPECT_EQ(match.g1.size(), 4u);
  EXPECT_EQ(match.g2.size(), 0u);
  EXPECT_EQ(match.g3.size(), 2u);
  EXPECT_EQ(match.size(), 6u);
  auto blocks = m.onboard(std::move(match))->wait();
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 6u);
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ((*blocks)[i].sequence_hash(), seq.sequence_hashes()[i]);
    EXPECT_EQ(wrong_bytes((*blocks)[i], m.model()), 0u);
  }
}

TEST(MultiTierTest, CorruptedDiskBlockIsAMissNeverWrongBytes) {
  KvbmConfig config = tiered_config(4, 4, 32);
  config.g3.direct_io = false;  // the test rewrites the file behind kvbm's back
  auto kvbm = KvBlockManager::create(config);
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  KvBlockManager& m = **kvbm;
  TokenBlockSequence seq = run_request(m, 42, 4);
  m.flush();
  run_request(m, 5000, 4);
  m.flush();
  run_request(m, 6000, 4);
  m.flush();
  MatchResult match = m.match(seq.sequence_hashes());
  ASSERT_EQ(match.g3.size(), 4u);

  // Flip a byte of the third block on disk.
  const auto& disk = static_cast<const DiskFile&>(*m.tier_storage(CacheLevel::kG3));
  const RegionRef where = m.tier_layout(CacheLevel::kG3)->region_unchecked(match.g3[2].id().value(), 1, 1);
  const std::uint64_t offset = disk.region_offset(where.region) + where.offset + 17;
  std::byte b{};
  ASSERT_EQ(pread(disk.fd(), &b, 1, static_cast<off_t>(offset)), 1);
  b ^= std::byte{0x5A};
  ASSERT_EQ(pwrite(disk.fd(), &b, 1, static_cast<off_t>(offset)), 1);

  auto blocks = m.onboard(std::move(match))->wait();
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 2u) << "the prefix must end before the damaged block";
  for (const G1Block& block : *blocks) EXPECT_EQ(wrong_bytes(block, m.model()), 0u);
  EXPECT_EQ(m.offload_stats().checksum_failures, 1u);
  EXPECT_EQ(m.offload_stats().onboard_truncated, 1u);

  // Issue 24 item 4: the damaged block leaves G3 the first time (each round of match used to count it as
  // a G3 hit again and fail its checksum again). The next match ends before it and reads nothing.
  EXPECT_EQ(m.offload_stats().dropped_damaged, 1u);
  EXPECT_THAT(m.metrics().render(), ::testing::HasSubstr("\nkvbm_g3_dropped_damaged_blocks_total 1\n"));
  EXPECT_FALSE(m.tier_contains(CacheLevel::kG3, seq.sequence_hashes()[2]));
  m.release(*std::move(blocks));
  for (int round = 0; round < 2; ++round) {
    MatchResult again = m.match(seq.sequence_hashes());
    EXPECT_EQ(again.size(), 2u);
    auto more = m.onboard(std::move(again))->wait();
    ASSERT_TRUE(more.ok()) << more.status();
    m.release(*std::move(more));
  }
  EXPECT_EQ(m.offload_stats().checksum_failures, 1u);
  EXPECT_EQ(m.offload_stats().dropped_damaged, 1u);
  // Its slot was freed, not kept inactive: G3 holds the other 11 blocks of the three requests.
  EXPECT_EQ(m.status(CacheLevel::kG3).inactive + m.status(CacheLevel::kG3).active, 11u);
}

// Names in `dir` (the G3 directory of a test).
std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

// Issue 24 item 5: a killed run (SIGKILL, SIGTERM, SIGINT) used to leave its kvbm-g3-<pid>-….bin behind,
// fallocated to the tier's size. The file now loses its name as soon as it is open (g3.unlink_after_open,
// default true), so nothing is left whether the process ends cleanly or is killed.
TEST(MultiTierTest, G3FileLeavesNothingBehindEvenWhenTheProcessIsKilled) {
  std::string templ = ::testing::TempDir() + "kvbm-g3-unlink-XXXXXX";
  ASSERT_NE(::mkdtemp(templ.data()), nullptr);
  const std::string dir = templ;
  KvbmConfig config = tiered_config(4, 8, 64);
  config.g3.directory = dir;
  {
    auto kvbm = KvBlockManager::create(config);
    ASSERT_TRUE(kvbm.ok()) << kvbm.status();
    for (std::uint32_t r = 0; r < 8; ++r) run_request(**kvbm, 1000 * (r + 1), 4);
    (*kvbm)->flush();
    EXPECT_GT((*kvbm)->offload_stats().g2_to_g3, 0u);
    EXPECT_THAT(names_in(dir), ::testing::IsEmpty()) << "while running";
  }
  for (int sig : {SIGKILL, SIGTERM, SIGINT}) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {  // a run that is killed while its G3 holds blocks
      ::close(ready[0]);
      auto kvbm = KvBlockManager::create(config);
      if (!kvbm.ok()) ::_exit(2);
      for (std::uint32_t r = 0; r < 8; ++r) run_request(**kvbm, 1000 * (r + 1), 4);
      (*kvbm)->flush();
      const char c = 'r';
      if (::write(ready[1], &c, 1) != 1) ::_exit(3);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1) << "the child did not start its manager";
    ::close(ready[0]);
    EXPECT_THAT(names_in(dir), ::testing::IsEmpty()) << "while the child runs";
    ASSERT_EQ(::kill(child, sig), 0);
    int wstatus = 0;
    ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
    EXPECT_TRUE(WIFSIGNALED(wstatus)) << wstatus;
    EXPECT_THAT(names_in(dir), ::testing::IsEmpty()) << "after signal " << sig;
  }
  std::filesystem::remove_all(dir);
}

// Issue 24 item 1: with the G3 file system frozen, onboarding blocks that were in G2 blocked until the
// thaw, and so did every onboarding with G3 blocks. Reads of G3 are held here by a LatchedIoBackend.
class HungDiskTest : public ::testing::Test {
 protected:
  // A in G3 only, B in G2 (and G3); the first two blocks of each, matched, pinned.
  void start(std::uint32_t g3_deadline_ms) {
    KvbmConfig config = tiered_config(4, 8, 64);
    config.g3.deadline_ms = g3_deadline_ms;
    auto kvbm = KvBlockManager::create(config, nullptr, latch_);
    ASSERT_TRUE(kvbm.ok()) << kvbm.status();
    m_ = *std::move(kvbm);
    a_ = run_request(*m_, 1000, 4);
    m_->flush();
    for (std::uint32_t first : {2000u, 3000u}) {
      run_request(*m_, first, 4);
      m_->flush();
    }
    b_ = run_request(*m_, 4000, 4);
    m_->flush();
    run_request(*m_, 5000, 4);
    m_->flush();
    in_g3_ = first_two(m_->match(a_->sequence_hashes()));
    in_g2_ = first_two(m_->match(b_->sequence_hashes()));
    ASSERT_EQ(in_g3_.g3.size(), 2u);
    ASSERT_EQ(in_g2_.g2.size(), 2u);
  }
  static MatchResult first_two(MatchResult m) {
    m.g2.resize(std::min<std::size_t>(m.g2.size(), 2));
    m.g3.resize(std::min<std::size_t>(m.g3.size(), 2));
    m.tiers.resize(std::min<std::size_t>(m.tiers.size(), 2));
    return m;
  }
  // Whether `op` finishes while the disk stays hung (bounded, so that a regression fails, not hangs).
  static bool finishes(const std::shared_ptr<OnboardOperation>& op) {
    return testing::wait_until([&] { return op->done(); }, std::chrono::seconds(20));
  }
  void TearDown() override {
    latch_->open();
    m_.reset();
  }

  std::shared_ptr<testing::LatchedIoBackend> latch_ = std::make_shared<testing::LatchedIoBackend>();
  std::unique_ptr<KvBlockManager> m_;
  std::optional<TokenBlockSequence> a_, b_;
  MatchResult in_g3_, in_g2_;
};

TEST_F(HungDiskTest, G2OnboardingCompletesWhileAG3ReadIsStuck) {
  start(/*g3_deadline_ms=*/600000);
  latch_->close();
  std::shared_ptr<OnboardOperation> stuck = m_->onboard(std::move(in_g3_));
  latch_->wait_held(1);
  std::shared_ptr<OnboardOperation> host_only = m_->onboard(std::move(in_g2_));
  const bool finished = finishes(host_only);
  EXPECT_FALSE(stuck->done());
  latch_->open();
  ASSERT_TRUE(finished) << "a G2-only onboarding waited behind a hung disk read";
  auto blocks = host_only->wait();
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  EXPECT_EQ(blocks->size(), 2u);
  for (const G1Block& b : *blocks) EXPECT_EQ(wrong_bytes(b, m_->model()), 0u);
  auto from_disk = stuck->wait();  // once the disk is back, the G3 read completes as usual
  ASSERT_TRUE(from_disk.ok()) << from_disk.status();
  EXPECT_EQ(from_disk->size(), 2u);
  for (const G1Block& b : *from_disk) EXPECT_EQ(wrong_bytes(b, m_->model()), 0u);
}

TEST_F(HungDiskTest, PastTheDeadlineStuckG3BlocksAreMissesAndTheRestIsDelivered) {
  start(/*g3_deadline_ms=*/50);
  MatchResult mixed;  // made by hand: B's two G2 blocks, then A's two G3 blocks
  mixed.g2 = std::move(in_g2_.g2);
  mixed.g3 = std::move(in_g3_.g3);
  latch_->close();
  std::shared_ptr<OnboardOperation> op = m_->onboard(std::move(mixed));
  const bool finished = finishes(op);
  ASSERT_TRUE(finished) << "the onboarding waited for the hung disk past g3.deadline_ms";
  auto blocks = op->wait();
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  ASSERT_EQ(blocks->size(), 2u) << "the G2 blocks, then the prefix ends at the first stuck G3 block";
  for (const G1Block& b : *blocks) EXPECT_EQ(wrong_bytes(b, m_->model()), 0u);
  EXPECT_EQ(op->truncated(), 2u);
  EXPECT_EQ(m_->offload_stats().deadline_misses, 2u);
  EXPECT_THAT(m_->metrics().render(), ::testing::HasSubstr("\nkvbm_g3_deadline_misses_total 2\n"));
  EXPECT_EQ(m_->offload_stats().transfer_failures, 0u);
  // The stuck read's G1 slots (2, unless the job started past the deadline and read nothing) are held
  // back until it ends.
  EXPECT_LE(m_->status().owned, 2u);
  m_->release(*std::move(blocks));

  latch_->open();
  m_->flush();
  EXPECT_EQ(m_->status().owned, 0u);
  // The G3 blocks are intact and come back once the disk does.
  auto again = m_->match_and_onboard(std::span<const SequenceHash>(a_->sequence_hashes()).first(2));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->size(), 2u);
  for (const G1Block& b : *again) EXPECT_EQ(wrong_bytes(b, m_->model()), 0u);
}

TEST(MultiTierTest, FailingDiskWritesNeverRegisterInG3) {
  auto faults = std::make_shared<FaultInjectingIoBackend>(make_posix_io_backend(),
                                                          FaultInjectingIoBackend::Faults{.write_eio = 1.0}, 7);
  auto kvbm = KvBlockManager::create(tiered_config(4, 8, 32), nullptr, faults);
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  KvBlockManager& m = **kvbm;
  run_request(m, 1, 4);
  m.flush();
  EXPECT_EQ(m.status(CacheLevel::kG3).inactive, 0u);
  EXPECT_EQ(m.status(CacheLevel::kG3).free, 32u);
  EXPECT_EQ(m.offload_stats().transfer_failures, 4u);
  EXPECT_EQ(faults->counts().write_eio, 4u);
  EXPECT_EQ(m.status(CacheLevel::kG2).inactive, 4u);
}

TEST(MultiTierTest, WriteBackCopiesOnlyOnEviction) {
  KvbmConfig config = tiered_config(4, 8, 32);
  config.offload.g1_to_g2 = OffloadMode::kWriteBack;
  config.offload.g2_to_g3 = OffloadMode::kNone;
  config.g3 = TierConfig{};
  auto kvbm = KvBlockManager::create(config);
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  KvBlockManager& m = **kvbm;
  TokenBlockSequence first = run_request(m, 1, 4);
  m.flush();
  EXPECT_EQ(m.status(CacheLevel::kG2).inactive, 0u) << "write-back must not copy before eviction";
  run_request(m, 100, 4);  // evicts `first` from G1
  EXPECT_EQ(m.status(CacheLevel::kG2).inactive, 4u);
  EXPECT_EQ(m.offload_stats().write_back_blocks, 4u);
  MatchResult match = m.match(first.sequence_hashes());
  ASSERT_EQ(match.g2.size(), 4u);
  auto blocks = m.onboard(std::move(match))->wait();
  ASSERT_TRUE(blocks.ok());
  ASSERT_EQ(blocks->size(), 4u);
  for (const G1Block& b : *blocks) EXPECT_EQ(wrong_bytes(b, m.model()), 0u);
}

TEST(MultiTierTest, FrequencyFilterKeepsOneOffsOffDisk) {
  KvbmConfig config = tiered_config(8, 16, 32);
  config.offload.g3_min_frequency = 2;
  auto kvbm = KvBlockManager::create(config);
  ASSERT_TRUE(kvbm.ok());
  KvBlockManager& m = **kvbm;
  TokenBlockSequence once = run_request(m, 1, 2);
  m.flush();
  EXPECT_EQ(m.status(CacheLevel::kG3).inactive, 0u);
  EXPECT_EQ(m.offload_stats().filtered_frequency, 2u);
  // A second request for the same prefix makes it frequent enough: now it goes to disk.
  run_request(m, 1, 2);
  m.flush();
  EXPECT_EQ(m.status(CacheLevel::kG3).inactive, 2u);
  EXPECT_TRUE(m.tier_contains(CacheLevel::kG3, once.sequence_hashes()[0]));
}

TEST(MultiTierTest, ResetClearsEveryTier) {
  auto kvbm = KvBlockManager::create(tiered_config(4, 8, 32));
  ASSERT_TRUE(kvbm.ok());
  KvBlockManager& m = **kvbm;
  TokenBlockSequence seq = run_request(m, 1, 3);
  ASSERT_TRUE(m.reset().ok());
  EXPECT_EQ(m.match(seq.sequence_hashes()).size(), 0u);
  EXPECT_EQ(m.status(CacheLevel::kG3).free, 32u);
}

TEST(MultiTierTest, BadTierConfigurationFailsAtConstruction) {
  KvbmConfig config = tiered_config(4, 8, 32);
  config.g3.directory = "/nonexistent-kvbm-dir";
  auto kvbm = KvBlockManager::create(config);
  ASSERT_FALSE(kvbm.ok());
  EXPECT_THAT(std::string(kvbm.status().message()), ::testing::HasSubstr("/nonexistent-kvbm-dir"));

  config = tiered_config(4, 8, 0);
  config.g1.memory = MemoryKind::kDevice;
  kvbm = KvBlockManager::create(config);
  if (!kvbm.ok()) {
    EXPECT_THAT(std::string(kvbm.status().message()),
                ::testing::AnyOf(::testing::HasSubstr("without CUDA"), ::testing::HasSubstr("CUDA")));
  }
}

// Destroying the manager while offloads are queued and in flight cancels the queue, finishes what is in
// flight and joins every thread; ASan/LSan check that nothing leaks.
TEST(MultiTierTest, ShutdownUnderLoadLeavesNothingBehind) {
  for (int round = 0; round < 3; ++round) {
    KvbmConfig config = tiered_config(64, 128, 256);
    config.offload.batch_blocks = 2;  // many small batches: the queue is still full when the manager goes
    auto kvbm = KvBlockManager::create(config);
    ASSERT_TRUE(kvbm.ok()) << kvbm.status();
    for (std::uint32_t r = 0; r < 12; ++r) run_request(**kvbm, 1000 * (r + 1), 4);
    std::shared_ptr<OnboardOperation> pending;
    {
      TokenBlockSequence first = run_request(**kvbm, 1000, 4);
      MatchResult match = (*kvbm)->match(first.sequence_hashes());
      pending = (*kvbm)->onboard(std::move(match));
    }
    auto blocks = pending->wait();  // completes (possibly cancelled), never hangs
    if (blocks.ok()) (*kvbm)->release(*std::move(blocks));
    pending.reset();
    kvbm->reset();  // destroys the manager with offloads still queued
  }
}

// Offload and onboarding run while several threads allocate, register and match overlapping prefixes.
TEST(MultiTierStressTest, ConcurrentRequestsWithOffloadAndOnboarding) {
  KvbmConfig config = tiered_config(48, 64, 256);
  config.offload.g3_min_frequency = 0;
  auto kvbm = KvBlockManager::create(config);
  ASSERT_TRUE(kvbm.ok()) << kvbm.status();
  KvBlockManager& m = **kvbm;
  std::atomic<std::size_t> wrong{0}, served{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 150; ++i) {
        // 20 shared 3-block prefixes, each followed by a private tail block.
        std::vector<std::uint32_t> tokens(4 * m.page_size());
        const std::uint32_t prefix = rng() % 20;
        for (std::size_t k = 0; k < 3 * m.page_size(); ++k) tokens[k] = prefix * 1000 + static_cast<std::uint32_t>(k);
        for (std::size_t k = 3 * m.page_size(); k < tokens.size(); ++k) tokens[k] = rng();
        auto seq = m.make_sequence(tokens);
        auto hits = m.match_and_onboard(seq->sequence_hashes());
        if (!hits.ok()) continue;
        for (const G1Block& b : *hits) wrong += wrong_bytes(b, m.model());
        served += hits->size();
        auto fresh = m.allocate(4 - hits->size());
        if (fresh.ok()) {
          for (std::size_t k = 0; k < fresh->size(); ++k) {
            TokenBlock tb = seq->block(hits->size() + k);
            fill((*fresh)[k], tb.sequence_hash, m.model());
            (void)(*fresh)[k].apply(tb);
          }
          auto registered = m.register_blocks(*fresh);
          if (registered.ok()) m.release(*std::move(registered));
        }
        m.release(*std::move(hits));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  m.flush();
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_GT(served.load(), 0u);
  for (CacheLevel level : {CacheLevel::kG1, CacheLevel::kG2, CacheLevel::kG3}) {
    const PoolStatus s = m.status(level);
    EXPECT_EQ(s.active, 0u) << cache_level_name(level);
    EXPECT_EQ(s.owned, 0u) << cache_level_name(level);
  }
}

}  // namespace
}  // namespace kvbm
