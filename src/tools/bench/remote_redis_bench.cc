// `kvbm bench remote`, Redis half: see remote_redis_bench.h.
#include "tools/bench/remote_redis_bench.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <thread>

#include "kvbm/remote/redis_store.h"
#include "support/redis_server.h"  // tests/support: a redis-server child on a free port

extern char** environ;

namespace kvbm::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kInFlight = 4;

// The last "<TEST>: <n> requests per second" in redis-benchmark's -q output (progress lines end in \r).
double parse_rps(const std::string& out, const std::string& test) {
  const std::string tag = test + ": ";
  double rps = 0;
  std::size_t at = 0;
  while ((at = out.find(tag, at)) != std::string::npos) {
    at += tag.size();
    const std::size_t end = out.find(' ', at);
    if (end == std::string::npos) break;
    if (out.compare(end, 20, " requests per second") == 0) {
      double v = 0;
      if (absl::SimpleAtod(out.substr(at, end - at), &v)) rps = v;
    }
  }
  return rps;
}

}  // namespace

absl::StatusOr<RemoteBenchReport> run_remote_redis_bench(const RemoteBenchOptions& options) {
  if (options.block_bytes == 0 || options.batch == 0 || options.blocks == 0) {
    return absl::InvalidArgumentError("--block-bytes, --batch and --blocks must be > 0");
  }
  const auto started = Clock::now();
  RemoteBenchReport report;
  report.block_bytes = options.block_bytes;
  report.batch = options.batch;
  report.blocks = options.blocks;

  testing::RedisServer own;
  RemoteEndpoint endpoint;
  if (options.endpoint.empty()) {
    if (::access(options.redis_server.c_str(), X_OK) != 0) {
      return absl::NotFoundError(absl::StrCat(options.redis_server, " not found"));
    }
    if (!own.start(options.redis_server)) {
      return absl::UnavailableError("could not start redis-server on a free loopback port");
    }
    endpoint = RemoteEndpoint{"127.0.0.1", static_cast<std::uint16_t>(own.port())};
    report.own_server = true;
  } else {
    auto parsed = parse_remote_endpoints(options.endpoint);
    if (!parsed.ok()) return parsed.status();
    if (parsed->size() != 1) return absl::InvalidArgumentError("--endpoint takes one host:port");
    endpoint = parsed->front();
  }
  report.endpoint = absl::StrCat(endpoint.host, ":", endpoint.port);

  RedisStore::Options so;
  so.endpoints = {endpoint};
  so.key_namespace = "kvbm-bench";
  so.fingerprint = 0xBE4C4BE4C4BE4C4Bull;
  so.payload_bytes = options.block_bytes;
  so.connect_timeout_ms = 1000;
  so.io_timeout_ms = 30000;
  so.max_batch_blocks = options.batch;
  auto store = RedisStore::create(so);
  if (!store.ok()) return store.status();
  for (int i = 0; i < 500 && (*store)->health() != RemoteHealth::kAvailable; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if ((*store)->health() != RemoteHealth::kAvailable) {
    return absl::UnavailableError(absl::StrCat("cannot reach redis at ", report.endpoint));
  }

  // Values filled untimed (what a G2 block would hold); sealing (checksum) and sending are timed.
  std::vector<SequenceHash> hashes;
  std::vector<RemoteValue> values;
  std::mt19937_64 rng(7);
  for (std::uint32_t i = 0; i < options.blocks; ++i) {
    const SequenceHash h{rng()};
    hashes.push_back(h);
    values.emplace_back(RemoteBlockInfo{h, BlockHash{i}, std::nullopt}, so.fingerprint, options.block_bytes);
    std::span<std::byte> p = values.back().payload();
    for (std::size_t j = 0; j < p.size(); j += 4096) p[j] = static_cast<std::byte>(rng());
  }

  const auto put_start = Clock::now();
  std::deque<std::shared_ptr<RemoteOp>> ops;
  auto drain = [&](std::size_t keep, bool fetch) -> absl::Status {
    while (ops.size() > keep) {
      const RemoteResult r = ops.front()->wait();
      ops.pop_front();
      for (const absl::Status& s : r.blocks) {
        if (!s.ok()) return absl::InternalError(absl::StrCat(fetch ? "get" : "put", " failed: ", s.message()));
      }
      if (fetch) report.verified += r.blocks.size();
    }
    return absl::OkStatus();
  };
  for (std::uint32_t at = 0; at < options.blocks; at += options.batch) {
    const std::uint32_t end = std::min(options.blocks, at + options.batch);
    std::vector<RemoteValue> batch;
    for (std::uint32_t i = at; i < end; ++i) {
      values[i].seal();
      batch.push_back(std::move(values[i]));
    }
    ops.push_back((*store)->put(std::move(batch)));
    if (absl::Status s = drain(kInFlight, false); !s.ok()) return s;
  }
  if (absl::Status s = drain(0, false); !s.ok()) return s;
  const double put_s = std::chrono::duration<double>(Clock::now() - put_start).count();
  values.clear();

  const auto get_start = Clock::now();
  for (std::uint32_t at = 0; at < options.blocks; at += options.batch) {
    const std::uint32_t end = std::min(options.blocks, at + options.batch);
    ops.push_back((*store)->get(std::span<const SequenceHash>(hashes).subspan(at, end - at)));
    if (absl::Status s = drain(kInFlight, true); !s.ok()) return s;
  }
  if (absl::Status s = drain(0, true); !s.ok()) return s;
  const double get_s = std::chrono::duration<double>(Clock::now() - get_start).count();
  const double payload = static_cast<double>(options.blocks) * static_cast<double>(options.block_bytes);
  report.g4_put_gbps = payload / put_s / 1e9;
  report.g4_get_gbps = payload / get_s / 1e9;
  // Leave the server as found (an external one may be shared).
  (*store)->shutdown();
  {
    timeval tv{5, 0};
    redisContext* c = redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, tv);
    if (c != nullptr && c->err == 0) {
      for (SequenceHash h : hashes) {
        const std::string key = (*store)->key_of(h);
        redisAppendCommand(c, "DEL %b", key.data(), key.size());
      }
      for (std::size_t i = 0; i < hashes.size(); ++i) {
        void* r = nullptr;
        if (redisGetReply(c, &r) != REDIS_OK) break;
        freeReplyObject(r);
      }
    }
    if (c != nullptr) redisFree(c);
  }

  // The baseline, same server, same run.
  if (::access(options.redis_benchmark.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(options.redis_benchmark, " not found"));
  }
  // redis-benchmark's clock has millisecond resolution: a run too short for it reports "inf" requests per
  // second. Then it runs again with ten times the requests (a rate does not depend on the count).
  std::uint64_t requests = options.blocks;
  std::string out;
  int rc = 0;
  for (int attempt = 0; attempt < 4; ++attempt, requests *= 10) {
    report.redis_benchmark_command =
        absl::StrCat(options.redis_benchmark, " -h ", endpoint.host, " -p ", endpoint.port, " -t set,get -d ",
                     options.block_bytes, " -P ", options.batch, " -n ", requests, " -c 1 -q");
    FILE* pipe = ::popen((report.redis_benchmark_command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) return absl::InternalError("popen(redis-benchmark) failed");
    out.clear();
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
    rc = ::pclose(pipe);
    report.redis_set_rps = parse_rps(out, "SET");
    report.redis_get_rps = parse_rps(out, "GET");
    if (rc != 0 || (std::isfinite(report.redis_set_rps) && std::isfinite(report.redis_get_rps))) break;
  }
  if (rc != 0 || !(report.redis_set_rps > 0) || !(report.redis_get_rps > 0) || !std::isfinite(report.redis_set_rps) ||
      !std::isfinite(report.redis_get_rps)) {
    return absl::InternalError(absl::StrCat("redis-benchmark failed (exit ", rc, "): ", out.substr(0, 500)));
  }
  // Its SET of one key is left behind; remove it from a server that may be shared.
  {
    timeval tv{5, 0};
    redisContext* c = redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, tv);
    if (c != nullptr && c->err == 0) {
      void* r = redisCommand(c, "DEL key:__rand_int__");
      if (r != nullptr) freeReplyObject(r);
    }
    if (c != nullptr) redisFree(c);
  }
  report.redis_set_gbps = report.redis_set_rps * static_cast<double>(options.block_bytes) / 1e9;
  report.redis_get_gbps = report.redis_get_rps * static_cast<double>(options.block_bytes) / 1e9;
  report.put_ratio = report.g4_put_gbps / report.redis_set_gbps;
  report.get_ratio = report.g4_get_gbps / report.redis_get_gbps;
  report.wall_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  return report;
}

}  // namespace kvbm::bench
