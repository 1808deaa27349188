// OffloadManager: see include/kvbm/offload/offload_manager.h for the contract.
#include "kvbm/offload/offload_manager.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <queue>

#include "offload/frequency_sketch.h"

namespace kvbm {

// ---- OnboardOperation ----

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

double OnboardOperation::latency_seconds() const {
  MutexLock lock(&mu_);
  return latency_;
}

void OnboardOperation::finish(absl::StatusOr<std::vector<G1Block>> result, double latency) {
  {
    MutexLock lock(&mu_);
    result_ = std::move(result);
    latency_ = latency;
    done_ = true;
  }
  cv_.notify_all();
}

namespace {

using Clock = std::chrono::steady_clock;

// One queued offload: only the hash, so the source stays evictable while it waits.
struct OffloadEntry {
  SequenceHash hash;
  std::uint8_t priority = kDefaultRetentionPriority;
  std::uint64_t order = 0;  // arrival order; older first within a priority
};

// Max-heap order: higher priority first, then older.
struct EntryOrder {
  bool operator()(const OffloadEntry& a, const OffloadEntry& b) const {
    if (a.priority != b.priority) return a.priority < b.priority;
    return a.order > b.order;
  }
};

// A bounded priority queue of offloads.
class OffloadQueue {
 public:
  explicit OffloadQueue(std::size_t capacity) : capacity_(capacity) {}
  // False (nothing queued) when full.
  bool push(OffloadEntry entry) {
    if (heap_.size() >= capacity_) return false;
    heap_.push(entry);
    peak_ = std::max<std::uint64_t>(peak_, heap_.size());
    return true;
  }
  std::vector<OffloadEntry> pop(std::size_t max) {
    std::vector<OffloadEntry> out;
    while (!heap_.empty() && out.size() < max) {
      out.push_back(heap_.top());
      heap_.pop();
    }
    return out;
  }
  void clear() { heap_ = {}; }
  [[nodiscard]] bool empty() const { return heap_.empty(); }
  [[nodiscard]] std::size_t size() const { return heap_.size(); }
  [[nodiscard]] std::uint64_t peak() const { return peak_; }

 private:
  std::size_t capacity_;
  std::uint64_t peak_ = 0;
  std::priority_queue<OffloadEntry, std::vector<OffloadEntry>, EntryOrder> heap_;
};

enum class Pair : std::uint8_t { kG1ToG2 = 0, kG2ToG3 = 1 };

struct PendingOnboard {
  std::shared_ptr<OnboardOperation> op;
  MatchResult match;
  Clock::time_point started;
};

template <CacheLevel L>
std::vector<BlockCopy> copies_for(std::span<const ImmutableBlock<L>> src, std::span<const BlockId> dst) {
  std::vector<BlockCopy> out;
  out.reserve(src.size());
  for (std::size_t i = 0; i < src.size(); ++i)
    out.push_back(BlockCopy{src[i].id(), dst[i], src[i].sequence_hash().value()});
  return out;
}

// Fills a target block from its source's identity (and tokens, when both pools keep them).
template <CacheLevel S, CacheLevel D>
absl::Status apply_from(MutableBlock<D>& target, const ImmutableBlock<S>& source) {
  const BlockIdentity& id = source.identity();
  std::span<const std::uint32_t> tokens = source.tokens();
  if (!tokens.empty()) {
    absl::Status s = target.apply(TokenBlock{tokens, id.block_hash, id.sequence_hash, id.parent});
    if (s.ok()) return s;
  }
  return target.apply(id);
}

}  // namespace

class OffloadManager::Impl {
 public:
  Impl(TierStack* tiers, TransferEngine* engine, const OffloadConfig& config, OffloadObservers observers,
       std::unique_ptr<G4Path> g4)
      : tiers_(tiers),
        observers_(observers),
        g4_(std::move(g4)),
        engine_(engine),
        config_(config),
        bytes_per_block_(tiers->g1->layout->model().bytes_per_block()),
        batch_limit_(std::max<std::size_t>(
            1, std::min<std::uint64_t>(config.batch_blocks, config.max_bytes_in_flight / bytes_per_block_))),
        sketch_(tiers->g3 ? tiers->g3->layout->num_blocks() : 1024, config.frequency_decay_events),
        q12_(config.queue_capacity),
        q23_(config.queue_capacity) {
    if (tiers_->g2 && config_.g1_to_g2 == OffloadMode::kWriteThrough) {
      workers_.emplace_back([this] { run_down(Pair::kG1ToG2); });
    }
    if (tiers_->g3 && config_.g2_to_g3 == OffloadMode::kWriteThrough) {
      workers_.emplace_back([this] { run_down(Pair::kG2ToG3); });
    }
    workers_.emplace_back([this] { run_onboard(); });
  }

