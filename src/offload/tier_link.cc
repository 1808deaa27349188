// TierLink and PoolLink: see tier_link.h.
#include "offload/tier_link.h"

#include <absl/container/inlined_vector.h>
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <chrono>
#include <utility>

namespace kvbm::offload {
namespace {

using Clock = std::chrono::steady_clock;

// The start of a timing that `h` records: the clock is read only when there is a histogram (a clock read is
// a good part of an identity-only batch's cost on a VM).
Clock::time_point start_for(const metrics::Histogram* h) { return h != nullptr ? Clock::now() : Clock::time_point{}; }

void observe_since(metrics::Histogram* h, Clock::time_point started) {
  if (h != nullptr) h->observe(std::chrono::duration<double>(Clock::now() - started).count());
}

}  // namespace

// ---- ChainContext ----

ChainContext::ChainContext(TierStack* tiers_in, TransferEngine* engine_in, const OffloadConfig& config_in,
                           JobScheduler* scheduler_in, OffloadObservers observers_in)
    : tiers(tiers_in),
      engine(engine_in),
      config(config_in),
      scheduler(scheduler_in),
      observers(observers_in),
      bytes_per_block(std::max<std::uint64_t>(1, tiers_in->g1->layout->model().bytes_per_block())),
      batch_limit(std::max<std::size_t>(
          1, std::min<std::uint64_t>(config_in.batch_blocks, config_in.max_bytes_in_flight / bytes_per_block))),
      queued(!scheduler_in->runs_inline()),
      sketch(tiers_in->g3 ? tiers_in->g3->pool->num_blocks() : 1024, config_in.frequency_decay_events) {}

void ChainContext::frequent_enough_each(std::span<const LinkOp> ops, std::span<std::uint8_t> out) {
  if (!filter_on()) {
    std::fill(out.begin(), out.end(), std::uint8_t{1});
    return;
  }
  MutexLock lock(&sketch_mu);
  for (std::size_t i = 0; i < ops.size(); ++i)
    out[i] = sketch.estimate(ops[i].hash().value()) >= config.g3_min_frequency ? 1 : 0;
}

void ChainContext::sight_each(std::span<const ReleasedBlock> blocks, std::span<std::uint8_t> crossed) {
  MutexLock lock(&sketch_mu);
  for (std::size_t i = 0; i < blocks.size(); ++i)
    crossed[i] = sketch.add(blocks[i].identity.sequence_hash.value()) == config.g3_min_frequency ? 1 : 0;
}

void ChainContext::post(JobLane lane, JobScheduler::Job job) {
  {
    MutexLock lock(&gate->mu);
    ++gate->queued;
  }
  scheduler->post(lane, [g = gate, job = std::move(job)]() mutable {
    {
      MutexLock lock(&g->mu);
      --g->queued;
      if (!g->open) {
        g->cv.notify_all();
        return;
      }
      ++g->running;
    }
    std::move(job)();
    {
      MutexLock lock(&g->mu);
      --g->running;
    }
    g->cv.notify_all();
  });
}

void ChainContext::wait_idle() {
  MutexLock lock(&gate->mu);
  while (gate->queued + gate->running != 0) gate->cv.wait(gate->mu);
}

void ChainContext::close() {
  MutexLock lock(&gate->mu);
  gate->open = false;
  while (gate->running != 0) gate->cv.wait(gate->mu);
}

// ---- TierLink ----

TierLink::TierLink(ChainContext& ctx, CacheLevel upper, CacheLevel lower, OffloadMode mode, bool filtered)
    : ctx_(ctx), upper_(upper), lower_(lower), mode_(mode), filtered_(filtered) {
  if (ctx_.queued) {
    lane_ = ctx_.scheduler->add_lane(
        absl::StrCat("kvbm ", std::string(cache_level_name(upper)), "->", std::string(cache_level_name(lower))));
  }
}

bool TierLink::needs_source(const LinkOp& op, CacheLevel lower) {
  return op.kind != OpKind::kOnboarded || op.origin != lower;  // a touch alone reads nothing
}

void TierLink::process_now(std::span<const LinkOp> ops) {
  {
    MutexLock lock(&mu_);
    if (stopping_) return;
  }
  process(ops, {});
}

void TierLink::push(std::vector<LinkOp> ops) {
  if (ops.empty()) return;
  if (!ctx_.queued) {
    process_now(ops);
    return;
  }
  const bool drop = ctx_.config.backlog == OffloadBacklog::kDrop;
  std::size_t i = 0;
  while (i < ops.size()) {
    std::vector<LinkOp> mine;  // a full queue (backlog = wait): the producer copies the oldest itself
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      while (i < ops.size()) {
        if (queue_.size() < ctx_.config.queue_capacity) {
          enqueue_locked(std::move(ops[i++]));
        } else if (drop) {
          add(&LinkStats::dropped_queue_full);
          ++i;
        } else {
          mine = take_batch_locked();
          if (!mine.empty()) {
            ++busy_;
            break;
          }
        }
      }
      if (!scheduled_ && !queue_.empty()) {
        scheduled_ = true;
        ctx_.post(lane_, [this] { job(); });
      }
    }
    if (!mine.empty()) {
      add(&LinkStats::producer_runs, mine.size());
      run_batch(std::move(mine));
    }
  }
}

