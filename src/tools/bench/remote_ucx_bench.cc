// run_ucx_pull_bench: ucx_perftest (server + client processes) first, then a forked peer serving its
// tier and this process pulling from it with UcxAgent, same UCX_TLS, same message size.
#include "tools/bench/remote_ucx_bench.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <absl/strings/str_replace.h>
#include <absl/strings/str_split.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <optional>
#include <vector>

#include "kvbm/peer/ucx_agent.h"

extern char** environ;

namespace kvbm {
namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t word_of(std::uint64_t block, std::uint64_t word) {
  std::uint64_t z = (block << 32 | word) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void fill(std::span<std::byte> bytes, std::uint64_t block) {
  auto* w = reinterpret_cast<std::uint64_t*>(bytes.data());
  for (std::size_t i = 0; i < bytes.size() / 8; ++i) w[i] = word_of(block, i);
}

bool matches(std::span<const std::byte> bytes, std::uint64_t block) {
  const auto* w = reinterpret_cast<const std::uint64_t*>(bytes.data());
  for (std::size_t i = 0; i < bytes.size() / 8; ++i) {
    if (w[i] != word_of(block, i)) return false;
  }
  return true;
}

// i → i × stride mod n, with the stride coprime to n and not 1 (mod n): a permutation in which
// consecutive entries differ by `stride`, never by 1.
std::vector<std::uint32_t> pull_order(std::uint32_t n) {
  std::uint64_t stride = 1;
  for (std::uint64_t s = n / 2 + 1; s < 2ull * n + 3; ++s) {
    if (std::gcd(s, std::uint64_t{n}) == 1 && s % n != 1) {
      stride = s;
      break;
    }
  }
  std::vector<std::uint32_t> order(n);
  for (std::uint32_t i = 0; i < n; ++i) order[i] = static_cast<std::uint32_t>((i * stride) % n);
  return order;
}

struct BenchTier {
  std::unique_ptr<FullyContiguousLayout> layout;
  std::unique_ptr<SystemMemory> storage;
  std::unique_ptr<TierMemory> memory;
};

absl::StatusOr<BenchTier> make_tier(const UcxPullBenchOptions& o) {
  // One chunk per block: 16 tokens × (block_bytes / 32) × 2 bytes.
  const ModelConfig model{.num_layers = 1,
                          .outer_dim = 1,
                          .page_size = 16,
                          .inner_dim = static_cast<std::uint32_t>(o.block_bytes / 32),
                          .dtype_bytes = 2};
  BenchTier t;
  auto layout = FullyContiguousLayout::create(model, o.blocks);
  if (!layout.ok()) return layout.status();
  t.layout = *std::move(layout);
  auto storage = SystemMemory::for_layout(*t.layout, {.zero_fill = true});
  if (!storage.ok()) return storage.status();
  t.storage = *std::move(storage);
  auto memory = TierMemory::bind(t.layout.get(), t.storage.get());
  if (!memory.ok()) return memory.status();
  t.memory = std::make_unique<TierMemory>(*memory);
  return t;
}

bool write_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Reads exactly n bytes before `deadline`.
bool read_all(int fd, void* data, std::size_t n, Clock::time_point deadline) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// The forked peer: serves its tier until the parent closes `control`. Never returns.
[[noreturn]] void run_peer(const UcxPullBenchOptions& o, int blob_fd, int control_fd) {
  alarm(o.timeout_s + 30);
  int rc = 1;
  {
    auto tier = make_tier(o);
    std::unique_ptr<UcxAgent> agent;
    std::string blob;
    if (tier.ok()) {
      for (std::uint32_t b = 0; b < o.blocks; ++b) fill(tier->memory->chunk(b, 0, 0), b);
      auto a = UcxAgent::create({.worker_id = 0xA, .progress_thread = true, .name = "bench-peer"});
      if (a.ok()) agent = *std::move(a);
    }
    if (agent != nullptr && agent->register_tier(CacheLevel::kG1, *tier->memory).ok()) {
      auto exported = agent->export_metadata();
      if (exported.ok()) blob = *std::move(exported);
    }
    const auto len = static_cast<std::uint32_t>(blob.size());
    if (write_all(blob_fd, &len, sizeof len) && write_all(blob_fd, blob.data(), blob.size()) && len > 0) {
      char c;
      while (read(control_fd, &c, 1) > 0) {
      }
      rc = 0;
    }
    close(blob_fd);
  }
  _exit(rc);
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class Spawned {
 public:
  // `out`: the child's stdout goes there (else /dev/null); stderr always to /dev/null.
  static absl::StatusOr<Spawned> start(const std::vector<std::string>& argv, int out) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (out >= 0) {
      posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
    } else {
      posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    }
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return absl::UnavailableError(absl::StrCat("cannot run ", argv[0], ": ", strerror(rc)));
    return Spawned(pid);
  }
  Spawned(Spawned&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}
  Spawned& operator=(Spawned&&) = delete;
  ~Spawned() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Exit status, or nullopt when it did not exit before `deadline` (it is then killed).
  std::optional<int> wait(Clock::time_point deadline) {
    while (pid_ > 0) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (Clock::now() >= deadline) return std::nullopt;
      usleep(2000);
    }
    return std::nullopt;
  }

 private:
  explicit Spawned(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

std::optional<int> free_tcp_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  std::optional<int> port;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// Whether some socket listens on TCP `port` (from /proc/net/tcp{,6}, without connecting to it).
bool listening(int port) {
  const std::string hex = absl::StrFormat(":%04X", port);
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.size() > 3 && f[1].size() > hex.size() && f[1].ends_with(hex) && f[3] == "0A") return true;
    }
  }
  return false;
}

