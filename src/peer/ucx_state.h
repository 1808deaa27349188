// UCX state shared by the agent's lifecycle (ucx_agent.cc) and its transfers (ucx_transfer.cc): a
// request's completion state, the registered local tiers, the imported peers, and the context and worker.
// Private to src/peer.
#pragma once

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <ucp/api/ucp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/core/mutex.h"
#include "kvbm/peer/ucx_agent.h"

namespace kvbm {
namespace ucx_internal {

inline std::string ucx_error_message(std::string_view what, ucs_status_t status) {
  return absl::StrCat(std::string(what), ": ", ucs_status_string(status));
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

}  // namespace ucx_internal

// A request's completion state, shared with UCX's callbacks (which may outlive the UcxRequest).
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

// The agent's UCX objects. Every member is used under the agent's mutex (UcxAgent::mu_).
struct UcxAgent::Impl {
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  std::map<CacheLevel, ucx_internal::LocalTier> tiers;
  std::map<std::uint32_t, std::unique_ptr<ucx_internal::Peer>> peers;
  std::uint32_t next_peer = 1;
  std::chrono::milliseconds teardown_timeout{10000};
  // States of requests destroyed while still in flight; released after the worker is destroyed.
  std::vector<std::shared_ptr<UcxRequest::State>> abandoned;

  // Progresses until `request` (a ucs_status_ptr_t) completes or `deadline` passes; frees it.
  void wait_request(void* request, std::chrono::steady_clock::time_point deadline);
  // Destroys the peer's rkeys and closes its endpoint (forced; waits at most teardown_timeout).
  void close_peer(ucx_internal::Peer& peer);
  // Closes every peer, unmaps every registered region, destroys the worker and the context.
  ~Impl();
};

}  // namespace kvbm