void TierLink::enqueue_locked(LinkOp op) {
  op.order = ++order_;
  if (needs_source(op, lower_)) {
    Pending& p = pending_[op.hash().value()];
    ++p.queued;
    if (!p.op) p.op = op;
  }
  queue_.push(std::move(op));
  queue_peak_ = std::max<std::uint64_t>(queue_peak_, queue_.size());
}

std::vector<LinkOp> TierLink::take_batch_locked() {
  std::vector<LinkOp> batch;
  while (!queue_.empty() && batch.size() < ctx_.batch_limit) {
    LinkOp op = queue_.top();
    queue_.pop();
    if (needs_source(op, lower_)) {
      auto it = pending_.find(op.hash().value());
      Pending& p = it->second;
      --p.queued;
      if (p.skip > 0) {  // an eviction copied it already
        --p.skip;
        if (p.queued + p.taken == 0) pending_.erase(it);
        continue;
      }
      ++p.taken;
    }
    batch.push_back(std::move(op));
  }
  return batch;
}

void TierLink::job() {
  std::vector<LinkOp> batch;
  {
    MutexLock lock(&mu_);
    batch = take_batch_locked();
    if (batch.empty()) {
      scheduled_ = false;
      return;
    }
    ++busy_;
  }
  run_batch(std::move(batch));
  MutexLock lock(&mu_);
  if (queue_.empty()) {
    scheduled_ = false;
  } else {
    ctx_.post(lane_, [this] { job(); });  // one batch per job: other lanes' jobs interleave
  }
}

void TierLink::run_batch(std::vector<LinkOp> batch) {
  process(batch, {});
  done_taking(batch);
  {
    MutexLock lock(&mu_);
    --busy_;
  }
}

bool TierLink::lost_source(SequenceHash hash) {
  if (!ctx_.queued) return true;
  MutexLock lock(&mu_);
  auto it = pending_.find(hash.value());
  if (it == pending_.end() || it->second.covered == 0) return true;
  --it->second.covered;  // its source's eviction made the copy
  return false;
}

void TierLink::done_taking(std::span<const LinkOp> batch) {
  MutexLock lock(&mu_);
  for (const LinkOp& op : batch) {
    if (!needs_source(op, lower_)) continue;
    auto it = pending_.find(op.hash().value());
    if (it == pending_.end()) continue;
    Pending& p = it->second;
    if (p.taken > 0) --p.taken;
    p.covered = std::min(p.covered, p.taken);
    if (p.queued + p.taken == 0) pending_.erase(it);
  }
}

