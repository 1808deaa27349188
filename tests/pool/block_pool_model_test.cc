// Randomized model test: long random sequences of pool operations checked, step by step, against a simple
// reference model built from std::map / std::set. Parameterized over the eviction policies and seeds.
//
// The model keeps, per registered sequence hash: its slot id, holder count, retention priority, release
// recency and parent; and, per parent hash, how many registered blocks name it (so a block is a leaf when
// none does, whenever it was registered relative to them). From that it predicts status(), match(), touch(), the
// ids handed out, the Stored / Removed / Cleared events, and — for LRU and priority-LRU — exactly which
// block each eviction takes; for lineage, that a victim is a leaf whenever an inactive leaf exists.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "kvbm/pool/block_pool.h"
#include "support/pool_test_util.h"
#include "support/recording_event_sink.h"

namespace kvbm {
namespace {

using ::kvbm::testing::ClearedEvent;
using ::kvbm::testing::RecordedEvent;
using ::kvbm::testing::RecordingEventSink;
using ::kvbm::testing::synthetic_chain;

constexpr CacheLevel kL = CacheLevel::kG1;
using Pool = BlockPool<kL>;
using Mutable = MutableBlock<kL>;
using Immutable = ImmutableBlock<kL>;

constexpr std::uint32_t kNumBlocks = 48;
constexpr std::uint32_t kPageSize = 4;
constexpr std::size_t kMaxDepth = 6;
constexpr int kSteps = 20000;

struct ModelParam {
  EvictionPolicyKind kind;
  std::uint32_t seed;
};

// The reference model: what the pool should contain after each step.
class Model {
 public:
  struct Entry {
    BlockId id;
    std::uint32_t refcount = 0;
    std::uint8_t priority = kDefaultRetentionPriority;
    std::uint64_t tick = 0;  // recency while inactive
    std::optional<std::uint64_t> parent;
  };

  explicit Model(EvictionPolicyKind kind) : kind_(kind) {}

  [[nodiscard]] PoolStatus status() const {
    PoolStatus s;
    for (const auto& [h, e] : reg_) (e.refcount > 0 ? s.active : s.inactive) += 1;
    s.free = free_;
    s.owned = owned_;
    return s;
  }
  [[nodiscard]] bool registered(SequenceHash h) const { return reg_.contains(h.value()); }
  [[nodiscard]] std::vector<SequenceHash> registered_hashes() const {
    std::vector<SequenceHash> out;
    for (const auto& [h, e] : reg_) out.push_back(SequenceHash{h});
    return out;
  }
  [[nodiscard]] const Entry& entry(SequenceHash h) const { return reg_.at(h.value()); }
  [[nodiscard]] std::size_t inactive() const { return lru_.size(); }
  [[nodiscard]] std::uint32_t free() const { return free_; }
  [[nodiscard]] std::uint32_t owned() const { return owned_; }
  [[nodiscard]] bool id_registered(BlockId id) const {
    for (const auto& [h, e] : reg_) {
      if (e.id == id) return true;
    }
    return false;
  }

  // The victim LRU / priority-LRU must pick next. REQUIRES: kind is one of those and inactive() > 0.
  [[nodiscard]] std::uint64_t predicted_victim() const {
    if (kind_ == EvictionPolicyKind::kLru) return lru_.begin()->second;
    std::optional<std::pair<std::pair<std::uint8_t, std::uint64_t>, std::uint64_t>> best;
    for (const auto& [tick, h] : lru_) {
      const auto key = std::make_pair(reg_.at(h).priority, tick);
      if (!best || key < best->first) best = {key, h};
    }
    return best->second;
  }
  [[nodiscard]] bool is_inactive_leaf(std::uint64_t h) const {
    auto it = reg_.find(h);
    return it != reg_.end() && it->second.refcount == 0 && !children_.contains(h);
  }
  [[nodiscard]] bool any_inactive_leaf() const {
    for (const auto& [tick, h] : lru_) {
      if (!children_.contains(h)) return true;
    }
    return false;
  }

  [[nodiscard]] bool all_inactive_are_leaves() const {
    for (const auto& [tick, h] : lru_) {
      if (children_.contains(h)) return false;
    }
    return true;
  }

