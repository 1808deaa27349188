// User eviction policies (include/kvbm/pool/eviction_policy.h, docs/custom_eviction.md): registration, selection
// by name in a pool, the config and `--compare`, and the guard that overrules a victim outside the set.
#include <absl/strings/str_cat.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvbm/manager/kvbm_config.h"
#include "kvbm/pool/block_pool.h"
#include "kvbm/pool/eviction_policy.h"
#include "kvbm/replay/compare.h"
#include "kvbm/replay/generator.h"
#include "kvbm/replay/replay.h"
#include "kvbm/replay/report.h"

namespace kvbm {
namespace {

// Deliberately bad: evicts the most recently released block (a stack), so a cache keeps only what came
// first and loses almost everything reused later.
class NewestFirst final : public EvictionPolicy {
 public:
  std::string_view name() const override { return "newest_first"; }
  void insert(BlockId id, const InactiveBlockInfo&) override { stack_.push_back(id); }
  void erase(BlockId id) override { stack_.erase(std::find(stack_.begin(), stack_.end(), id)); }
  void touch(BlockId id) override {
    erase(id);
    stack_.push_back(id);
  }
  void set_leaf(BlockId, bool) override {}
  std::optional<BlockId> evict() override {
    if (stack_.empty()) return std::nullopt;
    const BlockId id = stack_.back();
    stack_.pop_back();
    return id;
  }
  std::size_t size() const override { return stack_.size(); }
  std::size_t memory_bytes() const override { return stack_.capacity() * sizeof(BlockId); }

 private:
  std::vector<BlockId> stack_;
};

// Broken: names a block id beyond the pool, or none at all, every other eviction.
class Liar final : public EvictionPolicy {
 public:
  std::string_view name() const override { return "liar"; }
  void insert(BlockId, const InactiveBlockInfo&) override {}
  void erase(BlockId) override {}
  void touch(BlockId) override {}
  void set_leaf(BlockId, bool) override {}
  std::optional<BlockId> evict() override {
    if (++calls_ % 2 == 0) return std::nullopt;
    return BlockId{1u << 30};
  }
  std::size_t size() const override { return 0; }
  std::size_t memory_bytes() const override { return sizeof(*this); }

 private:
  std::uint64_t calls_ = 0;
};

// Registers for the test's lifetime.
class Registered {
 public:
  Registered(const std::string& name, EvictionPolicyFactory factory) : name_(name) {
    EXPECT_TRUE(register_eviction_policy(name, std::move(factory)).ok());
  }
  ~Registered() { EXPECT_TRUE(unregister_eviction_policy(name_).ok()); }

