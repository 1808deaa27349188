// Metrics (issue 8/8): the Prometheus text format, the HTTP server, and a manager's metrics scraped over
// HTTP, parsed, and compared with the manager's own stats.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <thread>

#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/metrics/metrics.h"
#include "kvbm/metrics/metrics_server.h"

namespace kvbm::metrics {
namespace {

// ---- a small parser of the text format (independent of the writer) ----

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Parsed {
  std::map<std::string, std::string> type;  // family → counter | gauge | histogram
  std::map<std::string, std::string> help;
  std::vector<Sample> samples;
  std::vector<std::string> errors;

  // The value of the one sample with this name and exactly these labels; NaN when absent.
  [[nodiscard]] double value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    for (const Sample& s : samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
    return std::nan("");
  }
};

bool is_name_char(char c, bool first) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
         (!first && std::isdigit(static_cast<unsigned char>(c)));
}

Parsed parse(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  std::set<std::string> families_seen;
  std::string current_family;
  while (std::getline(in, line)) {
    ++n;
    auto error = [&](const std::string& what) { p.errors.push_back("line " + std::to_string(n) + ": " + what); };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream ls(line);
      std::string hash, kind, name;
      ls >> hash >> kind >> name;
      std::string rest;
      std::getline(ls, rest);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      if (kind == "TYPE") {
        if (p.type.count(name)) error("second TYPE for " + name);
        if (rest != "counter" && rest != "gauge" && rest != "histogram") error("bad type " + rest);
        p.type[name] = rest;
        if (families_seen.count(name)) error("family " + name + " not contiguous");
        families_seen.insert(name);
        current_family = name;
      } else if (kind == "HELP") {
        std::string unescaped;
        for (std::size_t i = 0; i < rest.size(); ++i) {
          if (rest[i] == '\\' && i + 1 < rest.size()) {
            ++i;
            unescaped += rest[i] == 'n' ? '\n' : rest[i];
          } else {
            unescaped += rest[i];
          }
        }
        p.help[name] = unescaped;
      }
      continue;
    }
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && is_name_char(line[i], i == 0)) ++i;
    s.name = line.substr(0, i);
    if (s.name.empty()) {
      error("no metric name");
      continue;
    }
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::size_t start = i;
        while (i < line.size() && is_name_char(line[i], i == start)) ++i;
        const std::string label = line.substr(start, i - start);
        if (label.empty() || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          error("bad label");
          break;
        }
        i += 2;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
          ++i;
        }
        ++i;  // closing quote
        if (s.labels.count(label)) error("repeated label " + label);
        s.labels[label] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') {
      error("no value");
      continue;
    }
    const std::string value = line.substr(i + 1);
    if (value == "+Inf") {
      s.value = INFINITY;
    } else if (value == "-Inf") {
      s.value = -INFINITY;
    } else if (value == "NaN") {
      s.value = std::nan("");
    } else {
      char* end = nullptr;
      s.value = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end != '\0') error("bad value '" + value + "'");
    }
    // A sample belongs to the family whose TYPE came last (histograms: name + _bucket/_sum/_count).
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string suf(suffix);
      if (!p.type.count(family) && family.size() > suf.size() &&
          family.compare(family.size() - suf.size(), suf.size(), suf) == 0) {
        family = family.substr(0, family.size() - suf.size());
      }
    }
    if (family != current_family) error("sample " + s.name + " outside its family's block");
    p.samples.push_back(std::move(s));
  }
  return p;
}

// ---- text format ----