  void allocate_free(std::uint32_t n) {
    free_ -= n;
    owned_ += n;
  }
  // Evicts `h` into a newly owned slot.
  void evict(std::uint64_t h) {
    Entry& e = reg_.at(h);
    lru_.erase(e.tick);
    if (e.parent && --children_.at(*e.parent) == 0) children_.erase(*e.parent);
    reg_.erase(h);
    ++owned_;
  }
  void drop_owned(std::uint32_t n) {
    owned_ -= n;
    free_ += n;
  }
  // A Complete owned block is registered: returns the id the pool must hand back, and whether it is new.
  std::pair<BlockId, bool> register_block(const BlockIdentity& identity, BlockId own_id, std::uint8_t priority) {
    --owned_;
    auto it = reg_.find(identity.sequence_hash.value());
    if (it != reg_.end()) {
      ++free_;
      retain(it->first);
      return {it->second.id, false};
    }
    Entry e;
    e.id = own_id;
    e.refcount = 1;
    e.priority = priority;
    if (identity.parent) {
      e.parent = identity.parent->value();
      ++children_[*e.parent];
    }
    reg_.emplace(identity.sequence_hash.value(), e);
    return {own_id, true};
  }
  void retain(std::uint64_t h) {
    Entry& e = reg_.at(h);
    if (e.refcount++ == 0) lru_.erase(e.tick);
  }
  void release(std::uint64_t h) {
    Entry& e = reg_.at(h);
    ASSERT_GT(e.refcount, 0u);
    if (--e.refcount == 0) {
      e.tick = ++clock_;
      lru_.emplace(e.tick, h);
    }
  }
  // Returns how many of `hashes` are registered.
  std::size_t touch(const std::vector<SequenceHash>& hashes) {
    std::size_t found = 0;
    for (SequenceHash h : hashes) {
      auto it = reg_.find(h.value());
      if (it == reg_.end()) continue;
      ++found;
      if (it->second.refcount == 0) {
        lru_.erase(it->second.tick);
        it->second.tick = ++clock_;
        lru_.emplace(it->second.tick, h.value());
      }
    }
    return found;
  }
  [[nodiscard]] std::size_t longest_prefix(const std::vector<SequenceHash>& hashes) const {
    std::size_t n = 0;
    while (n < hashes.size() && registered(hashes[n])) ++n;
    return n;
  }
  void reset() {
    reg_.clear();
    lru_.clear();
    children_.clear();
    free_ = kNumBlocks;
  }

 private:
  EvictionPolicyKind kind_;
  std::map<std::uint64_t, Entry> reg_;
  std::map<std::uint64_t, std::uint64_t> lru_;  // tick → hash, inactive blocks only
  std::uint32_t free_ = kNumBlocks;
  std::uint32_t owned_ = 0;
  std::map<std::uint64_t, std::uint32_t> children_;  // parent hash → registered blocks naming it
  std::uint64_t clock_ = 0;
};

class BlockPoolModelTest : public ::testing::TestWithParam<ModelParam> {
 protected:
  void SetUp() override {
    BlockPoolConfig c;
    c.num_blocks = kNumBlocks;
    c.page_size = kPageSize;
    c.eviction = GetParam().kind;
    c.events = &sink_;
    auto pool = Pool::create(c);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    rng_.seed(GetParam().seed);
  }
  void TearDown() override {
    groups_.clear();
    owned_.clear();
  }

  std::uint32_t uniform(std::uint32_t lo, std::uint32_t hi) {  // inclusive
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng_);
  }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

  // A random path through a small tree of block contents: shared prefixes, hence duplicates and matches.
  std::vector<BlockIdentity> random_path(std::size_t length) {
    std::vector<std::uint64_t> contents(length);
    for (auto& c : contents) c = chance(0.5) ? 0 : uniform(1, 3);
    return synthetic_chain(contents);
  }
  static std::vector<SequenceHash> hashes_of(const std::vector<BlockIdentity>& chain) {
    return ::kvbm::testing::sequence_hashes(std::span<const BlockIdentity>(chain));
  }

  std::vector<RecordedEvent> take_events() { return sink_.take(); }
  void expect_no_events(const char* op) {
    const auto events = take_events();
    ASSERT_TRUE(events.empty()) << op << " emitted " << events.size() << " event(s)";
  }

  void check_status() {
    const PoolStatus s = pool_->status();
    const PoolStatus m = model_.status();
    ASSERT_EQ(s, m);
    ASSERT_EQ(s.active + s.inactive + s.free + s.owned, kNumBlocks);
    ASSERT_EQ(s.owned, owned_.size()) << "owned count must equal the live MutableBlocks";
  }

