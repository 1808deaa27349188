// cpp-httplib throws and starts threads: it stays in this file, behind Router::Http, and no exception
// leaves a handler (every error is a JSON body with a 4xx status).
#include "kvbm/router/router.h"

#include <absl/container/flat_hash_set.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/str_split.h>
#include <httplib.h>
#include <simdjson.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <variant>

#include "kvbm/core/hashing.h"
#include "kvbm/core/json_escape.h"
#include "kvbm/events/zmq_subscriber.h"
#include "kvbm/metrics/metrics.h"

namespace kvbm::router {
namespace {

// A query longer than this is refused: it would only cost the router memory and time.
constexpr std::size_t kMaxQueryBlocks = 1u << 20;
constexpr std::size_t kMaxQueryTokens = std::size_t{1} << 26;

absl::Status bad_worker(absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--worker: expected NAME=ENDPOINT[,REPLAY_ENDPOINT] (e.g. w0=tcp://127.0.0.1:5557), ", why,
                   ", got '", value, "'"));
}

}  // namespace

absl::StatusOr<WorkerSpec> parse_worker_flag(std::string_view value_in) {
  const absl::string_view value(value_in.data(), value_in.size());
  const std::size_t eq = value.find('=');
  if (eq == absl::string_view::npos || eq == 0) return bad_worker(value, "NAME is missing");
  WorkerSpec spec;
  spec.name = std::string(value.substr(0, eq));
  if (spec.name.find_first_of(" \t\",") != std::string::npos)
    return bad_worker(value, "NAME has a space, quote or comma");
  std::vector<std::string> parts = absl::StrSplit(value.substr(eq + 1), ',');
  if (parts.size() > 2 || parts[0].empty() || (parts.size() == 2 && parts[1].empty())) {
    return bad_worker(value, "ENDPOINT is missing or there are more than two endpoints");
  }
  for (const std::string& p : parts) {
    if (!p.starts_with("tcp://") && !p.starts_with("ipc://") && !p.starts_with("inproc://")) {
      return bad_worker(value, absl::StrCat("endpoint '", p, "' is not tcp://, ipc:// or inproc://"));
    }
  }
  spec.endpoint = parts[0];
  if (parts.size() == 2) spec.replay_endpoint = parts[1];
  return spec;
}

absl::StatusOr<std::pair<std::string, std::uint16_t>> parse_listen_flag(std::string_view value_in) {
  const absl::string_view value(value_in.data(), value_in.size());
  const std::size_t colon = value.rfind(':');
  std::uint32_t port = 0;
  if (colon == absl::string_view::npos || colon == 0 || !absl::SimpleAtoi(value.substr(colon + 1), &port) ||
      port > 65535 || value.substr(colon + 1).find_first_not_of("0123456789") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: expected HOST:PORT with PORT in [0, 65535] (0 = any free port), got '", value, "'"));
  }
  return std::make_pair(std::string(value.substr(0, colon)), static_cast<std::uint16_t>(port));
}

absl::StatusOr<std::array<double, kNumCacheLevels>> parse_weights_flag(std::string_view value_in) {
  const absl::string_view value(value_in.data(), value_in.size());
  std::vector<absl::string_view> parts = absl::StrSplit(value, ',');
  std::array<double, kNumCacheLevels> w{};
  bool ok = parts.size() == kNumCacheLevels;
  for (std::size_t i = 0; ok && i < parts.size(); ++i) {
    ok = absl::SimpleAtod(parts[i], &w[i]) && w[i] >= 0 && w[i] <= 1e9;
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--weights: expected GPU,CPU,DISK,REMOTE: four numbers in [0, 1e9] (default 1,0.5,0.25,0.1), got '", value,
        "'"));
  }
  return w;
}

