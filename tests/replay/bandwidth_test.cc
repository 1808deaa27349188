// Bandwidth between tiers in 1 s windows of trace time (kvbm/replay/bandwidth.h): figures worked out by hand
// on small traces, the quantile over many windows with empty ones among them, no figures without time, and
// the same figures in data mode and with identities only.
#include "kvbm/replay/bandwidth.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kvbm/replay/generator.h"
#include "kvbm/replay/replay.h"
#include "kvbm/replay/report.h"
#include "kvbm/replay/trace.h"
#include "support/replay_util.h"

namespace kvbm {
namespace {

constexpr std::uint64_t kBlockBytes = 4096;

TraceRequest request(double timestamp_ms, std::vector<std::uint64_t> ids) {
  TraceRequest r;
  r.timestamp_ms = timestamp_ms;
  for (std::uint64_t id : ids) r.blocks.push_back(SequenceHash{id});
  r.input_tokens = ids.size() * kDefaultHashBlockTokens;
  return r;
}

// G1 and G2 (LRU, write-through G1→G2), no G3: every block released for the first time is copied into G2.
ReplayOptions two_tiers(bool data, std::uint64_t g1, std::uint64_t g2) {
  ReplayOptions o;
  o.data = data;
  o.block_tokens = kDefaultHashBlockTokens;
  auto model = model_spec_preset("Llama-3.1-8B", kDefaultHashBlockTokens);
  EXPECT_TRUE(model.ok());
  auto scaled = model_with_block_bytes(model->geometry, kBlockBytes);
  EXPECT_TRUE(scaled.ok());
  o.config.model = *scaled;
  o.config.g1 = TierConfig{.num_blocks = g1, .eviction = EvictionPolicyKind::kLru};
  o.config.g2 = TierConfig{.num_blocks = g2, .eviction = EvictionPolicyKind::kLru};
  o.config.offload.g1_to_g2 = OffloadMode::kWriteThrough;
  return o;
}

using testing::replay;

// G1 of 4 blocks, LRU (released tail first), G2 of 100.
//   0 ms     [1,2]  misses, cached; released 2,1 and copied into G2          window 0: G1→G2 2
//   300 ms   [3,4]  misses, the free slots; copied into G2                   window 0: G1→G2 2
//   900 ms   [5,6]  misses; evict 2 and 1 (least recent); copied into G2     window 0: G1→G2 2
//   2500 ms  [1,2]  found in G2, onboarded; already in G2, so not copied     window 2: G2→G1 2
// Windows 0, 1 (empty) and 2: three. G1→G2 6 blocks in window 0: mean 6 × 4096 B / 3 s, p99 (rank 3 of 3)
// and max 6 × 4096 B/s. G2→G1: mean 2 × 4096 / 3, p99 and max 2 × 4096.
TEST(ReplayBandwidth, WindowsWorkedOutByHand) {
  const std::vector<TraceRequest> t = {request(0, {1, 2}), request(300, {3, 4}), request(900, {5, 6}),
                                       request(2500, {1, 2})};
  for (bool data : {false, true}) {
    const ReplayReport r = replay(t, two_tiers(data, 4, 100));
    ASSERT_EQ(r.tiers[1].hits, 2u) << "data " << data;
    const BandwidthReport& b = r.bandwidth;
    ASSERT_TRUE(b.measured);
    EXPECT_EQ(b.windows, 3u);
    EXPECT_EQ(b.window_s, 1.0);
    EXPECT_EQ(b.first_ms, 0.0);
    EXPECT_EQ(b.last_ms, 2500.0);
    const PairBandwidth& down = b[TierPair::kG1ToG2];
    EXPECT_EQ(down.bytes, 6 * kBlockBytes);
    EXPECT_DOUBLE_EQ(down.mean_bytes_per_s, 6.0 * kBlockBytes / 3);
    EXPECT_DOUBLE_EQ(down.p99_bytes_per_s, 6.0 * kBlockBytes);
    EXPECT_DOUBLE_EQ(down.max_bytes_per_s, 6.0 * kBlockBytes);
    const PairBandwidth& up = b[TierPair::kG2ToG1];
    EXPECT_EQ(up.bytes, 2 * kBlockBytes);
    EXPECT_DOUBLE_EQ(up.mean_bytes_per_s, 2.0 * kBlockBytes / 3);
    EXPECT_DOUBLE_EQ(up.p99_bytes_per_s, 2.0 * kBlockBytes);
    EXPECT_DOUBLE_EQ(up.max_bytes_per_s, 2.0 * kBlockBytes);
    for (TierPair p : {TierPair::kG2ToG3, TierPair::kG2ToG4, TierPair::kG3ToG2, TierPair::kG3ToG1, TierPair::kG4ToG1}) {
      EXPECT_EQ(b[p].bytes, 0u) << tier_pair_info(p).key;
      EXPECT_EQ(b[p].max_bytes_per_s, 0.0) << tier_pair_info(p).key;
    }
    // The byte totals are the report's own `moved down` / `moved up`.
    EXPECT_EQ(down.bytes, r.bytes_moved_down());
    EXPECT_EQ(up.bytes, r.bytes_moved_up());
    const std::string text = format_report_text(r);
    EXPECT_NE(text.find("over 3 windows of 1 s"), std::string::npos) << text;
    EXPECT_NE(text.find("G1→G2     8.0 KiB/s    24.0 KiB/s    24.0 KiB/s"), std::string::npos) << text;
    const std::string json = format_report_json(r);
    EXPECT_NE(json.find("\"g1_to_g2\":{\"bytes\":24576,\"mean_bytes_per_s\":8192,\"p99_bytes_per_s\":24576,"
                        "\"max_bytes_per_s\":24576}"),
              std::string::npos)
        << json;
  }
}

// Request k (k = 0..99) at second 2k brings k+1 new blocks, each copied into G2: 199 windows (0..198), the
// odd ones empty. Nearest rank of the 99th percentile: ceil(0.99 × 199) = 198, past the 99 empty windows
// the 99th busiest-ascending: 99 blocks. Max 100 blocks, mean 5050 blocks over 199 s.
TEST(ReplayBandwidth, PercentileCountsEmptyWindows) {
  std::vector<TraceRequest> t;
  std::uint64_t next_id = 1;
  for (std::uint64_t k = 0; k < 100; ++k) {
    std::vector<std::uint64_t> ids;
    for (std::uint64_t i = 0; i <= k; ++i) ids.push_back(next_id++);
    t.push_back(request(2000.0 * static_cast<double>(k) + 10, std::move(ids)));
  }
  const ReplayReport r = replay(t, two_tiers(false, 128, 256));
  const BandwidthReport& b = r.bandwidth;
  ASSERT_TRUE(b.measured);
  EXPECT_EQ(b.windows, 199u);
  const PairBandwidth& down = b[TierPair::kG1ToG2];
  EXPECT_EQ(down.bytes, 5050 * kBlockBytes);
  EXPECT_DOUBLE_EQ(down.mean_bytes_per_s, 5050.0 * kBlockBytes / 199);
  EXPECT_DOUBLE_EQ(down.p99_bytes_per_s, 99.0 * kBlockBytes);
  EXPECT_DOUBLE_EQ(down.max_bytes_per_s, 100.0 * kBlockBytes);
}

// Requests without times (every timestamp 0, as a list of hash ids has): nothing to divide by.
TEST(ReplayBandwidth, NoFiguresWithoutTime) {
  const ReplayReport r = replay({request(0, {1, 2}), request(0, {3, 4}), request(0, {1})}, two_tiers(false, 4, 8));
  EXPECT_GT(r.offload.g1_to_g2, 0u);
  EXPECT_FALSE(r.bandwidth.measured);
  EXPECT_NE(format_report_json(r).find("\"bandwidth\":null"), std::string::npos);
  EXPECT_NE(format_report_text(r).find("bandwidth   not measured"), std::string::npos);
}

// The meter alone: windows are whole seconds of the trace clock whatever the order of the timestamps.
TEST(ReplayBandwidth, MeterTakesTimestampsInAnyOrder) {
  BandwidthMeter m;
  BlocksByPair one{};
  one[static_cast<int>(TierPair::kG2ToG3)] = 1;
  m.add(5999, one);  // window 5
  m.add(3000, one);  // window 3
  m.add(3999, one);  // window 3
  const BandwidthReport b = m.finish(10);
  ASSERT_TRUE(b.measured);
  EXPECT_EQ(b.windows, 3u);  // 3, 4, 5
  EXPECT_EQ(b.first_ms, 3000.0);
  EXPECT_EQ(b.last_ms, 5999.0);
  EXPECT_DOUBLE_EQ(b[TierPair::kG2ToG3].mean_bytes_per_s, 10.0);
  EXPECT_DOUBLE_EQ(b[TierPair::kG2ToG3].max_bytes_per_s, 20.0);
  EXPECT_FALSE(BandwidthMeter{}.finish(10).measured);
}

// Data mode and identities only give the same figures on a generated workload with three tiers small enough
// that blocks move every way (write-back too): moves are credited by trace time, never by when a copy ran.
TEST(ReplayBandwidth, DataAndIdentitiesOnlyAgree) {
  auto w = workload_preset("default");
  ASSERT_TRUE(w.ok());
  w->num_requests = 400;
  w->seed = 11;
  auto trace = generate_trace(*w);
  for (OffloadMode mode : {OffloadMode::kWriteThrough, OffloadMode::kWriteBack}) {
    ReplayOptions o = two_tiers(true, 16, 48);
    o.config.g3 = TierConfig{.num_blocks = 160, .eviction = EvictionPolicyKind::kLru};
    o.config.g3.directory = ::testing::TempDir();
    o.config.offload.g1_to_g2 = mode;
    o.config.offload.g2_to_g3 = mode;
    o.config.offload.g3_min_frequency = 0;
    ASSERT_TRUE(trace->rewind().ok());
    auto data = run_replay(*trace, o);
    ASSERT_TRUE(data.ok()) << data.status();
    o.data = false;
    ASSERT_TRUE(trace->rewind().ok());
    auto ids = run_replay(*trace, o);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ASSERT_TRUE(data->bandwidth.measured);
    EXPECT_EQ(data->bandwidth.windows, ids->bandwidth.windows);
    for (int p = 0; p < kNumTierPairs; ++p) {
      const char* key = tier_pair_info(static_cast<TierPair>(p)).key;
      const PairBandwidth& a = data->bandwidth.pairs[p];
      const PairBandwidth& b = ids->bandwidth.pairs[p];
      EXPECT_EQ(a.bytes, b.bytes) << key;
      EXPECT_EQ(a.mean_bytes_per_s, b.mean_bytes_per_s) << key;
      EXPECT_EQ(a.p99_bytes_per_s, b.p99_bytes_per_s) << key;
      EXPECT_EQ(a.max_bytes_per_s, b.max_bytes_per_s) << key;
    }
    for (TierPair p : {TierPair::kG1ToG2, TierPair::kG2ToG3, TierPair::kG2ToG1, TierPair::kG3ToG1}) {
      EXPECT_GT(data->bandwidth[p].max_bytes_per_s, 0.0)
          << tier_pair_info(p).key << " write-back " << (mode == OffloadMode::kWriteBack);
    }
    EXPECT_EQ(format_report_json(*data).find("\"bandwidth\":null"), std::string::npos);
  }
}

}  // namespace
}  // namespace kvbm