void TierLink::on_upper_evicted(std::span<const EvictedBlock> evicted) {
  if (evicted.empty()) return;
  std::vector<LinkOp> now;
  std::vector<BlockId> slots;
  std::uint64_t dropped = 0, performed = 0;
  if (ctx_.queued) {
    MutexLock lock(&mu_);
    for (const EvictedBlock& e : evicted) {
      auto it = pending_.find(e.identity.sequence_hash.value());
      if (it == pending_.end()) continue;
      Pending& p = it->second;
      const std::uint32_t open = (p.queued - p.skip) + (p.taken - p.covered);
      if (open == 0) continue;
      p.skip = p.queued;
      p.covered = p.taken;
      if (p.op->kind == OpKind::kWrite && mode_ != OffloadMode::kWriteThrough) continue;  // it writes nothing
      if (ctx_.config.backlog == OffloadBacklog::kDrop) {
        dropped += open;
        continue;
      }
      now.push_back(*p.op);
      slots.push_back(e.id);
      ++performed;
    }
  }
  if (mode_ == OffloadMode::kWriteBack) {  // (a queued op of the same block, performed above, wrote nothing)
    for (const EvictedBlock& e : evicted) {
      now.push_back(LinkOp{e.identity, e.priority, OpKind::kEvicted, upper_, 0});
      slots.push_back(e.id);
    }
  }
  add(&LinkStats::dropped_evicted, dropped);
  add(&LinkStats::at_eviction, performed);
  if (!now.empty()) process(now, slots);
}

void TierLink::stop(bool drain) {
  MutexLock lock(&mu_);
  stopping_ = true;
  if (drain) return;
  add(&LinkStats::dropped_queue_full, queue_.size());
  queue_ = {};
  pending_.clear();
}

bool TierLink::idle() const {
  MutexLock lock(&mu_);
  return queue_.empty() && busy_ == 0 && !scheduled_;
}

LinkStats TierLink::stats() const {
  LinkStats s;
  {
    MutexLock lock(&stats_mu_);
    s = stats_;
  }
  MutexLock lock(&mu_);
  s.queue_depth = queue_.size();
  s.queue_peak = queue_peak_;
  return s;
}

void TierLink::add(std::uint64_t LinkStats::*field, std::uint64_t n) {
  if (n == 0) return;
  MutexLock lock(&stats_mu_);
  stats_.*field += n;
}

void TierLink::classify_each(std::span<const LinkOp> ops, std::span<Action> actions) {
  absl::InlinedVector<std::uint8_t, 64> frequent(ops.size(), 1);
  if (filtered_) ctx_.frequent_enough_each(ops, frequent);
  std::uint64_t filtered = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    actions[i] = classify(ops[i], frequent[i] != 0);
    if (actions[i] == Action::kFiltered) ++filtered;
  }
  add(&LinkStats::filtered, filtered);
}

TierLink::Action TierLink::classify(const LinkOp& op, bool frequent) const {
  const auto admitted = [&] { return !filtered_ || frequent ? Action::kInsert : Action::kFiltered; };
  switch (op.kind) {
    case OpKind::kWrite:
      return mode_ == OffloadMode::kWriteThrough ? admitted() : Action::kNothing;
    case OpKind::kEvicted:
      return admitted();
    case OpKind::kOnboarded:
      if (op.origin == lower_) return Action::kTouch;
      for (const TierLink* c : children_) {
        if (c->reaches(op.origin)) return Action::kStage;
      }
      return Action::kNothing;
    case OpKind::kPromote:
      if (!filtered_) return children_.empty() ? Action::kNothing : Action::kPassOn;
      return mode_ == OffloadMode::kWriteThrough ? Action::kInsertIfAbsent : Action::kNothing;
  }
  return Action::kNothing;
}

bool TierLink::reaches(CacheLevel level) const {
  if (lower_ == level) return true;
  return std::any_of(children_.begin(), children_.end(), [&](const TierLink* c) { return c->reaches(level); });
}

void TierLink::pass_on(Outbox& out, const LinkOp& op, Action action, bool inserted) const {
  switch (action) {
    case Action::kInsert:
    case Action::kInsertIfAbsent:
      if (!inserted) return;
      for (std::vector<LinkOp>& to : out) to.push_back(LinkOp{op.identity, op.priority, OpKind::kWrite, lower_, 0});
      return;
    case Action::kStage:
      for (std::size_t c = 0; c < children_.size(); ++c) {
        if (children_[c]->reaches(op.origin)) out[c].push_back(op);
      }
      return;
    case Action::kPassOn:
      for (std::vector<LinkOp>& to : out) to.push_back(op);
      return;
    default:
      return;
  }
}

void TierLink::send(Outbox& out) {
  for (std::size_t c = 0; c < children_.size(); ++c) {
    if (out[c].empty()) continue;
    if (!ctx_.queued) {  // inline: the child processes them now; the list keeps its memory for the next batch
      children_[c]->process_now(out[c]);
      out[c].clear();
      continue;
    }
    std::vector<LinkOp> ops;
    ops.swap(out[c]);
    children_[c]->push(std::move(ops));
  }
}

