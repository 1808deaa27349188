// OffloadManager: see include/kvbm/offload/offload_manager.h for the contract. The links live in
// tier_link.h / remote_link.h; this file builds the chain, turns G1 releases into link ops, matches and
// onboards.
#include "kvbm/offload/offload_manager.h"

#include <absl/container/flat_hash_map.h>
#include <absl/container/inlined_vector.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>

#include "offload/remote_link.h"
#include "offload/tier_link.h"

namespace kvbm {

using offload::LinkOp;
using offload::OpKind;
using offload::TierLink;

// ---- OnboardOperation ----

std::shared_ptr<OnboardOperation> OnboardOperation::finished(absl::StatusOr<std::vector<G1Block>> result) {
  auto op = std::make_shared<OnboardOperation>();
  op->finish(std::move(result), 0.0);
  return op;
}

bool OnboardOperation::done() const {
  MutexLock lock(&mu_);
  return done_;
}

absl::StatusOr<std::vector<G1Block>> OnboardOperation::wait() {
  MutexLock lock(&mu_);
  while (!done_) cv_.wait(mu_);
  if (taken_) return absl::FailedPreconditionError("OnboardOperation::wait: the result was already taken");
  taken_ = true;
  return std::move(result_);
}

bool OnboardOperation::wait_until(std::chrono::steady_clock::time_point deadline) const {
  MutexLock lock(&mu_);
  while (!done_ && cv_.wait_until(mu_, deadline) != std::cv_status::timeout) {
  }
  return done_;
}

double OnboardOperation::latency_seconds() const {
  MutexLock lock(&mu_);
  return latency_;
}

std::size_t OnboardOperation::truncated() const {
  MutexLock lock(&mu_);
  return truncated_;
}

bool OnboardOperation::out_of_slots() const {
  MutexLock lock(&mu_);
  return out_of_slots_;
}

void OnboardOperation::finish(absl::StatusOr<std::vector<G1Block>> result, double latency, std::size_t truncated,
                              bool out_of_slots) {
  {
    MutexLock lock(&mu_);
    result_ = std::move(result);
    latency_ = latency;
    truncated_ = truncated;
    out_of_slots_ = out_of_slots;
    done_ = true;
  }
  cv_.notify_all();
}

namespace {

using Clock = std::chrono::steady_clock;

// A host-memory area of `blocks` blocks in the model's fully contiguous layout: where blocks from disk or
// the remote tier land before they go to a G1 that is not host-addressable (device memory).
struct StagingArea {
  std::unique_ptr<Layout> layout;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<TierMemory> memory;

  static absl::StatusOr<StagingArea> create(const ModelConfig& model, std::size_t blocks) {
    StagingArea a;
    auto layout = FullyContiguousLayout::create(model, static_cast<std::uint32_t>(blocks));
    if (!layout.ok()) return layout.status();
    a.layout = *std::move(layout);
    SystemMemory::Options options;
    options.zero_fill = false;
    auto storage = SystemMemory::for_layout(*a.layout, options);
    if (!storage.ok()) return storage.status();
    a.storage = *std::move(storage);
    auto memory = TierMemory::bind(a.layout.get(), a.storage.get());
    if (!memory.ok()) return memory.status();
    a.memory = std::make_unique<TierMemory>(*std::move(memory));
    return a;
  }
  [[nodiscard]] TierView view() const { return TierView{memory.get(), nullptr}; }
};

}  // namespace

class OffloadManager::Impl final : public ReleaseObserver {
 public:
  Impl(TierStack* tiers, TransferEngine* engine, const OffloadConfig& config, Options options)
      : ctx_(tiers, engine, config, options.scheduler, options.observers),
        g4_(std::move(options.g4)),
        g3_deadline_(options.g3_deadline) {
    if (ctx_.queued) {
      onboard_lanes_[kHostLane] = ctx_.scheduler->add_lane("kvbm onboard host");
      onboard_lanes_[kBelowHostLane] = ctx_.scheduler->add_lane("kvbm onboard");
    }
    if (tiers->g2) {
      links_.push_back(std::make_unique<offload::PoolLink<CacheLevel::kG1, CacheLevel::kG2>>(
          ctx_, *tiers->g1, *tiers->g2, config.g1_to_g2, /*filtered=*/false));
      into(CacheLevel::kG2) = links_.back().get();
      if (tiers->g3) {
        links_.push_back(std::make_unique<offload::PoolLink<CacheLevel::kG2, CacheLevel::kG3>>(
            ctx_, *tiers->g2, *tiers->g3, config.g2_to_g3, /*filtered=*/ctx_.filter_on()));
        into(CacheLevel::kG3) = links_.back().get();
      }
      if (g4_) {
        links_.push_back(std::make_unique<offload::RemoteLink>(ctx_, *tiers->g2, *g4_));
        into(CacheLevel::kG4) = links_.back().get();
      } else if (tiers->g4) {  // identities only: G4 modelled as a pool, the same chain
        links_.push_back(std::make_unique<offload::PoolLink<CacheLevel::kG2, CacheLevel::kG4>>(
            ctx_, *tiers->g2, *tiers->g4, OffloadMode::kWriteThrough, /*filtered=*/false));
        into(CacheLevel::kG4) = links_.back().get();
      }
      for (CacheLevel below : {CacheLevel::kG3, CacheLevel::kG4}) {
        if (into(below) != nullptr) into(CacheLevel::kG2)->add_child(into(below));
      }
    }
  }