TEST(MetricsText, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
  EXPECT_EQ(sanitize_name("kvbm.bad-name"), "kvbm_bad_name");
  EXPECT_EQ(sanitize_name("9lives"), "_lives");
  EXPECT_TRUE(valid_name("kvbm_cache_hit_blocks_total"));
  EXPECT_FALSE(valid_name("kvbm-x"));
  EXPECT_FALSE(valid_name(""));

  Registry r;
  r.counter("kvbm_test_total", "help with \\ and\nnewline", {{"path", "C:\\tmp\n\"x\""}}).inc(3);
  const std::string text = r.render();
  EXPECT_THAT(text, ::testing::HasSubstr("# HELP kvbm_test_total help with \\\\ and\\nnewline\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("kvbm_test_total{path=\"C:\\\\tmp\\n\\\"x\\\"\"} 3\n"));
  const Parsed p = parse(text);
  EXPECT_THAT(p.errors, ::testing::IsEmpty());
  EXPECT_EQ(p.value("kvbm_test_total", {{"path", "C:\\tmp\n\"x\""}}), 3);
  EXPECT_EQ(p.help.at("kvbm_test_total"), "help with \\ and\nnewline");
}

TEST(MetricsText, ValuesRoundTrip) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(1.5), "1.5");
  EXPECT_EQ(format_value(0.1), "0.1");
  EXPECT_EQ(format_value(1e-5), "1e-05");
  EXPECT_EQ(format_value(INFINITY), "+Inf");
  EXPECT_EQ(format_value(-INFINITY), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
  EXPECT_EQ(std::strtod(format_value(123456789012.0).c_str(), nullptr), 123456789012.0);
}

TEST(MetricsText, HistogramBucketsAreCumulativeWithInf) {
  Registry r;
  Histogram& h = r.histogram("kvbm_test_seconds", "a latency", {0.1, 1, 10}, {{"tier", "g1"}});
  for (double v : {0.05, 0.1, 0.5, 2.0, 20.0, 30.0}) h.observe(v);
  const HistogramSnapshot s = h.snapshot();
  EXPECT_THAT(s.cumulative, ::testing::ElementsAre(2, 3, 4, 6));  // 0.1 is in le="0.1": bounds are inclusive
  EXPECT_EQ(s.count, 6u);
  EXPECT_DOUBLE_EQ(s.sum, 52.65);

  const std::string text = r.render();
  EXPECT_THAT(text, ::testing::HasSubstr("# TYPE kvbm_test_seconds histogram\n"
                                         "kvbm_test_seconds_bucket{tier=\"g1\",le=\"0.1\"} 2\n"
                                         "kvbm_test_seconds_bucket{tier=\"g1\",le=\"1\"} 3\n"
                                         "kvbm_test_seconds_bucket{tier=\"g1\",le=\"10\"} 4\n"
                                         "kvbm_test_seconds_bucket{tier=\"g1\",le=\"+Inf\"} 6\n"
                                         "kvbm_test_seconds_sum{tier=\"g1\"} 52.65\n"
                                         "kvbm_test_seconds_count{tier=\"g1\"} 6\n"));
  const Parsed p = parse(text);
  EXPECT_THAT(p.errors, ::testing::IsEmpty());
  EXPECT_EQ(p.type.at("kvbm_test_seconds"), "histogram");
  EXPECT_EQ(p.value("kvbm_test_seconds_count", {{"tier", "g1"}}),
            p.value("kvbm_test_seconds_bucket", {{"tier", "g1"}, {"le", "+Inf"}}));
}

TEST(MetricsText, UnsortedBoundsAreSortedAndDeduplicated) {
  Histogram h({5, 1, 1, INFINITY, 3});
  EXPECT_THAT(h.bounds(), ::testing::ElementsAre(1, 3, 5));
  h.observe(100);
  EXPECT_THAT(h.snapshot().cumulative, ::testing::ElementsAre(0, 0, 0, 1));
  EXPECT_THAT(exponential_buckets(1, 2, 4), ::testing::ElementsAre(1, 2, 4, 8));
}

