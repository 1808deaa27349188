// G4Config: the remote tier's settings (keys g4.*, part of KvbmConfig). G4 is off while `endpoints` is
// empty; when on it needs a G2 tier (blocks reach G4 from host memory and come back through it).
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvbm {

struct G4Config {
  std::string endpoints;                   // "host:port,host:port" (Redis); empty = G4 off
  std::string key_namespace = "kvbm";      // first part of every key (key `g4.namespace`)
  std::uint32_t ttl_seconds = 0;           // expiry of stored blocks; 0 = none (Redis' maxmemory evicts)
  std::uint32_t deadline_ms = 20;          // longest an engine-facing call (match, onboard fetch) waits
  std::uint32_t connect_timeout_ms = 200;  // TCP connect + PING bound per attempt
  std::uint32_t io_timeout_ms = 500;       // a read or write without progress this long drops the connection
  std::uint32_t max_batch_blocks = 64;     // blocks per pipelined batch (put and get)
  // Planned capacity, blocks or bytes (one of them): what `kvbm replay --no-data` models G4 as (an LRU pool
  // of identities). With real bytes the Redis servers' memory decides how much G4 holds.
  std::uint64_t num_blocks = 0;
  std::uint64_t bytes = 0;

  [[nodiscard]] bool enabled() const { return !endpoints.empty(); }
  // Every error, each naming its g4.* key and the allowed values.
  [[nodiscard]] std::vector<absl::Status> check() const;
};

struct RemoteEndpoint {
  std::string host;
  std::uint16_t port = 0;
  friend bool operator==(const RemoteEndpoint&, const RemoteEndpoint&) = default;
};

// "host:port,host:port" → endpoints, in order. InvalidArgument naming g4.endpoints and the bad entry.
[[nodiscard]] absl::StatusOr<std::vector<RemoteEndpoint>> parse_remote_endpoints(std::string_view text);

}  // namespace kvbm
