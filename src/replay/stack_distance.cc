// LRU stack distances and the one-pass G2 hit curve (see kvbm/replay/stack_distance.h and
// docs/planning.md).
#include "kvbm/replay/stack_distance.h"

#include <absl/container/flat_hash_map.h>
#include <absl/status/status.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <utility>

#include "kvbm/manager/kvbm_config.h"

namespace kvbm {

LruStackDistance::LruStackDistance(std::uint32_t num_keys, std::uint64_t max_accesses)
    : tree_(max_accesses + 1, 0), last_(num_keys, kNever) {}

void LruStackDistance::add(std::uint64_t time, std::int32_t delta) {
  for (std::uint64_t i = time + 1; i < tree_.size(); i += i & (~i + 1)) tree_[i] += delta;
}

std::uint64_t LruStackDistance::count_before(std::uint64_t time) const {
  std::int64_t sum = 0;
  for (std::uint64_t i = time; i > 0; i -= i & (~i + 1)) sum += tree_[i];
  return static_cast<std::uint64_t>(sum);
}

std::uint64_t LruStackDistance::depth(std::uint32_t key) const {
  const std::uint64_t last = last_[key];
  return last == kNever ? kInfinite : marks_ - count_before(last);
}

std::uint64_t LruStackDistance::access(std::uint32_t key) {
  const std::uint64_t before = depth(key);
  if (last_[key] == kNever) {
    ++marks_;
  } else {
    add(last_[key], -1);
  }
  add(now_, +1);
  last_[key] = now_++;
  return before;
}

namespace {

constexpr std::uint32_t kNone = 0xffffffffu;

// An LRU list over dense ids: O(1) push, remove, pop of the least recent.
class LruList {
 public:
  explicit LruList(std::uint32_t ids) : prev_(ids, kNone), next_(ids, kNone), in_(ids, 0) {}
  [[nodiscard]] bool contains(std::uint32_t id) const { return in_[id] != 0; }
  [[nodiscard]] std::uint64_t size() const { return size_; }
  [[nodiscard]] bool empty() const { return size_ == 0; }
  void grow(std::uint32_t ids) {
    prev_.resize(ids, kNone);
    next_.resize(ids, kNone);
    in_.resize(ids, 0);
  }
  void push_recent(std::uint32_t id) {
    prev_[id] = tail_;
    next_[id] = kNone;
    (tail_ == kNone ? head_ : next_[tail_]) = id;
    tail_ = id;
    in_[id] = 1;
    ++size_;
  }
  void remove(std::uint32_t id) {
    (prev_[id] == kNone ? head_ : next_[prev_[id]]) = next_[id];
    (next_[id] == kNone ? tail_ : prev_[next_[id]]) = prev_[id];
    in_[id] = 0;
    --size_;
  }
  std::uint32_t pop_least_recent() {
    const std::uint32_t id = head_;
    remove(id);
    return id;
  }