TEST(MetricsText, FamiliesAreContiguousAndTypedOnce) {
  Registry r;
  r.counter("kvbm_a_total", "a", {{"tier", "g1"}}).inc();
  r.gauge("kvbm_b_blocks", "b").set(7);
  r.counter("kvbm_a_total", "a", {{"tier", "g2"}}).inc(2);
  // A collector adding to an owned family and a family of its own; a conflicting type is dropped.
  r.add_collector([](Exposition& e) {
    e.counter("kvbm_a_total", "a", {{"tier", "g3"}}, 5);
    e.gauge("kvbm_c_blocks", "c", {{"state", "free"}}, 1);
    e.gauge("kvbm_a_total", "wrong type", {}, 9);
  });
  // Same name and labels: the same counter.
  EXPECT_EQ(&r.counter("kvbm_a_total", "a", {{"tier", "g1"}}), &r.counter("kvbm_a_total", "a", {{"tier", "g1"}}));
  const Parsed p = parse(r.render());
  EXPECT_THAT(p.errors, ::testing::IsEmpty());
  EXPECT_EQ(p.type.at("kvbm_a_total"), "counter");
  EXPECT_EQ(p.value("kvbm_a_total", {{"tier", "g1"}}), 1);
  EXPECT_EQ(p.value("kvbm_a_total", {{"tier", "g2"}}), 2);
  EXPECT_EQ(p.value("kvbm_a_total", {{"tier", "g3"}}), 5);
  EXPECT_TRUE(std::isnan(p.value("kvbm_a_total")));
  EXPECT_EQ(p.value("kvbm_b_blocks"), 7);
  EXPECT_EQ(p.value("kvbm_c_blocks", {{"state", "free"}}), 1);
}

TEST(MetricsText, RemovedCollectorIsNotRun) {
  Registry r;
  int runs = 0;
  const auto id = r.add_collector([&](Exposition& e) {
    ++runs;
    e.gauge("kvbm_x", "x", {}, 1);
  });
  EXPECT_THAT(r.render(), ::testing::HasSubstr("kvbm_x 1\n"));
  r.remove_collector(id);
  EXPECT_THAT(r.render(), ::testing::Not(::testing::HasSubstr("kvbm_x")));
  EXPECT_EQ(runs, 1);
}

TEST(MetricsText, ConcurrentRecordingLosesNothing) {
  Registry r;
  Counter& c = r.counter("kvbm_c_total", "c");
  Histogram& h = r.histogram("kvbm_h_seconds", "h", latency_buckets_seconds());
  constexpr int kThreads = 4, kPerThread = 20000;
  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};
  std::thread scraper([&] {
    while (!stop.load()) {
      const Parsed p = parse(r.render());
      EXPECT_THAT(p.errors, ::testing::IsEmpty());
      EXPECT_EQ(p.value("kvbm_h_seconds_count"), p.value("kvbm_h_seconds_bucket", {{"le", "+Inf"}}));
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        c.inc();
        h.observe(1e-6 * (i % 1000) * (t + 1));
      }
    });
  }
  for (auto& t : threads) t.join();
  stop = true;
  scraper.join();
  EXPECT_EQ(c.value(), std::uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(h.snapshot().count, std::uint64_t{kThreads} * kPerThread);
}

// ---- the HTTP server ----

// A port nobody listens on right now (the kernel's choice).
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(MetricsServer, ServesMetricsAnd404) {
  Registry r;
  r.counter("kvbm_requests_total", "requests").inc(42);
  auto server = MetricsServer::start(&r, "127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_NE((*server)->port(), 0);

  httplib::Client client("127.0.0.1", (*server)->port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const Parsed p = parse(res->body);
  EXPECT_THAT(p.errors, ::testing::IsEmpty());
  EXPECT_EQ(p.value("kvbm_requests_total"), 42);

  auto missing = client.Get("/other");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);

  (*server)->stop();
  (*server)->stop();  // idempotent
  httplib::Client after("127.0.0.1", (*server)->port());
  after.set_connection_timeout(1, 0);
  EXPECT_FALSE(after.Get("/metrics"));  // nothing listens any more
}

TEST(MetricsServer, PortInUseIsAClearError) {
  Registry r;
  auto first = MetricsServer::start(&r, "127.0.0.1", 0);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = MetricsServer::start(&r, "127.0.0.1", (*first)->port());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists) << second.status();
  EXPECT_THAT(std::string(second.status().message()), ::testing::HasSubstr("already in use"));
  EXPECT_THAT(std::string(second.status().message()), ::testing::HasSubstr(std::to_string((*first)->port())));

  auto bad = MetricsServer::start(&r, "not-an-address.invalid", 0);
  EXPECT_FALSE(bad.ok());
}

