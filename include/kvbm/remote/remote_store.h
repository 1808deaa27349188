// RemoteStore: the G4 tier's block store — batched put / get / exists of whole blocks by key, completed
// asynchronously, with a health state (DESIGN.md §4, issue 7/8). RedisStore (redis_store.h) is the
// backend; G4Path (kvbm/offload/g4_path.h) puts it under the tier stack.
//
// Keys. A block is stored under `<namespace>:<fingerprint>:<sequence hash>` (both u64 as 16 lower-case hex
// digits). The fingerprint (model_fingerprint) hashes the block's geometry and the byte order of the value,
// so two models never read each other's blocks even when they share a Redis and a namespace. The namespace
// separates deployments (and models of equal geometry but different weights: give each its own).
//
// Values. A fixed 64-byte little-endian header followed by the block's bytes in canonical order (layer by
// layer, outer by outer — whatever the tier's layout):
//   off size field
//     0   4  magic "KVB4"
//     4   2  format version (1)
//     6   2  flags (bit 0: has parent)
//     8   8  fingerprint
//    16   8  sequence hash
//    24   8  block hash
//    32   8  parent sequence hash (0 without one)
//    40   8  payload length in bytes
//    48   8  checksum: xxh3_64(header bytes 0..48 ‖ payload, seed = sequence hash)
//    56   8  reserved (0)
// A value read back is verified in full (magic, version, fingerprint, sequence hash, length, checksum);
// any difference is DataLoss for that block: a miss, never wrong bytes.
//
// Completion. Each call returns a RemoteOp at once; the store's own threads do the network work. A caller
// that must not wait long (an engine thread) uses result_by(deadline), which returns by the deadline with
// the blocks not yet answered marked DeadlineExceeded. The op owns everything it reads and writes (values
// to put, values fetched), so abandoning it at a deadline is always safe.
//
// Per-block outcome codes: OK (stored / found and verified / exists), NotFound (a miss), DataLoss (value
// damaged or not this block's), Unavailable (the node holding it is down or marked slow),
// DeadlineExceeded (not answered in time), Cancelled (store shutting down).
//
// Thread-safety: every method of RemoteStore and RemoteOp is thread-safe.
#pragma once

#include <absl/status/status.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/core/model_config.h"
#include "kvbm/core/mutex.h"
#include "kvbm/core/types.h"

namespace kvbm {

// ---- keys and values ----

inline constexpr std::uint16_t kRemoteFormatVersion = 1;
inline constexpr std::size_t kRemoteHeaderBytes = 64;

// Stable u64 of the model geometry and the value byte order (canonical, format version 1).
[[nodiscard]] std::uint64_t model_fingerprint(const ModelConfig& model);

// "<ns>:<fingerprint hex>:<sequence hash hex>".
[[nodiscard]] std::string remote_block_key(std::string_view ns, std::uint64_t fingerprint, SequenceHash hash);

// Who a value says it is.
struct RemoteBlockInfo {
  SequenceHash sequence_hash;
  BlockHash block_hash;
  std::optional<SequenceHash> parent;
};

// One block to put: the header and payload in one owned buffer (what is sent as the value).
class RemoteValue {
 public:
  // A value of `payload_bytes` payload bytes for `info`; fill payload(), then seal().
  RemoteValue(const RemoteBlockInfo& info, std::uint64_t fingerprint, std::size_t payload_bytes);
  [[nodiscard]] std::span<std::byte> payload();
  // Writes the checksum over header and payload. REQUIRES: payload() is filled.
  void seal();
  [[nodiscard]] const RemoteBlockInfo& info() const { return info_; }
  [[nodiscard]] std::string_view bytes() const { return bytes_; }

 private:
  RemoteBlockInfo info_;
  std::string bytes_;
};

// Verifies a value read back for `expected` (sequence hash, fingerprint, payload length). On success the
// header's identity and the payload (a view into `value`); DataLoss naming what differed otherwise.
struct DecodedValue {
  RemoteBlockInfo info;
  std::span<const std::byte> payload;
};
[[nodiscard]] absl::Status decode_remote_value(std::string_view value, SequenceHash expected, std::uint64_t fingerprint,
                                               std::size_t payload_bytes, DecodedValue* out);

// Which of `buckets` nodes holds `key` (Lamping & Veach jump consistent hash): growing from n to n + 1
// nodes moves about 1 / (n + 1) of the keys, all to the new node. REQUIRES: buckets ≥ 1.
[[nodiscard]] std::uint32_t jump_consistent_hash(std::uint64_t key, std::uint32_t buckets);

// ---- results ----

// A fetched block: its status, and when OK the verified identity and payload (owned by `owner`).
struct RemoteFetched {
  RemoteBlockInfo info;
  std::span<const std::byte> payload;
  std::shared_ptr<const void> owner;
};

struct RemoteResult {
  std::vector<absl::Status> blocks;    // one per key, in order (codes: see the top of this file)
  std::vector<RemoteFetched> fetched;  // get only: one per key, meaningful where blocks[i] is OK
  // The number of leading keys whose status is OK.
  [[nodiscard]] std::size_t ok_prefix() const;
};

// One batched call in flight. Workers complete parts of it; it is done when every part is.
class RemoteOp {
 public:
  RemoteOp(std::size_t num_keys, bool fetch);
  RemoteOp(const RemoteOp&) = delete;
  RemoteOp& operator=(const RemoteOp&) = delete;

