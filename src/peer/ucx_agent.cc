// UcxAgent's lifecycle: the UCX context and worker (create, the progress thread, teardown), registered
// tiers (ucp_mem_map + packed rkeys), and imported peers (endpoint + unpacked rkeys + rebuilt layout).
// The metadata blob is in ucx_metadata.cc, the RMA transfers in ucx_transfer.cc.
#include <absl/strings/str_cat.h>
#include <ucp/api/ucp.h>
#include <ucs/debug/log_def.h>

#include <cstring>
#include <utility>

#include "kvbm/peer/ucx_agent.h"
#include "peer/ucx_state.h"

namespace kvbm {

using ucx_internal::LocalTier;
using ucx_internal::Peer;
using ucx_internal::RemoteTier;
using ucx_internal::ucx_error_message;

namespace {

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

void UcxAgent::Impl::wait_request(void* request, std::chrono::steady_clock::time_point deadline) {
  if (request == nullptr || UCS_PTR_IS_ERR(request)) return;
  while (ucp_request_check_status(request) == UCS_INPROGRESS && std::chrono::steady_clock::now() < deadline) {
    ucp_worker_progress(worker);
  }
  ucp_request_free(request);
}

void UcxAgent::Impl::close_peer(Peer& peer) {
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

UcxAgent::Impl::~Impl() {
  for (auto& [id, peer] : peers) close_peer(*peer);
  peers.clear();
  for (auto& [level, tier] : tiers) {
    for (ucp_mem_h memh : tier.memh) ucp_mem_unmap(context, memh);
  }
  if (worker != nullptr) ucp_worker_destroy(worker);
  if (context != nullptr) ucp_cleanup(context);
}

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

}  // namespace kvbm
