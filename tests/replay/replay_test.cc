// run_replay: the sequential semantics on hand-made traces (hits worked out by hand), data mode with
// G1+G2+G3 (every onboarded block verified), data vs metadata-only, and sweeps (CSV + SVG).
#include "kvbm/replay/replay.h"

#include <absl/strings/str_cat.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "kvbm/replay/generator.h"
#include "kvbm/replay/sweep.h"
#include "kvbm/replay/trace.h"
#include "support/replay_util.h"

namespace kvbm {
namespace {

constexpr std::uint32_t kBlockTokens = 4;

TraceRequest request(std::vector<std::uint64_t> ids) {
  TraceRequest r;
  for (std::uint64_t id : ids) r.blocks.push_back(SequenceHash{id});
  r.input_tokens = ids.size() * kBlockTokens;
  return r;
}

ReplayOptions metadata_options(std::uint64_t g1_blocks) {
  ReplayOptions o;
  o.data = false;
  o.block_tokens = kBlockTokens;
  o.config.g1 = TierConfig{.num_blocks = g1_blocks, .eviction = EvictionPolicyKind::kLru};  // the hand-computed LRU
  return o;
}

using testing::replay;

// Hits per request, by replaying prefixes of the trace one request longer each time.
std::vector<std::uint64_t> hits_per_request(const std::vector<TraceRequest>& requests, const ReplayOptions& o) {
  std::vector<std::uint64_t> out;
  std::uint64_t before = 0;
  for (std::size_t i = 1; i <= requests.size(); ++i) {
    const ReplayReport r = replay({requests.begin(), requests.begin() + static_cast<std::ptrdiff_t>(i)}, o);
    out.push_back(r.blocks_hit - before);
    before = r.blocks_hit;
  }
  return out;
}

// Capacity 3. LRU order written oldest first after each request.
//   [1,2]    0 hits; release 2 then 1                      → 2,1
//   [1,2,3]  2 hits; 3 takes the free slot; release 3,2,1  → 3,2,1
//   [4]      0 hits; evicts 3 (least recently released)    → 2,1,4
//   [1,2,3]  2 hits; 3 evicts 4 (1 and 2 are held)         → 3,2,1
//   [4]      0 hits; evicts 3                              → 2,1,4
//   [2]      1 hit                                         → 1,4,2
TEST(ReplaySemantics, LruWithReverseRelease) {
  const std::vector<TraceRequest> t = {request({1, 2}),    request({1, 2, 3}), request({4}),
                                       request({1, 2, 3}), request({4}),       request({2})};
  EXPECT_EQ(hits_per_request(t, metadata_options(3)), (std::vector<std::uint64_t>{0, 2, 0, 2, 0, 1}));
  const ReplayReport r = replay(t, metadata_options(3));
  EXPECT_EQ(r.requests, 6u);
  EXPECT_EQ(r.blocks_total, 11u);
  EXPECT_EQ(r.blocks_hit, 5u);
  EXPECT_EQ(r.hit_tokens, 5u * kBlockTokens);
  EXPECT_EQ(r.blocks_uncached, 0u);
  EXPECT_DOUBLE_EQ(r.mean_request_hit_rate(), (0 + 2.0 / 3 + 0 + 2.0 / 3 + 0 + 1) / 6);
  EXPECT_EQ(r.tiers[0].final_status, (PoolStatus{.active = 0, .inactive = 3, .free = 0, .owned = 0}));
}

// Capacity 2: the tail of a released chain is evicted before its head.
//   [1,2]  → 2,1 (2 released first: least recent)
//   [5]    evicts 2 (a head-first release would have evicted 1) → 1,5
//   [1]    1 hit → 5,1
//   [1,2]  1 hit; 2 evicts 5 → 2,1
//   [2]    1 hit
TEST(ReplaySemantics, ReverseReleaseEvictsTailFirst) {
  const std::vector<TraceRequest> t = {request({1, 2}), request({5}), request({1}), request({1, 2}), request({2})};
  EXPECT_EQ(hits_per_request(t, metadata_options(2)), (std::vector<std::uint64_t>{0, 0, 1, 1, 1}));
}

// Capacity 2: a request longer than the pool stops caching once every slot is held.
//   [1,2,3]  0 hits; 1, 2 cached; 3 not (both slots held)  → 2,1   uncached 1
//   [1,2,3]  2 hits; 3 not cached                           → 2,1   uncached 1
//   [3]      0 hits; evicts 2                               → 1,3
//   [1,2]    1 hit; 2 evicts 3 (1 is held)                  → 2,1
//   [3]      0 hits; evicts 2                               → 1,3
TEST(ReplaySemantics, StopsCachingWhenEverySlotIsHeld) {
  const std::vector<TraceRequest> t = {request({1, 2, 3}), request({1, 2, 3}), request({3}), request({1, 2}),
                                       request({3})};
  EXPECT_EQ(hits_per_request(t, metadata_options(2)), (std::vector<std::uint64_t>{0, 2, 0, 1, 0}));
  const ReplayReport r = replay(t, metadata_options(2));
  EXPECT_EQ(r.blocks_uncached, 2u);
  EXPECT_EQ(r.blocks_hit, 3u);
}

// Capacity 4: a cached block in the middle of the misses is held, not allocated again (the engine's
// block-by-block path).
//   [7]      → 7                                     (3 free)
//   [1,7,3]  0 hits; 1 new, 7 held, 3 new; release 3,7,1 → 3,7,1 (1 free)
//   [9,8]    9 takes the free slot, 8 evicts 3; release 8,9 → 7,1,8,9
//   [1]      1 hit → 7,8,9,1
//   [3]      evicts 7 → 8,9,1,3
//   [7]      evicts 8 → 9,1,3,7
//   [9]      1 hit
TEST(ReplaySemantics, CachedBlockAfterAMissIsHeld) {
  const std::vector<TraceRequest> t = {request({7}), request({1, 7, 3}), request({9, 8}), request({1}),
                                       request({3}), request({7}),       request({9})};
  EXPECT_EQ(hits_per_request(t, metadata_options(4)), (std::vector<std::uint64_t>{0, 0, 0, 1, 0, 0, 1}));
}

// A hash repeated inside one request is cached once (the second occurrence is a cached block).
//   [1,1]  0 hits (1 is not cached when the request starts); one slot used
//   [2,3]  takes the two free slots: nothing evicted
//   [1]    1 hit
TEST(ReplaySemantics, RepeatedHashInOneRequest) {
  const std::vector<TraceRequest> t = {request({1, 1}), request({2, 3}), request({1})};
  EXPECT_EQ(hits_per_request(t, metadata_options(3)), (std::vector<std::uint64_t>{0, 0, 1}));
}

TEST(ReplaySemantics, UnlimitedCapacityIsTheDistinctBlockCount) {
  const std::vector<TraceRequest> t = {request({1, 2, 3}), request({4}), request({1, 2, 5}), request({4, 6})};
  ReplayOptions o = metadata_options(1);
  o.unlimited_g1 = true;
  const ReplayReport r = replay(t, o);
  EXPECT_EQ(r.tiers[0].capacity_blocks, 6u);
  EXPECT_EQ(r.blocks_hit, 3u);  // 1, 2 and 4
}

TEST(ReplayOptionsCheck, BadOptionsNameTheField) {
  auto trace = make_vector_trace({request({1})});
  ReplayOptions o = metadata_options(0);
  o.config.g1.num_blocks = 0;
  auto r = run_replay(*trace, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("g1"), std::string::npos);
  o = metadata_options(4);
  o.timing = ReplayTiming::kTrace;
  o.speed = 0;
  r = run_replay(*trace, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("speed"), std::string::npos);
}

TEST(ReplayBytes, FillAndCheckAgree) {
  std::vector<std::byte> buf(1001);
  fill_chunk_bytes(SequenceHash{42}, 3, buf);
  EXPECT_TRUE(check_chunk_bytes(SequenceHash{42}, 3, buf));
  EXPECT_FALSE(check_chunk_bytes(SequenceHash{43}, 3, buf));
  EXPECT_FALSE(check_chunk_bytes(SequenceHash{42}, 4, buf));
  buf[1000] ^= std::byte{1};
  EXPECT_FALSE(check_chunk_bytes(SequenceHash{42}, 3, buf));
}

TEST(ReplayModel, PresetsAndScaling) {
  auto llama_spec = model_spec_preset("Llama-3.1-8B", 512);
  ASSERT_TRUE(llama_spec.ok());
  const ModelConfig& llama = llama_spec->geometry;
  EXPECT_EQ(llama.bytes_per_block(), 64ull << 20);  // 32 layers × 2 × 512 tokens × 1024 × bf16
  auto ds = model_spec_preset("DeepSeek-V3", 64);
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->bytes_per_block(), 61ull * 64 * 576 * 2);
  EXPECT_FALSE(model_spec_preset("GPT-5", 16).ok());
  auto small = model_with_block_bytes(llama, 2ull << 20);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->bytes_per_block(), 2ull << 20);
  EXPECT_EQ(small->num_layers, 32u);
  auto tiny = model_with_block_bytes(llama, 4096);  // below one byte per (layer, outer, token)
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->bytes_per_block(), 4096u);
}