  // contains() agrees with the model for every registered hash and for a sample of the universe.
  void check_registry() {
    for (SequenceHash h : model_.registered_hashes()) ASSERT_TRUE(pool_->contains(h)) << h.value();
    for (int i = 0; i < 50; ++i) {
      for (const BlockIdentity& id : random_path(kMaxDepth)) {
        ASSERT_EQ(pool_->contains(id.sequence_hash), model_.registered(id.sequence_hash));
      }
    }
  }

  // Allocates n blocks, checking ids and evictions. Returns false when the model says it cannot.
  bool do_allocate(std::uint32_t n) {
    const bool possible = n <= model_.free() + model_.inactive();
    auto blocks = pool_->allocate(n);
    if (!possible) {
      EXPECT_FALSE(blocks.ok());
      EXPECT_EQ(blocks.status().code(), absl::StatusCode::kResourceExhausted);
      ++stats_.exhausted;
      EXPECT_TRUE(take_events().empty()) << "a failed allocation must evict nothing";
      return false;
    }
    EXPECT_TRUE(blocks.ok()) << blocks.status();
    if (!blocks.ok()) return false;
    EXPECT_EQ(blocks->size(), n);
    const std::uint32_t from_free = std::min(n, model_.free());
    const std::uint32_t to_evict = n - from_free;

    // Ids must not be held by anyone else right now.
    std::set<std::uint32_t> seen;
    for (const Mutable& b : owned_) seen.insert(b.id().value());
    for (const Mutable& b : *blocks) {
      EXPECT_TRUE(seen.insert(b.id().value()).second) << "block id " << b.id().value() << " handed out twice";
      EXPECT_EQ(b.state(), MutableState::kReset);
    }
    for (std::uint32_t i = 0; i < from_free; ++i) {
      EXPECT_FALSE(model_.id_registered((*blocks)[i].id())) << "a free slot must not be registered";
    }
    model_.allocate_free(from_free);

    std::vector<SequenceHash> removed;
    for (const RecordedEvent& e : take_events()) {
      const auto* r = std::get_if<BlocksRemoved>(&e);
      EXPECT_NE(r, nullptr) << "allocate may only emit Removed events";
      if (r != nullptr) removed.insert(removed.end(), r->block_hashes.begin(), r->block_hashes.end());
    }
    EXPECT_EQ(removed.size(), to_evict);
    if (removed.size() != to_evict) return false;
    for (std::uint32_t j = 0; j < to_evict; ++j) {
      const std::uint64_t victim = removed[j].value();
      EXPECT_TRUE(model_.registered(removed[j]) && model_.entry(removed[j]).refcount == 0)
          << "evicted block " << victim << " was not inactive";
      if (!model_.registered(removed[j])) return false;
      switch (GetParam().kind) {
        case EvictionPolicyKind::kLru:
        case EvictionPolicyKind::kPriorityLru:
          EXPECT_EQ(victim, model_.predicted_victim()) << "wrong victim (eviction #" << j << ")";
          break;
        case EvictionPolicyKind::kLineage:
        case EvictionPolicyKind::kS3FifoPrefix:
        case EvictionPolicyKind::kSlruPrefix:
        case EvictionPolicyKind::kLfuPrefix:
          if (model_.any_inactive_leaf()) {
            if (model_.inactive() > 1 && !model_.all_inactive_are_leaves()) ++stats_.lineage_choices;
            EXPECT_TRUE(model_.is_inactive_leaf(victim)) << "lineage evicted an interior block while a leaf existed";
          }
          break;
        case EvictionPolicyKind::kS3Fifo:
        case EvictionPolicyKind::kSlru:
        case EvictionPolicyKind::kLfu:
        case EvictionPolicyKind::kLearned:
        case EvictionPolicyKind::kAdaptive:
          break;  // any inactive block (checked above) in an order of their own
      }
      EXPECT_EQ((*blocks)[from_free + j].id(), model_.entry(removed[j]).id) << "evicted slot is the one handed out";
      model_.evict(victim);
      ++stats_.evictions;
    }
    for (Mutable& b : *blocks) owned_.push_back(std::move(b));
    return true;
  }

  void op_allocate() { do_allocate(uniform(0, 6)); }