  [[nodiscard]] bool done() const;
  // Blocks until every part is answered (each part is bounded by the store's I/O timeout).
  [[nodiscard]] RemoteResult wait() const;
  // Waits until done or `deadline`, whichever is first; keys not answered by then are DeadlineExceeded.
  [[nodiscard]] RemoteResult result_by(std::chrono::steady_clock::time_point deadline) const;

  // Used by stores, before the op is handed to any worker: which node serves key `index`, and how many
  // parts must complete before the op is done.
  void assign_node(std::size_t index, std::uint32_t node) { node_[index] = node; }
  [[nodiscard]] std::uint32_t node_of(std::size_t index) const { return node_[index]; }
  [[nodiscard]] std::size_t size() const { return node_.size(); }
  void expect_parts(std::size_t parts);
  // Sets key `index`'s outcome (and fetched value). Thread-safe; each index is set by one part.
  void set(std::size_t index, absl::Status status, RemoteFetched fetched = {});
  // Sets every key of `indices` to `status`.
  void set_all(std::span<const std::size_t> indices, const absl::Status& status);
  void part_done();

 private:
  [[nodiscard]] RemoteResult snapshot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  mutable Mutex mu_;
  mutable std::condition_variable_any cv_;
  std::size_t parts_left_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<absl::Status> status_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> answered_ ABSL_GUARDED_BY(mu_);
  std::vector<RemoteFetched> fetched_ ABSL_GUARDED_BY(mu_);
  std::vector<std::uint32_t> node_;  // written before the op is shared, read-only after
  const bool fetch_;
};

// ---- the store ----

enum class RemoteHealth : std::uint8_t {
  kAvailable,    // every node answers
  kDegraded,     // some nodes are down or slow: their keys are misses
  kUnavailable,  // no node answers: every call is a miss
};
[[nodiscard]] std::string_view remote_health_name(RemoteHealth health);

// Counters, in keys (blocks) unless named bytes. Monotonic. What the store itself saw: a caller's view of
// hits and misses (a key not answered by a deadline is a miss too) is counted by the caller (G4Path).
struct RemoteStats {
  std::uint64_t puts = 0;          // blocks stored
  std::uint64_t put_bytes = 0;     // value bytes sent for them
  std::uint64_t gets = 0;          // keys asked for with get
  std::uint64_t hits = 0;          // get keys found and verified
  std::uint64_t misses = 0;        // get keys the server did not have
  std::uint64_t get_bytes = 0;     // payload bytes of hits
  std::uint64_t exists_keys = 0;   // keys checked with exists
  std::uint64_t exists_found = 0;  // of those, present
  std::uint64_t corrupt = 0;       // values that failed verification (DataLoss: a miss for the caller)
  std::uint64_t errors = 0;        // error replies and failed puts
  std::uint64_t unavailable = 0;   // keys refused or failed because their node was down or marked slow
  std::uint64_t timeouts = 0;      // keys a caller stopped waiting for at its deadline
  std::uint64_t disconnects = 0;   // connections dropped (I/O error, EOF, I/O timeout)
  std::uint64_t reconnects = 0;    // connections established (the first ones included)
};

class RemoteStore {
 public:
  virtual ~RemoteStore() = default;
  [[nodiscard]] virtual std::uint64_t fingerprint() const = 0;
  [[nodiscard]] virtual std::size_t payload_bytes() const = 0;
  // Stores every value (overwriting). Background work: not bounded by a deadline, but by the I/O timeout.
  [[nodiscard]] virtual std::shared_ptr<RemoteOp> put(std::vector<RemoteValue> values) = 0;
  // Fetches and verifies the blocks of `hashes`.
  [[nodiscard]] virtual std::shared_ptr<RemoteOp> get(std::span<const SequenceHash> hashes) = 0;
  // OK / NotFound per key, without moving values.
  [[nodiscard]] virtual std::shared_ptr<RemoteOp> exists(std::span<const SequenceHash> hashes) = 0;
  // The caller gave up on `op` at a deadline: the nodes it waited on are marked slow (their keys fail fast
  // as Unavailable) until they answer again. Counts the unanswered keys as timeouts.
  virtual void report_deadline_missed(const RemoteOp& op, const RemoteResult& result) = 0;
  [[nodiscard]] virtual RemoteHealth health() const = 0;
  [[nodiscard]] virtual RemoteStats stats() const = 0;
  // Stops the workers; pending calls complete as Cancelled. Idempotent; the destructor calls it.
  virtual void shutdown() = 0;
};

}  // namespace kvbm