void TierLink::finish_batch(Outbox& out, std::span<const LinkOp> ops, std::span<const Action> actions,
                            std::span<const bool> inserted, bool bytes) {
  std::uint64_t written = 0, staged = 0, write_back = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (inserted[i]) {
      if (actions[i] == Action::kStage) {
        ++staged;
      } else {
        ++written;
        if (ops[i].kind == OpKind::kEvicted) ++write_back;
      }
    }
    pass_on(out, ops[i], actions[i], inserted[i]);
  }
  MutexLock lock(&stats_mu_);  // one lock for the batch's counters
  stats_.written += written;
  stats_.staged += staged;
  stats_.write_back += write_back;
  if (bytes) stats_.bytes += (written + staged) * ctx_.bytes_per_block;
}

void TierLink::tell_children_evicted(std::span<const EvictedBlock> evicted) {
  for (TierLink* c : children_) c->on_upper_evicted(evicted);
}

// ---- PoolLink ----

template <CacheLevel U, CacheLevel D>
void PoolLink<U, D>::process(std::span<const LinkOp> ops, std::span<const BlockId> sources) {
  metrics::Histogram* const batch_seconds = D == CacheLevel::kG2   ? ctx_.observers.g1_to_g2_batch_seconds
                                            : D == CacheLevel::kG3 ? ctx_.observers.g2_to_g3_batch_seconds
                                                                   : nullptr;
  const Clock::time_point started = start_for(batch_seconds);
  Outbox out = make_outbox();
  absl::InlinedVector<Action, 64> actions(ops.size());
  classify_each(ops, actions);
  for (std::vector<LinkOp>& to : out) to.reserve(ops.size());
  absl::InlinedVector<SequenceHash, 64> hashes;
  for (std::size_t i = 0; i < ops.size();) {
    const Action a = actions[i];
    if (a == Action::kTouch) {
      hashes.clear();
      for (; i < ops.size() && actions[i] == Action::kTouch; ++i) hashes.push_back(ops[i].hash());
      add(&LinkStats::touched, down_.pool->touch(hashes));
    } else if (a == Action::kInsert || a == Action::kStage || a == Action::kInsertIfAbsent) {
      std::size_t end = i;
      while (end < ops.size() && (actions[end] == Action::kInsert || actions[end] == Action::kStage ||
                                  actions[end] == Action::kInsertIfAbsent)) {
        ++end;
      }
      insert_run(out, ops.subspan(i, end - i), std::span<const Action>(actions).subspan(i, end - i),
                 sources.empty() ? sources : sources.subspan(i, end - i));
      i = end;
    } else {
      pass_on(out, ops[i], a, false);
      ++i;
    }
  }
  send(out);
  observe_since(batch_seconds, started);
}

