#include "kvbm/manager/kv_block_manager.h"

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>

#include <algorithm>

#include "kvbm/storage/cuda_memory.h"
#include "kvbm/storage/disk_file.h"

namespace kvbm {
namespace {

absl::StatusOr<std::unique_ptr<Layout>> make_layout(const ModelConfig& model, std::uint32_t blocks,
                                                    const LayoutConfig& config) {
  if (config.kind == LayoutKind::kLayerSeparate) {
    auto layout = LayerSeparateLayout::create(model, blocks, config.outer_contiguous);
    if (!layout.ok()) return layout.status();
    return std::unique_ptr<Layout>(*std::move(layout));
  }
  auto layout = FullyContiguousLayout::create(model, blocks, FullyContiguousLayout::Options{config.alignment, 0});
  if (!layout.ok()) return layout.status();
  return std::unique_ptr<Layout>(*std::move(layout));
}

absl::StatusOr<std::unique_ptr<Storage>> make_memory(const std::string& tier, const TierConfig& config,
                                                     const Layout& layout) {
  absl::StatusOr<std::unique_ptr<Storage>> storage;
  switch (config.memory) {
    case MemoryKind::kSystem: {
      SystemMemory::Options options;
      options.zero_fill = config.zero_fill;
      options.huge_pages = config.huge_pages;
      auto memory = SystemMemory::for_layout(layout, options);
      if (!memory.ok())
        return absl::Status(memory.status().code(), absl::StrCat(tier, ": ", memory.status().message()));
      return std::unique_ptr<Storage>(*std::move(memory));
    }
    case MemoryKind::kPinned:
      storage = make_pinned_memory(layout.region_sizes());
      break;
    case MemoryKind::kDevice:
      storage = make_device_memory(layout.region_sizes());
      break;
  }
  if (!storage.ok()) return absl::Status(storage.status().code(), absl::StrCat(tier, ": ", storage.status().message()));
  return storage;
}

// A user layout for tier `name` must describe this model's blocks, as many as the tier is configured for.
absl::Status check_user_layout(const std::string& name, const KvbmConfig& config, std::uint32_t blocks,
                               const Layout& layout) {
  if (layout.model() != config.model) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": the user layout (", layout.name(), ") is for model ",
                                                   layout.model().to_string(), ", the configuration's model is ",
                                                   config.model.to_string()));
  }
  if (layout.num_blocks() != blocks) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": the user layout (", layout.name(), ") has ",
                                                   layout.num_blocks(), " blocks, the configuration gives the tier ",
                                                   blocks, " (", name, ".num_blocks / ", name, ".bytes)"));
  }
  return absl::OkStatus();
}

// A user storage for tier `name` must hold its layout: as many regions, each at least as large.
absl::Status check_user_storage(const std::string& name, std::uint32_t blocks, const Layout& layout,
                                const Storage& storage) {
  const std::vector<std::uint64_t> needed = layout.region_sizes();
  const std::vector<std::uint64_t> has = storage.region_sizes();
  if (has.size() != needed.size()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": the user storage has ", has.size(),
                                                   " region(s), the tier's layout (", layout.name(), ") needs ",
                                                   needed.size()));
  }
  for (std::size_t i = 0; i < needed.size(); ++i) {
    if (has[i] < needed[i]) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": the user storage's region ", i, " holds ", has[i],
                                                     " bytes, the tier's ", blocks, " blocks need ", needed[i],
                                                     " (layout ", layout.name(), ")"));
    }
  }
  return absl::OkStatus();
}

