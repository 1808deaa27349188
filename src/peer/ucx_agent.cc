// UcxAgent: ucp context + worker, registered tiers (ucp_mem_map + packed rkeys), imported peers
// (endpoint + unpacked rkeys + rebuilt layout), and batched RMA with completion callbacks.
#include "kvbm/peer/ucx_agent.h"

#include <absl/strings/str_cat.h>
#include <ucp/api/ucp.h>
#include <ucs/debug/log_def.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "kvbm/core/hashing.h"
#include "kvbm/core/little_endian.h"

namespace kvbm {
namespace {

constexpr std::uint32_t kMaxAddressBytes = 64 * 1024;
constexpr std::uint32_t kMaxRkeyBytes = 64 * 1024;
constexpr std::uint32_t kMaxTiers = kNumCacheLevels;
constexpr std::uint32_t kMaxRegions = 1024;

std::string ucx_error_message(std::string_view what, ucs_status_t status) {
  return absl::StrCat(std::string(what), ": ", ucs_status_string(status));
}

// ---- blob encoding ----

class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) { append_le<std::uint16_t>(&out_, v); }
  void u32(std::uint32_t v) { append_le<std::uint32_t>(&out_, v); }
  void u64(std::uint64_t v) { append_le<std::uint64_t>(&out_, v); }
  void bytes(std::string_view b) {
    u32(static_cast<std::uint32_t>(b.size()));
    out_.append(b);
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

constexpr std::string_view kWhat = "ucx metadata";  // names the blob in LeReader's truncation errors

// A u32 length in [1, max], then that many bytes.
absl::Status read_bytes(LeReader& r, std::string* v, std::uint32_t max, std::string_view field) {
  std::uint32_t n = 0;
  if (absl::Status s = r.read<std::uint32_t>(&n, field); !s.ok()) return s;
  if (n == 0 || n > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: ", std::string(field), " length must be in [1, ", max, "], got ", n));
  }
  return r.read_bytes(v, n, field);
}

#define KVBM_RETURN_IF_ERROR(expr)            \
  do {                                        \
    if (absl::Status _s = (expr); !_s.ok()) { \
      return _s;                              \
    }                                         \
  } while (0)

absl::Status parse_tier(LeReader& r, std::size_t index, UcxTierMetadata* t) {
  const std::string at = absl::StrCat("tier ", index, " ");
  std::uint8_t level = 0;
  std::uint8_t kind = 0;
  std::uint8_t outer = 0;
  std::uint8_t reserved = 0;
  KVBM_RETURN_IF_ERROR(r.read<std::uint8_t>(&level, at + "level"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint8_t>(&kind, at + "layout"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint8_t>(&outer, at + "outer_contiguous"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint8_t>(&reserved, at + "reserved"));
  if (level >= kNumCacheLevels) {
    return absl::InvalidArgumentError(absl::StrCat("ucx metadata: ", at, "level must be in [0, 3], got ", level));
  }
  if (kind > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: ", at, "layout must be 0 (fully_contiguous) or 1 (layer_separate), got ", kind));
  }
  if (outer > 1 || reserved != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ucx metadata: ", at, "outer_contiguous must be 0 or 1 and reserved 0, got ", outer, ", ", reserved));
  }
  t->level = static_cast<CacheLevel>(level);
  t->layout = kind == 0 ? LayoutKind::kFullyContiguous : LayoutKind::kLayerSeparate;
  t->outer_contiguous = outer == 1;
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->num_blocks, at + "num_blocks"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->model.num_layers, at + "num_layers"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->model.outer_dim, at + "outer_dim"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->model.page_size, at + "page_size"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->model.inner_dim, at + "inner_dim"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&t->model.dtype_bytes, at + "dtype_bytes"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint64_t>(&t->block_stride, at + "block_stride"));
  KVBM_RETURN_IF_ERROR(r.read<std::uint64_t>(&t->base_offset, at + "base_offset"));
  std::uint32_t num_regions = 0;
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&num_regions, at + "num_regions"));
  if (num_regions == 0 || num_regions > kMaxRegions) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: ", at, "num_regions must be in [1, ", kMaxRegions, "], got ", num_regions));
  }
  t->regions.resize(num_regions);
  for (std::uint32_t i = 0; i < num_regions; ++i) {
    UcxTierMetadata::Region& region = t->regions[i];
    const std::string rat = absl::StrCat(at, "region ", i, " ");
    KVBM_RETURN_IF_ERROR(r.read<std::uint64_t>(&region.address, rat + "address"));
    KVBM_RETURN_IF_ERROR(r.read<std::uint64_t>(&region.size, rat + "size"));
    KVBM_RETURN_IF_ERROR(read_bytes(r, &region.rkey, kMaxRkeyBytes, rat + "rkey"));
    if (region.address == 0 || region.size == 0 ||
        region.address > std::numeric_limits<std::uint64_t>::max() - region.size) {
      return absl::InvalidArgumentError(absl::StrCat("ucx metadata: ", rat, "address 0x", absl::Hex(region.address),
                                                     " + size ", region.size, " is not a valid range"));
    }
  }
  // The layout rebuilt from the model, and every block inside the exported regions.
  auto layout = layout_from_metadata(*t);
  if (!layout.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("ucx metadata: ", at, layout.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string encode_ucx_metadata(const UcxMetadata& m) {
  Writer w;
  w.u32(kUcxBlobMagic);
  w.u16(kUcxBlobVersion);
  w.u16(0);
  w.u64(m.worker_id);
  w.bytes(m.worker_address);
  w.u32(static_cast<std::uint32_t>(m.tiers.size()));
  for (const UcxTierMetadata& t : m.tiers) {
    w.u8(static_cast<std::uint8_t>(t.level));
    w.u8(t.layout == LayoutKind::kFullyContiguous ? 0 : t.layout == LayoutKind::kLayerSeparate ? 1 : 0xff);
    w.u8(t.outer_contiguous ? 1 : 0);
    w.u8(0);
    w.u32(t.num_blocks);
    w.u32(t.model.num_layers);
    w.u32(t.model.outer_dim);
    w.u32(t.model.page_size);
    w.u32(t.model.inner_dim);
    w.u32(t.model.dtype_bytes);
    w.u64(t.block_stride);
    w.u64(t.base_offset);
    w.u32(static_cast<std::uint32_t>(t.regions.size()));
    for (const UcxTierMetadata::Region& r : t.regions) {
      w.u64(r.address);
      w.u64(r.size);
      w.bytes(r.rkey);
    }
  }
  const std::uint64_t sum = xxh3_64(w.out().data(), w.out().size(), 0);
  w.u64(sum);
  return std::move(w.out());
}

absl::StatusOr<UcxMetadata> parse_ucx_metadata(std::string_view blob) {
  if (blob.size() < 8 + 8) {
    return absl::InvalidArgumentError(absl::StrCat("ucx metadata: ", blob.size(), " bytes is too short for a blob"));
  }
  LeReader r(blob, kWhat);
  std::uint32_t magic = 0;
  std::uint16_t version = 0;
  std::uint16_t flags = 0;
  KVBM_RETURN_IF_ERROR(r.read<std::uint32_t>(&magic, "magic"));
  if (magic != kUcxBlobMagic) {
    return absl::InvalidArgumentError(absl::StrCat("ucx metadata: magic must be 0x", absl::Hex(kUcxBlobMagic),
                                                   " (\"KVUX\"), got 0x", absl::Hex(magic)));
  }
  KVBM_RETURN_IF_ERROR(r.read<std::uint16_t>(&version, "version"));
  if (version != kUcxBlobVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: version must be ", kUcxBlobVersion, ", got ", version));
  }
  KVBM_RETURN_IF_ERROR(r.read<std::uint16_t>(&flags, "flags"));
  if (flags != 0) return absl::InvalidArgumentError(absl::StrCat("ucx metadata: flags must be 0, got ", flags));
  // The trailing checksum covers everything before it: check it before trusting any length.
  const std::string_view body = blob.substr(0, blob.size() - 8);
  LeReader tail(blob.substr(blob.size() - 8), kWhat);
  std::uint64_t sum = 0;
  KVBM_RETURN_IF_ERROR(tail.read<std::uint64_t>(&sum, "checksum"));
  const std::uint64_t expected = xxh3_64(body.data(), body.size(), 0);
  if (sum != expected) {
    return absl::InvalidArgumentError(absl::StrCat("ucx metadata: checksum mismatch (blob says 0x", absl::Hex(sum),
                                                   ", bytes hash to 0x", absl::Hex(expected), ")"));
  }
  LeReader b(body, kWhat);
  std::uint64_t skip = 0;
  KVBM_RETURN_IF_ERROR(b.read<std::uint64_t>(&skip, "header"));  // magic, version, flags: checked above
  UcxMetadata m;
  KVBM_RETURN_IF_ERROR(b.read<std::uint64_t>(&m.worker_id, "worker_id"));
  KVBM_RETURN_IF_ERROR(read_bytes(b, &m.worker_address, kMaxAddressBytes, "worker_address"));
  std::uint32_t num_tiers = 0;
  KVBM_RETURN_IF_ERROR(b.read<std::uint32_t>(&num_tiers, "num_tiers"));
  if (num_tiers == 0 || num_tiers > kMaxTiers) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: num_tiers must be in [1, ", kMaxTiers, "], got ", num_tiers));
  }
  m.tiers.resize(num_tiers);
  for (std::uint32_t i = 0; i < num_tiers; ++i) {
    KVBM_RETURN_IF_ERROR(parse_tier(b, i, &m.tiers[i]));
    for (std::uint32_t j = 0; j < i; ++j) {
      if (m.tiers[j].level == m.tiers[i].level) {
        return absl::InvalidArgumentError(
            absl::StrCat("ucx metadata: tier ", i, " repeats level ", std::string(cache_level_name(m.tiers[i].level))));
      }
    }
  }
  if (b.pos() != body.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx metadata: ", body.size() - b.pos(), " unexpected bytes after the last tier"));
  }
  return m;
}

absl::StatusOr<std::unique_ptr<Layout>> layout_from_metadata(const UcxTierMetadata& t) {
  if (absl::Status s = t.model.validate(); !s.ok()) return s;
  std::unique_ptr<Layout> layout;
  if (t.layout == LayoutKind::kFullyContiguous) {
    // The stride is bytes_per_block rounded up to a power-of-two alignment: find that alignment.
    const std::uint64_t per_block = t.model.bytes_per_block();
    std::optional<std::uint64_t> alignment;
    for (std::uint64_t a = 1; a != 0 && a <= (std::uint64_t{1} << 62); a <<= 1) {
      if (((per_block + a - 1) & ~(a - 1)) == t.block_stride) {
        alignment = a;
        break;
      }
      if (a > t.block_stride) break;
    }
    if (!alignment) {
      return absl::InvalidArgumentError(absl::StrCat("block_stride ", t.block_stride, " is not ", per_block,
                                                     " bytes per block rounded up to a power of two"));
    }
    auto fc =
        FullyContiguousLayout::create(t.model, t.num_blocks, {.alignment = *alignment, .base_offset = t.base_offset});
    if (!fc.ok()) return fc.status();
    layout = *std::move(fc);
  } else if (t.layout == LayoutKind::kLayerSeparate) {
    if (t.block_stride != 0 || t.base_offset != 0) {
      return absl::InvalidArgumentError("block_stride and base_offset must be 0 for layer_separate");
    }
    auto ls = LayerSeparateLayout::create(t.model, t.num_blocks, t.outer_contiguous);
    if (!ls.ok()) return ls.status();
    layout = *std::move(ls);
  } else {
    return absl::InvalidArgumentError("only fully_contiguous and layer_separate layouts can be exported");
  }
  std::vector<std::uint64_t> sizes;
  sizes.reserve(t.regions.size());
  for (const auto& r : t.regions) sizes.push_back(r.size);
  if (absl::Status s = layout->check_storage(sizes); !s.ok()) return s;
  return layout;
}

#undef KVBM_RETURN_IF_ERROR

// ---- UCX state ----

struct UcxRequest::State {
  std::atomic<std::size_t> pending{0};
  Mutex mu;
  absl::Status status ABSL_GUARDED_BY(mu);
  std::vector<void*> requests;  // UCX requests still owned by us; touched only under the agent's mutex

  void fail(absl::Status s) {
    MutexLock lock(&mu);
    if (status.ok()) status = std::move(s);
  }
};

namespace {

void on_complete(void* /*request*/, ucs_status_t status, void* user_data) {
  auto* state = static_cast<UcxRequest::State*>(user_data);
  if (status != UCS_OK) state->fail(absl::UnavailableError(ucx_error_message("ucx transfer", status)));
  state->pending.fetch_sub(1, std::memory_order_acq_rel);
}

struct LocalTier {
  const TierMemory* memory = nullptr;
  std::vector<ucp_mem_h> memh;
  std::vector<std::string> rkeys;
};

struct RemoteTier {
  UcxTierMetadata meta;
  std::unique_ptr<Layout> layout;
  std::vector<ucp_rkey_h> rkeys;
};

struct Peer {
  UcxMetadata meta;
  ucp_ep_h ep = nullptr;
  std::map<CacheLevel, RemoteTier> tiers;
  std::atomic<bool> failed{false};
};

// Drops the transport-selection errors of an endpoint that asks for peer-failure handling.
ucs_log_func_rc_t drop_select_errors(const char* file, unsigned /*line*/, const char* /*function*/,
                                     ucs_log_level_t level, const ucs_log_component_config_t* /*comp_conf*/,
                                     const char* /*message*/, va_list /*ap*/) {
  if (level <= UCS_LOG_LEVEL_ERROR && file != nullptr && std::strstr(file, "select.c") != nullptr) {
    return UCS_LOG_FUNC_RC_STOP;
  }
  return UCS_LOG_FUNC_RC_CONTINUE;
}

void on_ep_error(void* arg, ucp_ep_h /*ep*/, ucs_status_t /*status*/) {
  static_cast<Peer*>(arg)->failed.store(true, std::memory_order_relaxed);
}

}  // namespace

struct UcxAgent::Impl {
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  std::map<CacheLevel, LocalTier> tiers;
  std::map<std::uint32_t, std::unique_ptr<Peer>> peers;
  std::uint32_t next_peer = 1;
  std::chrono::milliseconds teardown_timeout{10000};
  // States of requests destroyed while still in flight; released after the worker is destroyed.
  std::vector<std::shared_ptr<UcxRequest::State>> abandoned;

  // Progresses until `request` (a ucs_status_ptr_t) completes or `deadline` passes; frees it.
  void wait_request(void* request, std::chrono::steady_clock::time_point deadline) {
    if (request == nullptr || UCS_PTR_IS_ERR(request)) return;
    while (ucp_request_check_status(request) == UCS_INPROGRESS && std::chrono::steady_clock::now() < deadline) {
      ucp_worker_progress(worker);
    }
    ucp_request_free(request);
  }

  void close_peer(Peer& peer) {
    for (auto& [level, tier] : peer.tiers) {
      for (ucp_rkey_h rkey : tier.rkeys) ucp_rkey_destroy(rkey);
      tier.rkeys.clear();
    }
    if (peer.ep != nullptr) {
      ucp_request_param_t param{};
      param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
      // Forced: every request of ours is done (or abandoned with its state kept alive), and a flush
      // towards a peer that is gone could only wait.
      param.flags = UCP_EP_CLOSE_FLAG_FORCE;
      void* request = ucp_ep_close_nbx(peer.ep, &param);
      wait_request(request, std::chrono::steady_clock::now() + teardown_timeout);
      peer.ep = nullptr;
    }
  }

  ~Impl() {
    for (auto& [id, peer] : peers) close_peer(*peer);
    peers.clear();
    for (auto& [level, tier] : tiers) {
      for (ucp_mem_h memh : tier.memh) ucp_mem_unmap(context, memh);
    }
    if (worker != nullptr) ucp_worker_destroy(worker);
    if (context != nullptr) ucp_cleanup(context);
  }
};

UcxAgent::UcxAgent(UcxAgentOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<UcxAgent>> UcxAgent::create(UcxAgentOptions options) {
  std::unique_ptr<UcxAgent> agent(new UcxAgent(std::move(options)));
  auto impl = std::make_unique<Impl>();
  impl->teardown_timeout = agent->options_.teardown_timeout;
  ucp_config_t* config = nullptr;
  ucs_status_t st = ucp_config_read(nullptr, nullptr, &config);  // UCX_* from the environment (UCX_TLS, ...)
  if (st != UCS_OK) return absl::UnavailableError(ucx_error_message("ucp_config_read", st));
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_NAME | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_RMA;
  params.name = agent->options_.name.c_str();
  params.mt_workers_shared = 0;
  st = ucp_init(&params, config, &impl->context);
  ucp_config_release(config);
  if (st != UCS_OK) return absl::UnavailableError(ucx_error_message("ucp_init", st));
  ucp_worker_params_t wparams{};
  wparams.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wparams.thread_mode = UCS_THREAD_MODE_SERIALIZED;  // every call is under mu_
  st = ucp_worker_create(impl->context, &wparams, &impl->worker);
  if (st != UCS_OK) return absl::UnavailableError(ucx_error_message("ucp_worker_create", st));
  {
    MutexLock lock(&agent->mu_);
    agent->impl_ = std::move(impl);
  }
  if (agent->options_.progress_thread)
    agent->progress_thread_ = std::thread([a = agent.get()] { a->run_progress_thread(); });
  return agent;
}

UcxAgent::~UcxAgent() {
  stop_.store(true, std::memory_order_relaxed);
  if (progress_thread_.joinable()) progress_thread_.join();
  MutexLock lock(&mu_);
  impl_.reset();
}

void UcxAgent::run_progress_thread() {
  int idle = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    if (progress() != 0) {
      idle = 0;
      continue;
    }
    // Spin briefly (a transfer in progress keeps producing events), then back off to 50 µs naps.
    if (++idle < 200) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

unsigned UcxAgent::progress() {
  MutexLock lock(&mu_);
  if (impl_ == nullptr) return 0;
  unsigned total = 0;
  while (unsigned n = ucp_worker_progress(impl_->worker)) total += n;
  return total;
}

absl::Status UcxAgent::register_tier(CacheLevel level, const TierMemory& memory) {
  const Layout& layout = memory.layout();
  if (!memory.host_addressable()) {
    return absl::FailedPreconditionError(
        absl::StrCat("ucx register_tier ", std::string(cache_level_name(level)), ": memory is not host-addressable"));
  }
  if (layout.kind() != LayoutKind::kFullyContiguous && layout.kind() != LayoutKind::kLayerSeparate) {
    return absl::FailedPreconditionError(absl::StrCat("ucx register_tier ", std::string(cache_level_name(level)),
                                                      ": layout ", layout.name(), " cannot be exported"));
  }
  MutexLock lock(&mu_);
  if (auto it = impl_->tiers.find(level); it != impl_->tiers.end()) {
    if (it->second.memory == &memory) return absl::OkStatus();
    return absl::AlreadyExistsError(
        absl::StrCat("ucx register_tier: another memory is registered as ", std::string(cache_level_name(level))));
  }
  LocalTier tier;
  tier.memory = &memory;
  const Storage& storage = memory.storage();
  for (std::size_t i = 0; i < storage.num_regions(); ++i) {
    std::span<std::byte> region = storage.host_region(i);
    ucp_mem_map_params_t mp{};
    mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
    mp.address = region.data();
    mp.length = region.size();
    ucp_mem_h memh = nullptr;
    ucs_status_t st = ucp_mem_map(impl_->context, &mp, &memh);
    if (st == UCS_OK) {
      void* buf = nullptr;
      std::size_t size = 0;
      st = ucp_rkey_pack(impl_->context, memh, &buf, &size);
      if (st == UCS_OK) {
        tier.rkeys.emplace_back(static_cast<const char*>(buf), size);
        ucp_rkey_buffer_release(buf);
      } else {
        ucp_mem_unmap(impl_->context, memh);
      }
    }
    if (st != UCS_OK) {
      for (ucp_mem_h h : tier.memh) ucp_mem_unmap(impl_->context, h);
      return absl::UnavailableError(ucx_error_message(absl::StrCat("ucx register_tier region ", i), st));
    }
    tier.memh.push_back(memh);
  }
  impl_->tiers.emplace(level, std::move(tier));
  return absl::OkStatus();
}

bool UcxAgent::has_tier(CacheLevel level) const {
  MutexLock lock(&mu_);
  return impl_->tiers.contains(level);
}

absl::StatusOr<std::string> UcxAgent::export_metadata() const {
  MutexLock lock(&mu_);
  if (impl_->tiers.empty()) return absl::FailedPreconditionError("ucx export_metadata: no tier is registered");
  UcxMetadata m;
  m.worker_id = options_.worker_id;
  ucp_address_t* address = nullptr;
  std::size_t address_len = 0;
  ucs_status_t st = ucp_worker_get_address(impl_->worker, &address, &address_len);
  if (st != UCS_OK) return absl::UnavailableError(ucx_error_message("ucp_worker_get_address", st));
  m.worker_address.assign(reinterpret_cast<const char*>(address), address_len);
  ucp_worker_release_address(impl_->worker, address);
  for (const auto& [level, tier] : impl_->tiers) {
    const Layout& layout = tier.memory->layout();
    UcxTierMetadata t;
    t.level = level;
    t.layout = layout.kind();
    t.num_blocks = layout.num_blocks();
    t.model = layout.model();
    if (const auto* fc = dynamic_cast<const FullyContiguousLayout*>(&layout)) {
      t.block_stride = fc->block_stride();
      t.base_offset = fc->region_unchecked(0, 0, 0).offset;
    } else if (const auto* ls = dynamic_cast<const LayerSeparateLayout*>(&layout)) {
      t.outer_contiguous = ls->outer_contiguous();
    }
    const Storage& storage = tier.memory->storage();
    for (std::size_t i = 0; i < storage.num_regions(); ++i) {
      std::span<std::byte> region = storage.host_region(i);
      t.regions.push_back(
          {.address = reinterpret_cast<std::uint64_t>(region.data()), .size = region.size(), .rkey = tier.rkeys[i]});
    }
    m.tiers.push_back(std::move(t));
  }
  return encode_ucx_metadata(m);
}

absl::StatusOr<UcxPeerId> UcxAgent::import_peer(std::string_view blob) {
  auto meta = parse_ucx_metadata(blob);
  if (!meta.ok()) return meta.status();
  auto peer = std::make_unique<Peer>();
  peer->meta = *std::move(meta);
  for (const UcxTierMetadata& t : peer->meta.tiers) {
    auto layout = layout_from_metadata(t);
    if (!layout.ok()) return layout.status();  // parse checked it already
    peer->tiers[t.level] = RemoteTier{.meta = t, .layout = *std::move(layout), .rkeys = {}};
  }
  MutexLock lock(&mu_);
  ucp_ep_params_t ep_params{};
  ep_params.field_mask =
      UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
  ep_params.address = reinterpret_cast<const ucp_address_t*>(peer->meta.worker_address.data());
  // Peer failure is reported (requests fail, the endpoint is marked) instead of hanging.
  ep_params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  ep_params.err_handler.cb = on_ep_error;
  ep_params.err_handler.arg = peer.get();
  // The first try may fail for want of failure handling; UCX logs that as an error: keep it quiet.
  ucs_log_push_handler(drop_select_errors);
  ucs_status_t st = ucp_ep_create(impl_->worker, &ep_params, &peer->ep);
  ucs_log_pop_handler();
  if (st == UCS_ERR_UNREACHABLE) {
    // Shared-memory transports (posix, sysv, cma) have no peer-failure handling in UCX 1.13: connect
    // without it. A dead peer's memory then fails the read (cma) or the request times out in wait().
    ep_params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
    st = ucp_ep_create(impl_->worker, &ep_params, &peer->ep);
  }
  if (st != UCS_OK) {
    return absl::UnavailableError(
        ucx_error_message("ucx import_peer: ucp_ep_create (is UCX_TLS the same on both sides?)", st));
  }
  for (auto& [level, tier] : peer->tiers) {
    for (std::size_t i = 0; i < tier.meta.regions.size(); ++i) {
      ucp_rkey_h rkey = nullptr;
      st = ucp_ep_rkey_unpack(peer->ep, tier.meta.regions[i].rkey.data(), &rkey);
      if (st != UCS_OK) {
        impl_->close_peer(*peer);
        return absl::InvalidArgumentError(
            ucx_error_message(absl::StrCat("ucx import_peer: tier ", std::string(cache_level_name(level)), " region ",
                                           i, " rkey does not unpack"),
                              st));
      }
      tier.rkeys.push_back(rkey);
    }
  }
  const std::uint32_t id = impl_->next_peer++;
  impl_->peers.emplace(id, std::move(peer));
  return UcxPeerId(id);
}

absl::StatusOr<UcxMetadata> UcxAgent::peer_metadata(UcxPeerId peer) const {
  MutexLock lock(&mu_);
  auto it = impl_->peers.find(peer.value());
  if (it == impl_->peers.end()) return absl::NotFoundError(absl::StrCat("ucx: no peer ", peer.value()));
  return it->second->meta;
}

void UcxAgent::remove_peer(UcxPeerId peer) {
  MutexLock lock(&mu_);
  auto it = impl_->peers.find(peer.value());
  if (it == impl_->peers.end()) return;
  impl_->close_peer(*it->second);
  impl_->peers.erase(it);
}

absl::StatusOr<std::unique_ptr<UcxRequest>> UcxAgent::read_blocks(UcxPeerId peer, CacheLevel remote_level,
                                                                  std::span<const BlockId> remote,
                                                                  CacheLevel local_level,
                                                                  std::span<const BlockId> local) {
  return transfer(false, peer, remote_level, remote, local_level, local);
}

absl::StatusOr<std::unique_ptr<UcxRequest>> UcxAgent::write_blocks(UcxPeerId peer, CacheLevel remote_level,
                                                                   std::span<const BlockId> remote,
                                                                   CacheLevel local_level,
                                                                   std::span<const BlockId> local) {
  return transfer(true, peer, remote_level, remote, local_level, local);
}

namespace {

// One UCX operation: `size` bytes between local bytes and (remote region, remote address).
struct Op {
  std::byte* local = nullptr;
  std::uint32_t remote_region = 0;
  std::uint64_t remote_address = 0;
  std::uint64_t size = 0;
};

absl::Status check_compatible(const Layout& remote, const Layout& local) {
  const ModelConfig& r = remote.model();
  const ModelConfig& l = local.model();
  if (r.num_layers != l.num_layers || r.outer_dim != l.outer_dim || remote.chunk_bytes() != local.chunk_bytes()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "ucx transfer: layouts are incompatible: remote ", remote.name(), " (num_layers ", r.num_layers, ", outer_dim ",
        r.outer_dim, ", chunk bytes ", remote.chunk_bytes(), ") vs local ", local.name(), " (num_layers ", l.num_layers,
        ", outer_dim ", l.outer_dim, ", chunk bytes ", local.chunk_bytes(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<UcxRequest>> UcxAgent::transfer(bool write, UcxPeerId peer_id, CacheLevel remote_level,
                                                               std::span<const BlockId> remote, CacheLevel local_level,
                                                               std::span<const BlockId> local) {
  const char* what = write ? "ucx write_blocks" : "ucx read_blocks";
  if (remote.size() != local.size() || remote.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": remote and local block lists must be non-empty and of ",
                                                   "equal length, got ", remote.size(), " and ", local.size()));
  }
  MutexLock lock(&mu_);
  auto pit = impl_->peers.find(peer_id.value());
  if (pit == impl_->peers.end()) return absl::NotFoundError(absl::StrCat(what, ": no peer ", peer_id.value()));
  Peer& peer = *pit->second;
  if (peer.failed.load(std::memory_order_relaxed)) {
    return absl::UnavailableError(absl::StrCat(what, ": peer ", peer_id.value(), " has failed"));
  }
  auto rit = peer.tiers.find(remote_level);
  if (rit == peer.tiers.end()) {
    return absl::NotFoundError(
        absl::StrCat(what, ": the peer exports no ", std::string(cache_level_name(remote_level)), " tier"));
  }
  auto lit = impl_->tiers.find(local_level);
  if (lit == impl_->tiers.end()) {
    return absl::NotFoundError(
        absl::StrCat(what, ": no local ", std::string(cache_level_name(local_level)), " tier is registered"));
  }
  const RemoteTier& rt = rit->second;
  const TierMemory& lm = *lit->second.memory;
  const Layout& rl = *rt.layout;
  const Layout& ll = lm.layout();
  if (absl::Status s = check_compatible(rl, ll); !s.ok()) return s;
  std::vector<bool> seen(ll.num_blocks(), false);
  for (std::size_t i = 0; i < remote.size(); ++i) {
    if (remote[i].value() >= rl.num_blocks()) {
      return absl::OutOfRangeError(absl::StrCat(what, ": remote block ", remote[i].value(), " (index ", i,
                                                ") is out of range, the peer's tier has ", rl.num_blocks(), " blocks"));
    }
    if (local[i].value() >= ll.num_blocks()) {
      return absl::OutOfRangeError(absl::StrCat(what, ": local block ", local[i].value(), " (index ", i,
                                                ") is out of range, the local tier has ", ll.num_blocks(), " blocks"));
    }
    // Two copies into one destination block would race.
    const bool dst_local = !write;
    if (dst_local) {
      if (seen[local[i].value()]) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": local block ", local[i].value(), " is named twice (index ", i, ")"));
      }
      seen[local[i].value()] = true;
    }
  }
  if (write) {
    std::vector<bool> rseen(rl.num_blocks(), false);
    for (std::size_t i = 0; i < remote.size(); ++i) {
      if (rseen[remote[i].value()]) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": remote block ", remote[i].value(), " is named twice (index ", i, ")"));
      }
      rseen[remote[i].value()] = true;
    }
  }

  // Chunks in canonical order, merged while adjacent on both sides.
  std::vector<Op> ops;
  const std::uint32_t layers = ll.model().num_layers;
  const std::uint32_t outers = ll.model().outer_dim;
  for (std::size_t i = 0; i < remote.size(); ++i) {
    for (std::uint32_t layer = 0; layer < layers; ++layer) {
      for (std::uint32_t outer = 0; outer < outers; ++outer) {
        const RegionRef r = rl.region_unchecked(remote[i].value(), layer, outer);
        std::span<std::byte> l = lm.chunk(local[i].value(), layer, outer);
        const std::uint64_t raddr = rt.meta.regions[r.region].address + r.offset;
        if (!ops.empty()) {
          Op& last = ops.back();
          if (last.remote_region == r.region && last.remote_address + last.size == raddr &&
              last.local + last.size == l.data()) {
            last.size += r.size;
            continue;
          }
        }
        ops.push_back(Op{.local = l.data(), .remote_region = r.region, .remote_address = raddr, .size = r.size});
      }
    }
  }

  auto state = std::make_shared<UcxRequest::State>();
  std::uint64_t bytes = 0;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = on_complete;
  param.user_data = state.get();
  auto track = [&](ucs_status_ptr_t r, std::string_view op) {
    if (r == nullptr) return;  // completed in place
    if (UCS_PTR_IS_ERR(r)) {
      state->fail(
          absl::UnavailableError(ucx_error_message(absl::StrCat(what, ": ", std::string(op)), UCS_PTR_STATUS(r))));
      return;
    }
    state->pending.fetch_add(1, std::memory_order_acq_rel);
    state->requests.push_back(r);
  };
  for (const Op& op : ops) {
    ucp_rkey_h rkey = rt.rkeys[op.remote_region];
    ucs_status_ptr_t r = write ? ucp_put_nbx(peer.ep, op.local, op.size, op.remote_address, rkey, &param)
                               : ucp_get_nbx(peer.ep, op.local, op.size, op.remote_address, rkey, &param);
    track(r, write ? "ucp_put_nbx" : "ucp_get_nbx");
    bytes += op.size;
  }
  // A put is complete locally when its request is; the flush makes it complete in the peer's memory.
  if (write) track(ucp_ep_flush_nbx(peer.ep, &param), "ucp_ep_flush_nbx");
  return std::unique_ptr<UcxRequest>(new UcxRequest(this, std::move(state), ops.size(), bytes));
}

// ---- UcxRequest ----

bool UcxRequest::done() {
  if (state_->pending.load(std::memory_order_acquire) != 0) agent_->progress();
  if (state_->pending.load(std::memory_order_acquire) != 0) return false;
  if (!state_->requests.empty()) {
    MutexLock lock(&agent_->mu_);
    for (void* r : state_->requests) ucp_request_free(r);
    state_->requests.clear();
  }
  return true;
}

absl::Status UcxRequest::wait(std::chrono::steady_clock::time_point deadline) {
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("ucx request: ", state_->pending.load(), " of ", num_ops_,
                                                      " operations still in flight at the deadline"));
    }
  }
  return status();
}

absl::Status UcxRequest::status() const {
  if (state_->pending.load(std::memory_order_acquire) != 0)
    return absl::FailedPreconditionError("ucx request: in flight");
  MutexLock lock(&state_->mu);
  return state_->status;
}

UcxRequest::~UcxRequest() {
  const auto deadline = std::chrono::steady_clock::now() + agent_->options_.teardown_timeout;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
  }
  if (state_->pending.load(std::memory_order_acquire) != 0) {
    // UCX still holds the state and may still complete into it: the agent keeps it until its worker
    // is destroyed, rather than let a late completion write freed memory.
    MutexLock lock(&agent_->mu_);
    agent_->impl_->abandoned.push_back(std::move(state_));
  }
}

}  // namespace kvbm