 private:
  std::vector<std::uint32_t> prev_, next_;
  std::vector<std::uint8_t> in_;
  std::uint32_t head_ = kNone, tail_ = kNone;  // least, most recent
  std::uint64_t size_ = 0;
};

}  // namespace

absl::StatusOr<G2HitCurve> G2HitCurve::compute(std::span<const std::vector<SequenceHash>> requests,
                                               std::uint64_t g1_blocks) {
  if (absl::Status s = check_tier_blocks("g1", g1_blocks); !s.ok()) return s;
  G2HitCurve c;
  c.g1_blocks_ = g1_blocks;
  c.offsets_.reserve(requests.size() + 1);
  c.offsets_.push_back(0);

  // The G1 pass: the single-tier semantics (steps 2 and 3), which are those of the chain for G1.
  absl::flat_hash_map<std::uint64_t, std::uint32_t> dense;
  std::vector<std::uint32_t> holds;  // per id: holds taken by the current request
  std::vector<std::uint8_t> in_g1, seen;
  LruList inactive(0);  // G1's unheld blocks, least recently released first
  std::uint64_t g1_used = 0;
  std::vector<std::uint32_t> reached;
  std::uint64_t accesses = 0;  // G2 accesses in step 4
  for (std::size_t r = 0; r < requests.size(); ++r) {
    const std::vector<SequenceHash>& hashes = requests[r];
    const std::uint64_t base = c.ids_.size();
    for (SequenceHash h : hashes) {
      auto [it, added] = dense.try_emplace(h.value(), c.distinct_);
      if (added) ++c.distinct_;
      c.ids_.push_back(it->second);
    }
    if (holds.size() < c.distinct_) {
      holds.resize(c.distinct_, 0);
      in_g1.resize(c.distinct_, 0);
      seen.resize(c.distinct_, 0);
      inactive.grow(c.distinct_);
    }
    c.flags_.resize(c.ids_.size(), 0);
    const std::span<const std::uint32_t> ids(c.ids_.data() + base, hashes.size());
    std::uint8_t* flags = c.flags_.data() + base;
    // Step 1's view, and the unlimited cache.
    bool missed = false, unseen = false;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (in_g1[ids[i]] != 0) {
        if (missed) {
          return absl::FailedPreconditionError(
              absl::StrCat("request ", r, ": block ", i, " is in G1, an earlier one is not (G1 hits not a prefix)"));
        }
        flags[i] |= kG1AtStart;
      } else {
        missed = true;
      }
      if (seen[ids[i]] == 0) unseen = true;
      if (!unseen) ++c.attainable_;
    }
    for (std::uint32_t id : ids) seen[id] = 1;
    // Step 2.
    reached.clear();
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const std::uint32_t id = ids[i];
      if (in_g1[id] != 0) {
        if (holds[id] == 0) inactive.remove(id);
        flags[i] |= kG1Held | kReached;
      } else {
        if (g1_used < g1_blocks) {
          ++g1_used;
        } else if (!inactive.empty()) {
          in_g1[inactive.pop_least_recent()] = 0;
        } else {
          c.uncached_ += ids.size() - i;  // every slot held: stop
          break;
        }
        in_g1[id] = 1;
        flags[i] |= kReached;
        ++accesses;
      }
      ++holds[id];
      reached.push_back(id);
    }
    // Step 3: release tail first.
    for (auto it = reached.rbegin(); it != reached.rend(); ++it) {
      if (--holds[*it] == 0) inactive.push_recent(*it);
    }
    c.offsets_.push_back(c.ids_.size());
  }

  // The stack pass over step 4's accesses.
  LruStackDistance stack(c.distinct_, accesses);
  std::vector<std::uint64_t> need;  // per block of a request: the least capacity making it part of the hit
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (std::size_t r = 0; r + 1 < c.offsets_.size(); ++r) {
    const std::uint64_t b = c.offsets_[r], e = c.offsets_[r + 1];
    need.assign(e - b, LruStackDistance::kInfinite);
    std::uint64_t prefix = 0;  // capacity the prefix so far needs
    for (std::uint64_t i = b; i < e; ++i) {
      if ((c.flags_[i] & kG1AtStart) != 0) {
        ++c.g1_hits_;
        need[i - b] = 0;
        continue;
      }
      const std::uint64_t d = stack.depth(c.ids_[i]);
      if (d == LruStackDistance::kInfinite) break;
      prefix = std::max(prefix, d);
      need[i - b] = prefix;
      c.g2_need_.push_back(prefix);
    }
    for (std::uint64_t i = e; i > b; --i) {
      const std::uint8_t f = c.flags_[i - 1];
      if ((f & kReached) == 0 || (f & kG1Held) != 0) continue;
      const std::uint64_t touched = stack.access(c.ids_[i - 1]);
      const std::uint64_t hit_from = need[i - 1 - b];
      // A G2 hit at every capacity >= hit_from; at those below `touched` the request's own inserts evicted
      // it first, and the semantics' touch does nothing where the pure LRU model would insert it again.
      if (hit_from != LruStackDistance::kInfinite && hit_from != 0 && touched > hit_from) {
        ranges.emplace_back(hit_from, touched - 1);
        ++c.deviations_;
      }
    }
  }
  std::sort(c.g2_need_.begin(), c.g2_need_.end());
  std::sort(ranges.begin(), ranges.end());
  for (const auto& [lo, hi] : ranges) {
    if (!c.ranges_.empty() && lo <= c.ranges_.back().second + 1) {
      c.ranges_.back().second = std::max(c.ranges_.back().second, hi);
    } else {
      c.ranges_.emplace_back(lo, hi);
    }
  }
  c.saturation_ = std::max<std::uint64_t>(1, c.g2_need_.empty() ? 0 : c.g2_need_.back());
  if (!c.ranges_.empty()) c.saturation_ = std::max(c.saturation_, c.ranges_.back().second + 1);
  return c;
}

bool G2HitCurve::exact_from_pass(std::uint64_t g2_blocks) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), std::make_pair(g2_blocks, LruStackDistance::kInfinite));
  return it == ranges_.begin() || std::prev(it)->second < g2_blocks;
}

ChainHits G2HitCurve::at(std::uint64_t g2_blocks) const {
  if (!exact_from_pass(g2_blocks)) return simulate(g2_blocks);
  ChainHits h;
  h.g2_blocks = g2_blocks;
  h.g1_hits = g1_hits_;
  h.g2_hits =
      static_cast<std::uint64_t>(std::upper_bound(g2_need_.begin(), g2_need_.end(), g2_blocks) - g2_need_.begin());
  h.blocks_hit = h.g1_hits + h.g2_hits;
  h.from_pass = true;
  return h;
}

// G2 alone, LRU, over the recorded G1 pass: steps 1 and 4 of the semantics, per request.
ChainHits G2HitCurve::simulate(std::uint64_t g2_blocks) const {
  ChainHits h;
  h.g2_blocks = g2_blocks;
  LruList g2(distinct_);
  for (std::size_t r = 0; r + 1 < offsets_.size(); ++r) {
    const std::uint64_t b = offsets_[r], e = offsets_[r + 1];
    std::uint64_t k = b;  // step 1
    for (; k < e; ++k) {
      if ((flags_[k] & kG1AtStart) != 0) {
        ++h.g1_hits;
      } else if (g2.contains(ids_[k])) {
        ++h.g2_hits;
      } else {
        break;
      }
    }
    for (std::uint64_t i = e; i > b; --i) {  // step 4, tail first
      const std::uint8_t f = flags_[i - 1];
      if ((f & kReached) == 0 || (f & kG1Held) != 0) continue;
      const std::uint32_t id = ids_[i - 1];
      if (g2.contains(id)) {
        g2.remove(id);  // a touch, or an insert of a block already there
      } else if (i - 1 < k) {
        continue;  // a touch of a G2 hit that this request's inserts evicted: nothing to do
      } else if (g2.size() >= g2_blocks) {
        if (g2_blocks == 0) continue;
        (void)g2.pop_least_recent();
      }
      g2.push_recent(id);
    }
  }
  h.blocks_hit = h.g1_hits + h.g2_hits;
  return h;
}

}  // namespace kvbm