MatchAnswer score_matches(std::span<const WorkerMatch> matches, std::span<const std::string> names,
                          const std::array<double, kNumCacheLevels>& weights) {
  MatchAnswer out;
  out.workers.resize(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) out.workers[i].name = names[i];
  const double min_weight = *std::min_element(weights.begin(), weights.end());
  for (const WorkerMatch& m : matches) {
    if (m.worker.value() >= names.size()) continue;
    ScoredWorker& w = out.workers[m.worker.value()];
    w.matched_blocks = m.matched_blocks;
    w.matched_on = m.matched_on;
    // Block i counts the best weight among the media holding the whole prefix 0..i; the blocks past every
    // such prefix (held, but across media) count the smallest weight.
    std::array<int, kNumCacheLevels> order{0, 1, 2, 3};
    std::sort(order.begin(), order.end(), [&](int a, int b) { return weights[a] > weights[b]; });
    std::uint32_t counted = 0;
    for (int l : order) {
      const std::uint32_t upto = std::min(m.matched_on[l], m.matched_blocks);
      if (upto > counted) {
        w.score += weights[l] * (upto - counted);
        counted = upto;
      }
    }
    w.score += min_weight * (m.matched_blocks - counted);
  }
  for (std::size_t i = 0; i < out.workers.size(); ++i) {
    const ScoredWorker& w = out.workers[i];
    if (w.matched_blocks == 0) continue;
    if (!out.best) {
      out.best = i;
      continue;
    }
    const ScoredWorker& b = out.workers[*out.best];
    if (w.score > b.score || (w.score == b.score && w.matched_blocks > b.matched_blocks)) out.best = i;
  }
  return out;
}

std::string match_answer_json(const MatchAnswer& answer) {
  std::string out = "{\"workers\":[";
  for (std::size_t i = 0; i < answer.workers.size(); ++i) {
    const ScoredWorker& w = answer.workers[i];
    if (i > 0) out += ",";
    absl::StrAppend(&out, "{\"name\":", json_string(w.name), ",\"matched_blocks\":", w.matched_blocks,
                    ",\"by_medium\":{");
    for (int l = 0; l < kNumCacheLevels; ++l) {
      absl::StrAppend(&out, l > 0 ? "," : "", "\"", std::string(cache_level_medium(static_cast<CacheLevel>(l))),
                      "\":", w.matched_on[l]);
    }
    absl::StrAppend(&out, "},\"score\":", absl::StrFormat("%.17g", w.score), "}");
  }
  out += "],\"best\":";
  out += answer.best ? json_string(answer.workers[*answer.best].name) : "null";
  out += "}";
  return out;
}

absl::StatusOr<std::vector<std::uint64_t>> parse_match_request(std::string_view body) {
  simdjson::ondemand::parser parser;
  simdjson::padded_string padded(body);
  simdjson::ondemand::document doc;
  simdjson::ondemand::object obj;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS || doc.get_object().get(obj) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("match request: the body must be a JSON object");
  }
  std::optional<std::vector<std::uint64_t>> hashes;
  std::optional<std::vector<std::uint32_t>> tokens;
  std::optional<std::uint64_t> block_size;
  std::string salt;
  for (auto field : obj) {
    std::string_view key_view;
    if (field.unescaped_key().get(key_view) != simdjson::SUCCESS) {
      return absl::InvalidArgumentError("match request: malformed JSON");
    }
    const std::string key(key_view);
    if (key == "block_hashes" || key == "tokens") {
      simdjson::ondemand::array arr;
      if (field.value().get_array().get(arr) != simdjson::SUCCESS) {
        return absl::InvalidArgumentError(absl::StrCat("match request: \"", key, "\" must be an array"));
      }
      std::vector<std::uint64_t> values;
      const std::size_t limit = key == "tokens" ? kMaxQueryTokens : kMaxQueryBlocks;
      for (auto v : arr) {
        std::uint64_t x = 0;
        if (v.get_uint64().get(x) != simdjson::SUCCESS ||
            (key == "tokens" && x > std::numeric_limits<std::uint32_t>::max())) {
          return absl::InvalidArgumentError(absl::StrCat(
              "match request: \"", key, "\" entries must be integers in [0, ", key == "tokens" ? "2^32" : "2^64", ")"));
        }
        if (values.size() == limit) {
          return absl::InvalidArgumentError(
              absl::StrCat("match request: \"", key, "\" has more than ", limit, " entries"));
        }
        values.push_back(x);
      }
      if (key == "block_hashes") {
        hashes = std::move(values);
      } else {
        tokens.emplace(values.begin(), values.end());
      }
    } else if (key == "block_size") {
      std::uint64_t b = 0;
      if (field.value().get_uint64().get(b) != simdjson::SUCCESS || b == 0 || b > 65536) {
        return absl::InvalidArgumentError("match request: \"block_size\" must be an integer in [1, 65536]");
      }
      block_size = b;
    } else if (key == "salt") {
      std::string_view s;
      if (field.value().get_string().get(s) != simdjson::SUCCESS) {
        return absl::InvalidArgumentError("match request: \"salt\" must be a string");
      }
      salt = std::string(s);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("match request: unknown field \"", key,
                                                     "\", expected block_hashes, or tokens + block_size [+ salt]"));
    }
  }
  if (hashes.has_value() == tokens.has_value()) {
    return absl::InvalidArgumentError("match request: give exactly one of \"block_hashes\" or \"tokens\"");
  }
  if (hashes) return *std::move(hashes);
  if (!block_size) return absl::InvalidArgumentError("match request: \"tokens\" needs \"block_size\"");
  const std::size_t n = tokens->size() / *block_size;
  std::vector<BlockHash> blocks(n);
  std::vector<SequenceHash> seqs(n);
  if (n > 0) {
    hash_blocks(*tokens, static_cast<std::uint32_t>(*block_size), compute_salt_hash(salt), std::nullopt, blocks.data(),
                seqs.data());
  }
  std::vector<std::uint64_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = seqs[i].value();
  return out;
}

