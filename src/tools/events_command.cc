// `kvbm events`: KV cache events in the vLLM wire format (specs/kv-events-wire-format.md).
//
//   kvbm events tail ENDPOINT [--replay ENDPOINT] [--from-seq S] [--topic T] [--count N] [--timeout-ms T]
//       subscribes and prints every decoded event, one line each
//   kvbm events decode FILE
//       decodes one batch's msgpack payload (a file, or - for stdin) and prints its events, or the error
//   kvbm events bench [--events N] [--batch-events K] [--blocks-per-event B] [--block-size S]
//       events/s through EventManager → ZMQ PUB (tcp loopback) → ZmqSubscriber decode
//
// Other subcommands join the group through events_group(app).
#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "kvbm/core/model_config.h"
#include "kvbm/events/event_manager.h"
#include "kvbm/events/msgpack_codec.h"
#include "kvbm/events/zmq_publisher.h"
#include "kvbm/events/zmq_subscriber.h"
#include "tools/commands.h"

namespace kvbm::tools {
namespace {

std::string hex(std::uint64_t v) { return absl::StrFormat("0x%016x", v); }

std::string hash_list(const std::vector<std::uint64_t>& hashes) {
  constexpr std::size_t kShown = 4;
  std::string out = "[";
  for (std::size_t i = 0; i < hashes.size() && i < kShown; ++i) {
    if (i > 0) out += ",";
    out += hex(hashes[i]);
  }
  if (hashes.size() > kShown) absl::StrAppend(&out, ",...+", hashes.size() - kShown);
  return out + "]";
}

std::string or_dash(const std::optional<std::string>& s) { return s ? *s : "-"; }

// One line per event: seq, type, medium, hashes (first few), parent, block_size, token count.
std::string format_event(std::uint64_t seq, const KvEvent& event) {
  if (const auto* s = std::get_if<BlockStoredEvent>(&event)) {
    return absl::StrCat(
        "seq=", seq, " BlockStored medium=", or_dash(s->medium), " hashes=", hash_list(s->block_hashes),
        " n=", s->block_hashes.size(), " parent=", s->parent_block_hash ? hex(*s->parent_block_hash) : std::string("-"),
        " block_size=", s->block_size, " tokens=", s->token_ids.size(), " lora=", or_dash(s->lora_name));
  }
  if (const auto* r = std::get_if<BlockRemovedEvent>(&event)) {
    return absl::StrCat("seq=", seq, " BlockRemoved medium=", or_dash(r->medium),
                        " hashes=", hash_list(r->block_hashes), " n=", r->block_hashes.size());
  }
  return absl::StrCat("seq=", seq, " AllBlocksCleared");
}

struct TailArgs {
  std::string endpoint;
  std::string replay;
  std::string topic;
  std::int64_t from_seq = -1;
  std::uint64_t count = 0;
  std::int64_t timeout_ms = 0;
};

int run_tail(const TailArgs& args) {
  ZmqSubscriberOptions o;
  o.endpoint = args.endpoint;
  o.topic = args.topic;
  if (!args.replay.empty()) o.replay_endpoint = args.replay;
  if (args.from_seq >= 0) o.start_seq = static_cast<std::uint64_t>(args.from_seq);
  auto sub = ZmqSubscriber::create(o);
  if (!sub.ok()) {
    std::cerr << "kvbm events tail: " << sub.status().message() << "\n";
    return 2;
  }
  const auto timeout = args.timeout_ms > 0 ? std::chrono::milliseconds(args.timeout_ms) : std::chrono::hours(24 * 365);
  std::uint64_t printed = 0;
  while (args.count == 0 || printed < args.count) {
    auto got = (*sub)->next(timeout);
    if (!got.ok()) {
      std::cerr << "kvbm events tail: " << got.status().message() << "\n";
      continue;
    }
    if (!got->has_value()) {
      std::cerr << "kvbm events tail: no batch within " << args.timeout_ms << " ms (" << printed << " events)\n";
      return args.count > 0 ? 1 : 0;
    }
    const auto& [seq, batch] = **got;
    for (const KvEvent& e : batch.events) {
      if (args.count > 0 && printed >= args.count) break;
      std::cout << format_event(seq, e) << "\n";
      ++printed;
    }
    std::cout.flush();
  }
  const ZmqSubscriberStats& st = (*sub)->stats();
  if (st.gaps > 0 || st.lost > 0) {
    std::cerr << "kvbm events tail: gaps " << st.gaps << ", recovered " << st.recovered << ", lost " << st.lost << "\n";
  }
  return 0;
}

// Reads one payload; prints `batch ts=T rank=R events=N` and one line per event, exit 0; or the decoder's
// error, or that the file cannot be read: exit 2 (bad input, the CLI's scheme).
int run_decode(const std::string& path) {
  std::string payload;
  if (path == "-") {
    payload.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::cerr << "kvbm events decode: " << path << ": cannot open\n";
      return 2;
    }
    payload.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto batch = decode_event_batch(payload);
  if (!batch.ok()) {
    std::cerr << "kvbm events decode: " << path << ": " << batch.status().message() << "\n";
    return 2;
  }
  std::cout << "batch ts=" << absl::StrFormat("%.6f", batch->timestamp)
            << " rank=" << (batch->data_parallel_rank ? absl::StrCat(*batch->data_parallel_rank) : std::string("-"))
            << " events=" << batch->events.size() << "\n";
  for (const KvEvent& e : batch->events) std::cout << format_event(0, e) << "\n";
  return 0;
}

// Every event of `kvbm events bench` may sit in the queue at once: bounds on the count and on the tokens they
// carry (4 bytes each), so that a typo is refused rather than filling memory.
constexpr std::uint64_t kMaxBenchEvents = 10'000'000;
constexpr std::uint64_t kMaxBenchTokens = 1'000'000'000;

struct BenchArgs {
  std::uint64_t events = 200000;
  std::size_t batch_events = 256;
  std::uint32_t blocks_per_event = 4;
  std::uint32_t block_size = 16;
};

int run_bench(const BenchArgs& args) {
  // Each factor is bounded by its flag's range, so the product fits in 64 bits.
  const std::uint64_t total_tokens = args.events * args.blocks_per_event * args.block_size;
  if (total_tokens > kMaxBenchTokens) {
    std::cerr << "kvbm events bench: --events × --blocks-per-event × --block-size must be at most " << kMaxBenchTokens
              << " tokens, got " << total_tokens << "\n";
    return 2;
  }
  ZmqPublisherOptions po;
  po.endpoint = "tcp://127.0.0.1:*";
  auto pub = ZmqPublisher::create(po);
  if (!pub.ok()) {
    std::cerr << "kvbm events bench: " << pub.status().message() << "\n";
    return 1;
  }
  const std::string endpoint = (*pub)->endpoint();
  std::vector<std::unique_ptr<EventPublisher>> pubs;
  pubs.push_back(*std::move(pub));
  auto manager = EventManager::create({.queue_capacity = static_cast<std::size_t>(args.events) + 1,
                                       .max_batch_events = args.batch_events,
                                       .max_batch_delay = std::chrono::milliseconds(10)},
                                      std::move(pubs));
  if (!manager.ok()) {
    std::cerr << "kvbm events bench: " << manager.status().message() << "\n";
    return 2;
  }
  EventManager& m = **manager;
  ZmqSubscriberOptions so;
  so.endpoint = endpoint;
  auto sub = ZmqSubscriber::create(so);
  if (!sub.ok()) {
    std::cerr << "kvbm events bench: " << sub.status().message() << "\n";
    return 1;
  }

  // The subscriber thread decodes everything; AllBlocksCleared batches are connection probes.
  std::atomic<bool> connected{false};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> received{0};
  std::chrono::steady_clock::time_point last_receive;
  std::thread reader([&] {
    while (!stop.load()) {
      auto got = (*sub)->next(std::chrono::milliseconds(20));
      if (!got.ok() || !got->has_value()) continue;
      for (const KvEvent& e : (*got)->second.events) {
        if (std::holds_alternative<AllBlocksClearedEvent>(e)) {
          connected.store(true);
        } else {
          received.fetch_add(1, std::memory_order_relaxed);
        }
      }
      last_receive = std::chrono::steady_clock::now();
    }
  });
  for (int i = 0; i < 500 && !connected.load(); ++i) {
    (void)m.enqueue(AllBlocksClearedEvent{});  // carries no tokens: never refused
    m.flush();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!connected.load()) {
    stop.store(true);
    reader.join();
    std::cerr << "kvbm events bench: the subscriber never connected to " << endpoint << "\n";
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the probes drain

  std::vector<std::uint32_t> tokens(static_cast<std::size_t>(args.blocks_per_event) * args.block_size);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::uint32_t>(i * 7 + 1);
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < args.events; ++i) {
    BlocksStored e{CacheLevel::kG1, {}, SequenceHash{i}, tokens, args.block_size};
    for (std::uint32_t b = 0; b < args.blocks_per_event; ++b) e.block_hashes.emplace_back(i * 64 + b + (1ull << 63));
    m.on_stored(std::move(e));
  }
  const auto enqueued = std::chrono::steady_clock::now();
  m.flush();
  const auto published = std::chrono::steady_clock::now();
  // Wait until the subscriber has everything, or nothing more arrives for a second.
  for (std::uint64_t seen = 0, idle = 0; received.load() < args.events && idle < 50;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::uint64_t now = received.load();
    idle = now == seen ? idle + 1 : 0;
    seen = now;
  }
  stop.store(true);
  reader.join();
  const auto done = last_receive;
  const EventManagerStats st = m.stats();
  const std::uint64_t got = received.load();

  // Encode and decode alone, single-threaded, on one batch of the same shape.
  EventBatch sample;
  for (std::size_t i = 0; i < args.batch_events; ++i) {
    BlockStoredEvent e;
    for (std::uint32_t b = 0; b < args.blocks_per_event; ++b) e.block_hashes.push_back((1ull << 63) + i * 64 + b);
    e.parent_block_hash = i;
    e.token_ids = tokens;
    e.block_size = args.block_size;
    e.medium = "GPU";
    sample.events.push_back(std::move(e));
  }
  const std::string payload = encode_event_batch(sample);
  constexpr int kReps = 200;
  auto t0 = std::chrono::steady_clock::now();
  std::size_t sink = 0;
  for (int r = 0; r < kReps; ++r) sink += encode_event_batch(sample).size();
  auto t1 = std::chrono::steady_clock::now();
  for (int r = 0; r < kReps; ++r) sink += decode_event_batch(payload)->events.size();
  auto t2 = std::chrono::steady_clock::now();

  auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  const double per_batch_events = static_cast<double>(kReps * args.batch_events);
  std::cout << absl::StrFormat(
      "events bench: %d events (%u blocks × %u tokens each), batches of <= %d, tcp loopback, %u hw threads\n",
      args.events, args.blocks_per_event, args.block_size, args.batch_events, std::thread::hardware_concurrency());
  std::cout << absl::StrFormat("  enqueue (on_stored):           %.0f events/s\n",
                               static_cast<double>(args.events) / secs(enqueued - start));
  std::cout << absl::StrFormat("  publish (encode + ZMQ send):   %.0f events/s  (%d batches, %.0f B/event)\n",
                               static_cast<double>(st.sent) / secs(published - start), st.batches,
                               static_cast<double>(payload.size()) / static_cast<double>(args.batch_events));
  std::cout << absl::StrFormat("  end to end (received+decoded): %.0f events/s  (%d of %d received, %d dropped)\n",
                               static_cast<double>(got) / secs(done - start), got, args.events, st.dropped);
  std::cout << absl::StrFormat("  encode alone: %.0f events/s; decode alone: %.0f events/s (check %d)\n",
                               per_batch_events / secs(t1 - t0), per_batch_events / secs(t2 - t1), sink % 10);
  return got == args.events ? 0 : 1;
}

}  // namespace

CLI::App* events_group(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App* a) { return a->get_name() == "events"; })) return sub;
  CLI::App* group = app.add_subcommand("events", "KV cache events in the vLLM wire format");
  group->require_subcommand(1);
  return group;
}

