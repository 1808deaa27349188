// Router: the standalone KV-aware router behind `kvbm router` (docs/router.md).
//
// It subscribes to N workers' ZMQ event streams (one ZmqSubscriber each, recovering sequence gaps through
// the worker's replay socket), applies every batch to one KvIndexer, and answers HTTP queries:
//   POST /v1/match   {"block_hashes": [...]} or {"tokens": [...], "block_size": N[, "salt": S]}
//                    → {"workers": [{"name", "matched_blocks", "by_medium": {...}, "score"}], "best": NAME|null}
//   GET  /v1/workers every worker's stream state (batches, last sequence number, resyncs, lost)
//   GET  /metrics    the same as Prometheus text
//
// Re-synchronisation: a worker that restarts publishes AllBlocksCleared, which drops what the index holds
// for it (KvIndexer); a gap its replay socket cannot fill (lost batches) drops it too, since the router can
// no longer know what the worker holds — it is rebuilt from the events that follow; so does a restarted
// publisher on the worker's endpoint. The subscriber delivers the last two as AllBlocksCleared at their place
// in the stream (ZmqSubscriberOptions::clear_on_loss, restart detection). Each counts as a resync.
//
// Score (tier weights): a matched block counts the weight of the best medium on which the whole prefix up to
// it is held (matched_on, KvIndexer), or the smallest weight when the prefix is held only across media. The
// best worker has the highest score; ties go to more matched blocks, then to the worker named first.
//
// Thread-safety: one subscriber thread per worker and httplib's pool answer queries concurrently; the index
// and the per-worker state each have their own lock. stop() joins every thread.
#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kvbm/core/mutex.h"
#include "kvbm/core/types.h"
#include "kvbm/events/kv_indexer.h"

namespace kvbm {
class ZmqSubscriber;
}

namespace kvbm::router {

struct WorkerSpec {
  std::string name;
  std::string endpoint;                        // the worker's ZMQ PUB endpoint
  std::optional<std::string> replay_endpoint;  // its ROUTER replay socket; none = gaps are lost (resync)
};

// Parses --worker NAME=ENDPOINT[,REPLAY_ENDPOINT]. InvalidArgument naming --worker and the expected form.
[[nodiscard]] absl::StatusOr<WorkerSpec> parse_worker_flag(std::string_view value);
// Parses --listen HOST:PORT (PORT 0..65535; 0 = any free port). InvalidArgument naming --listen.
[[nodiscard]] absl::StatusOr<std::pair<std::string, std::uint16_t>> parse_listen_flag(std::string_view value);
// Parses --weights GPU,CPU,DISK,REMOTE (four numbers >= 0). InvalidArgument naming --weights.
[[nodiscard]] absl::StatusOr<std::array<double, kNumCacheLevels>> parse_weights_flag(std::string_view value);

inline constexpr std::array<double, kNumCacheLevels> kDefaultWeights{1.0, 0.5, 0.25, 0.1};

struct RouterOptions {
  std::vector<WorkerSpec> workers;  // names unique, at least one
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::array<double, kNumCacheLevels> weights = kDefaultWeights;  // per medium, indexed by CacheLevel
  std::string topic;                                              // subscription prefix
};

struct ScoredWorker {
  std::string_view name;
  std::uint32_t matched_blocks = 0;
  std::array<std::uint32_t, kNumCacheLevels> matched_on{};
  double score = 0;
};

struct MatchAnswer {
  std::vector<ScoredWorker> workers;  // every worker, in the order given
  std::optional<std::size_t> best;    // index into workers; none when no worker matches a block
};

// Scores KvIndexer matches (worker id = index into `names`). Every worker appears, in `names` order.
[[nodiscard]] MatchAnswer score_matches(std::span<const WorkerMatch> matches, std::span<const std::string> names,
                                        const std::array<double, kNumCacheLevels>& weights);

// The answer as JSON (the body of POST /v1/match).
[[nodiscard]] std::string match_answer_json(const MatchAnswer& answer);

// A /v1/match request body → the sequence hashes to look up. InvalidArgument naming the field.
[[nodiscard]] absl::StatusOr<std::vector<std::uint64_t>> parse_match_request(std::string_view body);

class Router {
 public:
  // Checks the options, connects every subscriber and listens. InvalidArgument naming --worker, --listen or
  // --weights for a bad option (a port in use included).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Router>> start(RouterOptions options);
  ~Router();  // stop()
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  [[nodiscard]] MatchAnswer match(std::span<const std::uint64_t> sequence_hashes) const;
  [[nodiscard]] std::string workers_json() const;
  [[nodiscard]] std::string metrics_text() const;
  // The index the subscribers feed. Exposed so that a program embedding the router (or `kvbm bench router`)
  // can apply events of its own; worker ids are indexes into the --worker list.
  [[nodiscard]] KvIndexer& indexer() { return indexer_; }
  // Stops the HTTP server and the subscribers and joins their threads. Idempotent.
  void stop();

  class Http;  // httplib, private to router.cc

 private:
  struct WorkerState {
    std::uint64_t batches = 0;
    std::uint64_t events = 0;
    std::optional<std::uint64_t> last_seq;
    std::uint64_t resyncs = 0;
    std::uint64_t lost = 0;
    std::uint64_t decode_errors = 0;
  };
  explicit Router(RouterOptions options);
  void subscribe_loop_with(std::size_t worker, ZmqSubscriber& sub);

  RouterOptions options_;
  std::vector<std::string> names_;
  KvIndexer indexer_;
  mutable Mutex state_mu_;
  std::vector<WorkerState> state_ ABSL_GUARDED_BY(state_mu_);
  mutable std::atomic<std::uint64_t> queries_{0};
  std::atomic<bool> stopping_{false};
  std::unique_ptr<Http> http_;
  Mutex stop_mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(stop_mu_);
};

}  // namespace kvbm::router
