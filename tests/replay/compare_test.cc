// `kvbm replay --compare`: the policy table on a generated trace, pinned to exact numbers (metadata only,
// fixed seed), plus the table, CSV and SVG shapes.
#include "kvbm/replay/compare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

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

// learned is index 5 and lru 0 (checked against each other below).
const std::vector<std::string> kPolicies = {"lru", "s3fifo", "slru", "lfu", "lineage", "learned", "optimal"};

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
        EXPECT_GE(c.reports[5][j].blocks_hit + c.reports[0][j].blocks_total / 2000, c.reports[0][j].blocks_hit)
            << preset << " seed " << seed << " learned";
      }
    }
  }
}

// The default policy (TierConfig's eviction when none is set) against LRU from the same run, on every
// generator mix × 4 seeds × 7 capacities (16 blocks, less than one request of most mixes, to 4096): never
// below LRU beyond the noise of ties (total / 2000 blocks), and better in aggregate. (README "## Eviction
// policies" lists the wider sweep this stands for.)
TEST(CompareTest, DefaultPolicyIsNotBelowLru) {
#ifdef KVBM_SANITIZER_BUILD
  GTEST_SKIP() << "hit-rate outcomes on large traces are checked in the Release pass";
#endif
  ASSERT_NE(TierConfig{}.eviction, EvictionPolicyKind::kLru) << "the default is meant to beat LRU";
  std::uint64_t default_hits = 0, lru_hits = 0, below = 0;
  for (const char* preset : {"default", "system_prompt_heavy", "session_heavy", "one_off_heavy"}) {
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
        // The README's reading of "never below LRU": not by more than twice the noise of LRU's hit count.
        EXPECT_GE(static_cast<double>(def->blocks_hit) + 2 * std::sqrt(static_cast<double>(lru->blocks_hit)),
                  static_cast<double>(lru->blocks_hit))
            << preset << " seed " << seed << " capacity " << capacity;
        below += def->blocks_hit < lru->blocks_hit;
        default_hits += def->blocks_hit;
        lru_hits += lru->blocks_hit;
      }
    }
  }
  std::printf("default / lru block hits over 112 runs: %.4f; below lru at %llu\n",
              static_cast<double>(default_hits) / lru_hits, static_cast<unsigned long long>(below));
  EXPECT_GT(default_hits, lru_hits);
}

// Issue 5/8's targets on the Mooncake conversation trace (skipped when ../shared/traces is absent).
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
  auto c = run_comparison(**trace, o, {"lru", "learned"}, spec);
  ASSERT_TRUE(c.ok()) << c.status();
  std::printf("%s", comparison_table(*c).c_str());
  EXPECT_NEAR(c->reports[0][0].hit_rate(), 0.0445, 0.0001);  // the LRU baseline of issue 4/8
  EXPECT_NEAR(c->reports[0][2].hit_rate(), 0.1361, 0.0001);
  EXPECT_GE(c->reports[1][0].hit_rate(), 1.3 * c->reports[0][0].hit_rate());
  EXPECT_GE(c->reports[1][2].hit_rate(), 1.25 * c->reports[0][2].hit_rate());
  for (std::size_t j = 0; j < spec.values.size(); ++j) {
    EXPECT_GT(c->reports[1][j].blocks_hit, c->reports[0][j].blocks_hit) << spec.values[j];
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