  ~Impl() { shutdown(true); }

  void on_g1_registered(std::span<const G1Block> blocks) {
    if (!tiers_->g2 || config_.g1_to_g2 != OffloadMode::kWriteThrough) return;
    enqueue(Pair::kG1ToG2, blocks);
  }

  void write_back_g1(std::span<const EvictedBlock> evicted) {
    if (!tiers_->g2 || config_.g1_to_g2 != OffloadMode::kWriteBack || evicted.empty()) return;
    const Clock::time_point started = Clock::now();
    write_back(*tiers_->g1, *tiers_->g2, evicted, /*frequency_filter=*/false);
    observe_since(observers_.g1_to_g2_batch_seconds, started);
  }

  void record_sightings(std::span<const SequenceHash> hashes) {
    if (!tiers_->g3 || config_.g3_min_frequency <= 1) return;
    std::vector<OffloadEntry> crossed;
    {
      MutexLock lock(&sketch_mu_);
      for (SequenceHash h : hashes) {
        if (sketch_.add(h.value()) == config_.g3_min_frequency) crossed.push_back(OffloadEntry{h});
      }
    }
    // A block that just became frequent enough goes to disk now (write-through), if G2 still holds it.
    if (!crossed.empty() && config_.g2_to_g3 == OffloadMode::kWriteThrough) push(Pair::kG2ToG3, crossed);
  }

  std::shared_ptr<OnboardOperation> onboard(MatchResult match) {
    auto op = std::make_shared<OnboardOperation>();
    const Clock::time_point started = Clock::now();
    if (match.g2.empty() && match.g3.empty() && match.g4.empty()) {
      op->finish(std::move(match.g1), 0.0);
      return op;
    }
    {
      MutexLock lock(&mu_);
      if (!stopping_) {
        onboards_.push_back(PendingOnboard{op, std::move(match), started});
        cv_.notify_all();
        return op;
      }
    }
    op->finish(absl::UnavailableError("onboard: the offload manager is shutting down"), 0.0);
    return op;
  }

  void flush() {
    MutexLock lock(&mu_);
    while (!(q12_.empty() && q23_.empty() && onboards_.empty() && busy_ == 0)) idle_cv_.wait(mu_);
    if (g4_) g4_->flush();  // G4 puts come from G2 registrations, all done by now
  }

  void shutdown(bool drain) {
    {
      MutexLock lock(&mu_);
      if (stopped_) return;
      stopping_ = true;
      if (!drain) {
        q12_.clear();
        q23_.clear();
      }
      cv_.notify_all();
    }
    for (std::thread& t : workers_) t.join();
    workers_.clear();
    std::deque<PendingOnboard> left;
    {
      MutexLock lock(&mu_);
      stopped_ = true;
      left.swap(onboards_);
    }
    for (PendingOnboard& p : left) p.op->finish(absl::CancelledError("onboard: cancelled by shutdown"), 0.0);
    if (g4_) g4_->shutdown(drain);
    idle_cv_.notify_all();
  }

  std::vector<SequenceHash> match_g4(std::span<const SequenceHash> hashes) {
    return g4_ ? g4_->match(hashes) : std::vector<SequenceHash>{};
  }
  bool has_g4() const { return g4_ != nullptr; }

  OffloadStats stats() const {
    OffloadStats s;
    {
      MutexLock lock(&stats_mu_);
      s = stats_;
    }
    MutexLock lock(&mu_);
    s.queue_peak_g1_g2 = q12_.peak();
    s.queue_peak_g2_g3 = q23_.peak();
    s.queue_depth_g1_g2 = q12_.size();
    s.queue_depth_g2_g3 = q23_.size();
    s.onboard_queue_depth = onboards_.size();
    if (g4_) s.g4 = g4_->stats();
    return s;
  }

