// `kvbm router`: the standalone KV-aware router (kvbm/router/router.h, docs/router.md).
//
//   kvbm router --worker NAME=ENDPOINT[,REPLAY] ... [--listen HOST:PORT] [--weights GPU,CPU,DISK,REMOTE]
//               [--topic T] [--duration-s S]
//
// Prints "router listening on HOST:PORT" once it serves, then runs until SIGINT/SIGTERM (or --duration-s).
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <httplib.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kvbm/router/router.h"
#include "tools/commands.h"

namespace kvbm::tools {
namespace {

struct RouterArgs {
  std::vector<std::string> workers;
  std::string listen = "127.0.0.1:8090";
  std::string weights;
  std::string topic;
  std::uint64_t duration_s = 0;
};

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }

int run_router(const RouterArgs& args) {
  router::RouterOptions options;
  auto fail = [](const absl::Status& s) {
    std::cerr << "kvbm router: " << s.message() << "\n";
    return exit_code_for(s);
  };
  for (const std::string& w : args.workers) {
    auto spec = router::parse_worker_flag(w);
    if (!spec.ok()) return fail(spec.status());
    options.workers.push_back(*std::move(spec));
  }
  auto listen = router::parse_listen_flag(args.listen);
  if (!listen.ok()) return fail(listen.status());
  options.host = listen->first;
  options.port = listen->second;
  if (!args.weights.empty()) {
    auto w = router::parse_weights_flag(args.weights);
    if (!w.ok()) return fail(w.status());
    options.weights = *w;
  }
  options.topic = args.topic;
  auto r = router::Router::start(std::move(options));
  if (!r.ok()) return fail(r.status());
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::cout << "router listening on " << listen->first << ":" << (*r)->port() << std::endl;
  const auto start = std::chrono::steady_clock::now();
  while (g_stop == 0 &&
         (args.duration_s == 0 || std::chrono::steady_clock::now() - start < std::chrono::seconds(args.duration_s))) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  (*r)->stop();
  return 0;
}

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

}  // namespace

