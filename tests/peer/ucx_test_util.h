// Shared by the UCX tests and their helper process: a child process with line-based pipes (killed on
// failure, never waited on without a deadline), deterministic block contents, and tier construction.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kvbm/layout/layout.h"
#include "kvbm/storage/storage.h"

namespace kvbm::ucx_test {

// The model of the UCX tests' tiers and of the helper's manager (a peer's blocks must be the same size).
inline constexpr ModelConfig kModel{.num_layers = 3, .outer_dim = 2, .page_size = 4, .inner_dim = 64, .dtype_bytes = 2};

// Byte k of the canonical stream (layer by layer, outer by outer) of a block filled with key `key`.
inline std::uint8_t pattern_byte(std::uint64_t key, std::uint64_t k) {
  std::uint64_t z = key * 0x9E3779B97F4A7C15ull + (k / 8) + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<std::uint8_t>(z >> (8 * (k % 8)));
}

// Fills `block` of `memory` with the pattern of `key`.
inline void fill_block(const TierMemory& memory, std::uint32_t block, std::uint64_t key) {
  const ModelConfig& m = memory.layout().model();
  std::uint64_t k = 0;
  for (std::uint32_t l = 0; l < m.num_layers; ++l) {
    for (std::uint32_t o = 0; o < m.outer_dim; ++o) {
      for (std::byte& b : memory.chunk(block, l, o)) b = static_cast<std::byte>(pattern_byte(key, k++));
    }
  }
}

// Whether `block` holds exactly the pattern of `key`.
inline bool block_matches(const TierMemory& memory, std::uint32_t block, std::uint64_t key) {
  const ModelConfig& m = memory.layout().model();
  std::uint64_t k = 0;
  for (std::uint32_t l = 0; l < m.num_layers; ++l) {
    for (std::uint32_t o = 0; o < m.outer_dim; ++o) {
      for (std::byte b : memory.chunk(block, l, o)) {
        if (b != static_cast<std::byte>(pattern_byte(key, k++))) return false;
      }
    }
  }
  return true;
}

// A layout by name: "fc" (fully contiguous, 4 KiB-aligned stride), "ls" (layer separate, [block][outer]),
// "lsoc" (layer separate, [outer][block]).
inline std::unique_ptr<Layout> make_layout(const std::string& name, const ModelConfig& model, std::uint32_t blocks) {
  if (name == "fc") {
    auto l = FullyContiguousLayout::create(model, blocks, {.alignment = 4096, .base_offset = 64});
    return l.ok() ? std::unique_ptr<Layout>(*std::move(l)) : nullptr;
  }
  auto l = LayerSeparateLayout::create(model, blocks, name == "lsoc");
  return l.ok() ? std::unique_ptr<Layout>(*std::move(l)) : nullptr;
}

struct TestTier {
  std::unique_ptr<Layout> layout;
  std::unique_ptr<SystemMemory> storage;
  std::unique_ptr<TierMemory> memory;
};

inline std::optional<TestTier> make_tier(const std::string& layout_name, const ModelConfig& model,
                                         std::uint32_t blocks) {
  TestTier t;
  t.layout = make_layout(layout_name, model, blocks);
  if (t.layout == nullptr) return std::nullopt;
  auto s = SystemMemory::for_layout(*t.layout, SystemMemory::Options{});
  if (!s.ok()) return std::nullopt;
  t.storage = *std::move(s);
  auto m = TierMemory::bind(t.layout.get(), t.storage.get());
  if (!m.ok()) return std::nullopt;
  t.memory = std::make_unique<TierMemory>(*m);
  return t;
}

inline std::string to_hex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    out.push_back(kDigits[(static_cast<unsigned char>(c) >> 4) & 0xf]);
    out.push_back(kDigits[static_cast<unsigned char>(c) & 0xf]);
  }
  return out;
}

inline std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = digit(hex[i]);
    const int lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

// A child process running `argv`, its stdin and stdout on pipes. The destructor closes stdin (the
// helper exits on EOF), waits up to 5 s, then SIGKILLs it: a failing test never leaves it behind.
class ChildProcess {
 public:
  static std::unique_ptr<ChildProcess> spawn(const std::vector<std::string>& argv) {
    int in[2];
    int out[2];
    if (pipe2(in, O_CLOEXEC) != 0) return nullptr;
    if (pipe2(out, O_CLOEXEC) != 0) {
      close(in[0]);
      close(in[1]);
      return nullptr;
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
      dup2(in[0], STDIN_FILENO);
      dup2(out[1], STDOUT_FILENO);
      execv(args[0], args.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
      close(in[1]);
      close(out[0]);
      return nullptr;
    }
    return std::unique_ptr<ChildProcess>(new ChildProcess(pid, in[1], out[0]));
  }

  ~ChildProcess() {
    close_stdin();
    if (!wait_exit(std::chrono::seconds(5))) {
      kill(pid_, SIGKILL);
      (void)wait_exit(std::chrono::seconds(5));
    }
    close(out_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool write_line(const std::string& line) {
    if (in_ < 0) return false;
    std::string s = line + "\n";
    std::size_t off = 0;
    while (off < s.size()) {
      const ssize_t n = write(in_, s.data() + off, s.size() - off);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }
  // The next line of the child's stdout, or nullopt at EOF or when `timeout` passes.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (auto pos = buffer_.find('\n'); pos != std::string::npos) {
        std::string line = buffer_.substr(0, pos);
        buffer_.erase(0, pos + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      const int r = poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return std::nullopt;
      char buf[4096];
      const ssize_t n = read(out_, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      buffer_.append(buf, static_cast<std::size_t>(n));
    }
  }
  // Reads lines until one starts with `prefix`; returns the rest of it.
  std::optional<std::string> expect(const std::string& prefix, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto line = read_line(left);
      if (!line) return std::nullopt;
      if (line->rfind(prefix, 0) == 0) return line->substr(prefix.size());
    }
  }
  void close_stdin() {
    if (in_ >= 0) close(in_);
    in_ = -1;
  }
  void kill_now() {
    kill(pid_, SIGKILL);
    (void)wait_exit(std::chrono::seconds(5));
  }
  // Exit status once exited (waitpid), nullopt while running after `timeout`.
  bool wait_exit(std::chrono::milliseconds timeout) {
    if (exited_) return true;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || r < 0) {
        exited_ = true;
        exit_status_ = status;
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      usleep(2000);
    }
  }
  int exit_status() const { return exit_status_; }

 private:
  ChildProcess(pid_t pid, int in, int out) : pid_(pid), in_(in), out_(out) {}
  pid_t pid_;
  int in_;
  int out_;
  bool exited_ = false;
  int exit_status_ = 0;
  std::string buffer_;
};

}  // namespace kvbm::ucx_test