 private:
  template <CacheLevel L>
  void enqueue(Pair pair, std::span<const ImmutableBlock<L>> blocks) {
    std::vector<OffloadEntry> entries;
    entries.reserve(blocks.size());
    for (const ImmutableBlock<L>& b : blocks) entries.push_back(OffloadEntry{b.sequence_hash(), b.priority()});
    push(pair, entries);
  }

  void push(Pair pair, std::span<OffloadEntry> entries) {
    std::uint64_t dropped = 0;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      OffloadQueue& q = pair == Pair::kG1ToG2 ? q12_ : q23_;
      for (OffloadEntry& e : entries) {
        e.order = ++order_;
        if (!q.push(e)) ++dropped;
      }
      cv_.notify_all();
    }
    if (dropped != 0) add_stat(&OffloadStats::dropped_queue_full, dropped);
  }

  void add_stat(std::uint64_t OffloadStats::*field, std::uint64_t n) {
    if (n == 0) return;
    MutexLock lock(&stats_mu_);
    stats_.*field += n;
  }

  bool frequent_enough(SequenceHash h) {
    if (config_.g3_min_frequency <= 1) return true;
    MutexLock lock(&sketch_mu_);
    return sketch_.estimate(h.value()) >= config_.g3_min_frequency;
  }

  // ---- offload workers ----

  void run_down(Pair pair) {
    for (;;) {
      std::vector<OffloadEntry> batch;
      {
        MutexLock lock(&mu_);
        OffloadQueue& q = pair == Pair::kG1ToG2 ? q12_ : q23_;
        while (q.empty() && !stopping_) cv_.wait(mu_);
        if (q.empty()) return;  // stopping, and nothing left to drain
        batch = q.pop(batch_limit_);
        ++busy_;
      }
      const Clock::time_point started = Clock::now();
      if (pair == Pair::kG1ToG2) {
        copy_down(*tiers_->g1, *tiers_->g2, batch, &OffloadStats::g1_to_g2);
        observe_since(observers_.g1_to_g2_batch_seconds, started);
      } else {
        copy_down(*tiers_->g2, *tiers_->g3, batch, &OffloadStats::g2_to_g3);
        observe_since(observers_.g2_to_g3_batch_seconds, started);
      }
      {
        MutexLock lock(&mu_);
        --busy_;
      }
      idle_cv_.notify_all();
    }
  }

  // Copies the entries' blocks from `src` to `dst` and registers them there.
  template <CacheLevel S, CacheLevel D>
  void copy_down(Tier<S>& src, Tier<D>& dst, std::span<const OffloadEntry> entries,
                 std::uint64_t OffloadStats::*counter) {
    std::vector<ImmutableBlock<S>> sources;
    sources.reserve(entries.size());
    std::uint64_t present = 0, evicted = 0, filtered = 0;
    for (const OffloadEntry& e : entries) {
      if (dst.pool->contains(e.hash)) {
        ++present;
        continue;
      }
      if (D == CacheLevel::kG3 && !frequent_enough(e.hash)) {
        ++filtered;
        continue;
      }
      std::optional<ImmutableBlock<S>> b = src.pool->pin_for_copy(e.hash);  // pins the source for the copy
      if (!b) {
        ++evicted;
        continue;
      }
      sources.push_back(*std::move(b));
    }
    add_stat(&OffloadStats::skipped_present, present);
    add_stat(&OffloadStats::skipped_evicted, evicted);
    add_stat(&OffloadStats::filtered_frequency, filtered);
    const std::size_t copied = transfer_and_register<S, D>(src, dst, sources, nullptr);
    add_stat(counter, copied);
    add_stat(&OffloadStats::bytes_down, copied * bytes_per_block_);
    src.pool->release(std::move(sources));
  }

