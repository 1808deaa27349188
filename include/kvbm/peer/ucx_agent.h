// UcxAgent: peer-to-peer block transfer over UCX (issue 7/8; the peer layer of DESIGN.md §2).
//
// One agent per process (or per worker). It registers tiers' memory with UCX (ucp_mem_map), exports a
// metadata blob that a peer imports, and then reads (ucp_get_nbx) or writes (ucp_put_nbx) batches of the
// peer's blocks, named by block id, straight between the two tiers' memory — no bounce buffer, no
// involvement of the peer's code. The transport is UCX's own choice, set by UCX's configuration
// (UCX_TLS=tcp, UCX_TLS=sm, UCX_TLS=rc, ...; see `ucx_info -d`).
//
// Flow:
//   A: agent->register_tier(CacheLevel::kG1, kvbm->g1_memory());  blob = agent->export_metadata();
//   B: registers its own tier, peer = agent->import_peer(blob);
//      req = agent->read_blocks(peer, CacheLevel::kG1, remote_ids, CacheLevel::kG1, local_ids);
//      req->wait(deadline)  → the bytes of A's blocks remote_ids[i] are now in B's blocks local_ids[i].
// With a transport whose RMA is done in software (tcp), the side being read from must progress its
// worker: create it with `progress_thread = true` (or call progress() regularly). Shared memory (cma,
// posix) and RDMA read without the peer's help.
//
// Blocks and layouts. A block is num_layers × outer_dim chunks of chunk_bytes (see layout.h); the blob
// carries each tier's layout (kind, model, num_blocks, stride) so any block id can be addressed. A copy
// goes chunk by chunk in canonical order (layer by layer, outer by outer), with adjacent chunks merged
// into one UCX operation whenever they are adjacent on both sides (a fully contiguous block is one op;
// runs of consecutive blocks merge too). The two layouts may therefore differ in kind and stride; they
// must agree on num_layers, outer_dim and chunk bytes (page_size × inner_dim × dtype_bytes), otherwise
// the copy is refused with FailedPrecondition naming the field. Custom layouts cannot be exported.
//
// Metadata blob, version 1. All integers little-endian; no padding.
//   u32 magic 0x5855564B ("KVUX")   u16 version = 1   u16 flags = 0
//   u64 worker_id                   (caller's id for this worker, e.g. its KvIndexer WorkerId)
//   u32 address_len, bytes[address_len]         (ucp_worker_get_address; 1 .. 64 KiB)
//   u32 num_tiers (1 .. 4), then per tier:
//     u8 level (0..3 = G1..G4)  u8 layout (0 fully_contiguous, 1 layer_separate)
//     u8 outer_contiguous (0/1)  u8 reserved = 0
//     u32 num_blocks  u32 num_layers  u32 outer_dim  u32 page_size  u32 inner_dim  u32 dtype_bytes
//     u64 block_stride  u64 base_offset          (fully_contiguous; 0 otherwise)
//     u32 num_regions (1 .. 1024), then per region: u64 address  u64 size  u32 rkey_len (1 .. 64 KiB)  bytes
//   u64 xxh3_64 of every byte before it (seed 0)
// import_peer validates all of it: magic, version, checksum, every length against what remains, the
// model (ModelConfig::validate), the layout rebuilt from it, and that every block of it lies inside the
// exported regions. A block id out of range in a read or write is OutOfRange, never an out-of-bounds access.
//
// Thread-safety: every method may be called from any thread; one mutex serializes the UCX worker
// (UCS_THREAD_MODE_SERIALIZED). A UcxRequest may be used from one thread at a time.
// Lifetimes: a registered TierMemory (its storage) must outlive the agent; requests must not outlive
// the agent. Destroying a request that is still in flight waits for it (bounded), never frees memory
// UCX may still write.
#pragma once

#include <absl/status/statusor.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kvbm/core/model_config.h"
#include "kvbm/core/mutex.h"
#include "kvbm/core/types.h"
#include "kvbm/layout/layout.h"
#include "kvbm/storage/storage.h"

namespace kvbm {

struct UcxPeerIdTag {};
// A peer imported into one agent; meaningless in another.
using UcxPeerId = StrongId<UcxPeerIdTag, std::uint32_t>;

inline constexpr std::uint32_t kUcxBlobMagic = 0x5855564B;  // "KVUX" little-endian
inline constexpr std::uint16_t kUcxBlobVersion = 1;

struct UcxAgentOptions {
  std::uint64_t worker_id = 0;   // carried in the blob, for the importer's bookkeeping
  bool progress_thread = false;  // a background thread drives the worker (needed to be read over tcp)
  std::string name = "kvbm";     // UCX context name (shows in UCX logs)
  // How long destroying an in-flight request, or closing an endpoint, waits for UCX before giving up
  // (the request's state is then kept alive for good rather than freed under UCX).
  std::chrono::milliseconds teardown_timeout{10000};
};

// What a blob says about one exported tier (parsed and validated; no UCX state).
struct UcxTierMetadata {
  struct Region {
    std::uint64_t address = 0;
    std::uint64_t size = 0;
    std::string rkey;  // packed remote key
  };
  CacheLevel level = CacheLevel::kG1;
  LayoutKind layout = LayoutKind::kFullyContiguous;
  bool outer_contiguous = false;
  std::uint32_t num_blocks = 0;
  ModelConfig model;
  std::uint64_t block_stride = 0;
  std::uint64_t base_offset = 0;
  std::vector<Region> regions;
};

struct UcxMetadata {
  std::uint64_t worker_id = 0;
  std::string worker_address;
  std::vector<UcxTierMetadata> tiers;
};

// Decodes and validates a blob (see the format above). InvalidArgument naming the field and the
// allowed range for anything malformed, truncated, out of bounds or of another version.
[[nodiscard]] absl::StatusOr<UcxMetadata> parse_ucx_metadata(std::string_view blob);
// Encodes `metadata` (the inverse of parse_ucx_metadata; the checksum is computed here).
[[nodiscard]] std::string encode_ucx_metadata(const UcxMetadata& metadata);
// Rebuilds the Layout a tier's metadata describes and checks that its regions hold it.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Layout>> layout_from_metadata(const UcxTierMetadata& tier);

class UcxAgent;

// A batch of UCX operations. done() progresses the agent's worker once and says whether every operation
// has finished (successfully or not); wait() progresses until then or until `deadline`.
// States: in flight → done (status() OK, or the first error of any operation).
class UcxRequest {
 public:
  ~UcxRequest();
  UcxRequest(const UcxRequest&) = delete;
  UcxRequest& operator=(const UcxRequest&) = delete;