WorkloadOptions small_workload() {
  auto w = workload_preset("default");
  EXPECT_TRUE(w.ok());
  WorkloadOptions o = *w;
  o.num_requests = 400;
  o.seed = 7;
  return o;
}

ReplayOptions data_options(std::uint64_t g1, std::uint64_t g2, std::uint64_t g3) {
  ReplayOptions o;
  o.data = true;
  o.block_tokens = kDefaultHashBlockTokens;
  auto model = model_spec_preset("Llama-3.1-8B", kDefaultHashBlockTokens);
  EXPECT_TRUE(model.ok());
  auto scaled = model_with_block_bytes(model->geometry, 4096);
  EXPECT_TRUE(scaled.ok());
  o.config.model = *scaled;
  o.config.g1 = TierConfig{.num_blocks = g1, .eviction = EvictionPolicyKind::kLru};
  o.config.g2 = TierConfig{.num_blocks = g2, .eviction = EvictionPolicyKind::kLru};
  o.config.g3 = TierConfig{.num_blocks = g3, .eviction = EvictionPolicyKind::kLru};
  o.config.g3.directory = ::testing::TempDir();
  o.config.offload.g1_to_g2 = OffloadMode::kWriteThrough;
  o.config.offload.g2_to_g3 = OffloadMode::kWriteThrough;
  o.config.offload.g3_min_frequency = 0;  // inclusive: every block reaches G3
  return o;
}