  // Allocates target blocks for `sources` (as many as fit), copies, registers what arrived intact, and —
  // for G2 targets with write-through below — queues the new G2 blocks for G3. Returns blocks registered.
  // With `registered_out`, the registered target blocks are handed back instead of released.
  template <CacheLevel S, CacheLevel D>
  std::size_t transfer_and_register(Tier<S>& src, Tier<D>& dst, std::span<const ImmutableBlock<S>> sources,
                                    std::vector<ImmutableBlock<D>>* registered_out) {
    if (sources.empty()) return 0;
    auto targets = allocate_some(dst, sources.size());
    if (targets.size() < sources.size()) add_stat(&OffloadStats::no_space, sources.size() - targets.size());
    if (targets.empty()) return 0;
    sources = sources.first(targets.size());

    std::vector<BlockId> dst_ids;
    dst_ids.reserve(targets.size());
    for (const MutableBlock<D>& t : targets) dst_ids.push_back(t.id());
    if (dst.persist) dst.persist->invalidate(dst_ids);  // persistent G3: old records go before the data
    TransferRequest request{src.view(), dst.view(), copies_for<S>(sources, dst_ids)};
    const TransferResult result = engine_->submit(std::move(request))->wait();

    std::vector<MutableBlock<D>> arrived;
    arrived.reserve(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (!result.blocks.empty() && !result.blocks[i].ok()) {
        count_failure(result.blocks[i]);
        continue;
      }
      if (apply_from<S, D>(targets[i], sources[i]).ok()) {
        // Persistent G3: the record is the commit point, written once the data write has completed.
        if (dst.persist) dst.persist->commit(targets[i].id(), targets[i].identity(), *dst.checksums);
        arrived.push_back(std::move(targets[i]));
      }
    }
    if (result.blocks.empty() && !result.status.ok()) {
      add_stat(&OffloadStats::transfer_failures, targets.size());
      return 0;
    }
    auto registered = dst.pool->register_blocks(arrived);
    if (!registered.ok()) return 0;
    const std::size_t n = registered->size();
    if constexpr (D == CacheLevel::kG2) {
      if (g4_) g4_->on_g2_registered(*registered);  // write-through to G4
      if (tiers_->g3 && config_.g2_to_g3 == OffloadMode::kWriteThrough) {
        std::vector<OffloadEntry> next;
        std::uint64_t filtered = 0;
        for (const ImmutableBlock<D>& b : *registered) {
          if (frequent_enough(b.sequence_hash())) {
            next.push_back(OffloadEntry{b.sequence_hash(), b.priority()});
          } else {
            ++filtered;  // may still go to disk later, once sightings reach the threshold
          }
        }
        add_stat(&OffloadStats::filtered_frequency, filtered);
        push(Pair::kG2ToG3, next);
      }
    }
    if (registered_out != nullptr) {
      *registered_out = *std::move(registered);
    } else {
      dst.pool->release(*std::move(registered));
    }
    return n;
  }

  void count_failure(const absl::Status& s) {
    if (s.code() == absl::StatusCode::kDataLoss) {
      add_stat(&OffloadStats::checksum_failures, 1);
    } else {
      add_stat(&OffloadStats::transfer_failures, 1);
    }
  }

  // Up to `want` blocks of `tier`, fewer when fewer are free or evictable. Blocks that a write-back tier
  // evicts on the way are copied down first.
  template <CacheLevel D>
  std::vector<MutableBlock<D>> allocate_some(Tier<D>& tier, std::size_t want) {
    for (int attempt = 0; attempt < 3 && want > 0; ++attempt) {
      std::vector<EvictedBlock> evicted;
      const bool write_back_below = D == CacheLevel::kG2 && tiers_->g3 && config_.g2_to_g3 == OffloadMode::kWriteBack;
      auto blocks = tier.pool->allocate(want, write_back_below ? &evicted : nullptr);
      if (blocks.ok()) {
        if constexpr (D == CacheLevel::kG2) {
          if (!evicted.empty()) write_back(*tiers_->g2, *tiers_->g3, evicted, /*frequency_filter=*/true);
        }
        return *std::move(blocks);
      }
      const PoolStatus status = tier.pool->status();
      want = std::min<std::size_t>(want, std::size_t{status.free} + status.inactive);
    }
    return {};
  }