TEST(MetricsServer, StartStopRepeatedlyWithScrapesInFlight) {
  Registry r;
  r.gauge("kvbm_g", "g").set(1);
  for (int round = 0; round < 5; ++round) {
    auto server = MetricsServer::start(&r, "127.0.0.1", 0);
    ASSERT_TRUE(server.ok()) << server.status();
    std::thread scraper([port = (*server)->port()] {
      httplib::Client c("127.0.0.1", port);
      c.set_connection_timeout(1, 0);
      for (int i = 0; i < 5; ++i) (void)c.Get("/metrics");
    });
    scraper.join();
    server->reset();  // destructor stops and joins
  }
}

// ---- a manager's metrics over HTTP ----

KvbmConfig manager_config(std::uint16_t port) {
  KvbmConfig config;
  // 2 layers × 2 × 4 tokens × 16 × 2 bytes = 512 bytes per block.
  config.model = ModelConfig{.num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 16, .dtype_bytes = 2};
  config.g1.num_blocks = 16;
  config.g2.num_blocks = 256;
  config.g3.num_blocks = 512;
  config.g3.directory = ::testing::TempDir();
  config.offload.g3_min_frequency = 0;
  config.offload.batch_blocks = 4;
  config.metrics.port = port;
  config.metrics.bind = "127.0.0.1";
  return config;
}

// A manager with metrics on a free loopback port (retried if another process takes the port first).
std::unique_ptr<KvBlockManager> manager_with_metrics() {
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto m = KvBlockManager::create(manager_config(free_port()));
    if (m.ok()) return *std::move(m);
    EXPECT_EQ(m.status().code(), absl::StatusCode::kAlreadyExists) << m.status();
  }
  return nullptr;
}

struct Tally {
  std::uint64_t requests = 0;
  std::uint64_t hits[3] = {}, misses[3] = {};
  std::uint64_t onboards_below_g1 = 0;
};

// One engine request over `blocks` blocks starting at token `first`: match (counting hits and misses the
// way the metrics define them), onboard, compute the rest, register, release.
void request(KvBlockManager& m, std::uint32_t first, std::size_t blocks, Tally& t) {
  std::vector<std::uint32_t> tokens(blocks * m.page_size());
  std::iota(tokens.begin(), tokens.end(), first);
  auto seq = m.make_sequence(tokens);
  ASSERT_TRUE(seq.ok());
  const auto hashes = seq->sequence_hashes();
  MatchResult match = m.match(hashes);
  ++t.requests;
  const std::size_t found[3] = {match.g1.size(), match.g2.size(), match.g3.size()};
  std::size_t left = hashes.size();
  for (int tier = 0; tier < 3 && left > 0; ++tier) {
    if (tier > 0 && tier == 1 && !m.has_tier(CacheLevel::kG2)) break;
    t.hits[tier] += found[tier];
    t.misses[tier] += left - found[tier];
    left -= found[tier];
  }
  if (!match.g2.empty() || !match.g3.empty()) ++t.onboards_below_g1;
  auto held = m.onboard(std::move(match))->wait();
  ASSERT_TRUE(held.ok()) << held.status();
  auto fresh = m.allocate(blocks - held->size());
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  for (std::size_t i = 0; i < fresh->size(); ++i) ASSERT_TRUE((*fresh)[i].apply(seq->block(held->size() + i)).ok());
  auto registered = m.register_blocks(*fresh);
  ASSERT_TRUE(registered.ok()) << registered.status();
  m.release(*std::move(registered));
  m.release(*std::move(held));
}

Parsed scrape(std::uint16_t port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(5, 0);
  auto res = client.Get("/metrics");
  EXPECT_TRUE(res) << httplib::to_string(res.error());
  if (!res) return {};
  EXPECT_EQ(res->status, 200);
  Parsed p = parse(res->body);
  EXPECT_THAT(p.errors, ::testing::IsEmpty()) << res->body;
  return p;
}