// ucx_perftest ucp_get between two processes: the "overall" bandwidth of the Final line, in 1e9 bytes/s.
absl::StatusOr<double> run_perftest(const UcxPullBenchOptions& o, std::uint64_t iters) {
  const auto deadline = Clock::now() + std::chrono::seconds(o.timeout_s);
  std::optional<int> port = free_tcp_port();
  if (!port) return absl::UnavailableError("ucx_perftest: no free TCP port");
  auto server = Spawned::start({o.perftest, "-p", std::to_string(*port)}, -1);
  if (!server.ok()) return server.status();
  while (!listening(*port)) {
    if (Clock::now() >= deadline) return absl::DeadlineExceededError("ucx_perftest: the server never listened");
    usleep(5000);
  }
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::UnavailableError("ucx_perftest: pipe failed");
  auto client = Spawned::start({o.perftest, "127.0.0.1", "-p", std::to_string(*port), "-t", "ucp_get", "-s",
                                std::to_string(o.block_bytes), "-n", std::to_string(iters)},
                               out[1]);
  close(out[1]);
  if (!client.ok()) {
    close(out[0]);
    return client.status();
  }
  std::string text;
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd pfd{out[0], POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t r = read(out[0], buf, sizeof buf);
    if (r <= 0) break;
    text.append(buf, static_cast<std::size_t>(r));
  }
  close(out[0]);
  const std::optional<int> rc = client->wait(deadline);
  (void)server->wait(Clock::now() + std::chrono::seconds(5));
  if (!rc || *rc != 0) {
    return absl::UnavailableError(absl::StrCat("ucx_perftest client ",
                                               rc ? absl::StrCat("exited with ", *rc) : "timed out", ": ",
                                               text.substr(text.size() > 400 ? text.size() - 400 : 0)));
  }
  for (const std::string& line : std::vector<std::string>(absl::StrSplit(text, '\n'))) {
    if (!line.starts_with("Final:")) continue;
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    // Final: iters p50 avg overall bw_avg bw_overall rate_avg rate_overall   (bandwidth in MB/s, MB = 2^20)
    if (f.size() < 7) break;
    return std::strtod(f[6].c_str(), nullptr) * 1048576.0 / 1e9;
  }
  return absl::UnavailableError(absl::StrCat("ucx_perftest: no Final line in its output: ", text));
}

}  // namespace