class Router::Http {
 public:
  explicit Http(Router* router) {
    server_.new_task_queue = [] { return new httplib::ThreadPool(4); };
    // No SO_REUSEPORT (httplib's default): a port in use must be an error, as in MetricsServer.
    server_.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    server_.set_tcp_nodelay(true);  // answers are one small write: no Nagle delay behind the last ACK
    server_.set_read_timeout(5, 0);
    server_.set_write_timeout(5, 0);
    server_.Post("/v1/match", [router](const httplib::Request& req, httplib::Response& res) {
      auto hashes = parse_match_request(req.body);
      if (!hashes.ok()) {
        res.status = 400;
        res.set_content(absl::StrCat("{\"error\":", json_string(std::string(hashes.status().message())), "}"),
                        "application/json");
        return;
      }
      res.set_content(match_answer_json(router->match(*hashes)), "application/json");
    });
    server_.Get("/v1/workers", [router](const httplib::Request&, httplib::Response& res) {
      res.set_content(router->workers_json(), "application/json");
    });
    server_.Get("/metrics", [router](const httplib::Request&, httplib::Response& res) {
      res.set_content(router->metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
  }
  ~Http() { stop(); }

  absl::Status listen(const std::string& host, std::uint16_t port) {
    errno = 0;
    const int bound = port == 0 ? server_.bind_to_any_port(host) : (server_.bind_to_port(host, port) ? port : -1);
    if (bound <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--listen: cannot listen on ", host, ":", port, ": ",
                                                     std::strerror(errno != 0 ? errno : EADDRNOTAVAIL)));
    }
    port_ = static_cast<std::uint16_t>(bound);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::microseconds(100));
    return absl::OkStatus();
  }

  void stop() {
    if (!thread_.joinable()) return;
    server_.stop();
    thread_.join();
  }

  std::uint16_t port() const { return port_; }

