// RedisStore: RemoteStore on one or more Redis servers (hiredis), issue 7/8.
//
// Placement. A key's node is jump_consistent_hash(sequence hash ⊕ fingerprint, nodes): adding a node moves
// about 1/(n+1) of the keys. Eviction is Redis' own (maxmemory-policy); values may carry a TTL.
//
// Connections. Each node has two lanes, each one thread with one blocking hiredis connection:
//   foreground  exists and get — what engine-facing calls wait on
//   background  put — write-through traffic, so a long put never delays a lookup
// A batch goes out as one pipeline (every command written, then every reply read). hiredis connects, PINGs
// and runs EXISTS; SETs are written with writev straight from the values and GET replies are read straight
// off the socket into the buffers handed out (one copy each way instead of hiredis' two). Socket reads and
// writes time out after io_timeout_ms without progress.
//
// Health, per lane (a node is usable when its foreground lane is Up):
//   Connecting ──connect + PING ok──▶ Up ──I/O error, EOF, timeout──▶ Down ──backoff──▶ Connecting
//   Up ──a caller's deadline passed while waiting on it──▶ Slow ──the pending reply arrives──▶ Up
//                                                           Slow ──I/O timeout──▶ Down
// Calls routed to a lane that is Down or Slow fail at once with Unavailable (counted), so a dead or
// stopped Redis costs an engine thread at most one deadline, then nothing. A Down lane reconnects by
// itself with exponential backoff (50 ms doubling to 1 s), checking each new connection with PING, so a
// node that comes back is used again without any call. Calls queued on a lane when it goes Down fail
// with Unavailable. The queue of a lane is bounded (256 batches); beyond it calls fail Unavailable.
//
// Thread-safety: all methods are thread-safe. Threads: 2 per node, joined by shutdown()/destructor.
// SIGPIPE is blocked in those threads (a write to a dead server is an error, not a signal).
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>
#include <vector>

#include "kvbm/remote/remote_config.h"
#include "kvbm/remote/remote_store.h"

namespace kvbm {

class RedisStore final : public RemoteStore {
 public:
  struct Options {
    std::vector<RemoteEndpoint> endpoints;  // ≥ 1
    std::string key_namespace = "kvbm";
    std::uint64_t fingerprint = 0;  // model_fingerprint(model)
    std::size_t payload_bytes = 0;  // bytes per block (> 0)
    std::uint32_t ttl_seconds = 0;
    std::uint32_t connect_timeout_ms = 200;
    std::uint32_t io_timeout_ms = 500;
    std::uint32_t max_batch_blocks = 64;  // keys per pipeline
  };
  // Starts the lanes; they connect in the background (a server that is down is not an error here: the
  // store starts Unavailable and connects when it can). InvalidArgument for bad options.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RedisStore>> create(Options options);
  // From a G4Config: endpoints parsed, timeouts and batch size taken over.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RedisStore>> create(const G4Config& config,
                                                                          std::uint64_t fingerprint,
                                                                          std::size_t payload_bytes);
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  std::uint64_t fingerprint() const override { return options_.fingerprint; }
  std::size_t payload_bytes() const override { return options_.payload_bytes; }
  std::shared_ptr<RemoteOp> put(std::vector<RemoteValue> values) override;
  std::shared_ptr<RemoteOp> get(std::span<const SequenceHash> hashes) override;
  std::shared_ptr<RemoteOp> exists(std::span<const SequenceHash> hashes) override;
  void report_deadline_missed(const RemoteOp& op, const RemoteResult& result) override;
  RemoteHealth health() const override;
  RemoteStats stats() const override;
  void shutdown() override;

  // The node (index into endpoints) that holds `hash`.
  [[nodiscard]] std::uint32_t node_of(SequenceHash hash) const;
  [[nodiscard]] std::string key_of(SequenceHash hash) const;
  // Whether node `node`'s foreground lane is Up.
  [[nodiscard]] bool node_up(std::uint32_t node) const;
  [[nodiscard]] std::size_t num_nodes() const { return options_.endpoints.size(); }

  class Lane;  // one connection and its thread (redis_store.cc)
  struct Job;  // one pipeline of keys on one node

 private:
  explicit RedisStore(Options options);
  // Queues each job on its node's lane; a lane that refuses fails the job's keys with Unavailable.
  void dispatch(std::vector<Job>& jobs, const std::vector<std::uint32_t>& job_node, bool background);
  struct Counters;
  Options options_;
  std::unique_ptr<Counters> counters_;
  std::vector<std::unique_ptr<Lane>> foreground_;  // one per node
  std::vector<std::unique_ptr<Lane>> background_;  // one per node
};

}  // namespace kvbm