// Workers hold chains of a shared pool of documents (each document a chain of kChain sequence hashes, as
// a shared prompt would be): worker w holds blocks_per_worker / kChain documents, on GPU or CPU alternately.
// Each query is the first query_blocks hashes of a random document. Three figures, same index, same queries:
// KvIndexer::find_matches in-process; the router's matcher (find_matches + tier-weighted scoring + the JSON
// answer); and POST /v1/match over loopback HTTP, one client, keep-alive.
int run_router_bench(const RouterBenchArgs& args) {
  constexpr std::uint64_t kChain = 500;
  const std::uint64_t docs_per_worker = std::max<std::uint64_t>(1, args.blocks_per_worker / kChain);
  const std::uint64_t documents = std::max<std::uint64_t>(docs_per_worker, args.workers * docs_per_worker / 10);
  router::RouterOptions options;
  for (std::uint64_t w = 0; w < args.workers; ++w) {
    // Endpoints nobody publishes on: the index is filled below, in process.
    options.workers.push_back({absl::StrCat("w", w), "tcp://127.0.0.1:9", std::nullopt});
  }
  auto r = router::Router::start(std::move(options));
  if (!r.ok()) {
    std::cerr << "kvbm bench router: " << r.status().message() << "\n";
    return kExitFailure;
  }
  KvIndexer& index = (*r)->indexer();
  auto doc_hash = [](std::uint64_t doc, std::uint64_t i) { return mix(doc * kChain + i + 1); };
  const auto fill_start = std::chrono::steady_clock::now();
  for (std::uint64_t w = 0; w < args.workers; ++w) {
    EventBatch batch;
    for (std::uint64_t d = 0; d < docs_per_worker; ++d) {
      const std::uint64_t doc = (mix(w) + d) % documents;  // docs_per_worker distinct documents
      BlockStoredEvent e;
      for (std::uint64_t i = 0; i < kChain; ++i) e.block_hashes.push_back(doc_hash(doc, i));
      e.medium = (w + d) % 2 == 0 ? "GPU" : "CPU";
      batch.events.push_back(std::move(e));
    }
    if (absl::Status s = index.apply(WorkerId{w}, batch); !s.ok()) {
      std::cerr << "kvbm bench router: " << s.message() << "\n";
      return kExitFailure;
    }
  }
  const double fill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - fill_start).count();
  std::vector<std::vector<std::uint64_t>> queries(1024);
  for (std::size_t q = 0; q < queries.size(); ++q) {
    const std::uint64_t doc = mix(q + 77) % documents;
    for (std::uint64_t i = 0; i < args.query_blocks; ++i) queries[q].push_back(doc_hash(doc, i % kChain));
  }
  auto rate = [&](auto&& one) {
    std::uint64_t n = 0;
    const auto start = std::chrono::steady_clock::now();
    const auto until = start + std::chrono::duration<double>(args.seconds);
    while (std::chrono::steady_clock::now() < until) {
      for (int k = 0; k < 16; ++k) one(queries[n++ % queries.size()]);
    }
    return static_cast<double>(n) / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::uint64_t sink = 0;
  const double indexer_qps = rate([&](const auto& q) { sink += index.find_matches(q).size(); });
  const double matcher_qps = rate([&](const auto& q) { sink += router::match_answer_json((*r)->match(q)).size(); });
  std::vector<std::string> bodies;
  for (const auto& q : queries) {
    std::string body = "{\"block_hashes\":[";
    for (std::size_t i = 0; i < q.size(); ++i) absl::StrAppend(&body, i > 0 ? "," : "", q[i]);
    bodies.push_back(body + "]}");
  }
  httplib::Client client("127.0.0.1", (*r)->port());
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  std::uint64_t http_errors = 0;
  std::size_t next_body = 0;
  const double http_qps = rate([&](const auto&) {
    auto res = client.Post("/v1/match", bodies[next_body++ % bodies.size()], "application/json");
    if (!res || res->status != 200) ++http_errors;
  });
  const KvIndexerStats st = index.stats();
  std::cout << absl::StrFormat(
      "router bench: %d workers x %d blocks (%d distinct hashes, %d entries, filled in %.2f s), queries of %d "
      "blocks, %u hw threads\n",
      args.workers, docs_per_worker * kChain, st.hashes, st.entries, fill_s, args.query_blocks,
      std::thread::hardware_concurrency());
  std::cout << absl::StrFormat("  KvIndexer::find_matches, in process:     %10.0f queries/s\n", indexer_qps);
  std::cout << absl::StrFormat("  router matcher (+ scoring + JSON):       %10.0f queries/s  (%.2fx)\n", matcher_qps,
                               matcher_qps / indexer_qps);
  std::cout << absl::StrFormat("  POST /v1/match, loopback HTTP, 1 client: %10.0f queries/s  (%.2fx, %d errors)\n",
                               http_qps, http_qps / indexer_qps, http_errors);
  std::cout << absl::StrFormat("  (check %d)\n", sink % 10);
  (*r)->stop();
  return http_errors == 0 ? 0 : kExitFailure;
}

void add_router_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<RouterArgs>();
  CLI::App* cmd = app.add_subcommand("router", "KV-aware router: subscribe to workers' events, answer /v1/match");
  cmd->add_option("--worker", args->workers,
                  "NAME=ENDPOINT[,REPLAY_ENDPOINT]: a worker's ZMQ event stream and replay socket (repeatable)")
      ->required();
  cmd->add_option("--listen", args->listen, "HOST:PORT of the HTTP API (default 127.0.0.1:8090; port 0 = any)");
  cmd->add_option("--weights", args->weights, "GPU,CPU,DISK,REMOTE score per matched block (default 1,0.5,0.25,0.1)");
  cmd->add_option("--topic", args->topic, "topic prefix to subscribe to (default: all)");
  cmd->add_option("--duration-s", args->duration_s, "stop after this many seconds (default: until SIGINT/SIGTERM)");
  cmd->callback([args, exit_code] { *exit_code = run_router(*args); });
}

}  // namespace kvbm::tools
