// Cross-worker block reuse: worker B pulls a prefix that worker A holds instead of recomputing it
// (disaggregated prefill/decode, cross-worker prefix reuse; issue 7/8).
//
// B learns from A's KV events (ZmqPublisher → ZmqSubscriber → KvIndexer) that A holds a prefix. Events
// carry sequence hashes, not block ids, so A runs a PeerBlockServer: a ZMQ REP socket answering
// "which of your blocks hold these sequence hashes". A resolves them to its registered G1 (then G2)
// blocks, pins them under a lease while B reads, and sends each block's id, tier and checksum
// (xxh3_64 of the block's bytes in canonical order — layer by layer, outer by outer — seeded with its
// sequence hash, as BlockChecksums does). B's PeerBlockClient reads the blocks with its UcxAgent into
// freshly allocated G1 blocks of its own KvBlockManager, verifies every checksum, applies the token
// blocks of its own sequence (so the identity is B's, computed from B's tokens), registers them and
// releases the lease. A block whose bytes do not verify is never registered: the pull fails with DataLoss.
//
// Wire protocol (REQ/REP, one frame each way, little-endian):
//   request  u8 op, then:
//     op 1 METADATA  —                         reply: u8 0, UcxAgent metadata blob
//     op 2 RESOLVE   u64 lease_ms, u32 n, n × u64 sequence hash
//                    reply: u8 0, u64 lease_id (0 = nothing pinned), u32 m (≤ n: the longest prefix held),
//                           m × {u8 level, u8 0, u8 0, u8 0, u32 block_id, u64 checksum}
//     op 3 RELEASE   u64 lease_id               reply: u8 0
//   error reply: u8 absl status code (≠ 0), then the message.
// Leases expire after lease_ms (capped by the server) even if never released, so a client that dies
// cannot pin A's blocks for good.
//
// Thread-safety: PeerBlockServer serves from its own thread; its methods may be called from any thread.
// PeerBlockClient is not thread-safe (one thread calls it).
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "kvbm/core/mutex.h"
#include "kvbm/core/token_block_sequence.h"
#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/peer/ucx_agent.h"

namespace kvbm {

// Registers `kvbm`'s G1 and (when present) G2 memory with `agent` (idempotent).
[[nodiscard]] absl::Status register_manager_tiers(UcxAgent& agent, KvBlockManager& kvbm);

// xxh3_64 of a block's bytes in canonical order, seeded with `tag` (the block's sequence hash).
// REQUIRES: memory is host-addressable and block < its num_blocks.
[[nodiscard]] std::uint64_t canonical_block_checksum(const TierMemory& memory, BlockId block, std::uint64_t tag);

struct PeerBlockServerOptions {
  std::string endpoint = "tcp://127.0.0.1:*";   // REP socket, bound; `*` port = ephemeral
  std::chrono::milliseconds max_lease{60000};   // longer requests are capped to this
  std::size_t max_leases = 1024;                // more outstanding leases → ResourceExhausted
  std::size_t max_hashes = 65536;               // hashes per RESOLVE request
  std::chrono::milliseconds poll_interval{20};  // how often the thread checks for shutdown and expiries
};

struct PeerBlockServerStats {
  std::uint64_t requests = 0;
  std::uint64_t resolved_blocks = 0;
  std::uint64_t leases_released = 0;
  std::uint64_t leases_expired = 0;
  std::uint64_t bad_requests = 0;
};

class PeerBlockServer {
 public:
  // Registers kvbm's tiers with `agent`, binds the REP socket and starts the serving thread.
  // REQUIRES: kvbm and agent outlive the server. The agent must be progressed (its progress thread)
  // when peers read over a software-RMA transport such as tcp.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PeerBlockServer>> create(KvBlockManager* kvbm, UcxAgent* agent,
                                                                               PeerBlockServerOptions options);
  // Stops the thread and drops every lease.
  ~PeerBlockServer();
  PeerBlockServer(const PeerBlockServer&) = delete;
  PeerBlockServer& operator=(const PeerBlockServer&) = delete;

  // The bound endpoint (ephemeral port resolved), for clients.
  [[nodiscard]] const std::string& endpoint() const { return endpoint_; }
  [[nodiscard]] std::size_t active_leases() const;
  [[nodiscard]] PeerBlockServerStats stats() const;

 private:
  struct Lease {
    std::vector<G1Block> g1;
    std::vector<G2Block> g2;
    std::chrono::steady_clock::time_point expiry;
  };
  PeerBlockServer(KvBlockManager* kvbm, UcxAgent* agent, PeerBlockServerOptions options);
  void serve();
  std::string handle(std::string_view request);
  std::string resolve(std::string_view body);
  std::string release(std::string_view body);
  void expire_leases();

  KvBlockManager* kvbm_;
  UcxAgent* agent_;
  const PeerBlockServerOptions options_;
  std::string blob_;
  std::string endpoint_;
  zmq::context_t context_{1};
  zmq::socket_t socket_;  // used by the serving thread only once it runs

  mutable Mutex mu_;
  std::map<std::uint64_t, Lease> leases_ ABSL_GUARDED_BY(mu_);
  std::uint64_t next_lease_ ABSL_GUARDED_BY(mu_) = 1;
  PeerBlockServerStats stats_ ABSL_GUARDED_BY(mu_);

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct PeerBlockClientOptions {
  std::string endpoint;                               // the server's REP endpoint
  std::chrono::milliseconds request_timeout{5000};    // per ZMQ round trip
  std::chrono::milliseconds transfer_timeout{30000};  // per UCX batch
  std::chrono::milliseconds lease{30000};             // asked of the server
};

struct PullResult {
  // The prefix of the sequence now held in this worker's G1: the blocks it already had, then the pulled ones.
  std::vector<G1Block> blocks;
  std::size_t local_blocks = 0;   // already in G1 before the pull
  std::size_t pulled_blocks = 0;  // read from the peer, verified and registered
  std::uint64_t pulled_bytes = 0;
};

class PeerBlockClient {
 public:
  // Registers kvbm's tiers with `agent`, fetches the server's metadata blob and imports the peer.
  // Unavailable when the server does not answer within request_timeout.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PeerBlockClient>> connect(KvBlockManager* kvbm, UcxAgent* agent,
                                                                                PeerBlockClientOptions options);
  ~PeerBlockClient();
  PeerBlockClient(const PeerBlockClient&) = delete;
  PeerBlockClient& operator=(const PeerBlockClient&) = delete;

  // The longest prefix of `seq`'s full blocks held here or by the peer, made resident in this worker's G1:
  // first what G1 already holds, then what the peer holds of the rest (pulled, verified, registered).
  // DataLoss when a pulled block's bytes do not match the peer's checksum (nothing is registered then);
  // Unavailable / DeadlineExceeded when the peer does not answer; ResourceExhausted when G1 has no room.
  [[nodiscard]] absl::StatusOr<PullResult> pull_prefix(const TokenBlockSequence& seq);

  [[nodiscard]] UcxPeerId peer() const { return peer_; }
  [[nodiscard]] std::uint64_t peer_worker_id() const { return peer_worker_id_; }

 private:
  PeerBlockClient(KvBlockManager* kvbm, UcxAgent* agent, PeerBlockClientOptions options);
  [[nodiscard]] absl::StatusOr<std::string> call(const std::string& request);

  KvBlockManager* kvbm_;
  UcxAgent* agent_;
  const PeerBlockClientOptions options_;
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  UcxPeerId peer_{};
  std::uint64_t peer_worker_id_ = 0;
};

}  // namespace kvbm
