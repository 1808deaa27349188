// RedisServer: a real redis-server child on a free 127.0.0.1 port (issue 7/8). A test fixture: the G4 tests
// and the fault soak start their servers with it, and `kvbm bench remote` (its workload library has
// tests/ on its include path) starts one with it when it is not given an endpoint.
//
// Started as `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no` (no persistence, nothing
// written to disk), output to /dev/null. The destructor kills it (SIGCONT first, in case a test left it
// stopped) and reaps it, so a failing test leaves nothing behind. kill() / restart() / pause() / resume()
// let callers take it down and bring it back on the same port. command() runs one command on a fresh
// hiredis connection (inspection, and tampering in tests: SETRANGE, DBSIZE, FLUSHALL, ...).
//
// Thread-safety: none; one thread drives it.
#pragma once

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
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace kvbm::testing {

inline const char* redis_server_path() {
  for (const char* p : {"/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return nullptr;
}

// A port that was free a moment ago (bind to 0 and read it back).
inline int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

struct RedisReplyDeleter {
  void operator()(redisReply* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

class RedisServer {
 public:
  RedisServer() = default;
  ~RedisServer() { kill(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts `program` (empty: the first redis-server found by redis_server_path()) on a free port (tries a
  // few). False when the program is missing or does not come up.
  bool start(const std::string& program = "") {
    program_ = program.empty() ? std::string(redis_server_path() != nullptr ? redis_server_path() : "") : program;
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = free_loopback_port();
      if (port_ > 0 && spawn()) return true;
      kill();
    }
    return false;
  }
  // Starts again on the same port (after kill()).
  bool restart() {
    kill();
    for (int attempt = 0; attempt < 50; ++attempt) {  // the port may linger briefly
      if (spawn()) return true;
      kill();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  // SIGKILL and reap. Idempotent.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // SIGSTOP: the server keeps its socket (connections and connects still succeed) but answers nothing.
  void pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] bool running() const { return pid_ > 0; }

  // One command (argv form, binary-safe) on a fresh connection; null on a connection error.
  [[nodiscard]] RedisReplyPtr command(const std::vector<std::string>& args) const {
    timeval tv{2, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (c == nullptr) return nullptr;
    if (c->err != 0) {
      redisFree(c);
      return nullptr;
    }
    redisSetTimeout(c, tv);
    std::vector<const char*> argv;
    std::vector<std::size_t> len;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      len.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), len.data()));
    redisFree(c);
    return RedisReplyPtr(r);
  }
  // DBSIZE, or -1 on error.
  [[nodiscard]] long long dbsize() const {
    RedisReplyPtr r = command({"DBSIZE"});
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  }

 private:
  bool spawn() {
    if (program_.empty() || ::access(program_.c_str(), X_OK) != 0) return false;
    const char* program = program_.c_str();
    const std::string port = std::to_string(port_);
    std::vector<std::string> args = {program, "--port",       port, "--bind",      "127.0.0.1", "--save",
                                     "",      "--appendonly", "no", "--daemonize", "no"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, program, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    // Up when our child answers; gone when it exited (port taken, bad arguments). The answer must name our
    // child's pid: while a child that lost the port is still exiting, another process's server on that port
    // (a test running beside this one that took the port while it was free) would answer a bare PING.
    const std::string pid_field = "process_id:" + std::to_string(pid_) + "\r\n";
    for (int i = 0; i < 250; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      RedisReplyPtr r = command({"INFO", "server"});
      if (r && r->type == REDIS_REPLY_STRING) {
        if (std::string_view(r->str, r->len).find(pid_field) != std::string_view::npos) return true;
        // Another server holds the port: ours cannot bind it and will exit (then the loop above reaps it).
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  std::string program_;
  int port_ = -1;
  pid_t pid_ = -1;
};

}  // namespace kvbm::testing
