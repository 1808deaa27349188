#include "kvbm/events/kv_indexer.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <variant>

namespace kvbm {
namespace {

std::uint8_t level_bit(CacheLevel level) { return static_cast<std::uint8_t>(1u << static_cast<unsigned>(level)); }

template <typename Holders>
auto find_holder(Holders& holders, WorkerId worker) {
  return std::lower_bound(holders.begin(), holders.end(), worker,
                          [](const auto& h, WorkerId w) { return h.worker < w; });
}

}  // namespace

std::optional<CacheLevel> medium_level(const std::optional<std::string>& medium) {
  if (!medium.has_value()) return CacheLevel::kG1;
  for (int i = 0; i < kNumCacheLevels; ++i) {
    const auto level = static_cast<CacheLevel>(i);
    if (*medium == cache_level_medium(level)) return level;
  }
  return std::nullopt;
}

absl::Status KvIndexer::apply(WorkerId worker, const EventBatch& batch) {
  MutexLock lock(&mu_);
  absl::Status first_error;
  for (std::size_t i = 0; i < batch.events.size(); ++i) {
    absl::Status s = apply_locked(worker, batch.events[i], i);
    if (!s.ok() && first_error.ok()) first_error = std::move(s);
  }
  return first_error;
}

absl::Status KvIndexer::apply(WorkerId worker, const KvEvent& event) {
  MutexLock lock(&mu_);
  return apply_locked(worker, event, 0);
}

absl::Status KvIndexer::apply_locked(WorkerId worker, const KvEvent& event, std::size_t index) {
  if (std::holds_alternative<AllBlocksClearedEvent>(event)) {
    clear_worker_locked(worker);
    ++events_applied_;
    return absl::OkStatus();
  }
  const auto* stored = std::get_if<BlockStoredEvent>(&event);
  const auto* removed = std::get_if<BlockRemovedEvent>(&event);
  const std::optional<std::string>& medium = stored != nullptr ? stored->medium : removed->medium;
  const std::optional<CacheLevel> level = medium_level(medium);
  if (!level.has_value()) {
    ++events_rejected_;
    return absl::InvalidArgumentError(absl::StrCat("kv indexer: worker ", worker.value(), " event ", index,
                                                   ": unknown medium \"", *medium,
                                                   "\", expected GPU, CPU, DISK, REMOTE or nil"));
  }
  const std::uint8_t bit = level_bit(*level);
  if (stored != nullptr) {
    for (std::uint64_t hash : stored->block_hashes) store_locked(worker, hash, bit);
  } else {
    for (std::uint64_t hash : removed->block_hashes) remove_locked(worker, hash, bit);
  }
  ++events_applied_;
  return absl::OkStatus();
}

void KvIndexer::store_locked(WorkerId worker, std::uint64_t hash, std::uint8_t bit) {
  Holders& holders = index_[hash];
  auto it = find_holder(holders, worker);
  if (it != holders.end() && it->worker == worker) {
    it->media |= bit;
    return;
  }
  holders.insert(it, Holder{worker, bit});
  ++entries_;
  worker_blocks_[worker].insert(hash);
}

void KvIndexer::remove_locked(WorkerId worker, std::uint64_t hash, std::uint8_t bit) {
  auto index_it = index_.find(hash);
  if (index_it == index_.end()) return;
  Holders& holders = index_it->second;
  auto it = find_holder(holders, worker);
  if (it == holders.end() || it->worker != worker) return;
  it->media &= static_cast<std::uint8_t>(~bit);
  if (it->media != 0) return;
  holders.erase(it);
  --entries_;
  if (holders.empty()) index_.erase(index_it);
  auto worker_it = worker_blocks_.find(worker);
  worker_it->second.erase(hash);
  if (worker_it->second.empty()) worker_blocks_.erase(worker_it);
}

void KvIndexer::erase_holder_locked(std::uint64_t hash, WorkerId worker) {
  auto index_it = index_.find(hash);
  if (index_it == index_.end()) return;
  Holders& holders = index_it->second;
  auto it = find_holder(holders, worker);
  if (it == holders.end() || it->worker != worker) return;
  holders.erase(it);
  --entries_;
  if (holders.empty()) index_.erase(index_it);
}

void KvIndexer::clear_worker_locked(WorkerId worker) {
  auto worker_it = worker_blocks_.find(worker);
  if (worker_it == worker_blocks_.end()) return;
  for (std::uint64_t hash : worker_it->second) erase_holder_locked(hash, worker);
  worker_blocks_.erase(worker_it);
}

void KvIndexer::remove_worker(WorkerId worker) {
  MutexLock lock(&mu_);
  clear_worker_locked(worker);
}

std::vector<WorkerMatch> KvIndexer::find_matches(std::span<const std::uint64_t> sequence_hashes) const {
  std::vector<WorkerMatch> out;
  if (sequence_hashes.empty()) return out;
  // A worker still matching: its slot in `out` and the media on which its whole prefix so far lies.
  struct Candidate {
    std::uint32_t slot;
    std::uint8_t media;
  };
  std::vector<Candidate> candidates;

  MutexLock lock(&mu_);
  auto first = index_.find(sequence_hashes[0]);
  if (first == index_.end()) return out;
  out.reserve(first->second.size());
  candidates.reserve(first->second.size());
  for (const Holder& h : first->second) {
    WorkerMatch m{.worker = h.worker, .matched_blocks = 1};
    for (int l = 0; l < kNumCacheLevels; ++l) m.matched_on[l] = (h.media >> l) & 1u;
    candidates.push_back({static_cast<std::uint32_t>(out.size()), h.media});
    out.push_back(m);
  }

  for (std::size_t i = 1; i < sequence_hashes.size() && !candidates.empty(); ++i) {
    auto found = index_.find(sequence_hashes[i]);
    if (found == index_.end()) break;
    const Holders& holders = found->second;
    const auto matched = static_cast<std::uint32_t>(i + 1);
    // Both lists are sorted by worker: merge them, keeping the candidates that hold this block too.
    // When the holders far outnumber the candidates, binary-search instead of stepping through them.
    const bool search = holders.size() > 8 * candidates.size();
    auto h = holders.begin();
    std::size_t kept = 0;
    for (const Candidate& c : candidates) {
      WorkerMatch& m = out[c.slot];
      if (search) {
        h = std::lower_bound(h, holders.end(), m.worker, [](const Holder& x, WorkerId w) { return x.worker < w; });
      } else {
        while (h != holders.end() && h->worker < m.worker) ++h;
      }
      if (h == holders.end()) break;
      if (h->worker != m.worker) continue;
      m.matched_blocks = matched;
      const auto media = static_cast<std::uint8_t>(c.media & h->media);
      for (int l = 0; l < kNumCacheLevels; ++l) {
        if ((media >> l) & 1u) m.matched_on[l] = matched;
      }
      candidates[kept++] = {c.slot, media};
    }
    candidates.resize(kept);
  }
  return out;
}

KvIndexerStats KvIndexer::stats() const {
  MutexLock lock(&mu_);
  return KvIndexerStats{.workers = worker_blocks_.size(),
                        .hashes = index_.size(),
                        .entries = entries_,
                        .events_applied = events_applied_,
                        .events_rejected = events_rejected_};
}

}  // namespace kvbm