template <CacheLevel U, CacheLevel D>
void PoolLink<U, D>::insert_run(Outbox& out, std::span<const LinkOp> ops, std::span<const Action> actions,
                                std::span<const BlockId> sources) {
  absl::InlinedVector<SequenceHash, 64> hashes(ops.size());
  for (std::size_t i = 0; i < ops.size(); ++i) hashes[i] = ops[i].hash();
  // present[i] is D's registry as of now for i < known; a batch changes D, so what lies past it is looked up
  // again, but only as far as the next batch can read (batch_limit blocks), not the whole rest of the run:
  // looking the whole rest up after every batch was quadratic in the run's length.
  absl::InlinedVector<std::uint8_t, 64> present(ops.size());
  std::size_t known = 0;
  const std::size_t window = ctx_.batch_limit;
  for (std::size_t k = 0; k < ops.size();) {
    if (k >= known) {
      known = std::min(ops.size(), k + window);
      down_.pool->contains_each(std::span<const SequenceHash>(hashes).subspan(k, known - k),
                                std::span<std::uint8_t>(present).subspan(k, known - k));
    }
    if (present[k] != 0) {  // inserting a block D holds only touches it
      if (actions[k] != Action::kInsertIfAbsent) {
        (void)down_.pool->touch(std::span<const SequenceHash>(&hashes[k], 1));
        add(&LinkStats::present);
      }
      pass_on(out, ops[k], actions[k], false);
      ++k;
      continue;
    }
    const PoolStatus status = down_.pool->status();
    const std::size_t room = std::size_t{status.free} + status.inactive;
    if (room == 0) {
      add(&LinkStats::no_space);
      pass_on(out, ops[k], actions[k], false);
      ++k;
      continue;
    }
    // A batch: the next blocks that are absent and distinct, no more than D can take without evicting one
    // of them — exactly what inserting them one by one would do.
    const std::size_t limit = std::min(room, ctx_.batch_limit);
    if (const std::size_t need = std::min(ops.size(), k + limit); known < need) {
      down_.pool->contains_each(std::span<const SequenceHash>(hashes).subspan(known, need - known),
                                std::span<std::uint8_t>(present).subspan(known, need - known));
      known = need;
    }
    std::size_t end = k + 1;
    while (end < ops.size() && end - k < limit && present[end] == 0 &&
           std::find(hashes.begin() + static_cast<std::ptrdiff_t>(k), hashes.begin() + static_cast<std::ptrdiff_t>(end),
                     hashes[end]) == hashes.begin() + static_cast<std::ptrdiff_t>(end)) {
      ++end;
    }
    write_batch(out, ops.subspan(k, end - k), actions.subspan(k, end - k),
                sources.empty() ? sources : sources.subspan(k, end - k));
    send(out);
    k = end;
    known = k;  // the batch may have evicted later blocks of the run, or taken a later duplicate: look again
  }
}

