// `kvbm replay --compare`: the policy table on a generated trace, pinned to exact numbers (metadata only,
// fixed seed), plus the table, CSV and SVG shapes.
#include "kvbm/replay/compare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kvbm/core/hashing.h"

#include "kvbm/replay/generator.h"
#include "kvbm/replay/replay.h"
#include "kvbm/replay/trace.h"

namespace kvbm {
namespace {

PolicyComparison compare(const std::string& preset, std::uint64_t seed, const std::vector<std::string>& policies,
                         const std::vector<std::string>& capacities) {
  auto w = workload_preset(preset);
  EXPECT_TRUE(w.ok());
  w->seed = seed;
  auto trace = generate_trace(*w);
  ReplayOptions o;
  o.data = false;
  SweepSpec spec;
  spec.values = capacities;
  auto c = run_comparison(*trace, o, policies, spec);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : PolicyComparison{};
}

std::vector<std::uint64_t> hits_of(const PolicyComparison& c, std::size_t policy) {
  std::vector<std::uint64_t> out;
  for (const ReplayReport& r : c.reports[policy]) out.push_back(r.blocks_hit);
  return out;
}

// learned is index 5, adaptive 6 and lru 0 (checked against each other below); optimal last, the ceiling.
const std::vector<std::string> kPolicies = {"lru",     "s3fifo",  "slru",     "lfu",
                                            "lineage", "learned", "adaptive", "optimal"};

// The pinned table: any change to a policy or to the replay semantics shows up here first.
TEST(CompareTest, PinnedTableOnGeneratedTrace) {
  const PolicyComparison c = compare("default", 42, kPolicies, {"100", "200", "400", "800"});
  ASSERT_EQ(c.reports.size(), kPolicies.size());
  std::string got;
  for (std::size_t p = 0; p < kPolicies.size(); ++p) {
    got += kPolicies[p] + ":";
    for (std::uint64_t h : hits_of(c, p)) got += " " + std::to_string(h);
    got += "\n";
  }
  std::printf("%s\n%s", got.c_str(), comparison_table(c).c_str());
  EXPECT_EQ(got,
            "lru: 7187 10148 14052 17507\n"
            "s3fifo: 10769 12300 14471 16700\n"
            "slru: 10256 11877 13570 15901\n"
            "lfu: 8132 10860 14537 17826\n"
            "lineage: 7187 10148 14052 17507\n"
            "learned: 10625 12598 15328 17878\n"
            "adaptive: 10625 12594 15328 17876\n"
            "optimal: 13225 16844 19259 19335\n");
}

TEST(CompareTest, OptimalBoundsEveryPolicyAndLearnedIsNotBelowLru) {
#ifdef KVBM_SANITIZER_BUILD
  GTEST_SKIP() << "hit-rate outcomes on large traces are checked in the Release pass";
#endif
  for (const char* preset : {"default", "system_prompt_heavy", "session_heavy", "one_off_heavy"}) {
    for (std::uint64_t seed : {1, 2}) {
      const PolicyComparison c = compare(preset, seed, kPolicies, {"64", "256", "1024"});
      ASSERT_EQ(c.reports.size(), kPolicies.size());
      for (std::size_t j = 0; j < 3; ++j) {
        const std::uint64_t best = c.reports.back()[j].blocks_hit;
        for (std::size_t p = 0; p + 1 < kPolicies.size(); ++p) {
          EXPECT_LE(c.reports[p][j].blocks_hit, best) << preset << " seed " << seed << " " << kPolicies[p];
        }
        // Not below LRU beyond noise: ties broken differently can cost a few blocks in ~60,000.
        for (std::size_t p : {5, 6}) {
          EXPECT_GE(c.reports[p][j].blocks_hit + c.reports[0][j].blocks_total / 2000, c.reports[0][j].blocks_hit)
              << preset << " seed " << seed << " " << kPolicies[p];
        }
      }
    }
  }
}

// The default policy (TierConfig's eviction when none is set) against LRU from the same run, on the 6
// families the default was tuned on × 4 seeds × 7 capacities (16 blocks, less than one request of most
// mixes, to 4096): never below LRU by more than 2 √(LRU's hits), nor by more than total / 2000 blocks (the
// noise of ties), and better in aggregate. docs/eviction.md lists the wider sweep this stands for, and the
// held-out families.
TEST(CompareTest, DefaultPolicyIsNotBelowLru) {
#ifdef KVBM_SANITIZER_BUILD
  GTEST_SKIP() << "hit-rate outcomes on large traces are checked in the Release pass";
#endif
  ASSERT_NE(TierConfig{}.eviction, EvictionPolicyKind::kLru) << "the default is meant to beat LRU";
  std::uint64_t default_hits = 0, lru_hits = 0, below = 0;
  for (const char* preset :
       {"default", "system_prompt_heavy", "session_heavy", "one_off_heavy", "shared_documents", "agent_loop"}) {
    for (std::uint64_t seed : {3, 4, 5, 6}) {
      auto w = workload_preset(preset);
      ASSERT_TRUE(w.ok());
      w->seed = seed;
      auto trace = generate_trace(*w);
      for (std::uint64_t capacity : {16, 32, 64, 128, 512, 2048, 4096}) {
        ReplayOptions o;
        o.data = false;
        o.config.g1 = TierConfig{.num_blocks = capacity};  // default eviction
        ASSERT_TRUE(trace->rewind().ok());
        auto def = run_replay(*trace, o);
        ASSERT_TRUE(def.ok()) << def.status();
        o.config.g1.eviction = EvictionPolicyKind::kLru;
        ASSERT_TRUE(trace->rewind().ok());
        auto lru = run_replay(*trace, o);
        ASSERT_TRUE(lru.ok()) << lru.status();
        EXPECT_EQ(def->eviction, TierConfig{}.eviction.name());
        EXPECT_GE(def->blocks_hit + lru->blocks_total / 2000, lru->blocks_hit)
            << preset << " seed " << seed << " capacity " << capacity;
        // The reading of "never below LRU" (docs/eviction.md): not by more than twice the noise of LRU's hits.
        EXPECT_GE(static_cast<double>(def->blocks_hit) + 2 * std::sqrt(static_cast<double>(lru->blocks_hit)),
                  static_cast<double>(lru->blocks_hit))
            << preset << " seed " << seed << " capacity " << capacity;
        below += def->blocks_hit < lru->blocks_hit;
        default_hits += def->blocks_hit;
        lru_hits += lru->blocks_hit;
      }
    }
  }
  std::printf("default / lru block hits over 168 runs: %.4f; below lru at %llu\n",
              static_cast<double>(default_hits) / lru_hits, static_cast<unsigned long long>(below));
  EXPECT_GT(default_hits, lru_hits);
}

// The targets on the Mooncake conversation trace (skipped when ../shared/traces is absent): learned and the
// default ≥ 1.5× LRU at 1,000 blocks and ≥ 1.3× at 5,859, above LRU at every capacity.
TEST(CompareTest, LearnedMeetsTheMooncakeTargets) {
#ifdef KVBM_SANITIZER_BUILD
  GTEST_SKIP() << "hit-rate outcomes on large traces are checked in the Release pass";
#endif
  const std::string path = std::string(KVBM_SHARED_TRACES_DIR) + "/mooncake_conversation_trace.jsonl";
  auto trace = open_trace(path, TraceOptions{});
  if (!trace.ok()) GTEST_SKIP() << "no trace at " << path;
  ReplayOptions o;
  o.data = false;
  SweepSpec spec;
  spec.values = {"1000", "2000", "5859", "16000"};
  auto c = run_comparison(**trace, o, {"lru", "learned", std::string(TierConfig{}.eviction.name())}, spec);
  ASSERT_TRUE(c.ok()) << c.status();
  std::printf("%s", comparison_table(*c).c_str());
  EXPECT_NEAR(c->reports[0][0].hit_rate(), 0.0445, 0.0001);  // the LRU baseline of issue 4/8
  EXPECT_NEAR(c->reports[0][2].hit_rate(), 0.1361, 0.0001);
  for (std::size_t p : {1, 2}) {
    EXPECT_GE(c->reports[p][0].hit_rate(), 1.5 * c->reports[0][0].hit_rate()) << p;
    EXPECT_GE(c->reports[p][2].hit_rate(), 1.3 * c->reports[0][2].hit_rate()) << p;
    for (std::size_t j = 0; j < spec.values.size(); ++j) {
      EXPECT_GT(c->reports[p][j].blocks_hit, c->reports[0][j].blocks_hit) << p << " " << spec.values[j];
    }
  }
}

// A trace where LRU beats `learned`: 30 % of requests re-send one of the last 5 × k prompts exactly, 30 %
// one sent 40–60 × k requests before, the rest are new prompts of 8–24 blocks: recency is the signal, and
// `learned`'s class odds lose 12–25 % of LRU's hits.
std::vector<TraceRequest> resend_trace(std::uint64_t k, std::size_t requests, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](std::uint64_t lo, std::uint64_t hi) { return lo + rng() % (hi - lo + 1); };
  std::vector<TraceRequest> out;
  std::uint64_t next_block = 1;
  for (std::size_t i = 0; i < requests; ++i) {
    const double r = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    TraceRequest q;
    q.timestamp_ms = 50.0 * static_cast<double>(i);
    q.output_tokens = 100;
    if (r < 0.3 && out.size() > 5 * k) {
      q.blocks = out[out.size() - 1 - uniform(0, 5 * k - 1)].blocks;
    } else if (r < 0.6 && out.size() > 60 * k) {
      q.blocks = out[out.size() - 1 - uniform(40 * k, 60 * k)].blocks;
    } else {
      std::optional<SequenceHash> parent;
      for (std::uint64_t b = uniform(8, 24); b > 0; --b) {
        parent = chain_sequence_hash(parent, BlockHash{next_block++}, SaltHash{0});
        q.blocks.push_back(*parent);
      }
    }
    q.input_tokens = 512 * q.blocks.size();
    out.push_back(std::move(q));
  }
  return out;
}

// The adaptive mechanism: where `learned` is below LRU by far more than noise, the default follows LRU,
// within 2 √(LRU's hits) — with full-size miniatures (64, 128 blocks) and with sampled ones (1,000,
// 2,000 blocks: R = 0.45, 0.22).
TEST(CompareTest, DefaultFallsBackToLruWhereLruIsBetter) {
#ifdef KVBM_SANITIZER_BUILD
  GTEST_SKIP() << "hit-rate outcomes on large traces are checked in the Release pass";
#endif
  for (const auto& [k, requests, capacities] : {std::tuple{1u, 4000u, std::vector<std::string>{"64", "128"}},
                                                std::tuple{16u, 24000u, std::vector<std::string>{"1000", "2000"}}}) {
    auto trace = make_vector_trace(resend_trace(k, requests, 7));
    ReplayOptions o;
    o.data = false;
    SweepSpec spec;
    spec.values = capacities;
    const std::string def(TierConfig{}.eviction.name());
    auto c = run_comparison(*trace, o, {"lru", "learned", def}, spec);
    ASSERT_TRUE(c.ok()) << c.status();
    std::printf("%s", comparison_table(*c).c_str());
    for (std::size_t j = 0; j < capacities.size(); ++j) {
      const double lru = static_cast<double>(c->reports[0][j].blocks_hit);
      const double learned = static_cast<double>(c->reports[1][j].blocks_hit);
      const double adaptive = static_cast<double>(c->reports[2][j].blocks_hit);
      EXPECT_LT(learned + 4 * std::sqrt(lru), lru) << "the trace should defeat learned at " << capacities[j];
      EXPECT_GE(adaptive + 2 * std::sqrt(lru), lru) << capacities[j];
    }
  }
}

// The held-out families (docs/eviction.md: never used to choose anything in the default): the same 2 √ bar,
// added after the default's constants were fixed, as a guard against later changes (seeds 9–10, not the doc's).
TEST(CompareTest, DefaultHoldsTheBarOnHeldOutFamilies) {
#ifdef KVBM_SANITIZER_BUILD
  GTEST_SKIP() << "hit-rate outcomes on large traces are checked in the Release pass";
#endif
  const std::string def(TierConfig{}.eviction.name());
  for (const char* preset : {"one_off_bursts", "popularity_drift"}) {
    for (std::uint64_t seed : {9, 10}) {
      const PolicyComparison c = compare(preset, seed, {"lru", def}, {"32", "128", "512", "2048"});
      ASSERT_EQ(c.reports.size(), 2u);
      for (std::size_t j = 0; j < 4; ++j) {
        const double lru = static_cast<double>(c.reports[0][j].blocks_hit);
        EXPECT_GE(static_cast<double>(c.reports[1][j].blocks_hit) + 2 * std::sqrt(lru), lru)
            << preset << " seed " << seed << " capacity index " << j;
      }
    }
  }
}

// Where learned is right the default keeps its gains (one_off_heavy: learned 1.5–3.7× LRU).
TEST(CompareTest, DefaultKeepsLearnedsGains) {
#ifdef KVBM_SANITIZER_BUILD
  GTEST_SKIP() << "hit-rate outcomes on large traces are checked in the Release pass";
#endif
  const std::string def(TierConfig{}.eviction.name());
  const PolicyComparison c = compare("one_off_heavy", 3, {"lru", "learned", def}, {"128", "1000", "4000"});
  ASSERT_EQ(c.reports.size(), 3u);
  for (std::size_t j = 0; j < 3; ++j) {
    EXPECT_GE(c.reports[2][j].blocks_hit, 0.97 * static_cast<double>(c.reports[1][j].blocks_hit)) << j;
  }
}

TEST(CompareTest, TableCsvAndSvg) {
  const PolicyComparison c = compare("default", 3, {"lru", "learned", "optimal"}, {"50", "500"});
  const std::string table = comparison_table(c);
  EXPECT_NE(table.find("ratio to lru"), std::string::npos) << table;
  EXPECT_NE(table.find("share of optimal"), std::string::npos) << table;
  const std::string csv = comparison_csv(c);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3 * 2) << csv;
  const std::string svg = comparison_svg(c);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  std::size_t lines = 0;
  for (std::size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++lines;
  EXPECT_EQ(lines, 3u);
}

TEST(CompareTest, RejectsUnknownPolicy) {
  EXPECT_FALSE(parse_policy_list("lru,nope").ok());
  EXPECT_FALSE(parse_policy_list("").ok());
  auto ok = parse_policy_list("lru,optimal,learned");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 3u);
}

}  // namespace
}  // namespace kvbm