  void op_register() {
    const std::size_t length = uniform(1, kMaxDepth);
    const std::vector<BlockIdentity> path = random_path(length);
    const std::size_t start = chance(0.5) ? 0 : uniform(0, static_cast<std::uint32_t>(length - 1));
    const std::size_t k = length - start;
    // Take Reset handles from those owned, allocating the shortfall.
    std::size_t reset_owned = 0;
    for (const Mutable& b : owned_) reset_owned += b.state() == MutableState::kReset ? 1 : 0;
    if (reset_owned < k && !do_allocate(static_cast<std::uint32_t>(k - reset_owned))) return;
    if (::testing::Test::HasFailure()) return;
    std::vector<Mutable> batch;
    for (auto it = owned_.begin(); it != owned_.end() && batch.size() < k;) {
      if (it->state() == MutableState::kReset) {
        batch.push_back(std::move(*it));
        it = owned_.erase(it);
      } else {
        ++it;
      }
    }
    ASSERT_EQ(batch.size(), k);
    for (std::size_t i = 0; i < k; ++i) {
      ASSERT_TRUE(batch[i].apply(path[start + i]).ok());
      if (chance(0.3)) batch[i].set_priority(static_cast<std::uint8_t>(uniform(0, kMaxRetentionPriority)));
    }

    if (chance(0.05)) {
      // One block of the batch is not Complete: the whole call fails and changes nothing.
      const std::size_t bad = uniform(0, static_cast<std::uint32_t>(k - 1));
      auto fresh = pool_->allocate(0);
      ASSERT_TRUE(fresh.ok());
      Mutable replacement;
      for (auto it = owned_.begin(); it != owned_.end(); ++it) {
        if (it->state() == MutableState::kReset) {
          replacement = std::move(*it);
          owned_.erase(it);
          break;
        }
      }
      if (replacement.valid()) {
        if (chance(0.5)) ASSERT_TRUE(replacement.init(SaltHash{0}, std::nullopt).ok());
        std::swap(batch[bad], replacement);
        owned_.push_back(std::move(replacement));  // the displaced Complete block stays owned
        const PoolStatus before = pool_->status();
        auto r = pool_->register_blocks(std::span<Mutable>(batch));
        ASSERT_FALSE(r.ok());
        ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
        ASSERT_NE(r.status().message().find("#" + std::to_string(bad)), std::string_view::npos) << r.status();
        ASSERT_EQ(pool_->status(), before);
        expect_no_events("failed register");
        ++stats_.failed_registers;
        for (Mutable& b : batch) {
          ASSERT_TRUE(b.valid());
          owned_.push_back(std::move(b));
        }
        return;
      }
    }

    // Expected outcome, from the model.
    // One Stored event per run of new blocks that continue one another's chain: a de-duplicated block
    // in between starts a new event, naming its own parent.
    std::vector<BlockId> expected_ids;
    struct ExpectedStored {
      std::vector<SequenceHash> hashes;
      std::optional<SequenceHash> parent;
    };
    std::vector<ExpectedStored> expected_events;
    bool run_open = false;
    for (std::size_t i = 0; i < k; ++i) {
      const auto [id, is_new] = model_.register_block(path[start + i], batch[i].id(), batch[i].priority());
      if (is_new) {
        EXPECT_EQ(std::count(expected_ids.begin(), expected_ids.end(), id), 0) << "new block reuses an id";
        if (!run_open) expected_events.push_back(ExpectedStored{{}, path[start + i].parent});
        expected_events.back().hashes.push_back(path[start + i].sequence_hash);
      }
      run_open = is_new;
      expected_ids.push_back(id);
      ++(is_new ? stats_.registered : stats_.deduplicated);
    }
    auto r = pool_->register_blocks(std::span<Mutable>(batch));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->size(), k);
    for (std::size_t i = 0; i < k; ++i) {
      ASSERT_FALSE(batch[i].valid());
      ASSERT_EQ((*r)[i].id(), expected_ids[i]) << "block #" << i;
      ASSERT_EQ((*r)[i].sequence_hash(), path[start + i].sequence_hash);
    }
    const auto events = take_events();
    ASSERT_EQ(events.size(), expected_events.size()) << "a pure de-duplication must store nothing";
    for (std::size_t e = 0; e < events.size(); ++e) {
      const auto* stored = std::get_if<BlocksStored>(&events[e]);
      ASSERT_NE(stored, nullptr);
      ASSERT_EQ(stored->block_hashes, expected_events[e].hashes);
      ASSERT_EQ(stored->parent_hash, expected_events[e].parent);
      ASSERT_EQ(stored->block_size, kPageSize);
    }
    groups_.push_back(*std::move(r));
  }