std::uint64_t distinct_blocks(TraceReader& trace) {
  ReplayOptions o = metadata_options(1);
  o.unlimited_g1 = true;
  auto r = run_replay(trace, o);
  EXPECT_TRUE(r.ok());
  return r.ok() ? r->tiers[0].capacity_blocks : 0;
}

// Blocks come back from G2 and G3 and each is verified; every hit is credited to one tier.
TEST(ReplayData, ThreeTiersVerifyEveryOnboardedBlock) {
  auto trace = generate_trace(small_workload());
  auto r = run_replay(*trace, data_options(64, 256, 1024));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->requests, 400u);
  EXPECT_GT(r->tiers[1].hits, 0u);
  EXPECT_GT(r->tiers[2].hits, 0u);
  EXPECT_GT(r->verified_blocks, 0u);
  EXPECT_EQ(r->verification_failures, 0u);
  EXPECT_EQ(r->offload.checksum_failures, 0u);
  EXPECT_EQ(r->tiers[0].hits + r->tiers[1].hits + r->tiers[2].hits, r->blocks_hit);
  EXPECT_GT(r->offload.bytes_down, 0u);
  EXPECT_GT(r->offload.bytes_up, 0u);
  EXPECT_EQ(r->offload.skipped_evicted + r->offload.dropped_queue_full, 0u) << "nothing is lost";
}

