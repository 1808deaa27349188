// UcxAgent's transfers: batches of RMA reads (ucp_get_nbx) and writes (ucp_put_nbx + endpoint flush)
// between a local tier and a peer's, chunk by chunk in canonical order, and the UcxRequest that tracks them.
#include <absl/strings/str_cat.h>
#include <ucp/api/ucp.h>

#include <memory>
#include <utility>
#include <vector>

#include "kvbm/peer/ucx_agent.h"
#include "peer/ucx_state.h"

namespace kvbm {

using ucx_internal::Peer;
using ucx_internal::RemoteTier;
using ucx_internal::ucx_error_message;

namespace {

void on_complete(void* /*request*/, ucs_status_t status, void* user_data) {
  auto* state = static_cast<UcxRequest::State*>(user_data);
  if (status != UCS_OK) state->fail(absl::UnavailableError(ucx_error_message("ucx transfer", status)));
  state->pending.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace

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
  for (std::size_t i = 0; i < remote.size(); ++i) {
    for (const ChunkCoord c : canonical_chunks(ll.model())) {
      const RegionRef r = rl.region_unchecked(remote[i].value(), c.layer, c.outer);
      std::span<std::byte> l = lm.chunk(local[i].value(), c.layer, c.outer);
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
