// G4Path: see include/kvbm/offload/g4_path.h for the contract.
#include "kvbm/offload/g4_path.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <cstring>

#include "kvbm/remote/redis_store.h"

namespace kvbm {
namespace {

using Clock = std::chrono::steady_clock;

// A block's bytes in canonical order (layer by layer, outer by outer), whatever the tier's layout.
template <typename Block>
void for_each_chunk(const Block& block, const ModelConfig& model, const auto& fn) {
  for (std::uint32_t layer = 0; layer < model.num_layers; ++layer) {
    for (std::uint32_t outer = 0; outer < model.outer_dim; ++outer) fn(block.chunk(layer, outer));
  }
}

}  // namespace

G4Path::G4Path(std::unique_ptr<RemoteStore> store, Tier<CacheLevel::kG2>* g2, Options options)
    : store_(std::move(store)), g2_(g2), options_(options) {
  worker_ = std::thread([this] { run(); });
}

G4Path::~G4Path() { shutdown(/*drain=*/false); }

void G4Path::add(std::uint64_t G4Stats::*field, std::uint64_t n) {
  if (n == 0) return;
  MutexLock lock(&stats_mu_);
  stats_.*field += n;
}

void G4Path::on_g2_registered(std::span<const ImmutableBlock<CacheLevel::kG2>> blocks) {
  if (blocks.empty()) return;
  std::uint64_t dropped = 0;
  {
    MutexLock lock(&mu_);
    if (stopping_) return;
    for (const auto& b : blocks) {
      if (queue_.size() >= options_.queue_capacity) {
        ++dropped;
        continue;
      }
      queue_.push_back(b.sequence_hash());
    }
  }
  cv_.notify_all();
  add(&G4Stats::put_dropped, dropped);
}

void G4Path::run() {
  for (;;) {
    std::vector<SequenceHash> batch;
    {
      MutexLock lock(&mu_);
      while (queue_.empty() && !stopping_) cv_.wait(mu_);
      if (queue_.empty()) return;  // stopping, nothing left to drain
      const std::size_t n = std::min<std::size_t>(queue_.size(), options_.max_batch_blocks);
      batch.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      busy_ = true;
    }
    put_batch(batch);
    {
      MutexLock lock(&mu_);
      busy_ = false;
    }
    idle_cv_.notify_all();
  }
}

void G4Path::put_batch(std::span<const SequenceHash> hashes) {
  if (store_->health() == RemoteHealth::kUnavailable) {
    add(&G4Stats::put_dropped, hashes.size());
    return;
  }
  const ModelConfig& model = g2_->layout->model();
  std::vector<RemoteValue> values;
  values.reserve(hashes.size());
  std::uint64_t evicted = 0;
  for (SequenceHash h : hashes) {
    std::optional<ImmutableBlock<CacheLevel::kG2>> block = g2_->pool->pin_for_copy(h);  // pinned while copied
    if (!block) {
      ++evicted;
      continue;
    }
    const BlockIdentity& id = block->identity();
    RemoteValue value(RemoteBlockInfo{h, id.block_hash, id.parent}, store_->fingerprint(), store_->payload_bytes());
    std::span<std::byte> out = value.payload();
    std::size_t at = 0;
    for_each_chunk(*block, model, [&](std::span<const std::byte> chunk) {
      std::memcpy(out.data() + at, chunk.data(), chunk.size());
      at += chunk.size();
    });
    block->reset();
    value.seal();
    values.push_back(std::move(value));
  }
  add(&G4Stats::put_skipped_evicted, evicted);
  if (values.empty()) return;
  std::vector<std::uint64_t> sizes;
  sizes.reserve(values.size());
  for (const RemoteValue& v : values) sizes.push_back(v.bytes().size());
  const RemoteResult r = store_->put(std::move(values))->wait();
  std::uint64_t ok = 0, failed = 0, bytes = 0;
  for (std::size_t i = 0; i < r.blocks.size(); ++i) {
    if (r.blocks[i].ok()) {
      ++ok;
      bytes += sizes[i];
    } else {
      ++failed;
    }
  }
  MutexLock lock(&stats_mu_);
  stats_.g2_to_g4 += ok;
  stats_.put_bytes += bytes;
  stats_.put_failed += failed;
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
  const std::size_t n = r.ok_prefix();
  add(&G4Stats::hits, n);
  if (n < hashes.size()) add(&G4Stats::misses, 1);
  return std::vector<SequenceHash>(hashes.begin(), hashes.begin() + static_cast<std::ptrdiff_t>(n));
}

std::vector<ImmutableBlock<CacheLevel::kG2>> G4Path::fetch_into_g2(std::span<const SequenceHash> hashes,
                                                                   const Allocator& allocate) {
  if (hashes.empty()) return {};
  if (store_->health() == RemoteHealth::kUnavailable) {
    add(&G4Stats::unavailable, 1);
    add(&G4Stats::fetch_truncated, 1);
    return {};
  }
  auto op = store_->get(hashes);
  // A large fetch may legitimately take longer than the deadline: it is cut (the prefix that arrived is
  // used) but the node is not marked slow for it.
  const RemoteResult r = op->result_by(Clock::now() + std::chrono::milliseconds(options_.deadline_ms));
  if (!op->done()) add(&G4Stats::deadline_missed, 1);
  std::uint64_t corrupt = 0;
  for (const absl::Status& s : r.blocks) corrupt += s.code() == absl::StatusCode::kDataLoss ? 1 : 0;
  add(&G4Stats::fetch_corrupt, corrupt);
  const std::size_t n = r.ok_prefix();
  std::vector<G2MutableBlock> targets = n > 0 ? allocate(n) : std::vector<G2MutableBlock>{};
  if (targets.size() < hashes.size()) add(&G4Stats::fetch_truncated, 1);
  if (targets.empty()) return {};

  const ModelConfig& model = g2_->layout->model();
  std::vector<G2MutableBlock> arrived;
  arrived.reserve(targets.size());
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const RemoteFetched& f = r.fetched[i];
    std::size_t at = 0;
    bool fits = true;
    for_each_chunk(targets[i], model, [&](std::span<std::byte> chunk) {
      if (at + chunk.size() > f.payload.size()) {
        fits = false;
        return;
      }
      std::memcpy(chunk.data(), f.payload.data() + at, chunk.size());
      at += chunk.size();
    });
    if (!fits || at != f.payload.size()) break;
    if (!targets[i].apply(BlockIdentity{f.info.block_hash, f.info.sequence_hash, f.info.parent}).ok()) break;
    bytes += at;
    arrived.push_back(std::move(targets[i]));
  }
  auto registered = g2_->pool->register_blocks(arrived);
  if (!registered.ok()) return {};
  add(&G4Stats::g4_to_g2, registered->size());
  add(&G4Stats::fetch_bytes, bytes);
  return *std::move(registered);
}

void G4Path::flush() {
  MutexLock lock(&mu_);
  while (!queue_.empty() || busy_) idle_cv_.wait(mu_);
}

void G4Path::shutdown(bool drain) {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    if (!drain) queue_.clear();
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  idle_cv_.notify_all();
  store_->shutdown();
}

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
                                                           Tier<CacheLevel::kG2>* g2, std::uint32_t queue_capacity) {
  if (g2 == nullptr) {
    return absl::InvalidArgumentError(
        "g4 needs a g2 tier: blocks reach G4 from host memory; set g2.num_blocks or g2.bytes");
  }
  auto store = RedisStore::create(config, model_fingerprint(model), model.bytes_per_block());
  if (!store.ok()) return store.status();
  G4Path::Options options;
  options.deadline_ms = config.deadline_ms;
  options.max_batch_blocks = config.max_batch_blocks;
  options.queue_capacity = queue_capacity;
  return std::make_unique<G4Path>(*std::move(store), g2, options);
}

}  // namespace kvbm