  void op_match() {
    const std::vector<BlockIdentity> path = random_path(uniform(1, kMaxDepth));
    const std::vector<SequenceHash> hashes = hashes_of(path);
    const std::size_t n = model_.longest_prefix(hashes);
    std::vector<Immutable> matched = pool_->match(hashes);
    ASSERT_EQ(matched.size(), n) << "match must return the longest registered prefix";
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_EQ(matched[i].id(), model_.entry(hashes[i]).id);
      ASSERT_EQ(matched[i].sequence_hash(), hashes[i]);
      model_.retain(hashes[i].value());
    }
    expect_no_events("match");
    stats_.matched += n;
    if (!matched.empty()) groups_.push_back(std::move(matched));
  }

  void op_release() {
    if (groups_.empty()) return;
    const std::size_t g = uniform(0, static_cast<std::uint32_t>(groups_.size() - 1));
    std::vector<Immutable> group = std::move(groups_[g]);
    groups_.erase(groups_.begin() + static_cast<std::ptrdiff_t>(g));
    if (chance(0.5)) {
      for (auto it = group.rbegin(); it != group.rend(); ++it) model_.release(it->sequence_hash().value());
      pool_->release(std::move(group));
    } else {
      std::shuffle(group.begin(), group.end(), rng_);
      for (Immutable& b : group) {
        model_.release(b.sequence_hash().value());
        b.reset();
      }
    }
    expect_no_events("release");
  }

  void op_copy() {
    if (groups_.empty()) return;
    const auto& group = groups_[uniform(0, static_cast<std::uint32_t>(groups_.size() - 1))];
    const Immutable& source = group[uniform(0, static_cast<std::uint32_t>(group.size() - 1))];
    std::vector<Immutable> copy;
    copy.push_back(source);
    model_.retain(source.sequence_hash().value());
    groups_.push_back(std::move(copy));
  }

  void op_touch() {
    const std::vector<SequenceHash> hashes = hashes_of(random_path(uniform(1, kMaxDepth)));
    const std::size_t expected = model_.touch(hashes);
    ASSERT_EQ(pool_->touch(hashes), expected);
    expect_no_events("touch");
  }

  void op_drop_owned() {
    if (owned_.empty()) return;
    const std::size_t i = uniform(0, static_cast<std::uint32_t>(owned_.size() - 1));
    if (owned_[i].state() == MutableState::kReset && chance(0.5)) {
      // Leave it Partial first: dropping frees it in any state.
      ASSERT_TRUE(owned_[i].init(SaltHash{0}, std::nullopt).ok());
      const std::vector<std::uint32_t> tokens = {1, 2};
      ASSERT_TRUE(owned_[i].append(tokens).ok());
    }
    owned_.erase(owned_.begin() + static_cast<std::ptrdiff_t>(i));
    model_.drop_owned(1);
    expect_no_events("drop");
  }

  void op_weak() {
    if (chance(0.5) && !groups_.empty()) {
      const auto& group = groups_[uniform(0, static_cast<std::uint32_t>(groups_.size() - 1))];
      weak_.push_back(pool_->downgrade(group[uniform(0, static_cast<std::uint32_t>(group.size() - 1))]));
      if (weak_.size() > 16) weak_.erase(weak_.begin());
      return;
    }
    if (weak_.empty()) return;
    const WeakBlock<kL>& w = weak_[uniform(0, static_cast<std::uint32_t>(weak_.size() - 1))];
    std::optional<Immutable> up = w.upgrade();
    ASSERT_EQ(up.has_value(), model_.registered(w.sequence_hash()));
    if (up) {
      ASSERT_EQ(up->id(), model_.entry(w.sequence_hash()).id);
      model_.retain(w.sequence_hash().value());
      std::vector<Immutable> g;
      g.push_back(*std::move(up));
      groups_.push_back(std::move(g));
    }
    expect_no_events("upgrade");
  }

  void op_reset() {
    if (chance(0.6)) {
      // Release everything first, so that reset can succeed.
      while (!groups_.empty()) {
        for (auto it = groups_.back().rbegin(); it != groups_.back().rend(); ++it) {
          model_.release(it->sequence_hash().value());
        }
        pool_->release(std::move(groups_.back()));
        groups_.pop_back();
      }
      model_.drop_owned(static_cast<std::uint32_t>(owned_.size()));
      owned_.clear();
    }
    const PoolStatus before = model_.status();
    absl::Status s = pool_->reset();
    const auto events = take_events();
    if (before.owned + before.active > 0) {
      ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
      ASSERT_TRUE(events.empty());
      return;
    }
    ASSERT_TRUE(s.ok()) << s;
    ++stats_.resets;
    ASSERT_EQ(events.size(), 1u);
    ASSERT_TRUE(std::holds_alternative<ClearedEvent>(events[0]));
    model_.reset();
  }

  void run() {
    for (int step = 0; step < kSteps; ++step) {
      const std::uint32_t dice = uniform(0, 999);
      const char* op = "";
      if (dice < 150) {
        op = "allocate", op_allocate();
      } else if (dice < 420) {
        op = "register", op_register();
      } else if (dice < 570) {
        op = "match", op_match();
      } else if (dice < 775) {
        op = "release", op_release();
      } else if (dice < 815) {
        op = "copy", op_copy();
      } else if (dice < 885) {
        op = "touch", op_touch();
      } else if (dice < 945) {
        op = "drop_owned", op_drop_owned();
      } else if (dice < 995) {
        op = "weak", op_weak();
      } else {
        op = "reset", op_reset();
      }
      if (!::testing::Test::HasFailure()) check_status();
      if (step % 1000 == 0 && !::testing::Test::HasFailure()) check_registry();
      if (::testing::Test::HasFailure()) {
        ADD_FAILURE() << "diverged from the model at step " << step << " (" << op << "), seed " << GetParam().seed
                      << ", policy " << eviction_policy_name(GetParam().kind);
        return;
      }
    }
    // Finally drop everything: nothing may stay held.
    for (auto& g : groups_) {
      for (auto it = g.rbegin(); it != g.rend(); ++it) model_.release(it->sequence_hash().value());
      pool_->release(std::move(g));
    }
    groups_.clear();
    model_.drop_owned(static_cast<std::uint32_t>(owned_.size()));
    owned_.clear();
    check_status();
    const PoolStatus s = pool_->status();
    EXPECT_EQ(s.active, 0u);
    EXPECT_EQ(s.owned, 0u);
    EXPECT_EQ(s.inactive + s.free, kNumBlocks);

    // The run must have exercised what it claims to check.
    EXPECT_GT(stats_.evictions, 1000u);
    EXPECT_GT(stats_.exhausted, 10u);
    EXPECT_GT(stats_.registered, 1000u);
    EXPECT_GT(stats_.deduplicated, 1000u);
    EXPECT_GT(stats_.matched, 1000u);
    EXPECT_GT(stats_.failed_registers, 10u);
    EXPECT_GT(stats_.resets, 5u);
    if (GetParam().kind == EvictionPolicyKind::kLineage || GetParam().kind == EvictionPolicyKind::kSlruPrefix) {
      EXPECT_GT(stats_.lineage_choices, 100u);
    }
    RecordProperty("evictions", static_cast<int>(stats_.evictions));
    RecordProperty("deduplicated", static_cast<int>(stats_.deduplicated));
    std::printf(
        "evictions %zu exhausted %zu registered %zu deduplicated %zu matched %zu failed_registers %zu resets %zu "
        "lineage_choices %zu\n",
        stats_.evictions, stats_.exhausted, stats_.registered, stats_.deduplicated, stats_.matched,
        stats_.failed_registers, stats_.resets, stats_.lineage_choices);
  }

  struct Stats {
    std::size_t evictions = 0, exhausted = 0, registered = 0, deduplicated = 0, matched = 0, failed_registers = 0,
                resets = 0, lineage_choices = 0;
  };
  Stats stats_;

  RecordingEventSink sink_;
  std::unique_ptr<Pool> pool_;
  Model model_{GetParam().kind};
  std::mt19937_64 rng_;
  std::vector<Mutable> owned_;
  std::vector<std::vector<Immutable>> groups_;
  std::vector<WeakBlock<kL>> weak_;
};

TEST_P(BlockPoolModelTest, RandomOperationsMatchTheModel) { run(); }

std::vector<ModelParam> all_params() {
  std::vector<ModelParam> out;
  for (EvictionPolicyKind kind : all_eviction_policy_kinds()) {
    for (std::uint32_t seed : {1u, 2u, 3u, 20240607u}) out.push_back({kind, seed});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(PoliciesAndSeeds, BlockPoolModelTest, ::testing::ValuesIn(all_params()),
                         [](const ::testing::TestParamInfo<ModelParam>& info) {
                           return std::string(eviction_policy_name(info.param.kind)) + "_seed" +
                                  std::to_string(info.param.seed);
                         });

}  // namespace
}  // namespace kvbm
