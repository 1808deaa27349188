// G4Path: see include/kvbm/offload/g4_path.h for the contract.
#include "kvbm/offload/g4_path.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <chrono>

#include "kvbm/remote/redis_store.h"

namespace kvbm {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

G4Path::G4Path(std::shared_ptr<RemoteStore> store, Options options) : store_(std::move(store)), options_(options) {}

G4Path::~G4Path() { shutdown(); }

void G4Path::add(std::uint64_t G4Stats::*field, std::uint64_t n) {
  if (n == 0) return;
  MutexLock lock(&stats_mu_);
  stats_.*field += n;
}

G4Path::PutResult G4Path::put(const TierMemory& memory, std::span<const PutBlock> blocks) {
  PutResult result;
  const std::size_t batch = std::max<std::uint32_t>(1, options_.max_batch_blocks);
  for (std::size_t begin = 0; begin < blocks.size(); begin += batch) {
    const std::span<const PutBlock> part = blocks.subspan(begin, std::min(batch, blocks.size() - begin));
    if (store_->health() == RemoteHealth::kUnavailable) {
      add(&G4Stats::put_dropped, part.size());
      continue;
    }
    std::vector<RemoteValue> values;
    values.reserve(part.size());
    std::vector<std::uint64_t> sizes;
    sizes.reserve(part.size());
    for (const PutBlock& b : part) {
      RemoteValue value(RemoteBlockInfo{b.identity.sequence_hash, b.identity.block_hash, b.identity.parent},
                        store_->fingerprint(), store_->payload_bytes());
      memory.pack(b.slot.value(), value.payload());
      value.seal();
      sizes.push_back(value.bytes().size());
      values.push_back(std::move(value));
    }
    const RemoteResult r = store_->put(std::move(values))->wait();
    report_stored(part, r);
    std::uint64_t ok = 0, failed = 0, bytes = 0;
    for (std::size_t i = 0; i < r.blocks.size(); ++i) {
      if (r.blocks[i].ok()) {
        ++ok;
        bytes += sizes[i];
      } else {
        ++failed;
      }
    }
    result.blocks += ok;
    result.bytes += bytes;
    MutexLock lock(&stats_mu_);
    stats_.g2_to_g4 += ok;
    stats_.put_bytes += bytes;
    stats_.put_failed += failed;
  }
  return result;
}

std::vector<SequenceHash> G4Path::match(std::span<const SequenceHash> hashes) {
  if (hashes.empty()) return {};
  add(&G4Stats::lookups, hashes.size());
  if (store_->health() == RemoteHealth::kUnavailable) {
    add(&G4Stats::unavailable, 1);
    add(&G4Stats::misses, 1);
    return {};
  }
  auto op = store_->exists(hashes);
  const RemoteResult r = op->result_by(Clock::now() + std::chrono::milliseconds(options_.deadline_ms));
  if (!op->done()) {
    store_->report_deadline_missed(*op, r);
    add(&G4Stats::deadline_missed, 1);
  }
  report_gone(hashes, r);
  const std::size_t n = r.ok_prefix();
  add(&G4Stats::hits, n);
  if (n < hashes.size()) add(&G4Stats::misses, 1);
  return std::vector<SequenceHash>(hashes.begin(), hashes.begin() + static_cast<std::ptrdiff_t>(n));
}

G4Path::FetchResult G4Path::fetch(std::span<const SequenceHash> hashes) {
  FetchResult out;
  if (hashes.empty()) return out;
  if (store_->health() == RemoteHealth::kUnavailable) {
    add(&G4Stats::unavailable, 1);
    add(&G4Stats::fetch_truncated, 1);
    return out;
  }
  auto op = store_->get(hashes);
  // A large fetch may legitimately take longer than the deadline: it is cut (the prefix that arrived is
  // used) but the node is not marked slow for it.
  out.values = op->result_by(Clock::now() + std::chrono::milliseconds(options_.deadline_ms));
  if (!op->done()) add(&G4Stats::deadline_missed, 1);
  report_gone(hashes, out.values);
  std::uint64_t corrupt = 0;
  for (const absl::Status& s : out.values.blocks) corrupt += s.code() == absl::StatusCode::kDataLoss ? 1 : 0;
  add(&G4Stats::fetch_corrupt, corrupt);
  const std::size_t n = out.values.ok_prefix();
  if (n < hashes.size()) add(&G4Stats::fetch_truncated, 1);
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const RemoteFetched& f = out.values.fetched[i];
    if (f.payload.size() != store_->payload_bytes()) break;
    out.blocks.push_back(Fetched{BlockIdentity{f.info.block_hash, f.info.sequence_hash, f.info.parent}, f.payload});
    bytes += f.payload.size();
  }
  add(&G4Stats::g4_to_g2, out.blocks.size());
  add(&G4Stats::fetch_bytes, bytes);
  return out;
}