void add_events_command(CLI::App& app, int* exit_code) {
  CLI::App* group = events_group(app);

  auto tail_args = std::make_shared<TailArgs>();
  CLI::App* tail = group->add_subcommand("tail", "Subscribe to a ZMQ event stream and print each event");
  tail->add_option("endpoint", tail_args->endpoint, "publisher endpoint, e.g. tcp://127.0.0.1:5557")->required();
  tail->add_option("--replay", tail_args->replay, "the publisher's replay endpoint, to recover gaps");
  tail->add_option("--from-seq", tail_args->from_seq, "start at this sequence number (needs --replay)");
  tail->add_option("--topic", tail_args->topic, "topic prefix to subscribe to (default: all)");
  tail->add_option("--count", tail_args->count, "stop after this many events (default: never)");
  // At most a year: a deadline past the clock's range wrapped into the past (the tail stopped at once).
  tail->add_option("--timeout-ms", tail_args->timeout_ms, "stop when no batch arrives for this long (default: never)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{365} * 24 * 3600 * 1000));
  tail->callback([tail_args, exit_code] { *exit_code = run_tail(*tail_args); });

  auto decode_path = std::make_shared<std::string>();
  CLI::App* decode =
      group->add_subcommand("decode", "Decode one batch's msgpack payload (any of the three shapes) and print it");
  decode->add_option("file", *decode_path, "the payload, or - for stdin")->required();
  decode->callback([decode_path, exit_code] { *exit_code = run_decode(*decode_path); });

  auto bench_args = std::make_shared<BenchArgs>();
  CLI::App* bench = group->add_subcommand("bench", "Events/s through EventManager, ZMQ on loopback and decode");
  bench->add_option("--events", bench_args->events, "events to publish")
      ->check(CLI::Range(std::uint64_t{1}, kMaxBenchEvents));
  bench->add_option("--batch-events", bench_args->batch_events, "max events per batch")
      ->check(CLI::Range(std::size_t{1}, std::size_t{65536}));
  bench->add_option("--blocks-per-event", bench_args->blocks_per_event, "blocks per BlockStored event")
      ->check(CLI::Range(std::uint32_t{1}, std::uint32_t{4096}));
  bench->add_option("--block-size", bench_args->block_size, "tokens per block")
      ->check(CLI::Range(std::uint32_t{1}, ModelConfig::kMaxPageSize));
  bench->callback([bench_args, exit_code] { *exit_code = run_bench(*bench_args); });
}

}  // namespace kvbm::tools