 private:
  std::string name_;
};

EvictionPolicyFactory newest_first() {
  return [](std::uint32_t) { return std::make_unique<NewestFirst>(); };
}

TEST(UserPolicyTest, RegistrationChecksNames) {
  EXPECT_EQ(register_eviction_policy("lru", newest_first()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(register_eviction_policy("", newest_first()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(register_eviction_policy("Has Space", newest_first()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(register_eviction_policy("no_factory", nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(unregister_eviction_policy("never_registered").code(), absl::StatusCode::kNotFound);
  {
    Registered r("newest_first", newest_first());
    EXPECT_EQ(register_eviction_policy("newest_first", newest_first()).code(), absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(registered_eviction_policies(), std::vector<std::string>{"newest_first"});
    auto spec = parse_eviction_policy_spec("newest_first");
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_FALSE(spec->builtin());
    EXPECT_EQ(spec->name(), "newest_first");
  }
  auto gone = parse_eviction_policy_spec("newest_first");
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("lru, priority_lru"), std::string::npos) << gone.status();
  // A pool of an unregistered user policy is refused, naming the field.
  BlockPoolConfig c;
  c.num_blocks = 4;
  c.eviction = EvictionPolicySpec::user("newest_first");
  auto pool = BlockPool<CacheLevel::kG1>::create(c);
  ASSERT_FALSE(pool.ok());
  EXPECT_NE(pool.status().message().find(".eviction"), std::string::npos) << pool.status();
}

std::vector<SequenceHash> chain(std::uint64_t first, std::size_t n) {
  std::vector<SequenceHash> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(SequenceHash{first + i});
  return out;
}

// Registers `hashes` as one chain in `pool` and releases them (tail first).
void cache(BlockPool<CacheLevel::kG1>& pool, std::span<const SequenceHash> hashes) {
  auto blocks = pool.allocate(hashes.size());
  ASSERT_TRUE(blocks.ok()) << blocks.status();
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    BlockIdentity id{BlockHash{hashes[i].value()}, hashes[i], std::nullopt};
    if (i > 0) id.parent = hashes[i - 1];
    ASSERT_TRUE((*blocks)[i].apply(id).ok());
  }
  auto registered = pool.register_blocks(std::span<MutableBlock<CacheLevel::kG1>>(*blocks));
  ASSERT_TRUE(registered.ok()) << registered.status();
  pool.release(*std::move(registered));
}

// A G1 pool of `blocks` slots evicting with the registered policy `name`.
auto user_pool(const std::string& name, std::uint32_t blocks) {
  BlockPoolConfig c;
  c.num_blocks = blocks;
  c.keep_tokens = false;
  c.eviction = EvictionPolicySpec::user(name);
  return BlockPool<CacheLevel::kG1>::create(c);
}

TEST(UserPolicyTest, PoolEvictsWhatTheUserPolicyChooses) {
  Registered r("newest_first", newest_first());
  auto pool = user_pool("newest_first", 4);
  ASSERT_TRUE(pool.ok()) << pool.status();
  const std::vector<SequenceHash> a = chain(100, 4);
  cache(**pool, a);  // released tail first: 103, 102, 101, 100 — 100 is the newest
  cache(**pool, chain(200, 1));
  EXPECT_FALSE((*pool)->contains(SequenceHash{100}));
  for (std::uint64_t h : {101, 102, 103, 200}) EXPECT_TRUE((*pool)->contains(SequenceHash{h})) << h;
  EXPECT_EQ((*pool)->policy_violations(), 0u);
}

TEST(UserPolicyTest, AWrongVictimIsOverruledNotObeyed) {
  Registered r("liar", [](std::uint32_t) { return std::make_unique<Liar>(); });
  auto pool = user_pool("liar", 8);
  ASSERT_TRUE(pool.ok()) << pool.status();
  // A held block is never evicted; the pool keeps working and evicts in LRU order instead.
  const std::vector<SequenceHash> held_hashes = chain(1, 2);
  cache(**pool, held_hashes);
  std::vector<ImmutableBlock<CacheLevel::kG1>> held = (*pool)->match(held_hashes);
  ASSERT_EQ(held.size(), 2u);
  for (std::uint64_t first = 10; first < 100; first += 3) cache(**pool, chain(first, 3));
  EXPECT_TRUE((*pool)->contains(SequenceHash{1}));
  EXPECT_TRUE((*pool)->contains(SequenceHash{2}));
  EXPECT_GT((*pool)->policy_violations(), 0u);
  const PoolStatus st = (*pool)->status();
  EXPECT_EQ(st.active, 2u);
  EXPECT_EQ(st.active + st.inactive + st.free + st.owned, 8u);
  // LRU order among the rest: the last request's 3 blocks and the one before it are cached.
  for (std::uint64_t h : {97, 98, 99}) EXPECT_TRUE((*pool)->contains(SequenceHash{h})) << h;
  held.clear();
  // A reset makes a fresh policy with the same factory.
  ASSERT_TRUE((*pool)->reset().ok());
  cache(**pool, chain(500, 8));
  cache(**pool, chain(600, 2));
  EXPECT_EQ((*pool)->status().inactive, 8u);
}

TEST(UserPolicyTest, ConfigSelectsItByName) {
  Registered r("newest_first", newest_first());
  auto config = KvbmConfig::from_toml("[g1]\nnum_blocks = 16\neviction = \"newest_first\"\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->g1.eviction.name(), "newest_first");
  auto bad = KvbmConfig::from_toml("[g1]\neviction = \"newest_frist\"\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("or a registered policy: newest_first"), std::string::npos) << bad.status();
}

// The deliberately bad policy runs through replay and --compare, and the report shows it losing.
TEST(UserPolicyTest, ABadPolicyLosesToLruInTheComparison) {
  Registered r("newest_first", newest_first());
  auto w = workload_preset("default");
  ASSERT_TRUE(w.ok());
  w->seed = 7;
  auto trace = generate_trace(*w);
  ReplayOptions o;
  o.data = false;
  SweepSpec spec;
  spec.values = {"200", "800"};
  auto c = run_comparison(*trace, o, {"lru", "newest_first"}, spec);
  ASSERT_TRUE(c.ok()) << c.status();
  for (std::size_t i = 0; i < 2; ++i) {
    const std::uint64_t lru = c->reports[0][i].blocks_hit;
    const std::uint64_t bad = c->reports[1][i].blocks_hit;
    EXPECT_EQ(c->reports[1][i].eviction, "newest_first");
    EXPECT_LT(bad * 10, lru * 9) << "capacity " << c->capacity_blocks[i] << ": " << bad << " vs LRU " << lru;
  }
  EXPECT_NE(comparison_table(*c).find("newest_first"), std::string::npos);
}

// A replay's report counts, per tier, the victims its pool overruled; built-in tiers count none.
TEST(UserPolicyTest, ReplayReportCountsOverruledVictims) {
  Registered r("liar", [](std::uint32_t) { return std::make_unique<Liar>(); });
  auto w = workload_preset("default");
  ASSERT_TRUE(w.ok());
  w->num_requests = 200;
  auto trace = generate_trace(*w);
  ReplayOptions o;
  o.data = false;
  o.config.g1.num_blocks = 64;
  o.config.g1.eviction = EvictionPolicySpec::user("liar");
  o.config.g2.num_blocks = 128;
  o.config.g2.eviction = EvictionPolicyKind::kLru;
  auto report = run_replay(*trace, o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->requests, 200u);
  EXPECT_EQ(report->tiers[0].eviction, "liar");
  EXPECT_GT(report->tiers[0].policy_violations, 0u);
  EXPECT_EQ(report->tiers[1].policy_violations, 0u);
  const std::string json = format_report_json(*report);
  EXPECT_NE(json.find(absl::StrCat("\"policy_violations\":", report->tiers[0].policy_violations)), std::string::npos);
  EXPECT_NE(format_report_text(*report).find("overruled"), std::string::npos);
}

}  // namespace
}  // namespace kvbm