// Builds one tier: layout, storage, memory binding, pool (and checksums and persistence for disk), taking
// the layout and storage from `parts` where given. With `identities_only`, just the layout (for the
// model's block size) and a pool without memory.
template <CacheLevel L>
absl::StatusOr<std::unique_ptr<Tier<L>>> make_tier(const KvbmConfig& config, EventSink* events, bool identities_only,
                                                   ReleaseObserver* on_release, PersistentG3** persist_out,
                                                   TierParts parts) {
  const std::string name = absl::AsciiStrToLower(std::string(cache_level_name(L)));
  const TierConfig& tc = config.tier(L);
  const std::uint32_t blocks = config.tier_blocks(L);
  auto tier = std::make_unique<Tier<L>>();

  if (parts.layout) {
    if (absl::Status s = check_user_layout(name, config, blocks, *parts.layout); !s.ok()) return s;
    tier->layout = std::move(parts.layout);
  } else {
    LayoutConfig layout_config = tc.layout;
    if (L == CacheLevel::kG3)
      layout_config.alignment = std::max<std::uint64_t>(layout_config.alignment, DiskFile::kAlignment);
    auto layout = make_layout(config.model, blocks, layout_config);
    if (!layout.ok()) return absl::Status(layout.status().code(), absl::StrCat(name, ": ", layout.status().message()));
    tier->layout = *std::move(layout);
  }

  PersistentG3* persist = nullptr;
  if (!identities_only) {
    if (parts.storage) {
      if (L == CacheLevel::kG3 && tc.persist) {
        return absl::InvalidArgumentError(
            "g3: g3.persist keeps its index in kvbm's own disk file; it cannot be combined with a user storage");
      }
      if (absl::Status s = check_user_storage(name, blocks, *tier->layout, *parts.storage); !s.ok()) return s;
      if (L == CacheLevel::kG3) tier->checksums = std::make_unique<BlockChecksums>(blocks);
      tier->storage = std::move(parts.storage);
    } else if constexpr (L == CacheLevel::kG3) {
      tier->checksums = std::make_unique<BlockChecksums>(blocks);
      DiskFile::Options options;
      options.directory = tc.directory;
      options.direct_io = tc.direct_io;
      options.unlink_after_open = tc.unlink_after_open && !tc.persist;  // a persistent file keeps its name
      if (tc.persist) {  // persistent G3: fixed file name, index in front of the data
        options.file_name = PersistentG3::kFileName;
        options.header_bytes = PersistentG3::header_bytes(blocks);
      }
      auto disk = DiskFile::for_layout(*tier->layout, options);
      if (!disk.ok()) return absl::Status(disk.status().code(), absl::StrCat("g3: ", disk.status().message()));
      if (tc.persist) {
        auto opened = PersistentG3::open(**disk, *tier->layout, tier->checksums.get(), tc.key_namespace);
        if (!opened.ok()) {
          return absl::Status(opened.status().code(), absl::StrCat("g3: ", opened.status().message()));
        }
        if (absl::Status s = (*disk)->reserve_rest(); !s.ok()) {
          return absl::Status(s.code(), absl::StrCat("g3: ", s.message()));
        }
        persist = opened->get();
        tier->hooks = *std::move(opened);
      }
      tier->storage = *std::move(disk);
    } else {
      auto storage = make_memory(name, tc, *tier->layout);
      if (!storage.ok()) return storage.status();
      tier->storage = *std::move(storage);
    }
    auto memory = TierMemory::bind(tier->layout.get(), tier->storage.get());
    if (!memory.ok()) return memory.status();
    tier->memory = std::make_unique<TierMemory>(*std::move(memory));
  }

  BlockPoolConfig pool_config;
  pool_config.num_blocks = blocks;
  pool_config.page_size = config.model.page_size;
  pool_config.eviction = tc.eviction;
  // Token ids are kept in G1 (events, building blocks token by token). G2 and G3 keep the tokens of the
  // blocks copied into them only when events are published (page_size × 4 bytes per block), so that their
  // Stored events carry the real tokens (specs/kv-events-wire-format.md); identities-only tiers receive no
  // tokens to keep.
  pool_config.keep_tokens = config.keep_tokens && (L == CacheLevel::kG1 || (events != nullptr && !identities_only));
  pool_config.events = events;
  pool_config.memory = tier->memory.get();
  pool_config.on_release = on_release;
  auto pool = BlockPool<L>::create(pool_config);
  if (!pool.ok()) return pool.status();
  tier->pool = *std::move(pool);
  if constexpr (L == CacheLevel::kG3) {
    if (persist != nullptr) {
      if (absl::Status s = persist->restore(*tier->pool, *tier->checksums); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat("g3: restoring the persistent index: ", s.message()));
      }
    }
  }
  if (persist_out != nullptr) *persist_out = persist;
  return tier;
}

template <CacheLevel L>
PoolStatus tier_status(const std::unique_ptr<Tier<L>>& tier) {
  return tier ? tier->pool->status() : PoolStatus{};
}