void G4Path::report_stored(std::span<const PutBlock> part, const RemoteResult& r) {
  if (options_.events == nullptr) return;
  // One Stored event per run of blocks that continue one another's chain, as a pool reports them; tokens
  // only when every block of the run has its page_size of them (else none: synthesized downstream).
  std::vector<BlocksStored> stored;
  std::vector<bool> complete;
  {
    MutexLock lock(&put_mu_);
    for (std::size_t i = 0; i < part.size() && i < r.blocks.size(); ++i) {
      if (!r.blocks[i].ok()) continue;
      const PutBlock& b = part[i];
      put_.insert(b.identity.sequence_hash.value());
      if (stored.empty() || !b.identity.parent || stored.back().block_hashes.back() != *b.identity.parent) {
        stored.push_back(BlocksStored{CacheLevel::kG4, {}, b.identity.parent, {}, options_.page_size});
        complete.push_back(true);
      }
      stored.back().block_hashes.push_back(b.identity.sequence_hash);
      if (b.tokens.size() == options_.page_size) {
        stored.back().token_ids.insert(stored.back().token_ids.end(), b.tokens.begin(), b.tokens.end());
      } else {
        complete.back() = false;
      }
    }
  }
  for (std::size_t e = 0; e < stored.size(); ++e) {
    if (!complete[e]) stored[e].token_ids.clear();
    options_.events->on_stored(std::move(stored[e]));
  }
}

void G4Path::report_gone(std::span<const SequenceHash> hashes, const RemoteResult& r) {
  if (options_.events == nullptr) return;
  BlocksRemoved removed{CacheLevel::kG4, {}};
  {
    MutexLock lock(&put_mu_);
    for (std::size_t i = 0; i < hashes.size() && i < r.blocks.size(); ++i) {
      if (r.blocks[i].code() != absl::StatusCode::kNotFound) continue;
      if (put_.erase(hashes[i].value()) != 0) removed.block_hashes.push_back(hashes[i]);
    }
  }
  if (!removed.block_hashes.empty()) options_.events->on_removed(std::move(removed));
}

void G4Path::shutdown() { store_->shutdown(); }

G4Stats G4Path::stats() const {
  G4Stats s;
  {
    MutexLock lock(&stats_mu_);
    s = stats_;
  }
  s.health = store_->health();
  s.store = store_->stats();
  return s;
}

absl::StatusOr<std::unique_ptr<G4Path>> make_redis_g4_path(const G4Config& config, const ModelConfig& model,
                                                           EventSink* events) {
  auto store = RedisStore::create(config, model_fingerprint(model), model.bytes_per_block());
  if (!store.ok()) return store.status();
  G4Path::Options options;
  options.deadline_ms = config.deadline_ms;
  options.max_batch_blocks = config.max_batch_blocks;
  options.events = events;
  options.page_size = model.page_size;
  return std::make_unique<G4Path>(*std::move(store), options);
}

}  // namespace kvbm
