// `kvbm router`: the standalone KV-aware router (kvbm/router/router.h, docs/router.md).
//
//   kvbm router --worker NAME=ENDPOINT[,REPLAY] ... [--listen HOST:PORT] [--weights GPU,CPU,DISK,REMOTE]
//               [--topic T] [--duration-s S]
//
// Prints "router listening on HOST:PORT" once it serves, then runs until SIGINT/SIGTERM (or --duration-s).
#include <absl/strings/str_cat.h>

#include <csignal>
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

}  // namespace

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