// `f(tier)` for the local tier at `level` (a const Tier<L>*, null when not configured); a value-initialized
// result (null, false) for G4 and any other level without a local tier.
template <typename F>
auto visit_tier(const TierStack& tiers, CacheLevel level, F f) -> decltype(f(tiers.g1.get())) {
  switch (level) {
    case CacheLevel::kG1:
      return f(tiers.g1.get());
    case CacheLevel::kG2:
      return f(tiers.g2.get());
    case CacheLevel::kG3:
      return f(tiers.g3.get());
    default:
      return {};
  }
}

// True when a block is not one of `tier`'s (another manager's, an empty handle, or a tier this manager
// does not have).
template <CacheLevel L>
bool holds_foreign(const std::vector<ImmutableBlock<L>>& blocks, const Tier<L>* tier) {
  return std::any_of(blocks.begin(), blocks.end(),
                     [&](const ImmutableBlock<L>& b) { return tier == nullptr || !tier->pool->owns(b); });
}

// What ManagerParts can be checked against before anything is built: each piece belongs to a tier that is
// on, and holds bytes; the G4 store fits the model and has a G2 to come through.
absl::Status check_parts(const KvbmConfig& config, const ManagerParts& parts, bool identities_only) {
  const std::pair<const TierParts*, CacheLevel> tiers[] = {
      {&parts.g1, CacheLevel::kG1}, {&parts.g2, CacheLevel::kG2}, {&parts.g3, CacheLevel::kG3}};
  for (const auto& [tier, level] : tiers) {
    if (tier->empty()) continue;
    const std::string name = absl::AsciiStrToLower(std::string(cache_level_name(level)));
    if (!config.tier(level).enabled()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": user parts were given for a tier that is off; set ", name,
                                                     ".num_blocks or ", name, ".bytes"));
    }
    if (identities_only && tier->storage) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": a user storage was given, but the tiers hold identities only (kvbm replay --no-data)"));
    }
  }
  if (!parts.g4) return absl::OkStatus();
  if (config.g4.enabled()) {
    return absl::InvalidArgumentError(
        absl::StrCat("g4: both g4.endpoints (", config.g4.endpoints, ") and a user RemoteStore were given; use one"));
  }
  if (identities_only) {
    return absl::InvalidArgumentError(
        "g4: a user RemoteStore was given, but the tiers hold identities only (kvbm replay --no-data)");
  }
  if (!config.g2.enabled()) {
    return absl::InvalidArgumentError(
        "g4: a user RemoteStore needs a G2 tier (blocks reach G4 from host memory): set g2.num_blocks or g2.bytes");
  }
  if (parts.g4->payload_bytes() != config.model.bytes_per_block()) {
    return absl::InvalidArgumentError(absl::StrCat("g4: the user RemoteStore's payload_bytes() is ",
                                                   parts.g4->payload_bytes(), ", the model's blocks are ",
                                                   config.model.bytes_per_block(), " bytes"));
  }
  if (parts.g4->fingerprint() != model_fingerprint(config.model)) {
    return absl::InvalidArgumentError(
        absl::StrCat("g4: the user RemoteStore's fingerprint() is ", absl::Hex(parts.g4->fingerprint()),
                     ", the model's is model_fingerprint(model) = ", absl::Hex(model_fingerprint(config.model))));
  }
  return absl::OkStatus();
}