absl::StatusOr<UcxPullBenchResult> run_ucx_pull_bench(const UcxPullBenchOptions& o) {
  if (o.block_bytes == 0 || o.block_bytes % 32 != 0 || o.block_bytes > (32ull << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx bench: block_bytes must be a multiple of 32 in [32, 32 MiB], got ", o.block_bytes));
  }
  if (o.blocks == 0 || o.batch == 0 || o.batch > o.blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ucx bench: blocks must be > 0 and batch in [1, blocks], got blocks ", o.blocks, ", batch ", o.batch));
  }
  if (o.tls.empty()) return absl::InvalidArgumentError("ucx bench: tls must name a UCX_TLS value, e.g. tcp or sm");
  if (o.timeout_s == 0) return absl::InvalidArgumentError("ucx bench: timeout_s must be > 0");
  UcxPullBenchResult result;
  result.tls = o.tls;
  result.block_bytes = o.block_bytes;
  result.blocks = o.blocks;
  result.batch = o.batch;
  const std::uint64_t per_pass = o.block_bytes * o.blocks;
  const std::uint64_t passes = std::max<std::uint64_t>(1, (o.total_bytes + per_pass - 1) / per_pass);
  ScopedEnv tls("UCX_TLS", o.tls);

  // Baseline first, while this process has no UCX state and no peer.
  if (!o.perftest.empty()) {
    result.perftest_iters = std::clamp<std::uint64_t>(passes * o.blocks, 100, 100000);
    auto gbps = run_perftest(o, result.perftest_iters);
    if (gbps.ok()) {
      result.perftest_gbps = *gbps;
    } else {
      result.perftest_error = std::string(gbps.status().message());
    }
  } else {
    result.perftest_error = "skipped";
  }

  int blob_pipe[2];
  int control_pipe[2];
  if (pipe2(blob_pipe, O_CLOEXEC) != 0) return absl::UnavailableError("ucx bench: pipe failed");
  if (pipe2(control_pipe, O_CLOEXEC) != 0) {
    close(blob_pipe[0]);
    close(blob_pipe[1]);
    return absl::UnavailableError("ucx bench: pipe failed");
  }
  const pid_t pid = fork();
  if (pid == 0) {
    close(blob_pipe[0]);
    close(control_pipe[1]);
    run_peer(o, blob_pipe[1], control_pipe[0]);
  }
  close(blob_pipe[1]);
  close(control_pipe[0]);
  // Ends the peer on every path: EOF on its control pipe, then SIGKILL if it lingers.
  struct PeerGuard {
    pid_t pid;
    int control;
    int blob;
    ~PeerGuard() {
      close(control);
      close(blob);
      if (pid <= 0) return;
      const auto deadline = Clock::now() + std::chrono::seconds(10);
      while (waitpid(pid, nullptr, WNOHANG) == 0) {
        if (Clock::now() >= deadline) {
          kill(pid, SIGKILL);
          waitpid(pid, nullptr, 0);
          return;
        }
        usleep(2000);
      }
    }
  } peer_guard{pid, control_pipe[1], blob_pipe[0]};
  if (pid < 0) return absl::UnavailableError("ucx bench: fork failed");

  const auto deadline = Clock::now() + std::chrono::seconds(o.timeout_s);
  std::uint32_t len = 0;
  if (!read_all(blob_pipe[0], &len, sizeof len, deadline) || len == 0) {
    return absl::UnavailableError("ucx bench: the peer process did not export its tier (see UCX's messages)");
  }
  std::string blob(len, '\0');
  if (!read_all(blob_pipe[0], blob.data(), len, deadline)) {
    return absl::UnavailableError("ucx bench: the peer's blob was cut short");
  }

  auto tier = make_tier(o);
  if (!tier.ok()) return tier.status();
  {
    auto agent = UcxAgent::create({.worker_id = 0xB, .name = "bench"});
    if (!agent.ok()) return agent.status();
    if (absl::Status s = (*agent)->register_tier(CacheLevel::kG1, *tier->memory); !s.ok()) return s;
    auto peer = (*agent)->import_peer(blob);
    if (!peer.ok()) return peer.status();

    // Local block i ← remote block order[i]; consecutive remote blocks are never adjacent, so no two
    // gets merge and every get is one block.
    const std::vector<std::uint32_t> order = pull_order(o.blocks);
    std::vector<BlockId> remote(o.blocks);
    std::vector<BlockId> local(o.blocks);
    for (std::uint32_t i = 0; i < o.blocks; ++i) {
      remote[i] = BlockId(order[i]);
      local[i] = BlockId(i);
    }
    auto pull_batch = [&](std::uint32_t begin) -> absl::Status {
      const std::uint32_t n = std::min(o.batch, o.blocks - begin);
      auto req = (*agent)->read_blocks(*peer, CacheLevel::kG1, std::span(remote).subspan(begin, n), CacheLevel::kG1,
                                       std::span(local).subspan(begin, n));
      if (!req.ok()) return req.status();
      if (absl::Status s = (*req)->wait(deadline); !s.ok()) return s;
      result.operations += (*req)->num_operations();
      result.pulled_bytes += (*req)->bytes();
      return absl::OkStatus();
    };
    if (absl::Status s = pull_batch(0); !s.ok()) return s;  // warm-up: connection, registration caches
    result.operations = 0;
    result.pulled_bytes = 0;
    const auto start = Clock::now();
    for (std::uint64_t pass = 0; pass < passes; ++pass) {
      for (std::uint32_t begin = 0; begin < o.blocks; begin += o.batch) {
        if (absl::Status s = pull_batch(begin); !s.ok()) return s;
      }
    }
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    (*agent)->remove_peer(*peer);
  }
  const std::vector<std::uint32_t> order = pull_order(o.blocks);
  for (std::uint32_t i = 0; i < o.blocks; ++i) {
    if (!matches(tier->memory->chunk(i, 0, 0), order[i])) {
      return absl::DataLossError(absl::StrCat("ucx bench: local block ", i, " is not remote block ", order[i]));
    }
  }
  result.verified = true;
  result.pull_gbps = result.seconds > 0 ? static_cast<double>(result.pulled_bytes) / result.seconds / 1e9 : 0;
  result.ratio = result.perftest_gbps > 0 ? result.pull_gbps / result.perftest_gbps : 0;
  return result;
}

std::string ucx_pull_bench_json(const UcxPullBenchResult& r) {
  return absl::StrFormat(
      "{\"tls\": \"%s\", \"mode\": \"%s\", \"block_bytes\": %d, \"blocks\": %d, \"batch\": %d, \"pulled_bytes\": %d, "
      "\"operations\": %d, \"seconds\": %.6f, \"pull_gbps\": %.3f, \"perftest_gbps\": %.3f, \"perftest_iters\": %d, "
      "\"ratio\": %.3f, \"verified\": %s, \"perftest_error\": \"%s\"}",
      r.tls, r.mode, r.block_bytes, r.blocks, r.batch, r.pulled_bytes, r.operations, r.seconds, r.pull_gbps,
      r.perftest_gbps, r.perftest_iters, r.ratio, r.verified ? "true" : "false",
      absl::StrReplaceAll(r.perftest_error, {{"\\", "\\\\"}, {"\"", "'"}, {"\n", " "}}));
}

}  // namespace kvbm