// Data and identities only give the same hits, tier by tier, for every eviction policy, with and without
// the frequency filter, in write-through and write-back, on tiers small enough that every edge of the
// chain is reached (a request longer than G1, G2 smaller than a request's new blocks). And a run repeated
// gives the same answer.
TEST(ReplayData, DataAndIdentitiesOnlyAgreeForEveryPolicy) {
  auto trace = generate_trace(small_workload());
  for (EvictionPolicyKind kind : all_eviction_policy_kinds()) {
    for (std::uint32_t filter : {0u, 2u}) {
      for (OffloadMode mode : {OffloadMode::kWriteThrough, OffloadMode::kWriteBack}) {
        ReplayOptions o = data_options(24, 16, 96);
        for (TierConfig* t : {&o.config.g1, &o.config.g2, &o.config.g3}) t->eviction = kind;
        o.config.offload.g3_min_frequency = filter;
        o.config.offload.g1_to_g2 = mode;
        o.config.offload.g2_to_g3 = mode;
        const std::string what = absl::StrCat(std::string(eviction_policy_name(kind)), " filter ", filter, " ",
                                              mode == OffloadMode::kWriteThrough ? "write-through" : "write-back");
        ASSERT_TRUE(trace->rewind().ok());
        auto data = run_replay(*trace, o);
        ASSERT_TRUE(data.ok()) << what << ": " << data.status();
        EXPECT_EQ(data->verification_failures, 0u) << what;
        o.data = false;
        ASSERT_TRUE(trace->rewind().ok());
        auto ids = run_replay(*trace, o);
        ASSERT_TRUE(ids.ok()) << what << ": " << ids.status();
        EXPECT_EQ(data->blocks_hit, ids->blocks_hit) << what;
        EXPECT_EQ(data->blocks_uncached, ids->blocks_uncached) << what;
        for (int t = 0; t < 3; ++t) EXPECT_EQ(data->tiers[t].hits, ids->tiers[t].hits) << what << " g" << t + 1;
        EXPECT_EQ(data->offload.g1_to_g2, ids->offload.g1_to_g2) << what;
        EXPECT_EQ(data->offload.g2_to_g3, ids->offload.g2_to_g3) << what;
        ASSERT_TRUE(trace->rewind().ok());
        auto again = run_replay(*trace, o);
        ASSERT_TRUE(again.ok());
        EXPECT_EQ(again->blocks_hit, ids->blocks_hit) << what;
      }
    }
  }
}

// --no-data keeps G4 too: a pool of its planned capacity (g4.num_blocks), the same chain under G2. Its
// endpoints are not contacted. Without a planned capacity it is an error naming the keys.
TEST(ReplayData, IdentitiesOnlyModelG4AtItsPlannedCapacity) {
  auto trace = generate_trace(small_workload());
  ReplayOptions o = data_options(24, 16, 0);
  o.config.g3 = TierConfig{};
  o.data = false;
  o.config.g4.endpoints = "127.0.0.1:1";
  auto missing = run_replay(*trace, o);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("g4.num_blocks"), std::string_view::npos) << missing.status();

  o.config.g4.num_blocks = 4096;
  ASSERT_TRUE(trace->rewind().ok());
  auto with_g4 = run_replay(*trace, o);
  ASSERT_TRUE(with_g4.ok()) << with_g4.status();
  EXPECT_TRUE(with_g4->tiers[3].enabled);
  EXPECT_EQ(with_g4->tiers[3].capacity_blocks, 4096u);
  EXPECT_GT(with_g4->tiers[3].hits, 0u);
  EXPECT_GT(with_g4->offload.links[3].written, 0u);
  // G4 fed from G2 and as large as every distinct block holds every block G2 ever took: the same hits as a
  // G3 of that size (also fed from G2).
  o.config.g4 = G4Config{};
  o.config.g3 = TierConfig{.num_blocks = 4096, .eviction = EvictionPolicyKind::kLru};
  ASSERT_TRUE(trace->rewind().ok());
  auto with_g3 = run_replay(*trace, o);
  ASSERT_TRUE(with_g3.ok()) << with_g3.status();
  EXPECT_EQ(with_g4->blocks_hit, with_g3->blocks_hit);
  EXPECT_EQ(with_g4->tiers[3].hits, with_g3->tiers[2].hits);
}