  // Write-back: `evicted` slots of `up` (owned now by an allocation in progress, bytes intact) are copied
  // into `down` and registered there before the allocation hands them on.
  template <CacheLevel U, CacheLevel W>
  void write_back(Tier<U>& up, Tier<W>& down, std::span<const EvictedBlock> evicted, bool frequency_filter) {
    std::vector<const EvictedBlock*> todo;
    std::uint64_t present = 0, filtered = 0;
    for (const EvictedBlock& e : evicted) {
      if (down.pool->contains(e.identity.sequence_hash)) {
        ++present;
      } else if (frequency_filter && !frequent_enough(e.identity.sequence_hash)) {
        ++filtered;
      } else {
        todo.push_back(&e);
      }
    }
    add_stat(&OffloadStats::skipped_present, present);
    add_stat(&OffloadStats::filtered_frequency, filtered);
    if (todo.empty()) return;
    auto targets = allocate_some(down, todo.size());
    if (targets.size() < todo.size()) add_stat(&OffloadStats::no_space, todo.size() - targets.size());
    if (targets.empty()) return;
    std::vector<BlockCopy> copies;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      copies.push_back(BlockCopy{todo[i]->id, targets[i].id(), todo[i]->identity.sequence_hash.value()});
      if (down.persist) down.persist->invalidate(std::span<const BlockId>(&copies.back().dst, 1));
    }
    const TransferResult result = engine_->run(TransferRequest{up.view(), down.view(), std::move(copies)});
    std::vector<MutableBlock<W>> arrived;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (!result.blocks.empty() && !result.blocks[i].ok()) {
        count_failure(result.blocks[i]);
        continue;
      }
      if (result.blocks.empty() && !result.status.ok()) continue;
      targets[i].set_priority(todo[i]->priority);
      if (targets[i].apply(todo[i]->identity).ok()) {
        if (down.persist) down.persist->commit(targets[i].id(), targets[i].identity(), *down.checksums);
        arrived.push_back(std::move(targets[i]));
      }
    }
    auto registered = down.pool->register_blocks(arrived);
    if (!registered.ok()) return;
    add_stat(&OffloadStats::write_back_blocks, registered->size());
    if constexpr (W == CacheLevel::kG2) {
      if (g4_) g4_->on_g2_registered(*registered);  // write-through to G4
    }
    add_stat(W == CacheLevel::kG2 ? &OffloadStats::g1_to_g2 : &OffloadStats::g2_to_g3, registered->size());
    add_stat(&OffloadStats::bytes_down, registered->size() * bytes_per_block_);
    down.pool->release(*std::move(registered));
  }

  // ---- onboarding ----

  void run_onboard() {
    for (;;) {
      PendingOnboard job;
      {
        MutexLock lock(&mu_);
        while (onboards_.empty() && !stopping_) cv_.wait(mu_);
        if (onboards_.empty()) return;
        job = std::move(onboards_.front());
        onboards_.pop_front();
        ++busy_;
      }
      auto result = onboard_now(job.match);
      const double latency = std::chrono::duration<double>(Clock::now() - job.started).count();
      job.match = MatchResult{};  // release lower-tier pins before waking the waiter
      if (observers_.onboard_seconds != nullptr) observers_.onboard_seconds->observe(latency);
      job.op->finish(std::move(result), latency);
      {
        MutexLock lock(&mu_);
        --busy_;
      }
      idle_cv_.notify_all();
    }
  }

  // G1–G3 first; then, when that prefix came through whole, G4: fetched into G2 (verified, registered
  // there) and onboarded from G2 like any G2 block. A G4 block that is gone or damaged ends the prefix.
  absl::StatusOr<std::vector<G1Block>> onboard_now(MatchResult& match) {
    std::vector<SequenceHash> g4 = std::move(match.g4);
    const std::size_t before_g4 = match.size();
    auto out = onboard_tiers(match);
    if (!out.ok() || g4.empty() || !g4_ || out->size() < before_g4) return out;
    MatchResult rest;
    rest.g2 = g4_->fetch_into_g2(g4, [this](std::size_t n) { return allocate_some(*tiers_->g2, n); });
    if (rest.g2.size() < g4.size()) add_stat(&OffloadStats::onboard_truncated, 1);
    if (rest.g2.empty()) return out;
    const std::size_t fetched = rest.g2.size();
    auto more = onboard_tiers(rest);
    if (!more.ok()) return out;
    // Also counted in g2_to_g1 by onboard_tiers: they came up through G2.
    add_stat(&OffloadStats::g4_to_g1, std::min(fetched, more->size()));
    for (G1Block& b : *more) out->push_back(std::move(b));
    return out;
  }

  absl::StatusOr<std::vector<G1Block>> onboard_tiers(MatchResult& match) {
    Tier<CacheLevel::kG1>& g1 = *tiers_->g1;
    std::vector<G1Block> out = std::move(match.g1);
    const std::size_t want = match.g2.size() + match.g3.size();
    std::vector<EvictedBlock> evicted;
    const bool write_back_g1 = tiers_->g2 && config_.g1_to_g2 == OffloadMode::kWriteBack;
    std::vector<G1MutableBlock> targets;
    for (std::size_t n = want; n > 0;) {
      auto blocks = g1.pool->allocate(n, write_back_g1 ? &evicted : nullptr);
      if (blocks.ok()) {
        targets = *std::move(blocks);
        break;
      }
      const PoolStatus status = g1.pool->status();
      const std::size_t fit = std::min<std::size_t>(n - 1, std::size_t{status.free} + status.inactive);
      if (fit == n) break;
      n = fit;
    }
    if (!evicted.empty()) write_back(g1, *tiers_->g2, evicted, /*frequency_filter=*/false);
    if (targets.size() < want) add_stat(&OffloadStats::onboard_truncated, 1);
    if (targets.empty()) return out;

    const std::size_t n2 = std::min(match.g2.size(), targets.size());
    const std::size_t n3 = targets.size() - n2;
    std::vector<BlockId> g1_ids;
    for (const G1MutableBlock& t : targets) g1_ids.push_back(t.id());

    // G2 part: straight up.
    std::shared_ptr<TransferCompletion> from_g2;
    if (n2 > 0) {
      from_g2 = engine_->submit(
          TransferRequest{tiers_->g2->view(), g1.view(),
                          copies_for<CacheLevel::kG2>(std::span(match.g2).first(n2), std::span(g1_ids).first(n2))});
    }
    // G3 part: directly, or staged through G2 (where it stays cached too).
    std::vector<bool> g3_ok(n3, false);
    std::vector<G2Block> staged;
    if (n3 > 0) {
      std::span<const G3Block> g3 = std::span(match.g3).first(n3);
      if (config_.onboard_direct || !tiers_->g2) {
        const TransferResult r =
            engine_
                ->submit(TransferRequest{tiers_->g3->view(), g1.view(),
                                         copies_for<CacheLevel::kG3>(g3, std::span(g1_ids).subspan(n2))})
                ->wait();
        for (std::size_t i = 0; i < n3; ++i) {
          g3_ok[i] = r.blocks.empty() ? r.status.ok() : r.blocks[i].ok();
          if (!g3_ok[i]) count_failure(r.blocks.empty() ? r.status : r.blocks[i]);
        }
        add_stat(&OffloadStats::g3_to_g1, static_cast<std::uint64_t>(std::count(g3_ok.begin(), g3_ok.end(), true)));
      } else {
        onboard_via_g2(g3, std::span(g1_ids).subspan(n2), g3_ok, staged);
      }
    }
    std::vector<bool> g2_ok(n2, true);
    if (from_g2) {
      const TransferResult& r = from_g2->wait();
      for (std::size_t i = 0; i < n2; ++i) {
        g2_ok[i] = r.blocks.empty() ? r.status.ok() : r.blocks[i].ok();
        if (!g2_ok[i]) count_failure(r.blocks.empty() ? r.status : r.blocks[i]);
      }
      add_stat(&OffloadStats::g2_to_g1, static_cast<std::uint64_t>(std::count(g2_ok.begin(), g2_ok.end(), true)));
    }

    // The prefix ends at the first block that did not arrive intact; later ones are dropped.
    std::vector<G1MutableBlock> arrived;
    bool cut = false;
    for (std::size_t i = 0; i < targets.size() && !cut; ++i) {
      const bool ok = i < n2 ? g2_ok[i] : g3_ok[i - n2];
      if (!ok) {
        cut = true;
        break;
      }
      absl::Status applied = i < n2 ? apply_from<CacheLevel::kG2, CacheLevel::kG1>(targets[i], match.g2[i])
                                    : apply_from<CacheLevel::kG3, CacheLevel::kG1>(targets[i], match.g3[i - n2]);
      if (!applied.ok()) {
        cut = true;
        break;
      }
      arrived.push_back(std::move(targets[i]));
    }
    if (cut) add_stat(&OffloadStats::onboard_truncated, 1);
    add_stat(&OffloadStats::bytes_up, arrived.size() * bytes_per_block_);
    auto registered = g1.pool->register_blocks(arrived);
    if (!registered.ok()) return registered.status();
    // Blocks that came straight from disk are not in G2 yet: write-through puts them there.
    if (n3 > 0 && (config_.onboard_direct || !tiers_->g2) && registered->size() > n2) {
      on_g1_registered(std::span<const G1Block>(*registered).subspan(n2));
    }
    for (G1Block& b : *registered) out.push_back(std::move(b));
    if (!staged.empty()) tiers_->g2->pool->release(std::move(staged));
    return out;
  }

  // G3 → G2 (registered there after verification) → G1. Marks which of `g3` reached G1 intact.
  void onboard_via_g2(std::span<const G3Block> g3, std::span<const BlockId> g1_ids, std::vector<bool>& ok,
                      std::vector<G2Block>& staged) {
    Tier<CacheLevel::kG2>& g2 = *tiers_->g2;
    // The prefix must stay contiguous: stage blocks in order and stop at the first that fails.
    std::size_t n = transfer_and_register<CacheLevel::kG3, CacheLevel::kG2>(*tiers_->g3, g2, g3, &staged);
    // Registration may de-duplicate against blocks already in G2; either way staged[i] holds g3[i]'s bytes.
    n = std::min(n, staged.size());
    std::size_t contiguous = 0;
    while (contiguous < n && staged[contiguous].sequence_hash() == g3[contiguous].sequence_hash()) ++contiguous;
    add_stat(&OffloadStats::g3_to_g2, contiguous);
    if (contiguous == 0) return;
    const TransferResult r =
        engine_
            ->submit(TransferRequest{g2.view(), tiers_->g1->view(),
                                     copies_for<CacheLevel::kG2>(std::span<const G2Block>(staged).first(contiguous),
                                                                 g1_ids.first(contiguous))})
            ->wait();
    std::uint64_t up = 0;
    for (std::size_t i = 0; i < contiguous; ++i) {
      ok[i] = r.blocks.empty() ? r.status.ok() : r.blocks[i].ok();
      if (!ok[i]) {
        count_failure(r.blocks.empty() ? r.status : r.blocks[i]);
        break;
      }
      ++up;
    }
    add_stat(&OffloadStats::g3_to_g1, up);
  }

  static void observe_since(metrics::Histogram* h, Clock::time_point started) {
    if (h != nullptr) h->observe(std::chrono::duration<double>(Clock::now() - started).count());
  }

  TierStack* const tiers_;
  const OffloadObservers observers_;
  const std::unique_ptr<G4Path> g4_;  // null without G4; its worker is joined by shutdown()
  TransferEngine* const engine_;
  const OffloadConfig config_;
  const std::uint64_t bytes_per_block_;
  const std::size_t batch_limit_;

  mutable Mutex sketch_mu_;
  FrequencySketch sketch_ ABSL_GUARDED_BY(sketch_mu_);

  mutable Mutex mu_;
  std::condition_variable_any cv_;       // work arrived or stopping
  std::condition_variable_any idle_cv_;  // a worker finished something (flush waits on it)
  OffloadQueue q12_ ABSL_GUARDED_BY(mu_);
  OffloadQueue q23_ ABSL_GUARDED_BY(mu_);
  std::deque<PendingOnboard> onboards_ ABSL_GUARDED_BY(mu_);
  std::uint64_t order_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;

  mutable Mutex stats_mu_;
  OffloadStats stats_ ABSL_GUARDED_BY(stats_mu_);

  std::vector<std::thread> workers_;  // started in the constructor, joined by shutdown()
};