  [[nodiscard]] bool done();
  // OK once done successfully; the operation's error once failed; DeadlineExceeded when `deadline`
  // passes first (the request is then still in flight: wait again or destroy it).
  [[nodiscard]] absl::Status wait(std::chrono::steady_clock::time_point deadline);
  // The outcome once done; FailedPrecondition("in flight") before.
  [[nodiscard]] absl::Status status() const;
  [[nodiscard]] std::size_t num_operations() const { return num_ops_; }  // UCX operations issued
  [[nodiscard]] std::uint64_t bytes() const { return bytes_; }           // payload bytes moved

  struct State;  // shared with UCX callbacks (defined in src/peer/ucx_state.h)

 private:
  friend class UcxAgent;
  UcxRequest(UcxAgent* agent, std::shared_ptr<State> state, std::size_t num_ops, std::uint64_t bytes)
      : agent_(agent), state_(std::move(state)), num_ops_(num_ops), bytes_(bytes) {}
  UcxAgent* agent_;
  std::shared_ptr<State> state_;
  std::size_t num_ops_;
  std::uint64_t bytes_;
};

class UcxAgent {
 public:
  // Unavailable when UCX cannot be initialized (e.g. UCX_TLS names no usable transport).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<UcxAgent>> create(UcxAgentOptions options);
  // Stops the progress thread, closes endpoints, unregisters memory, destroys the worker and context.
  ~UcxAgent();
  UcxAgent(const UcxAgent&) = delete;
  UcxAgent& operator=(const UcxAgent&) = delete;

  // Registers a tier's memory under `level` (one tier per level). REQUIRES: `memory` outlives the agent.
  // FailedPrecondition when it is not host-addressable or its layout is custom; AlreadyExists when another
  // TierMemory is registered under `level` (registering the same one again is OK).
  [[nodiscard]] absl::Status register_tier(CacheLevel level, const TierMemory& memory);
  [[nodiscard]] bool has_tier(CacheLevel level) const;

  // The blob a peer imports: this worker's UCX address and every registered tier.
  [[nodiscard]] absl::StatusOr<std::string> export_metadata() const;
  // Validates `blob`, connects to the peer's worker and unpacks its remote keys.
  [[nodiscard]] absl::StatusOr<UcxPeerId> import_peer(std::string_view blob);
  // The metadata of an imported peer (worker id, tiers).
  [[nodiscard]] absl::StatusOr<UcxMetadata> peer_metadata(UcxPeerId peer) const;
  // Closes the connection to `peer`. Requests on it must be done.
  void remove_peer(UcxPeerId peer);

  // Copies the peer's blocks `remote[i]` of tier `remote_level` into this agent's blocks `local[i]` of
  // tier `local_level`. InvalidArgument for unequal or empty spans or a local block named twice;
  // OutOfRange naming the block id for an id outside either tier; NotFound for an unknown peer or tier;
  // FailedPrecondition for incompatible layouts. REQUIRES: nobody else writes the local blocks meanwhile.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<UcxRequest>> read_blocks(UcxPeerId peer, CacheLevel remote_level,
                                                                        std::span<const BlockId> remote,
                                                                        CacheLevel local_level,
                                                                        std::span<const BlockId> local);
  // The reverse: local blocks into the peer's. Done means the bytes are in the peer's memory
  // (the batch ends with an endpoint flush).
  [[nodiscard]] absl::StatusOr<std::unique_ptr<UcxRequest>> write_blocks(UcxPeerId peer, CacheLevel remote_level,
                                                                         std::span<const BlockId> remote,
                                                                         CacheLevel local_level,
                                                                         std::span<const BlockId> local);

  // Drives the worker: completes operations, serves software RMA. Returns the events processed.
  unsigned progress();
  [[nodiscard]] std::uint64_t worker_id() const { return options_.worker_id; }

  struct Impl;  // UCX state (defined in src/peer/ucx_state.h)

 private:
  friend class UcxRequest;
  explicit UcxAgent(UcxAgentOptions options);
  [[nodiscard]] absl::StatusOr<std::unique_ptr<UcxRequest>> transfer(bool write, UcxPeerId peer,
                                                                     CacheLevel remote_level,
                                                                     std::span<const BlockId> remote,
                                                                     CacheLevel local_level,
                                                                     std::span<const BlockId> local);
  void run_progress_thread();

  const UcxAgentOptions options_;
  mutable Mutex mu_;
  std::unique_ptr<Impl> impl_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stop_{false};
  std::thread progress_thread_;
};

}  // namespace kvbm