  ~Impl() override { shutdown(/*drain=*/false); }

  // G1 blocks that became inactive, tail first within a request: their first release after registration
  // carries their origin, which decides what the chain does (see offload_manager.h).
  void on_released(CacheLevel, std::span<const ReleasedBlock> blocks) override {
    TierLink* top = into(CacheLevel::kG2);
    if (top == nullptr) return;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
    }
    const bool sight = ctx_.filter_on() && into(CacheLevel::kG3) != nullptr;
    std::vector<LinkOp> ops;
    ops.reserve(blocks.size());
    absl::InlinedVector<std::uint8_t, 64> crossed_each(blocks.size(), 0);
    if (sight) ctx_.sight_each(blocks, crossed_each);
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const ReleasedBlock& b = blocks[i];
      const bool crossed = crossed_each[i] != 0;
      if (b.origin) {
        const bool computed = *b.origin == CacheLevel::kG1;
        ops.push_back(LinkOp{b.identity, b.priority, computed ? OpKind::kWrite : OpKind::kOnboarded, *b.origin, 0});
        if (computed) continue;  // its write-through meets the filter with this sighting counted
      }
      if (crossed) ops.push_back(LinkOp{b.identity, b.priority, OpKind::kPromote, CacheLevel::kG1, 0});
    }
    top->push(std::move(ops));
  }

  bool wants_g1_evictions() const {
    const TierLink* top = links_into_[static_cast<int>(CacheLevel::kG2)];
    return top != nullptr && top->wants_evictions();
  }

  void on_g1_evicted(std::span<const EvictedBlock> evicted) {
    if (TierLink* top = into(CacheLevel::kG2); top != nullptr) top->on_upper_evicted(evicted);
  }

  MatchResult match(std::span<const SequenceHash> hashes) {
    TierStack& t = *ctx_.tiers;
    MatchResult r;
    r.g1 = t.g1->pool->match(hashes);
    r.tiers.assign(r.g1.size(), CacheLevel::kG1);
    const std::size_t g1_prefix = r.g1.size();
    std::size_t i = g1_prefix;
    for (; i < hashes.size(); ++i) {
      const SequenceHash h = hashes[i];
      // Each block is credited to the first tier holding it. Under an eviction policy that does not keep
      // prefixes whole, G1 may hold a block past the first it lacks (which match() just looked up).
      if (i > g1_prefix) {
        if (std::optional<G1Block> b = t.g1->pool->find(h)) {
          r.g1.push_back(*std::move(b));
          r.tiers.push_back(CacheLevel::kG1);
          continue;
        }
      }
      if (t.g2) {
        if (std::optional<G2Block> b = t.g2->pool->pin_for_copy(h)) {
          r.g2.push_back(*std::move(b));
          r.tiers.push_back(CacheLevel::kG2);
          continue;
        }
      }
      if (t.g3) {
        if (std::optional<G3Block> b = t.g3->pool->pin_for_copy(h)) {
          r.g3.push_back(*std::move(b));
          r.tiers.push_back(CacheLevel::kG3);
          continue;
        }
      }
      if (t.g4 && t.g4->pool->contains(h)) {  // G4 modelled as a pool (identities only)
        r.g4.push_back(h);
        r.tiers.push_back(CacheLevel::kG4);
        continue;
      }
      break;
    }
    if (g4_ && i < hashes.size()) {  // bounded by g4.deadline_ms
      for (SequenceHash h : g4_->match(hashes.subspan(i))) {
        r.g4.push_back(h);
        r.tiers.push_back(CacheLevel::kG4);
      }
    }
    return r;
  }

  std::shared_ptr<OnboardOperation> onboard(MatchResult match) {
    auto op = std::make_shared<OnboardOperation>();
    std::size_t lane = kHostLane;
    if (match.tiers.empty()) {  // made by hand: G1 blocks, then G2, G3, G4, each contiguous
      match.tiers.insert(match.tiers.end(), match.g1.size(), CacheLevel::kG1);
      match.tiers.insert(match.tiers.end(), match.g2.size(), CacheLevel::kG2);
      match.tiers.insert(match.tiers.end(), match.g3.size(), CacheLevel::kG3);
      match.tiers.insert(match.tiers.end(), match.g4.size(), CacheLevel::kG4);
    }
    if (match.resident()) {
      op->finish(std::move(match.g1), 0.0);
      return op;
    }
    {
      MutexLock lock(&mu_);
      if (stopping_) {
        op->finish(absl::UnavailableError("onboard: the offload manager is shutting down"), 0.0);
        return op;
      }
      // Waiting onboardings live here, not in the job: shutdown() can cancel them while the pools exist.
      // One needing only host copies (G2) never waits behind one that reads disk or the network.
      lane = match.g3.empty() && match.g4.empty() ? kHostLane : kBelowHostLane;
      onboards_[lane].push_back(PendingOnboard{op, std::move(match), Clock::now()});
    }
    if (ctx_.queued) {
      ctx_.post(onboard_lanes_[lane], [this, lane] { run_onboard(lane); });
    } else {
      run_onboard(lane);
    }
    return op;
  }

  bool has_g4() const { return g4_ != nullptr || ctx_.tiers->g4 != nullptr; }

  void flush() {
    ctx_.wait_idle();
    release_detained(/*wait=*/true);  // reads past their deadline are copies still in flight too
  }

  void shutdown(bool drain) {
    {
      MutexLock lock(&mu_);
      if (stopped_) return;
      stopping_ = true;
    }
    if (drain) ctx_.wait_idle();
    for (auto& link : links_) link->stop(drain);
    std::deque<PendingOnboard> left;
    {
      MutexLock lock(&mu_);
      for (std::deque<PendingOnboard>& q : onboards_) {
        for (PendingOnboard& p : q) left.push_back(std::move(p));
        q.clear();
      }
    }
    for (PendingOnboard& p : left) p.op->finish(absl::CancelledError("onboard: cancelled by shutdown"), 0.0);
    left.clear();
    // Jobs still queued in the scheduler will do nothing; running ones are waited for. After that no job
    // detains a read any more: those past their deadline end here.
    ctx_.close();
    release_detained(/*wait=*/true);
    if (g4_) g4_->shutdown();
    MutexLock lock(&mu_);
    stopped_ = true;
  }

  OffloadStats stats() const {
    OffloadStats s;
    for (CacheLevel level : {CacheLevel::kG2, CacheLevel::kG3, CacheLevel::kG4}) {
      if (const TierLink* link = links_into_[static_cast<int>(level)]; link != nullptr) {
        s.links[static_cast<int>(level)] = link->stats();
      }
    }
    {
      MutexLock lock(&stats_mu_);
      s.onboarded_from = onboarded_from_;
      s.bytes_up = bytes_up_;
      s.onboard_truncated = onboard_truncated_;
      s.transfer_failures = read_failures_;
      s.checksum_failures = read_checksum_failures_;
      s.dropped_damaged = dropped_damaged_;
      s.deadline_misses = deadline_misses_;
    }
    {
      MutexLock lock(&mu_);
      s.onboard_queue_depth = onboards_[kHostLane].size() + onboards_[kBelowHostLane].size();
    }
    const LinkStats& l2 = s.links[static_cast<int>(CacheLevel::kG2)];
    const LinkStats& l3 = s.links[static_cast<int>(CacheLevel::kG3)];
    s.g1_to_g2 = l2.written;
    s.g2_to_g3 = l3.written;
    s.g3_to_g2 = l2.staged;
    s.g2_to_g1 = s.onboarded_from[static_cast<int>(CacheLevel::kG2)];
    s.g3_to_g1 = s.onboarded_from[static_cast<int>(CacheLevel::kG3)];
    s.g4_to_g1 = s.onboarded_from[static_cast<int>(CacheLevel::kG4)];
    for (const LinkStats& l : s.links) {
      s.bytes_down += l.bytes;
      s.skipped_present += l.present;
      s.skipped_evicted += l.dropped_evicted;
      s.dropped_queue_full += l.dropped_queue_full;
      s.filtered_frequency += l.filtered;
      s.no_space += l.no_space;
      s.transfer_failures += l.transfer_failures;
      s.checksum_failures += l.checksum_failures;
      s.write_back_blocks += l.write_back;
      s.copied_at_eviction += l.at_eviction;
      s.copied_by_producer += l.producer_runs;
    }
    s.queue_peak_g1_g2 = l2.queue_peak;
    s.queue_peak_g2_g3 = l3.queue_peak;
    s.queue_depth_g1_g2 = l2.queue_depth;
    s.queue_depth_g2_g3 = l3.queue_depth;
    if (g4_) s.g4 = g4_->stats();
    return s;
  }

 private:
  TierLink*& into(CacheLevel level) { return links_into_[static_cast<int>(level)]; }

  // The hash of prefix block `pos`, the `i`-th of its tier.
  static SequenceHash hash_at(const MatchResult& m, std::size_t pos, std::size_t i) {
    switch (m.tiers[pos]) {
      case CacheLevel::kG1:
        return m.g1[i].sequence_hash();
      case CacheLevel::kG2:
        return m.g2[i].sequence_hash();
      case CacheLevel::kG3:
        return m.g3[i].sequence_hash();
      default:
        return m.g4[i];
    }
  }

  struct PendingOnboard {
    std::shared_ptr<OnboardOperation> op;
    MatchResult match;
    Clock::time_point started;
  };

  // Takes the oldest onboarding waiting for `lane` and makes it resident.
  void run_onboard(std::size_t lane) {
    PendingOnboard job;
    {
      MutexLock lock(&mu_);
      if (onboards_[lane].empty()) return;  // cancelled by shutdown
      job = std::move(onboards_[lane].front());
      onboards_[lane].pop_front();
    }
    release_detained(/*wait=*/false);
    const Clock::time_point deadline = g3_deadline_.count() > 0 ? job.started + g3_deadline_ : Clock::time_point::max();
    Cut cut;
    auto result = onboard_now(job.match, deadline, &cut);
    job.match = MatchResult{};  // lower-tier pins go before the waiter wakes
    const double latency = std::chrono::duration<double>(Clock::now() - job.started).count();
    if (ctx_.observers.onboard_seconds != nullptr) ctx_.observers.onboard_seconds->observe(latency);
    job.op->finish(std::move(result), latency, cut.truncated, cut.out_of_slots);
  }

  // How an onboarding's prefix came out short.
  struct Cut {
    std::size_t truncated = 0;  // matched blocks left out
    bool out_of_slots = false;  // because every G1 block was held
  };

  // Makes the match resident in G1 (see the top of offload_manager.h).
  absl::StatusOr<std::vector<G1Block>> onboard_now(MatchResult& m, Clock::time_point g3_deadline, Cut* outcome) {
    Tier<CacheLevel::kG1>& g1 = *ctx_.tiers->g1;
    const std::size_t k = m.size();
    // Where each prefix block sits in its tier's vector, and the positions to fill: each block below G1
    // once — a hash the prefix names again is, by then, the G1 block filled for its first occurrence.
    std::vector<std::size_t> index(k);
    std::vector<std::size_t> fill;
    std::vector<std::size_t> same_as(k, k);  // a later occurrence: the position it repeats
    std::array<std::size_t, kNumCacheLevels> seen{};
    std::vector<std::uint64_t> hashes;
    const std::array<std::size_t, kNumCacheLevels> sizes{m.g1.size(), m.g2.size(), m.g3.size(), m.g4.size()};
    for (std::size_t pos = 0; pos < k; ++pos) {
      const int tier = static_cast<int>(m.tiers[pos]);
      index[pos] = seen[tier]++;
      if (index[pos] >= sizes[tier]) break;  // reported below
      if (m.tiers[pos] == CacheLevel::kG1) continue;
      fill.push_back(pos);
      hashes.push_back(hash_at(m, pos, index[pos]).value());
    }
    if (seen != sizes) {
      return absl::InvalidArgumentError("onboard: the match's tiers do not agree with its blocks");
    }
    std::vector<std::uint64_t> sorted = hashes;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {  // rare: a hash named twice
      absl::flat_hash_map<std::uint64_t, std::size_t> first;
      std::vector<std::size_t> unique;
      for (std::size_t f = 0; f < fill.size(); ++f) {
        if (auto [it, inserted] = first.try_emplace(hashes[f], fill[f]); !inserted) {
          same_as[fill[f]] = it->second;
        } else {
          unique.push_back(fill[f]);
        }
      }
      fill.swap(unique);
    }

    // G1 slots, as many as can be had; what G1 evicts for them goes down first.
    std::vector<EvictedBlock> evicted;
    std::vector<G1MutableBlock> targets =
        g1.pool->allocate_up_to(fill.size(), wants_g1_evictions() ? &evicted : nullptr);
    if (!evicted.empty()) on_g1_evicted(evicted);
    std::size_t cut = k;
    if (targets.size() < fill.size()) {  // every slot held: the prefix stops at the first block without one
      cut = fill[targets.size()];
      outcome->out_of_slots = true;
    }

    // Bytes: G2 and G3 straight into G1 (G3 through a host staging area when G1 is device memory), G4 fetched.
    std::vector<BlockIdentity> identity(targets.size());
    std::vector<std::span<const std::uint32_t>> tokens(targets.size());  // G2/G3's, for G1's Stored event
    std::vector<std::uint8_t> priority(targets.size(), kDefaultRetentionPriority);
    for (std::size_t t = 0; t < targets.size(); ++t) {
      const std::size_t pos = fill[t];
      switch (m.tiers[pos]) {
        case CacheLevel::kG2:
          identity[t] = m.g2[index[pos]].identity();
          tokens[t] = m.g2[index[pos]].tokens();
          priority[t] = m.g2[index[pos]].priority();
          break;
        case CacheLevel::kG3:
          identity[t] = m.g3[index[pos]].identity();
          tokens[t] = m.g3[index[pos]].tokens();
          priority[t] = m.g3[index[pos]].priority();
          break;
        default:  // G4: a pool's registered identity (identities only), or what the fetch brings (bytes)
          identity[t] = BlockIdentity{BlockHash{0}, m.g4[index[pos]], std::nullopt};
          if (ctx_.tiers->g4) {
            if (std::optional<ImmutableBlock<CacheLevel::kG4>> b =
                    ctx_.tiers->g4->pool->pin_for_copy(m.g4[index[pos]])) {
              identity[t] = b->identity();
            }
          }
          break;
      }
    }
    std::vector<absl::Status> status(targets.size());
    if (g1.has_bytes() && !targets.empty()) read_up(m, fill, index, targets, identity, g3_deadline, status);
    drop_damaged_g3(m, fill, index, status);
    for (std::size_t t = 0; t < targets.size(); ++t) {
      if (status[t].ok()) continue;
      if (m.tiers[fill[t]] != CacheLevel::kG4) {  // G4's misses and damage are G4Stats'
        MutexLock lock(&stats_mu_);               // every failed read is counted, also those past the end of the prefix
        switch (status[t].code()) {
          case absl::StatusCode::kDataLoss:
            ++read_checksum_failures_;
            break;
          case absl::StatusCode::kDeadlineExceeded:
            ++deadline_misses_;
            break;
          default:
            ++read_failures_;
        }
      }
      cut = std::min(cut, fill[t]);  // the prefix ends at the first block that did not arrive intact
    }

    std::vector<G1MutableBlock> arrived;
    arrived.reserve(targets.size());
    std::array<std::uint64_t, kNumCacheLevels> from{};
    for (std::size_t t = 0; t < targets.size() && fill[t] < cut; ++t) {
      targets[t].set_origin(m.tiers[fill[t]]);
      targets[t].set_priority(priority[t]);
      if (!targets[t].apply(identity[t], tokens[t]).ok()) {
        cut = fill[t];
        break;
      }
      ++from[static_cast<int>(m.tiers[fill[t]])];
      arrived.push_back(std::move(targets[t]));
    }
    auto registered = g1.pool->register_blocks(arrived);
    if (!registered.ok()) return registered.status();
    std::vector<G1Block> out;
    out.reserve(cut);
    std::size_t next = 0;
    for (std::size_t pos = 0; pos < cut; ++pos) {
      if (m.tiers[pos] == CacheLevel::kG1) {
        out.push_back(std::move(m.g1[index[pos]]));
      } else if (same_as[pos] < k) {
        out.push_back(out[same_as[pos]]);  // held once more, as step 2 holds a block it finds in G1
      } else {
        out.push_back(std::move((*registered)[next++]));
      }
    }
    outcome->truncated = k - cut;
    MutexLock lock(&stats_mu_);
    for (int tier = 1; tier < kNumCacheLevels; ++tier) onboarded_from_[tier] += from[tier];
    if (g1.has_bytes()) bytes_up_ += registered->size() * ctx_.bytes_per_block;
    if (cut < k) ++onboard_truncated_;
    return out;
  }

  // G3 blocks that came back damaged leave G3 now (their slots are free once the match lets go), so that
  // no later match counts them as hits and reads them again.
  void drop_damaged_g3(MatchResult& m, std::span<const std::size_t> fill, std::span<const std::size_t> index,
                       std::span<const absl::Status> status) {
    std::vector<BlockId> dropped;
    for (std::size_t t = 0; t < status.size(); ++t) {
      const std::size_t pos = fill[t];
      if (m.tiers[pos] != CacheLevel::kG3 || status[t].code() != absl::StatusCode::kDataLoss) continue;
      const G3Block& b = m.g3[index[pos]];
      if (ctx_.tiers->g3->pool->discard(b)) dropped.push_back(b.id());
    }
    if (dropped.empty()) return;
    if (ctx_.tiers->g3->hooks) ctx_.tiers->g3->hooks->after_damaged(dropped);
    MutexLock lock(&stats_mu_);
    dropped_damaged_ += dropped.size();
  }

  // Copies the bytes of the blocks to fill into their G1 targets; `status[t]` says how target t fared.
  // G4 blocks whose hashes G4 no longer has (or that came back damaged) are NotFound / DataLoss.
  // G3 reads not done by `g3_deadline` are DeadlineExceeded; their targets (and sources) are detained until
  // the read ends.
  void read_up(MatchResult& m, std::span<const std::size_t> fill, std::span<const std::size_t> index,
               std::span<G1MutableBlock> targets, std::span<BlockIdentity> identity, Clock::time_point g3_deadline,
               std::span<absl::Status> status) {
    Tier<CacheLevel::kG1>& g1 = *ctx_.tiers->g1;
    const bool host = g1.memory->host_addressable();
    std::vector<BlockCopy> from_g2, from_g3;
    std::vector<std::size_t> at_g2, at_g3, at_g4;
    std::vector<SequenceHash> g4_hashes;
    for (std::size_t t = 0; t < targets.size(); ++t) {
      const std::size_t pos = fill[t];
      switch (m.tiers[pos]) {
        case CacheLevel::kG2:
          from_g2.push_back(BlockCopy{m.g2[index[pos]].id(), targets[t].id(), identity[t].sequence_hash.value()});
          at_g2.push_back(t);
          break;
        case CacheLevel::kG3:
          from_g3.push_back(BlockCopy{m.g3[index[pos]].id(), targets[t].id(), identity[t].sequence_hash.value()});
          at_g3.push_back(t);
          break;
        default:
          g4_hashes.push_back(identity[t].sequence_hash);
          at_g4.push_back(t);
          break;
      }
    }
    std::shared_ptr<TransferCompletion> g2_done;
    if (!from_g2.empty()) {
      g2_done = ctx_.engine->submit(TransferRequest{ctx_.tiers->g2->view(), g1.view(), std::move(from_g2)});
    }
    if (!from_g3.empty()) {
      std::vector<G3Block> sources;  // held for a read that outlives its deadline
      for (std::size_t t : at_g3) sources.push_back(m.g3[index[fill[t]]]);
      if (Clock::now() >= g3_deadline) {  // spent waiting for its lane: add no I/O to a disk that is this slow
        for (std::size_t t : at_g3) status[t] = g3_deadline_exceeded();
      } else if (host) {
        std::shared_ptr<TransferCompletion> done =
            ctx_.engine->submit(TransferRequest{ctx_.tiers->g3->view(), g1.view(), from_g3});
        if (done->wait_until(g3_deadline)) {
          settle(done->wait(), at_g3, status);
        } else {
          DetainedRead d{done, {}, std::move(sources), nullptr};
          for (std::size_t t : at_g3) {
            d.targets.push_back(std::move(targets[t]));
            status[t] = g3_deadline_exceeded();
          }
          detain(std::move(d));
        }
      } else {
        through_staging(ctx_.tiers->g3->view(), from_g3, at_g3, g3_deadline, std::move(sources), status);
      }
    }
    if (!g4_hashes.empty()) fetch_g4(g4_hashes, at_g4, targets, identity, status);
    if (g2_done) settle(g2_done->wait(), at_g2, status);
  }

  static void settle(const TransferResult& r, std::span<const std::size_t> at, std::span<absl::Status> status) {
    for (std::size_t i = 0; i < at.size(); ++i) status[at[i]] = r.block(i);
  }

  static absl::Status g3_deadline_exceeded() {
    return absl::DeadlineExceededError("g3: the read did not complete within g3.deadline_ms");
  }

  // `copies` (source tier → G1 slots) through a host staging area, for a G1 the source cannot reach. The
  // first leg has until `deadline`; past it, the staging area and `sources` are detained until it ends (the
  // G1 slots were not written yet).
  void through_staging(TierView source, std::span<const BlockCopy> copies, std::span<const std::size_t> at,
                       Clock::time_point deadline, std::vector<G3Block> sources, std::span<absl::Status> status) {
    auto staging = StagingArea::create(ctx_.tiers->g1->layout->model(), copies.size());
    if (!staging.ok()) {
      for (std::size_t t : at) status[t] = staging.status();
      return;
    }
    std::vector<BlockCopy> in(copies.size()), out(copies.size());
    for (std::size_t i = 0; i < copies.size(); ++i) {
      in[i] = BlockCopy{copies[i].src, BlockId{static_cast<std::uint32_t>(i)}, copies[i].tag};
      out[i] = BlockCopy{BlockId{static_cast<std::uint32_t>(i)}, copies[i].dst, copies[i].tag};
    }
    std::shared_ptr<TransferCompletion> first =
        ctx_.engine->submit(TransferRequest{source, staging->view(), std::move(in)});
    if (!first->wait_until(deadline)) {
      for (std::size_t t : at) status[t] = g3_deadline_exceeded();
      detain(DetainedRead{first, {}, std::move(sources), std::make_unique<StagingArea>(*std::move(staging))});
      return;
    }
    const TransferResult& r1 = first->wait();
    settle(r1, at, status);
    const TransferResult r2 =
        ctx_.engine->submit(TransferRequest{staging->view(), ctx_.tiers->g1->view(), std::move(out)})->wait();
    for (std::size_t i = 0; i < at.size(); ++i) {
      if (status[at[i]].ok()) status[at[i]] = r2.block(i);
    }
  }

  // G4 blocks into their G1 targets: fetched and verified, then copied in (through staging for device G1).
  void fetch_g4(std::span<const SequenceHash> hashes, std::span<const std::size_t> at,
                std::span<G1MutableBlock> targets, std::span<BlockIdentity> identity, std::span<absl::Status> status) {
    G4Path::FetchResult fetched = g4_->fetch(hashes);
    const TierMemory& g1 = *ctx_.tiers->g1->memory;
    std::unique_ptr<StagingArea> staging;
    std::vector<BlockCopy> up;
    for (std::size_t i = 0; i < at.size(); ++i) {
      const std::size_t t = at[i];
      if (i >= fetched.blocks.size()) {
        status[t] = absl::NotFoundError("g4: the block is gone or did not arrive intact");
        continue;
      }
      identity[t] = fetched.blocks[i].identity;
      bool ok = false;
      if (g1.host_addressable()) {
        ok = g1.unpack(fetched.blocks[i].payload, targets[t].id().value());
      } else {
        if (!staging) {
          auto area = StagingArea::create(ctx_.tiers->g1->layout->model(), at.size());
          if (!area.ok()) {
            status[t] = area.status();
            continue;
          }
          staging = std::make_unique<StagingArea>(*std::move(area));
        }
        ok = staging->memory->unpack(fetched.blocks[i].payload, static_cast<std::uint32_t>(i));
        if (ok) up.push_back(BlockCopy{BlockId{static_cast<std::uint32_t>(i)}, targets[t].id(), hashes[i].value()});
      }
      if (!ok) status[t] = absl::DataLossError("g4: the value does not fit the model's block");
    }
    if (!up.empty()) {
      const TransferResult r =
          ctx_.engine->submit(TransferRequest{staging->view(), ctx_.tiers->g1->view(), up})->wait();
      for (std::size_t j = 0; j < up.size(); ++j) {
        const std::size_t t = at[up[j].src.value()];
        status[t] = r.block(j);
      }
    }
  }

  // A G3 read that missed its onboarding's deadline: what it still writes into or reads from is kept
  // until it ends, so that no slot is reused (or memory freed) under it.
  struct DetainedRead {
    std::shared_ptr<TransferCompletion> done;
    std::vector<G1MutableBlock> targets;
    std::vector<G3Block> sources;
    std::unique_ptr<StagingArea> staging;
  };

  void detain(DetainedRead d) {
    MutexLock lock(&detained_mu_);
    detained_.push_back(std::move(d));
  }

  // Lets go of detained reads that have ended (with `wait`, of all of them, once they end).
  void release_detained(bool wait) {
    std::vector<DetainedRead> ended;
    {
      MutexLock lock(&detained_mu_);
      for (auto it = detained_.begin(); it != detained_.end();) {
        if (wait || it->done->done()) {
          ended.push_back(std::move(*it));
          it = detained_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (DetainedRead& d : ended) (void)d.done->wait();
  }

  static constexpr std::size_t kHostLane = 0;       // onboardings from G1/G2 only
  static constexpr std::size_t kBelowHostLane = 1;  // onboardings that read G3 or fetch from G4

  offload::ChainContext ctx_;
  const std::unique_ptr<G4Path> g4_;
  const std::chrono::milliseconds g3_deadline_;  // 0: none
  std::vector<std::unique_ptr<TierLink>> links_;
  std::array<TierLink*, kNumCacheLevels> links_into_{};  // the link into each tier (null: none)
  std::array<JobLane, 2> onboard_lanes_{};

  mutable Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::array<std::deque<PendingOnboard>, 2> onboards_ ABSL_GUARDED_BY(mu_);

  Mutex detained_mu_;
  std::vector<DetainedRead> detained_ ABSL_GUARDED_BY(detained_mu_);

  mutable Mutex stats_mu_;
  std::array<std::uint64_t, kNumCacheLevels> onboarded_from_ ABSL_GUARDED_BY(stats_mu_){};
  std::uint64_t bytes_up_ ABSL_GUARDED_BY(stats_mu_) = 0;
  std::uint64_t onboard_truncated_ ABSL_GUARDED_BY(stats_mu_) = 0;
  std::uint64_t read_failures_ ABSL_GUARDED_BY(stats_mu_) = 0;
  std::uint64_t read_checksum_failures_ ABSL_GUARDED_BY(stats_mu_) = 0;
  std::uint64_t dropped_damaged_ ABSL_GUARDED_BY(stats_mu_) = 0;
  std::uint64_t deadline_misses_ ABSL_GUARDED_BY(stats_mu_) = 0;
};

OffloadManager::OffloadManager(TierStack* tiers, TransferEngine* engine, const OffloadConfig& config, Options options)
    : impl_(std::make_unique<Impl>(tiers, engine, config, std::move(options))) {}
OffloadManager::~OffloadManager() = default;
ReleaseObserver* OffloadManager::g1_release_observer() { return impl_.get(); }
bool OffloadManager::wants_g1_evictions() const { return impl_->wants_g1_evictions(); }
void OffloadManager::on_g1_evicted(std::span<const EvictedBlock> evicted) { impl_->on_g1_evicted(evicted); }
MatchResult OffloadManager::match(std::span<const SequenceHash> hashes) { return impl_->match(hashes); }
std::shared_ptr<OnboardOperation> OffloadManager::onboard(MatchResult match) {
  return impl_->onboard(std::move(match));
}
bool OffloadManager::has_g4() const { return impl_->has_g4(); }
void OffloadManager::flush() { impl_->flush(); }
void OffloadManager::shutdown(bool drain) { impl_->shutdown(drain); }
OffloadStats OffloadManager::stats() const { return impl_->stats(); }

}  // namespace kvbm