 private:
  httplib::Server server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

Router::Router(RouterOptions options) : options_(std::move(options)), state_(options_.workers.size()) {
  for (const WorkerSpec& w : options_.workers) names_.push_back(w.name);
}

absl::StatusOr<std::unique_ptr<Router>> Router::start(RouterOptions options) {
  if (options.workers.empty()) return absl::InvalidArgumentError("--worker: at least one worker is required");
  absl::flat_hash_set<std::string> seen;
  for (const WorkerSpec& w : options.workers) {
    if (!seen.insert(w.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("--worker: the name '", w.name, "' is given twice"));
    }
  }
  std::unique_ptr<Router> router(new Router(std::move(options)));
  std::vector<std::unique_ptr<ZmqSubscriber>> subs;
  for (const WorkerSpec& w : router->options_.workers) {
    ZmqSubscriberOptions o;
    o.endpoint = w.endpoint;
    o.topic = router->options_.topic;
    o.replay_endpoint = w.replay_endpoint;
    // With a replay socket, everything the worker still buffers from its first batch on is fetched.
    if (w.replay_endpoint) o.start_seq = 0;
    o.clear_on_loss = true;  // what a lost batch said is unknown: forget the worker there, rebuild after
    auto sub = ZmqSubscriber::create(o);
    if (!sub.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--worker ", w.name, ": ", sub.status().message()));
    }
    subs.push_back(*std::move(sub));
  }
  router->http_ = std::make_unique<Http>(router.get());
  if (absl::Status s = router->http_->listen(router->options_.host, router->options_.port); !s.ok()) return s;
  MutexLock lock(&router->stop_mu_);
  for (std::size_t i = 0; i < subs.size(); ++i) {
    router->threads_.emplace_back([r = router.get(), i, sub = std::shared_ptr<ZmqSubscriber>(std::move(subs[i]))] {
      r->subscribe_loop_with(i, *sub);
    });
  }
  return router;
}

void Router::subscribe_loop_with(std::size_t worker, ZmqSubscriber& sub) {
  const WorkerId id{worker};
  while (!stopping_.load()) {
    // Lost batches and publisher restarts come as AllBlocksCleared batches (clear_on_loss), in stream order.
    auto got = sub.next(std::chrono::milliseconds(50));
    {
      MutexLock lock(&state_mu_);
      state_[worker].lost = sub.stats().lost;
    }
    if (!got.ok()) {
      // A batch that cannot be decoded is a lost batch too: forget the worker here and rebuild.
      indexer_.remove_worker(id);
      MutexLock lock(&state_mu_);
      ++state_[worker].decode_errors;
      ++state_[worker].resyncs;
      continue;
    }
    if (!got->has_value()) continue;
    const auto& [seq, batch] = **got;
    // Unknown media are counted by the indexer (events_rejected); the rest of the batch applies.
    (void)indexer_.apply(id, batch);
    std::uint64_t cleared = 0;
    for (const KvEvent& e : batch.events) cleared += std::holds_alternative<AllBlocksClearedEvent>(e) ? 1 : 0;
    MutexLock lock(&state_mu_);
    WorkerState& s = state_[worker];
    ++s.batches;
    s.events += batch.events.size();
    s.last_seq = seq;
    s.resyncs += cleared;
  }
}

Router::~Router() { stop(); }

void Router::stop() {
  if (http_) http_->stop();
  stopping_.store(true);
  MutexLock lock(&stop_mu_);
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

std::uint16_t Router::port() const { return http_->port(); }

MatchAnswer Router::match(std::span<const std::uint64_t> sequence_hashes) const {
  queries_.fetch_add(1, std::memory_order_relaxed);
  const std::vector<WorkerMatch> matches = indexer_.find_matches(sequence_hashes);
  return score_matches(matches, names_, options_.weights);
}

std::string Router::workers_json() const {
  std::string out = "{\"workers\":[";
  MutexLock lock(&state_mu_);
  for (std::size_t i = 0; i < state_.size(); ++i) {
    const WorkerState& s = state_[i];
    const WorkerSpec& w = options_.workers[i];
    absl::StrAppend(&out, i > 0 ? "," : "", "{\"name\":", json_string(w.name),
                    ",\"endpoint\":", json_string(w.endpoint), ",\"batches\":", s.batches, ",\"events\":", s.events,
                    ",\"last_seq\":", s.last_seq ? absl::StrCat(*s.last_seq) : std::string("null"),
                    ",\"resyncs\":", s.resyncs, ",\"lost\":", s.lost, ",\"decode_errors\":", s.decode_errors, "}");
  }
  out += "]}";
  return out;
}

std::string Router::metrics_text() const {
  metrics::Exposition e;
  const KvIndexerStats st = indexer_.stats();
  e.counter("kvbm_router_queries_total", "Match queries answered", {}, static_cast<double>(queries_.load()));
  e.gauge("kvbm_router_index_hashes", "Distinct block hashes held by some worker", {}, static_cast<double>(st.hashes));
  e.gauge("kvbm_router_index_entries", "(hash, worker) pairs in the index", {}, static_cast<double>(st.entries));
  e.counter("kvbm_router_events_rejected_total", "Events with an unknown medium", {},
            static_cast<double>(st.events_rejected));
  MutexLock lock(&state_mu_);
  for (std::size_t i = 0; i < state_.size(); ++i) {
    const metrics::Labels labels{{"worker", options_.workers[i].name}};
    const WorkerState& s = state_[i];
    e.counter("kvbm_router_batches_total", "Event batches applied, per worker", labels, static_cast<double>(s.batches));
    e.counter("kvbm_router_events_total", "Events applied, per worker", labels, static_cast<double>(s.events));
    e.counter("kvbm_router_resyncs_total", "Re-synchronisations (AllBlocksCleared or an unrecoverable gap)", labels,
              static_cast<double>(s.resyncs));
    e.counter("kvbm_router_lost_batches_total", "Batches neither received nor replayed", labels,
              static_cast<double>(s.lost));
    e.counter("kvbm_router_decode_errors_total", "Batches that failed to decode", labels,
              static_cast<double>(s.decode_errors));
  }
  return e.text();
}

}  // namespace kvbm::router