// Every copy the tier chain makes between the local tiers — G1 ↔ G2, G2 ↔ G3, G3 → G1 (onboarding) — has a
// transfer path, and G2 is host-addressable when G4 is on (values are packed from it and fetched into it).
absl::Status check_paths(const TierStack& tiers, bool g4) {
  if (g4 && !tiers.g2->memory->host_addressable()) {
    return absl::InvalidArgumentError(absl::StrCat("g2: G4 needs a host-addressable G2, the user storage is ",
                                                   std::string(storage_kind_name(tiers.g2->storage->kind())),
                                                   " without host bytes (Storage::host_region)"));
  }
  struct Pair {
    const char* name;
    TierView src;
    TierView dst;
  };
  std::vector<Pair> pairs;
  const TierView g1 = tiers.g1->view();
  if (tiers.g2) {
    const TierView g2 = tiers.g2->view();
    pairs.push_back({"g1 -> g2", g1, g2});
    pairs.push_back({"g2 -> g1", g2, g1});
    if (tiers.g3) {
      const TierView g3 = tiers.g3->view();
      pairs.push_back({"g2 -> g3", g2, g3});
      pairs.push_back({"g3 -> g2", g3, g2});
      pairs.push_back({"g3 -> g1", g3, g1});
    }
  }
  for (const Pair& p : pairs) {
    if (absl::Status s = TransferEngine::check_path(p.src, p.dst); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(p.name, " has no copy path for the given parts: ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<KvBlockManager>> KvBlockManager::create(const KvbmConfig& config, Options options) {
  return create(config, ManagerParts{}, std::move(options));
}

absl::StatusOr<std::unique_ptr<KvBlockManager>> KvBlockManager::create(const KvbmConfig& config, ManagerParts parts) {
  return create(config, std::move(parts), Options{});
}

absl::StatusOr<std::unique_ptr<KvBlockManager>> KvBlockManager::create(const KvbmConfig& config, ManagerParts parts,
                                                                       Options options) {
  if (absl::Status s = config.validate(); !s.ok()) return s;
  if (absl::Status s = check_parts(config, parts, options.identities_only); !s.ok()) return s;
  const bool user_parts = !parts.g1.empty() || !parts.g2.empty() || !parts.g3.empty() || parts.g4 != nullptr;
  std::unique_ptr<KvBlockManager> m(new KvBlockManager(config));
  m->identities_only_ = options.identities_only;
  const bool bytes = !options.identities_only;

  auto g1 = make_tier<CacheLevel::kG1>(
      config, options.events, !bytes, config.g2.enabled() ? &m->release_relay_ : nullptr, nullptr, std::move(parts.g1));
  if (!g1.ok()) return g1.status();
  m->tiers_.g1 = *std::move(g1);
  if (config.g2.enabled()) {
    auto g2 = make_tier<CacheLevel::kG2>(config, options.events, !bytes, nullptr, nullptr, std::move(parts.g2));
    if (!g2.ok()) return g2.status();
    m->tiers_.g2 = *std::move(g2);
  }
  if (config.g3.enabled()) {
    auto g3 = make_tier<CacheLevel::kG3>(config, options.events, !bytes, nullptr, &m->g3_persist_, std::move(parts.g3));
    if (!g3.ok()) return g3.status();
    m->tiers_.g3 = *std::move(g3);
  }
  // User pieces: every copy the chain can make between them must have a path (a custom layout on the disk
  // file, device memory without CUDA, ...) — an error now rather than failed copies later.
  if (user_parts && bytes) {
    if (absl::Status s = check_paths(m->tiers_, parts.g4 != nullptr || config.g4.enabled()); !s.ok()) return s;
  }
  if (config.g4.enabled() && !bytes) {  // identities only: G4 as an LRU pool of its planned capacity
    const std::uint32_t blocks = config.tier_blocks(CacheLevel::kG4);
    if (blocks == 0) {
      return absl::InvalidArgumentError(
          "g4: with identities only (kvbm replay --no-data) G4 is modelled as a pool of its planned capacity: set "
          "g4.num_blocks or g4.bytes (with real bytes the Redis servers' memory decides)");
    }
    auto g4 = std::make_unique<Tier<CacheLevel::kG4>>();
    auto layout = make_layout(config.model, blocks, LayoutConfig{});
    if (!layout.ok()) return absl::Status(layout.status().code(), absl::StrCat("g4: ", layout.status().message()));
    g4->layout = *std::move(layout);
    BlockPoolConfig pool_config;
    pool_config.num_blocks = blocks;
    pool_config.page_size = config.model.page_size;
    pool_config.eviction = EvictionPolicyKind::kLru;
    pool_config.keep_tokens = false;
    pool_config.events = options.events;
    auto pool = BlockPool<CacheLevel::kG4>::create(pool_config);
    if (!pool.ok()) return pool.status();
    g4->pool = *std::move(pool);
    m->tiers_.g4 = std::move(g4);
  }
  if (m->tiers_.g2) {
    if (bytes) {
      TransferEngine::Options engine_options;
      engine_options.threads = config.offload.transfer_threads;
      engine_options.io = std::move(options.io);
      auto engine = TransferEngine::create(engine_options);
      if (!engine.ok()) return engine.status();
      m->engine_ = *std::move(engine);
    }
    JobScheduler* scheduler = options.scheduler;
    if (scheduler == nullptr) {
      m->own_scheduler_ = make_thread_lane_scheduler();
      scheduler = m->own_scheduler_.get();
    }
    OffloadManager::Options offload;
    offload.scheduler = scheduler;
    offload.observers = m->metrics_->offload_observers();
    offload.g3_deadline = std::chrono::milliseconds(config.g3.deadline_ms);
    // G4 (issue 7/8): the remote tier under G2, when g4.endpoints is set and the tiers hold bytes.
    if (config.g4.enabled() && bytes) {
      auto path = make_redis_g4_path(config.g4, config.model, options.events);
      if (!path.ok()) return path.status();
      offload.g4 = *std::move(path);
    } else if (parts.g4) {  // a user backend (check_parts: bytes, G2, no endpoints)
      G4Path::Options g4_options;
      g4_options.deadline_ms = config.g4.deadline_ms;
      g4_options.max_batch_blocks = config.g4.max_batch_blocks;
      offload.g4 = std::make_unique<G4Path>(std::move(parts.g4), g4_options);
    }
    m->offload_ = std::make_unique<OffloadManager>(&m->tiers_, m->engine_.get(), config.offload, std::move(offload));
    m->release_relay_.set(m->offload_->g1_release_observer());
  }
  if (absl::Status s = m->metrics_->attach(*m, config.metrics); !s.ok()) return s;
  return m;
}

KvBlockManager::~KvBlockManager() {
  metrics_->stop();  // no scrape may read the tiers while they go
  if (offload_) offload_->shutdown(/*drain=*/false);
  release_relay_.set(nullptr);
}

absl::StatusOr<TokenBlockSequence> KvBlockManager::make_sequence(std::span<const std::uint32_t> tokens,
                                                                 SaltHash salt) const {
  return TokenBlockSequence::create(config_.model.page_size, salt, tokens);
}

absl::StatusOr<std::vector<G1MutableBlock>> KvBlockManager::allocate(std::size_t count) {
  std::vector<EvictedBlock> evicted;
  std::vector<EvictedBlock>* report = offload_ && offload_->wants_g1_evictions() ? &evicted : nullptr;
  auto blocks = tiers_.g1->pool->allocate(count, report);
  if (!blocks.ok() && offload_ && blocks.status().code() == absl::StatusCode::kResourceExhausted) {
    // Background copies pin their source blocks while they read them; an engine must not see an
    // allocation fail for that. Let them finish, then try once more.
    offload_->flush();
    blocks = tiers_.g1->pool->allocate(count, report);
  }
  if (!evicted.empty()) offload_->on_g1_evicted(evicted);
  return blocks;
}

absl::StatusOr<std::vector<G1Block>> KvBlockManager::register_blocks(std::span<G1MutableBlock> blocks) {
  return tiers_.g1->pool->register_blocks(blocks);
}

MatchResult KvBlockManager::match(std::span<const SequenceHash> hashes) {
  MatchResult result;
  if (offload_) {
    result = offload_->match(hashes);
  } else {
    result.g1 = tiers_.g1->pool->match(hashes);
    result.tiers.assign(result.g1.size(), CacheLevel::kG1);
  }
  metrics_->record_match(hashes.size(), result.g1.size(), result.g2.size(), result.g3.size(), tiers_.g2 != nullptr,
                         tiers_.g3 != nullptr);
  return result;
}

std::shared_ptr<OnboardOperation> KvBlockManager::onboard(MatchResult match) {
  // A match of another manager (or a hand-made one with foreign handles) would hand out that
  // manager's slots as this one's, or copy the wrong bytes: an error, nothing copied.
  if (holds_foreign(match.g1, tiers_.g1.get()) || holds_foreign(match.g2, tiers_.g2.get()) ||
      holds_foreign(match.g3, tiers_.g3.get()) || (!match.g4.empty() && !has_tier(CacheLevel::kG4))) {
    return OnboardOperation::finished(absl::InvalidArgumentError(
        "onboard: the match holds blocks of another manager (or empty handles); match with this one"));
  }
  if (!offload_) {
    if (!match.g2.empty() || !match.g3.empty()) {
      return OnboardOperation::finished(
          absl::InvalidArgumentError("onboard: the match names tiers this manager does not have"));
    }
    return OnboardOperation::finished(std::move(match.g1));
  }
  return offload_->onboard(std::move(match));
}

absl::StatusOr<std::vector<G1Block>> KvBlockManager::match_and_onboard(std::span<const SequenceHash> hashes) {
  return onboard(match(hashes))->wait();
}

absl::Status KvBlockManager::reset() {
  if (offload_) offload_->flush();
  // Check every tier first so that a failure leaves all of them as they were.
  for (PoolStatus s : {status(CacheLevel::kG1), status(CacheLevel::kG2), status(CacheLevel::kG3)}) {
    if (s.active + s.owned > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("reset while ", s.active + s.owned, " block(s) are held; release them first"));
    }
  }
  if (absl::Status s = tiers_.g1->pool->reset(); !s.ok()) return s;
  if (tiers_.g2) {
    if (absl::Status s = tiers_.g2->pool->reset(); !s.ok()) return s;
  }
  if (tiers_.g4) {
    if (absl::Status s = tiers_.g4->pool->reset(); !s.ok()) return s;
  }
  if (tiers_.g3) {
    if (absl::Status s = tiers_.g3->pool->reset(); !s.ok()) return s;
    if (tiers_.g3->hooks) {  // a reset persistent G3 stays empty across a restart too
      if (absl::Status s = tiers_.g3->hooks->after_reset(); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

void KvBlockManager::flush() {
  if (offload_) offload_->flush();
}

PoolStatus KvBlockManager::status(CacheLevel level) const {
  switch (level) {
    case CacheLevel::kG1:
      return tier_status(tiers_.g1);
    case CacheLevel::kG2:
      return tier_status(tiers_.g2);
    case CacheLevel::kG3:
      return tier_status(tiers_.g3);
    case CacheLevel::kG4:
      return tier_status(tiers_.g4);  // identities only; the remote store's own state is in offload_stats()
    default:
      return PoolStatus{};
  }
}

std::uint64_t KvBlockManager::policy_violations(CacheLevel level) const {
  return visit_tier(tiers_, level, [](const auto* t) -> std::uint64_t { return t ? t->pool->policy_violations() : 0; });
}

const TierMemory* KvBlockManager::tier_memory(CacheLevel level) const {
  return visit_tier(tiers_, level, [](const auto* t) -> const TierMemory* { return t ? t->memory.get() : nullptr; });
}

const Layout* KvBlockManager::tier_layout(CacheLevel level) const {
  return visit_tier(tiers_, level, [](const auto* t) -> const Layout* { return t ? t->layout.get() : nullptr; });
}

const Storage* KvBlockManager::tier_storage(CacheLevel level) const {
  return visit_tier(tiers_, level, [](const auto* t) -> const Storage* { return t ? t->storage.get() : nullptr; });
}

bool KvBlockManager::tier_contains(CacheLevel level, SequenceHash hash) const {
  return visit_tier(tiers_, level, [hash](const auto* t) { return t != nullptr && t->pool->contains(hash); });
}

std::optional<PersistentG3Stats> KvBlockManager::g3_persist_stats() const {
  if (g3_persist_ == nullptr) return std::nullopt;
  return g3_persist_->stats();
}

bool KvBlockManager::has_tier(CacheLevel level) const {
  switch (level) {
    case CacheLevel::kG1:
      return true;
    case CacheLevel::kG2:
      return tiers_.g2 != nullptr;
    case CacheLevel::kG3:
      return tiers_.g3 != nullptr;
    case CacheLevel::kG4:
      return offload_ != nullptr && offload_->has_g4();
    default:
      return false;
  }
}

OffloadStats KvBlockManager::offload_stats() const { return offload_ ? offload_->stats() : OffloadStats{}; }

TransferStats KvBlockManager::transfer_stats() const { return engine_ ? engine_->stats() : TransferStats{}; }

}  // namespace kvbm