// With a G3 that holds every distinct block, inclusive write-through puts every block there and nothing
// leaves it: every request finds its longest previously seen prefix — the unlimited single-tier result.
TEST(ReplayData, AnUnboundedG3IsTheUnlimitedCache) {
  auto trace = generate_trace(small_workload());
  const std::uint64_t distinct = distinct_blocks(*trace);
  ASSERT_GT(distinct, 0u);
  ASSERT_TRUE(trace->rewind().ok());
  ReplayOptions meta = metadata_options(1);
  meta.block_tokens = kDefaultHashBlockTokens;
  meta.unlimited_g1 = true;
  auto unlimited = run_replay(*trace, meta);
  ASSERT_TRUE(unlimited.ok());
  ASSERT_TRUE(trace->rewind().ok());
  auto full = run_replay(*trace, data_options(128, 256, distinct));
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->verification_failures, 0u);
  EXPECT_EQ(full->onboard_truncated, 0u);
  EXPECT_EQ(full->blocks_hit, unlimited->blocks_hit);
  EXPECT_EQ(full->blocks_total, unlimited->blocks_total);
}

TEST(ReplaySweep, WritesCsvAndSvg) {
  auto trace = make_vector_trace({request({1, 2, 3}), request({1, 2, 4}), request({5}), request({1, 2, 3})});
  auto spec = parse_sweep("g1=2,4,8");
  ASSERT_TRUE(spec.ok());
  auto points = run_sweep(*trace, metadata_options(1), *spec);
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_EQ(points->size(), 3u);
  EXPECT_EQ((*points)[0].capacity_blocks, 2u);
  EXPECT_LE((*points)[0].report.blocks_hit, (*points)[2].report.blocks_hit);
  EXPECT_EQ((*points)[2].report.blocks_hit, 5u);  // 1,2 twice and 3 once

  const std::string csv = sweep_csv(*spec, *points);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  EXPECT_EQ(csv.rfind("tier,capacity,", 0), 0u);
  const std::string svg = sweep_svg(*spec, *points);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("</svg>\n"), std::string::npos);
  std::size_t polylines = 0;
  for (std::size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++polylines;
  EXPECT_EQ(polylines, 3u);  // block, token, mean per request
  EXPECT_FALSE(sweep_table(*spec, *points).empty());

  EXPECT_FALSE(parse_sweep("g4=1").ok());
  EXPECT_FALSE(parse_sweep("g1=").ok());
  EXPECT_FALSE(parse_sweep("g1=12parsecs").ok());
  EXPECT_TRUE(parse_sweep("g2=1GiB,4GiB").ok());
  // --no-data keeps every tier: a G2 sweep over identities only.
  auto g2_points = run_sweep(*trace, metadata_options(1), *parse_sweep("g2=1,10"));
  ASSERT_TRUE(g2_points.ok()) << g2_points.status();
  EXPECT_TRUE((*g2_points)[1].report.tiers[1].enabled);
  EXPECT_EQ((*g2_points)[1].report.tiers[1].capacity_blocks, 10u);
  EXPECT_GT((*g2_points)[1].report.tiers[1].hits, 0u);
}

}  // namespace
}  // namespace kvbm