TEST(ManagerMetrics, ScrapeMatchesTheManagersOwnStats) {
  std::unique_ptr<KvBlockManager> m = manager_with_metrics();
  ASSERT_NE(m, nullptr);
  ASSERT_NE(m->metrics_port(), 0);

  Tally t;
  // Fill G1 twice over so that early prompts are found only in G2/G3, then ask for them again.
  for (std::uint32_t p = 0; p < 8; ++p) {
    request(*m, 1000 * p, 4, t);
    m->flush();
  }
  for (std::uint32_t p = 0; p < 8; ++p) {
    request(*m, 1000 * p, 6, t);  // 4 cached blocks + 2 new ones
    m->flush();
  }
  ASSERT_GT(t.onboards_below_g1, 0u);

  const Parsed p = scrape(m->metrics_port());
  // Every documented family is there, once, with a valid name and the right suffix for its type.
  for (std::string_view name : kManagerMetricNames) {
    ASSERT_TRUE(p.type.count(std::string(name))) << name;
    EXPECT_TRUE(valid_name(name));
    EXPECT_FALSE(p.help.at(std::string(name)).empty()) << name;
    if (p.type.at(std::string(name)) == "counter") EXPECT_TRUE(name.ends_with("_total")) << name;
  }
  EXPECT_EQ(p.type.size(), kManagerMetricNames.size());

  // Hits and misses per tier, as counted by the test.
  EXPECT_EQ(p.value("kvbm_match_requests_total"), t.requests);
  for (int tier = 0; tier < 3; ++tier) {
    const std::string name = std::string("g") + std::to_string(tier + 1);
    EXPECT_EQ(p.value("kvbm_match_hit_blocks_total", {{"tier", name}}), t.hits[tier]) << name;
    EXPECT_EQ(p.value("kvbm_match_miss_blocks_total", {{"tier", name}}), t.misses[tier]) << name;
  }
  EXPECT_GT(t.hits[0] + t.hits[1] + t.hits[2], 0u);

  // Blocks per state per tier: the manager is idle after flush(), so the scrape and status() agree.
  const char* tiers[3] = {"g1", "g2", "g3"};
  const CacheLevel levels[3] = {CacheLevel::kG1, CacheLevel::kG2, CacheLevel::kG3};
  for (int tier = 0; tier < 3; ++tier) {
    const PoolStatus s = m->status(levels[tier]);
    EXPECT_EQ(p.value("kvbm_pool_blocks", {{"tier", tiers[tier]}, {"state", "active"}}), s.active);
    EXPECT_EQ(p.value("kvbm_pool_blocks", {{"tier", tiers[tier]}, {"state", "inactive"}}), s.inactive);
    EXPECT_EQ(p.value("kvbm_pool_blocks", {{"tier", tiers[tier]}, {"state", "free"}}), s.free);
    EXPECT_EQ(p.value("kvbm_pool_blocks", {{"tier", tiers[tier]}, {"state", "owned"}}), s.owned);
    EXPECT_EQ(p.value("kvbm_pool_capacity_blocks", {{"tier", tiers[tier]}}), m->config().tier_blocks(levels[tier]));
  }
  EXPECT_GT(m->status(CacheLevel::kG2).inactive, 0u);

  // Offload and onboarding counts, bytes, latency histograms.
  const OffloadStats o = m->offload_stats();
  EXPECT_GT(o.g1_to_g2, 0u);
  EXPECT_EQ(p.value("kvbm_offload_blocks_total", {{"src", "g1"}, {"dst", "g2"}}), o.g1_to_g2);
  EXPECT_EQ(p.value("kvbm_offload_blocks_total", {{"src", "g2"}, {"dst", "g3"}}), o.g2_to_g3);
  EXPECT_EQ(p.value("kvbm_onboard_blocks_total", {{"src", "g2"}, {"dst", "g1"}}), o.g2_to_g1);
  EXPECT_EQ(p.value("kvbm_onboard_blocks_total", {{"src", "g3"}, {"dst", "g1"}}), o.g3_to_g1);
  EXPECT_GT(o.g2_to_g1 + o.g3_to_g1, 0u);
  EXPECT_EQ(p.value("kvbm_offload_bytes_total"), o.bytes_down);
  EXPECT_EQ(p.value("kvbm_onboard_bytes_total"), o.bytes_up);
  EXPECT_EQ(p.value("kvbm_offload_queue_depth_blocks", {{"src", "g1"}, {"dst", "g2"}}), 0);
  EXPECT_EQ(p.value("kvbm_offload_queue_peak_blocks", {{"src", "g1"}, {"dst", "g2"}}), o.queue_peak_g1_g2);
  EXPECT_EQ(p.value("kvbm_checksum_failures_total"), 0);
  EXPECT_EQ(p.value("kvbm_g3_dropped_damaged_blocks_total"), o.dropped_damaged);
  EXPECT_EQ(p.value("kvbm_g3_deadline_misses_total"), o.deadline_misses);
  EXPECT_EQ(p.value("kvbm_transfer_bytes_total"), m->transfer_stats().bytes);
  EXPECT_EQ(p.value("kvbm_onboard_seconds_count"), t.onboards_below_g1);
  EXPECT_GT(p.value("kvbm_offload_batch_seconds_count", {{"src", "g1"}, {"dst", "g2"}}), 0);
  EXPECT_GT(p.value("kvbm_offload_batch_seconds_count", {{"src", "g2"}, {"dst", "g3"}}), 0);
  EXPECT_EQ(p.value("kvbm_offload_batch_seconds_count", {{"src", "g1"}, {"dst", "g2"}}),
            p.value("kvbm_offload_batch_seconds_bucket", {{"src", "g1"}, {"dst", "g2"}, {"le", "+Inf"}}));

  // The same text without HTTP.
  const Parsed direct = parse(m->metrics().render());
  EXPECT_EQ(direct.value("kvbm_match_requests_total"), t.requests);
}

