// NatsPublisher against a real nats-server, which each test starts on a free loopback port.
#include "kvbm/events/nats_publisher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "kvbm/events/msgpack_codec.h"
#include "support/wait_until.h"

extern char** environ;

namespace kvbm {
namespace {

using namespace std::chrono_literals;
using kvbm::testing::wait_until;

// Debian installs it in /usr/sbin; other installs use /usr/bin or /usr/local/bin. Empty when absent.
std::string nats_server_path() {
  for (const char* path : {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"}) {
    if (::access(path, X_OK) == 0) return path;
  }
  return "";
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool port_open(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// A nats-server child process on 127.0.0.1:port; killed on destruction.
class NatsServer {
 public:
  explicit NatsServer(int port) : port_(port) {}
  ~NatsServer() { stop(); }

  bool start() {
    const std::string port = std::to_string(port_);
    const std::string program = nats_server_path();
    const char* argv[] = {program.c_str(), "-a", "127.0.0.1", "-p", port.c_str(), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, program.c_str(), &actions, nullptr, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    return wait_until([&] { return port_open(port_); }, 5s);
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  [[nodiscard]] std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] int port() const { return port_; }

 private:
  int port_;
  pid_t pid_ = -1;
};

// A libnats subscriber that also reconnects, so it survives the server restart.
class Subscriber {
 public:
  Subscriber(const std::string& url, const std::string& subject) {
    EXPECT_EQ(natsOptions_Create(&opts_), NATS_OK);
    natsOptions_SetURL(opts_, url.c_str());
    natsOptions_SetMaxReconnect(opts_, -1);
    natsOptions_SetReconnectWait(opts_, 50);
    EXPECT_EQ(natsConnection_Connect(&conn_, opts_), NATS_OK);
    EXPECT_EQ(natsConnection_SubscribeSync(&sub_, conn_, subject.c_str()), NATS_OK);
    EXPECT_EQ(natsConnection_FlushTimeout(conn_, 2000), NATS_OK);  // the server knows the subscription
  }
  ~Subscriber() {
    natsSubscription_Destroy(sub_);
    natsConnection_Destroy(conn_);
    natsOptions_Destroy(opts_);
  }

  // The next message's payload, or nullopt after `timeout`.
  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    natsMsg* msg = nullptr;
    if (natsSubscription_NextMsg(&msg, sub_, timeout.count()) != NATS_OK) return std::nullopt;
    std::string payload(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    natsMsg_Destroy(msg);
    return payload;
  }

  [[nodiscard]] bool connected() const { return natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED; }
  // After a reconnect, the server has this subscription again once a flush round-trips.
  [[nodiscard]] bool flush() { return natsConnection_FlushTimeout(conn_, 1000) == NATS_OK; }

 private:
  natsOptions* opts_ = nullptr;
  natsConnection* conn_ = nullptr;
  natsSubscription* sub_ = nullptr;
};

EventBatch make_batch(std::uint64_t n) {
  BlockStoredEvent stored;
  stored.block_hashes = {n, 0x8000000000000000ull + n};  // one ≥ 2^63
  stored.parent_block_hash = 42;
  stored.token_ids = {1, 2, 3, 4, 5, 6, 7, 8};
  stored.block_size = 4;
  stored.medium = "GPU";
  return EventBatch{.timestamp = 1700000000.5 + static_cast<double>(n),
                    .events = {stored, BlockRemovedEvent{{n}, "CPU"}},
                    .data_parallel_rank = 0};
}

class NatsPublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (nats_server_path().empty()) GTEST_SKIP() << "nats-server is not installed";
    port_ = free_port();
    ASSERT_GT(port_, 0);
    server_ = std::make_unique<NatsServer>(port_);
    ASSERT_TRUE(server_->start()) << "nats-server did not start on port " << port_;
  }

  NatsPublisherOptions options() const {
    NatsPublisherOptions o;
    o.servers = {server_->url()};
    o.worker_id = 7;
    o.reconnect_wait = 50ms;
    return o;
  }

  int port_ = 0;
  std::unique_ptr<NatsServer> server_;
};

TEST(NatsPublisherOptionsTest, SubjectIsValidated) {
  EXPECT_TRUE(validate_nats_subject("kvbm.events.7").ok());
  for (const char* bad : {"kvbm events", "kvbm.*", "kvbm.>", ".kvbm", "kvbm.", "kvbm..events", "a\tb"}) {
    const absl::Status s = validate_nats_subject(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(bad));
  }
  EXPECT_EQ(validate_nats_subject("").code(), absl::StatusCode::kInvalidArgument);

  NatsPublisherOptions o;
  o.subject = "kvbm.*";
  const auto p = NatsPublisher::create(o);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()), ::testing::HasSubstr("subject"));
  o.subject = "";
  o.servers = {};
  EXPECT_EQ(NatsPublisher::create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.servers = {"nats://127.0.0.1:1"};
  o.reconnect_buffer_bytes = 0;
  EXPECT_THAT(std::string(NatsPublisher::create(o).status().message()), ::testing::HasSubstr("reconnect_buffer_bytes"));
}

TEST(NatsPublisherConnectTest, NoServerIsUnavailableNamingTheUrl) {
  const int port = free_port();
  NatsPublisherOptions o;
  o.servers = {"nats://127.0.0.1:" + std::to_string(port)};
  o.connect_timeout = 500ms;
  const auto p = NatsPublisher::create(o);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(p.status().message()), ::testing::HasSubstr(o.servers[0]));
}

TEST(NatsPublisherConnectTest, LazyPublisherWithNoServerClosesPromptly) {
  NatsPublisherOptions o;
  o.servers = {"nats://127.0.0.1:" + std::to_string(free_port())};
  o.connect_lazily = true;
  o.reconnect_wait = 20ms;
  const auto start = std::chrono::steady_clock::now();
  {
    auto publisher = NatsPublisher::create(o);
    ASSERT_TRUE(publisher.ok()) << publisher.status();
    EXPECT_FALSE((*publisher)->connected());
    EXPECT_TRUE((*publisher)->publish(EventBatch{}, "buffered").ok());
    std::this_thread::sleep_for(100ms);  // a few failed reconnect attempts
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(NatsPublisherTest, PublishesDecodableBatchesOnTheDefaultSubject) {
  auto publisher = NatsPublisher::create(options());
  ASSERT_TRUE(publisher.ok()) << publisher.status();
  EXPECT_EQ((*publisher)->subject(), "kvbm.events.7");
  EXPECT_EQ((*publisher)->name(), "nats");
  EXPECT_TRUE((*publisher)->connected());
  Subscriber sub(server_->url(), "kvbm.events.7");

  std::size_t bytes = 0;
  for (std::uint64_t n = 0; n < 20; ++n) {
    const EventBatch b = make_batch(n);
    const std::string payload = encode_event_batch(b);
    bytes += payload.size();
    ASSERT_TRUE((*publisher)->publish(b, payload).ok());
  }
  ASSERT_TRUE((*publisher)->flush(2s).ok());
  for (std::uint64_t n = 0; n < 20; ++n) {
    const auto payload = sub.next(2s);
    ASSERT_TRUE(payload.has_value()) << "message " << n;
    EXPECT_EQ(*payload, encode_event_batch(make_batch(n)));  // the same bytes as ZMQ's third frame
    const auto decoded = decode_event_batch(*payload);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, make_batch(n));
  }
  const auto stats = (*publisher)->stats();
  EXPECT_EQ(stats.published, 20u);
  EXPECT_EQ(stats.published_bytes, bytes);
  EXPECT_EQ(stats.failed, 0u);
}

TEST_F(NatsPublisherTest, CustomSubject) {
  auto o = options();
  o.subject = "dynamo.kv.worker-3";
  auto publisher = NatsPublisher::create(o);
  ASSERT_TRUE(publisher.ok()) << publisher.status();
  Subscriber sub(server_->url(), "dynamo.kv.worker-3");
  ASSERT_TRUE((*publisher)->publish(make_batch(1), "payload").ok());
  EXPECT_EQ(sub.next(2s), "payload");
}

TEST_F(NatsPublisherTest, ResumesAfterTheServerRestarts) {
  auto publisher = NatsPublisher::create(options());
  ASSERT_TRUE(publisher.ok()) << publisher.status();
  NatsPublisher& p = **publisher;
  Subscriber sub(server_->url(), p.subject());
  ASSERT_TRUE(p.publish(make_batch(0), encode_event_batch(make_batch(0))).ok());
  ASSERT_TRUE(sub.next(2s).has_value());

  server_->stop();
  ASSERT_TRUE(wait_until([&] { return !p.connected(); }, 5s));
  // libnats runs the connection callbacks on its own thread, a moment after the status changes.
  EXPECT_TRUE(wait_until([&] { return p.stats().disconnects >= 1; }, 5s));
  // During the outage publishes are buffered (the reconnect buffer is 8 MiB), not failed.
  for (std::uint64_t n = 1; n <= 5; ++n) EXPECT_TRUE(p.publish(make_batch(n), encode_event_batch(make_batch(n))).ok());

  ASSERT_TRUE(server_->start()) << "nats-server did not restart on port " << port_;
  ASSERT_TRUE(wait_until([&] { return p.connected() && sub.connected(); }, 10s));
  EXPECT_TRUE(wait_until([&] { return p.stats().reconnects >= 1; }, 5s));
  ASSERT_TRUE(wait_until([&] { return sub.flush(); }, 5s));

  // Core NATS is at-most-once: what was buffered may reach the subscriber or not, depending on which
  // of the two reconnected first. Everything published now must arrive.
  const std::string marker = encode_event_batch(make_batch(1000));
  ASSERT_TRUE(p.publish(make_batch(1000), marker).ok());
  ASSERT_TRUE(p.flush(2s).ok());
  bool seen = false;
  for (int i = 0; i < 10 && !seen; ++i) {
    const auto payload = sub.next(2s);
    ASSERT_TRUE(payload.has_value()) << "nothing received after the restart";
    ASSERT_TRUE(decode_event_batch(*payload).ok());
    seen = *payload == marker;
  }
  EXPECT_TRUE(seen);
  EXPECT_EQ(p.stats().failed, 0u);
}

TEST_F(NatsPublisherTest, FullReconnectBufferFailsAndCounts) {
  auto o = options();
  o.reconnect_buffer_bytes = 4096;
  auto publisher = NatsPublisher::create(o);
  ASSERT_TRUE(publisher.ok()) << publisher.status();
  NatsPublisher& p = **publisher;
  server_->stop();
  ASSERT_TRUE(wait_until([&] { return !p.connected(); }, 5s));

  const std::string payload(1000, 'x');
  int failures = 0;
  for (int i = 0; i < 20; ++i) {
    const absl::Status s = p.publish(make_batch(0), payload);
    if (!s.ok()) {
      EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
      ++failures;
    }
  }
  EXPECT_GT(failures, 0);
  EXPECT_LT(failures, 20);
  EXPECT_EQ(p.stats().failed, static_cast<std::uint64_t>(failures));
  EXPECT_EQ(p.stats().published, static_cast<std::uint64_t>(20 - failures));
}

TEST_F(NatsPublisherTest, LazyConnectBuffersUntilTheServerComes) {
  server_->stop();
  auto o = options();
  o.connect_lazily = true;
  auto publisher = NatsPublisher::create(o);
  ASSERT_TRUE(publisher.ok()) << publisher.status();
  NatsPublisher& p = **publisher;
  EXPECT_FALSE(p.connected());
  EXPECT_TRUE(p.publish(make_batch(0), "early").ok());

  ASSERT_TRUE(server_->start());
  ASSERT_TRUE(wait_until([&] { return p.connected(); }, 10s));
  EXPECT_TRUE(wait_until([&] { return p.stats().reconnects >= 1; }, 5s));
  Subscriber sub(server_->url(), p.subject());
  ASSERT_TRUE(p.publish(make_batch(1), "late").ok());
  // The buffered "early" batch may reach the server after this subscription was made (the client flushes
  // its reconnect buffer on its own thread): it may arrive first, and "late" must follow.
  std::optional<std::string> got = sub.next(2s);
  if (got == "early") got = sub.next(2s);
  EXPECT_EQ(got, "late");
}

}  // namespace
}  // namespace kvbm