OffloadManager::OffloadManager(TierStack* tiers, TransferEngine* engine, const OffloadConfig& config,
                               OffloadObservers observers, std::unique_ptr<G4Path> g4)
    : impl_(std::make_unique<Impl>(tiers, engine, config, observers, std::move(g4))) {}
OffloadManager::~OffloadManager() = default;
void OffloadManager::on_g1_registered(std::span<const G1Block> blocks) { impl_->on_g1_registered(blocks); }
void OffloadManager::write_back_g1(std::span<const EvictedBlock> evicted) { impl_->write_back_g1(evicted); }
void OffloadManager::record_sightings(std::span<const SequenceHash> hashes) { impl_->record_sightings(hashes); }
std::shared_ptr<OnboardOperation> OffloadManager::onboard(MatchResult match) {
  return impl_->onboard(std::move(match));
}
void OffloadManager::flush() { impl_->flush(); }
void OffloadManager::shutdown(bool drain) { impl_->shutdown(drain); }
OffloadStats OffloadManager::stats() const { return impl_->stats(); }
std::vector<SequenceHash> OffloadManager::match_g4(std::span<const SequenceHash> hashes) {
  return impl_->match_g4(hashes);
}
bool OffloadManager::has_g4() const { return impl_->has_g4(); }

}  // namespace kvbm