template <CacheLevel U, CacheLevel D>
void PoolLink<U, D>::write_batch(Outbox& out, std::span<const LinkOp> ops, std::span<const Action> actions,
                                 std::span<const BlockId> sources_in) {
  const bool bytes = down_.has_bytes();
  // Which ops go ahead: all, unless a source is no longer in U. A promotion then finds nothing to write (the
  // block left U); anything else was either copied by the eviction that took it or is lost (counted).
  absl::InlinedVector<std::uint32_t, 64> go;
  absl::InlinedVector<BlockId, 64> sources;
  std::vector<ImmutableBlock<U>> pinned;
  const auto gone = [&](std::size_t i) {
    if (lost_source(ops[i].hash()) && actions[i] != Action::kInsertIfAbsent) add(&LinkStats::dropped_evicted);
  };
  if (!sources_in.empty()) {
    for (std::size_t i = 0; i < ops.size(); ++i) {
      go.push_back(static_cast<std::uint32_t>(i));
      sources.push_back(sources_in[i]);
    }
  } else if (bytes) {  // the blocks registered in U, pinned while they are read
    absl::InlinedVector<SequenceHash, 64> hashes;
    for (const LinkOp& op : ops) hashes.push_back(op.hash());
    std::vector<ImmutableBlock<U>> found = up_.pool->pin_for_copy(hashes);
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (!found[i].valid()) {
        gone(i);
        continue;
      }
      go.push_back(static_cast<std::uint32_t>(i));
      sources.push_back(found[i].id());
      pinned.push_back(std::move(found[i]));
    }
  } else {
    // Identities only: no bytes to protect. With an inline scheduler a source is always still in U (it
    // was released or inserted there just before), except a promotion's, which is looked up. Sources are
    // pinned all the same where U's policy would notice the pin, so that both modes decide alike.
    const bool pin = !up_.pool->pins_keep_state();
    std::vector<ImmutableBlock<U>> found;
    if (pin) {
      absl::InlinedVector<SequenceHash, 64> hashes;
      for (const LinkOp& op : ops) hashes.push_back(op.hash());
      found = up_.pool->pin_for_copy(hashes);
    }
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const bool present =
          pin ? found[i].valid()
              : !(ctx_.queued || actions[i] == Action::kInsertIfAbsent) || up_.pool->contains(ops[i].hash());
      if (!present) {
        gone(i);
        continue;
      }
      go.push_back(static_cast<std::uint32_t>(i));
      if (pin) pinned.push_back(std::move(found[i]));
    }
  }

  std::vector<EvictedBlock> evicted;
  const bool report =
      std::any_of(children().begin(), children().end(), [](const TierLink* c) { return c->wants_evictions(); });
  if (!bytes) {  // identities only: allocation, registration and release in one call, the same steps
    admit_batch(out, ops, actions, go, report);
    if (!pinned.empty()) up_.pool->release(std::move(pinned));
    return;
  }

  // Targets in D, evicting as allocation does; what D evicts goes down first where a link out of D needs it.
  std::vector<MutableBlock<D>> targets = down_.pool->allocate_up_to(go.size(), report ? &evicted : nullptr);
  if (!evicted.empty()) tell_children_evicted(evicted);
  const std::size_t n = targets.size();
  if (n < go.size()) add(&LinkStats::no_space, go.size() - n);

  TransferResult copied;
  if (bytes && n > 0) {
    absl::InlinedVector<BlockId, 64> ids;
    std::vector<BlockCopy> copies(n);
    for (std::size_t j = 0; j < n; ++j) {
      ids.push_back(targets[j].id());
      copies[j] = BlockCopy{sources[j], targets[j].id(), ops[go[j]].hash().value()};
    }
    if (down_.hooks) down_.hooks->before_write(ids);
    copied = ctx_.engine->submit(TransferRequest{up_.view(), down_.view(), std::move(copies)})->wait();
  }

  std::vector<MutableBlock<D>> arrived;
  absl::InlinedVector<std::uint32_t, 64> arrived_op;
  absl::InlinedVector<BlockId, 64> arrived_ids;
  arrived.reserve(n);
  for (std::size_t j = 0; j < n; ++j) {
    const LinkOp& op = ops[go[j]];
    if (bytes) {
      const absl::Status& st = copied.block(j);
      if (!st.ok()) {
        add(st.code() == absl::StatusCode::kDataLoss ? &LinkStats::checksum_failures : &LinkStats::transfer_failures);
        continue;
      }
    }
    targets[j].set_priority(op.priority);
    // With the source's tokens (still in its slot: pinned, or evicted and not yet rewritten), so that
    // D's Stored event carries them.
    if (!targets[j].apply(op.identity, up_.pool->slot_tokens(sources[j])).ok()) continue;
    if (bytes && down_.hooks) down_.hooks->after_write(targets[j].id(), op.identity);
    arrived_op.push_back(go[j]);
    arrived_ids.push_back(targets[j].id());
    arrived.push_back(std::move(targets[j]));
  }
  // Registered and released in order: the last block of the batch is the most recent, as if they had been
  // inserted one by one.
  auto registered = down_.pool->register_inactive(arrived);
  absl::InlinedVector<bool, 64> inserted(ops.size(), false);
  if (registered.ok()) {
    for (std::size_t j = 0; j < registered->size(); ++j) {
      inserted[arrived_op[j]] = (*registered)[j] == arrived_ids[j];  // else another copy registered it first
    }
  }
  if (!pinned.empty()) up_.pool->release(std::move(pinned));
  finish_batch(out, ops, actions, inserted, /*bytes=*/true);
}

template <CacheLevel U, CacheLevel D>
void PoolLink<U, D>::admit_batch(Outbox& out, std::span<const LinkOp> ops, std::span<const Action> actions,
                                 std::span<const std::uint32_t> go, bool report) {
  absl::InlinedVector<BlockIdentity, 64> identities;
  absl::InlinedVector<std::uint8_t, 64> priorities;
  for (std::uint32_t i : go) {
    identities.push_back(ops[i].identity);
    priorities.push_back(ops[i].priority);
  }
  std::vector<EvictedBlock> evicted;
  absl::InlinedVector<std::uint8_t, 64> admitted(go.size());
  const std::size_t n = down_.pool->admit(identities, priorities, admitted, report ? &evicted : nullptr);
  if (!evicted.empty()) tell_children_evicted(evicted);
  if (n < go.size()) add(&LinkStats::no_space, go.size() - n);
  absl::InlinedVector<bool, 64> inserted(ops.size(), false);
  for (std::size_t j = 0; j < n; ++j) inserted[go[j]] = admitted[j] != 0;  // 0: registered by another copy
  finish_batch(out, ops, actions, inserted, /*bytes=*/false);
}

template class PoolLink<CacheLevel::kG1, CacheLevel::kG2>;
template class PoolLink<CacheLevel::kG2, CacheLevel::kG3>;
template class PoolLink<CacheLevel::kG2, CacheLevel::kG4>;

}  // namespace kvbm::offload