TEST(ManagerMetrics, OffByDefaultAndPortInUseFailsCreate) {
  auto off = KvBlockManager::create(manager_config(0));
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ((*off)->metrics_port(), 0);
  EXPECT_EQ(KvbmConfig{}.metrics.port, 0u);
  EXPECT_THAT((*off)->metrics().render(), ::testing::HasSubstr("kvbm_match_requests_total 0\n"));

  std::unique_ptr<KvBlockManager> on = manager_with_metrics();
  ASSERT_NE(on, nullptr);
  auto clash = KvBlockManager::create(manager_config(on->metrics_port()));
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(clash.status().message()), ::testing::HasSubstr("metrics.port"));
}

TEST(ManagerMetrics, ConfigKeys) {
  KvbmConfig c;
  ASSERT_TRUE(c.set("metrics.port", "9400").ok());
  ASSERT_TRUE(c.set("metrics.bind", "127.0.0.1").ok());
  EXPECT_EQ(c.metrics.port, 9400u);
  EXPECT_EQ(c.metrics.bind, "127.0.0.1");
  const absl::Status bad = c.set("metrics.port", "70000");
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.message()), ::testing::HasSubstr("metrics.port"));
  EXPECT_THAT(std::string(bad.message()), ::testing::HasSubstr("65535"));
  auto from_toml = KvbmConfig::from_toml("[metrics]\nport = 9500\nbind = \"::1\"\n");
  ASSERT_TRUE(from_toml.ok()) << from_toml.status();
  EXPECT_EQ(from_toml->metrics.port, 9500u);
  EXPECT_EQ(from_toml->metrics.bind, "::1");
}

// Scrapes while the manager works, from several threads, then destroys it with a scrape possibly in
// flight: the scrape either completes or fails cleanly (TSan/ASan check the rest).
TEST(ManagerMetrics, ScrapesDuringWorkAndShutdown) {
  std::unique_ptr<KvBlockManager> m = manager_with_metrics();
  ASSERT_NE(m, nullptr);
  const std::uint16_t port = m->metrics_port();
  std::atomic<bool> stop{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(2, 0);
    while (!stop.load()) {
      if (auto res = c.Get("/metrics")) {
        EXPECT_THAT(parse(res->body).errors, ::testing::IsEmpty());
        ++scrapes;
      }
    }
  });
  Tally t;
  for (std::uint32_t p = 0; p < 40; ++p) request(*m, 1000 * (p % 12), 3 + p % 4, t);
  while (scrapes.load() < 3) std::this_thread::yield();
  m.reset();  // stops the server first
  stop = true;
  scraper.join();
}

}  // namespace
}  // namespace kvbm::metrics
