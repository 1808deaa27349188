// RedisStore: see include/kvbm/remote/redis_store.h for the contract.
#include "kvbm/remote/redis_store.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <thread>

namespace kvbm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxQueuedJobs = 256;
constexpr auto kMinBackoff = std::chrono::milliseconds(50);
constexpr auto kMaxBackoff = std::chrono::milliseconds(1000);
constexpr auto kIdlePing = std::chrono::milliseconds(1000);

timeval to_timeval(std::uint32_t ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

}  // namespace

enum class RedisJobKind : std::uint8_t { kPut, kGet, kExists };

// One pipeline: some keys of one op, all on one node.
struct RedisStore::Job {
  RedisJobKind kind = RedisJobKind::kGet;
  std::shared_ptr<RemoteOp> op;
  std::vector<std::size_t> indices;                  // into the op
  std::vector<std::string> keys;                     // one per index
  std::vector<SequenceHash> hashes;                  // one per index
  std::shared_ptr<std::vector<RemoteValue>> values;  // put: indexed by `indices`
};

namespace {

using Job = RedisStore::Job;

void fail_job(Job& job, const absl::Status& status) {
  job.op->set_all(job.indices, status);
  job.op->part_done();
}

// The replies to GET, read straight off a blocking socket (SO_RCVTIMEO bounds each wait): a bulk string
// ("$<n>\r\n<n bytes>\r\n"), nil ("$-1\r\n") or an error ("-<text>\r\n").
class RespReader {
 public:
  enum class Kind : std::uint8_t { kValue, kNil, kError };
  explicit RespReader(int fd) : fd_(fd) {}

  // One reply into `kind` and `value` / `size` (a value) or `error` (an error's text). False on I/O error,
  // EOF, timeout or a reply that is none of the three. The value buffer is not zero-filled first (values are
  // up to megabytes; every byte is then received into it).
  bool next(Kind* kind, std::shared_ptr<char[]>* value, std::size_t* size, std::string* error) {
    std::string head;
    if (!line(&head) || head.empty()) return false;
    if (head[0] == '-') {
      *kind = Kind::kError;
      *error = head.substr(1);
      return true;
    }
    long long n = 0;
    if (head[0] != '$' || !absl::SimpleAtoi(absl::string_view(head).substr(1), &n)) return false;
    if (n < 0) {
      *kind = Kind::kNil;
      return true;
    }
    *kind = Kind::kValue;
    const auto want = static_cast<std::size_t>(n) + 2;  // the value and its \r\n
    std::shared_ptr<char[]> out(new char[want]);
    std::size_t got = std::min(want, buf_.size() - pos_);
    std::memcpy(out.get(), buf_.data() + pos_, got);
    pos_ += got;
    while (got < want) {
      const ssize_t r = ::recv(fd_, out.get() + got, want - got, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      got += static_cast<std::size_t>(r);
    }
    if (out[want - 2] != '\r' || out[want - 1] != '\n') return false;
    *value = std::move(out);
    *size = want - 2;
    return true;
  }
  [[nodiscard]] bool drained() const { return pos_ == buf_.size(); }

 private:
  bool line(std::string* out) {
    for (;;) {
      const std::size_t end = buf_.find("\r\n", pos_);
      if (end != std::string::npos) {
        out->assign(buf_, pos_, end - pos_);
        pos_ = end + 2;
        return true;
      }
      if (buf_.size() - pos_ > 4096) return false;  // no header is that long
      buf_.erase(0, pos_);
      pos_ = 0;
      char chunk[4096];
      const ssize_t r = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      buf_.append(chunk, static_cast<std::size_t>(r));
    }
  }

  int fd_;
  std::string buf_;
  std::size_t pos_ = 0;
};

}  // namespace

struct RedisStore::Counters {
  mutable Mutex mu;
  RemoteStats stats ABSL_GUARDED_BY(mu);
  void add(std::uint64_t RemoteStats::*field, std::uint64_t n) {
    if (n == 0) return;
    MutexLock lock(&mu);
    stats.*field += n;
  }
};

// One connection to one node and the thread that owns it. States: see redis_store.h.
class RedisStore::Lane {
 public:
  Lane(const Options& options, RemoteEndpoint endpoint, Counters* counters)
      : options_(options), endpoint_(std::move(endpoint)), counters_(counters) {
    thread_ = std::thread([this] { run(); });
  }
  ~Lane() { stop(); }
  Lane(const Lane&) = delete;
  Lane& operator=(const Lane&) = delete;

  // False when the job was not queued (lane down or slow, queue full, stopping): the caller fails it.
  bool submit(Job& job) {
    {
      MutexLock lock(&mu_);
      if (stopping_ || queue_.size() >= kMaxQueuedJobs) return false;
      if (state_ != State::kStarting && state_ != State::kUp) return false;
      queue_.push_back(std::move(job));
    }
    cv_.notify_all();
    return true;
  }

  void mark_slow() {
    MutexLock lock(&mu_);
    if (state_ == State::kUp) state_ = State::kSlow;
  }

  bool up() const {
    MutexLock lock(&mu_);
    return state_ == State::kUp;
  }

  void stop() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  enum class State : std::uint8_t { kStarting, kUp, kSlow, kDown };

  void run() {
    // A write to a server that went away must fail with EPIPE, not kill the process.
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, nullptr);

    auto backoff = kMinBackoff;
    for (;;) {
      if (ctx_ == nullptr) {
        if (stopping()) break;
        if (!connect()) {
          go_down(/*was_connected=*/false);
          MutexLock lock(&mu_);
          const auto until = Clock::now() + backoff;
          while (!stopping_ && Clock::now() < until) cv_.wait_until(mu_, until);
          backoff = std::min(backoff * 2, kMaxBackoff);
          continue;
        }
        backoff = kMinBackoff;
        counters_->add(&RemoteStats::reconnects, 1);
        MutexLock lock(&mu_);
        state_ = State::kUp;
      }
      Job job;
      bool idle = false;
      {
        MutexLock lock(&mu_);
        const auto idle_until = Clock::now() + kIdlePing;
        while (queue_.empty() && !stopping_) {
          if (cv_.wait_until(mu_, idle_until) == std::cv_status::timeout && queue_.empty()) {
            idle = true;
            break;
          }
        }
        if (stopping_) break;
        if (!idle) {
          job = std::move(queue_.front());
          queue_.pop_front();
        }
      }
      if (idle) {
        // Keeps health() true while nothing is asked: a server that died in the meantime is found here.
        ReplyPtr pong(static_cast<redisReply*>(redisCommand(ctx_, "PING")));
        if (!pong || pong->type != REDIS_REPLY_STATUS) go_down(/*was_connected=*/true);
        continue;
      }
      Outcome outcome = execute(job);
      if (outcome == Outcome::kLostBeforeAnyReply) {
        // Typically a connection that died while idle (the server restarted): one fresh connection, one
        // retry. Every command is idempotent (SET, GET, EXISTS).
        disconnect();
        counters_->add(&RemoteStats::disconnects, 1);
        if (connect()) {
          counters_->add(&RemoteStats::reconnects, 1);
          outcome = execute(job);
        }
        if (outcome == Outcome::kLostBeforeAnyReply) fail_unavailable(job, 0);
      }
      if (outcome == Outcome::kOk) {
        MutexLock lock(&mu_);
        if (state_ == State::kSlow) state_ = State::kUp;  // it answered after all
      } else {
        go_down(/*was_connected=*/ctx_ != nullptr);
      }
    }
    disconnect();
    std::deque<Job> left;
    {
      MutexLock lock(&mu_);
      left.swap(queue_);
    }
    for (Job& j : left) fail_job(j, absl::CancelledError("G4: the store is shutting down"));
  }

  bool stopping() const {
    MutexLock lock(&mu_);
    return stopping_;
  }

  // Connect + PING, both bounded by connect_timeout_ms; then the I/O timeout for everything else.
  bool connect() {
    redisContext* c =
        redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, to_timeval(options_.connect_timeout_ms));
    if (c == nullptr) return false;
    if (c->err != 0) {
      redisFree(c);
      return false;
    }
    redisSetTimeout(c, to_timeval(options_.connect_timeout_ms));
    ReplyPtr pong(static_cast<redisReply*>(redisCommand(c, "PING")));
    if (!pong || pong->type != REDIS_REPLY_STATUS) {
      redisFree(c);
      return false;
    }
    redisSetTimeout(c, to_timeval(options_.io_timeout_ms));
    redisEnableKeepAlive(c);
    ctx_ = c;
    return true;
  }

  void disconnect() {
    if (ctx_ != nullptr) redisFree(ctx_);
    ctx_ = nullptr;
  }

  // Drops the connection (if any) and fails everything queued: the lane refuses work until it reconnects.
  void go_down(bool was_connected) {
    if (was_connected) counters_->add(&RemoteStats::disconnects, 1);
    disconnect();
    std::deque<Job> failed;
    {
      MutexLock lock(&mu_);
      state_ = State::kDown;
      failed.swap(queue_);
    }
    for (Job& j : failed) {
      counters_->add(&RemoteStats::unavailable, j.indices.size());
      fail_job(j, unavailable());
    }
  }

  absl::Status unavailable() const {
    return absl::UnavailableError(absl::StrCat("G4: redis ", endpoint_.host, ":", endpoint_.port, " is unavailable"));
  }

  enum class Outcome : std::uint8_t {
    kOk,                  // every reply read (the job is completed)
    kLostBeforeAnyReply,  // the connection failed before any reply: the job is NOT completed (retryable)
    kLost,                // the connection failed part-way (the job is completed, the rest Unavailable)
  };

  // Ends a job after its replies were read: the keys from `answered` on fail as unavailable when the
  // connection was lost part-way; otherwise the job's part is done.
  Outcome finish(Job& job, std::size_t answered, bool connection_ok) {
    if (!connection_ok) {
      fail_unavailable(job, answered);
      return Outcome::kLost;
    }
    job.op->part_done();
    return Outcome::kOk;
  }
  void fail_unavailable(Job& job, std::size_t from) {
    counters_->add(&RemoteStats::unavailable, job.indices.size() - from);
    job.op->set_all(std::span<const std::size_t>(job.indices).subspan(from), unavailable());
    job.op->part_done();
  }

  // Writes the job's SETs straight from the values to the socket (writev: RESP framing around each value),
  // instead of formatting them into hiredis' output buffer — one copy of every value fewer. The replies are
  // then read through hiredis as usual (its output buffer is empty). False on a write error or timeout.
  bool write_puts(const Job& job, const std::string& ttl) {
    const bool with_ttl = options_.ttl_seconds > 0;
    std::vector<std::string> frames;  // per command: the head, then the tail
    frames.reserve(2 * job.indices.size());
    for (std::size_t k = 0; k < job.indices.size(); ++k) {
      const std::string& key = job.keys[k];
      const std::string_view v = (*job.values)[job.indices[k]].bytes();
      frames.push_back(absl::StrCat("*", with_ttl ? 5 : 3, "\r\n$3\r\nSET\r\n$", key.size(), "\r\n", key, "\r\n$",
                                    v.size(), "\r\n"));
      frames.push_back(with_ttl ? absl::StrCat("\r\n$2\r\nEX\r\n$", ttl.size(), "\r\n", ttl, "\r\n")
                                : std::string("\r\n"));
    }
    std::vector<iovec> iov;
    iov.reserve(3 * job.indices.size());
    for (std::size_t k = 0; k < job.indices.size(); ++k) {
      const std::string_view v = (*job.values)[job.indices[k]].bytes();
      iov.push_back(iovec{frames[2 * k].data(), frames[2 * k].size()});
      iov.push_back(iovec{const_cast<char*>(v.data()), v.size()});
      iov.push_back(iovec{frames[2 * k + 1].data(), frames[2 * k + 1].size()});
    }
    return write_all(iov.data(), iov.size());
  }

  // GET pipeline, read without hiredis: each value is received once, straight into the buffer the caller
  // gets (hiredis would copy it twice, through its reader buffer into a reply object, 16 KiB per read).
  Outcome execute_get(Job& job) {
    const std::size_t n = job.indices.size();
    std::string commands;
    for (const std::string& key : job.keys)
      absl::StrAppend(&commands, "*2\r\n$3\r\nGET\r\n$", key.size(), "\r\n", key, "\r\n");
    iovec iov{commands.data(), commands.size()};
    if (!write_all(&iov, 1)) return Outcome::kLostBeforeAnyReply;
    RespReader reader(ctx_->fd);
    std::uint64_t hits = 0, misses = 0, get_bytes = 0, corrupt = 0, errors = 0;
    std::size_t k = 0;
    bool connection_ok = true;
    for (; k < n; ++k) {
      std::shared_ptr<char[]> value;
      std::size_t size = 0;
      std::string error;
      RespReader::Kind kind{};
      if (!reader.next(&kind, &value, &size, &error)) {
        connection_ok = false;
        break;
      }
      const std::size_t index = job.indices[k];
      if (kind == RespReader::Kind::kNil) {
        ++misses;
        job.op->set(index, absl::NotFoundError("G4: not stored"));
      } else if (kind == RespReader::Kind::kError) {
        ++errors;
        job.op->set(index, absl::InternalError(absl::StrCat("G4: redis error: ", error)));
      } else {
        DecodedValue decoded;
        absl::Status st = decode_remote_value(std::string_view(value.get(), size), job.hashes[k], options_.fingerprint,
                                              options_.payload_bytes, &decoded);
        if (!st.ok()) {
          ++corrupt;
          job.op->set(index, std::move(st));
        } else {
          ++hits;
          get_bytes += decoded.payload.size();
          job.op->set(index, absl::OkStatus(), RemoteFetched{decoded.info, decoded.payload, std::move(value)});
        }
      }
    }
    if (connection_ok && !reader.drained()) connection_ok = false;  // bytes nobody asked for: out of step
    if (!connection_ok && k == 0) return Outcome::kLostBeforeAnyReply;
    {
      MutexLock lock(&counters_->mu);
      RemoteStats& s = counters_->stats;
      s.hits += hits;
      s.misses += misses;
      s.get_bytes += get_bytes;
      s.corrupt += corrupt;
      s.errors += errors;
    }
    return finish(job, k, connection_ok);
  }

  // Writes every byte of `iov` (blocking socket; SO_SNDTIMEO bounds each wait). False on error or timeout.
  bool write_all(iovec* iov, std::size_t count) {
    std::size_t at = 0;  // first iovec not fully written
    while (at < count) {
      const int chunk = static_cast<int>(std::min<std::size_t>(count - at, IOV_MAX));
      const ssize_t written = ::writev(ctx_->fd, iov + at, chunk);
      if (written < 0) {
        if (errno == EINTR) continue;
        return false;  // EAGAIN: the I/O timeout passed without progress; EPIPE / ECONNRESET: gone
      }
      auto left = static_cast<std::size_t>(written);
      while (at < count && left >= iov[at].iov_len) left -= iov[at++].iov_len;
      if (left > 0) {
        iov[at].iov_base = static_cast<char*>(iov[at].iov_base) + left;
        iov[at].iov_len -= left;
      }
    }
    return true;
  }

  // Runs one pipeline.
  Outcome execute(Job& job) {
    if (ctx_ == nullptr) return Outcome::kLostBeforeAnyReply;
    const std::size_t n = job.indices.size();
    const std::string ttl = absl::StrCat(options_.ttl_seconds);
    if (job.kind == RedisJobKind::kGet) return execute_get(job);
    if (job.kind == RedisJobKind::kPut && !write_puts(job, ttl)) return Outcome::kLostBeforeAnyReply;
    for (std::size_t k = 0; k < n && job.kind == RedisJobKind::kExists; ++k) {
      const std::string& key = job.keys[k];
      int rc = REDIS_ERR;
      switch (job.kind) {
        case RedisJobKind::kPut:  // written by write_puts
        case RedisJobKind::kGet:  // execute_get
          break;
        case RedisJobKind::kExists: {
          const char* argv[2] = {"EXISTS", key.data()};
          const std::size_t len[2] = {6, key.size()};
          rc = redisAppendCommandArgv(ctx_, 2, argv, len);
          break;
        }
      }
      if (rc != REDIS_OK) return Outcome::kLostBeforeAnyReply;
    }
    std::uint64_t puts = 0, put_bytes = 0, found = 0, errors = 0;
    bool connection_ok = true;
    std::size_t k = 0;
    for (; k < n; ++k) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
        connection_ok = false;
        break;
      }
      ReplyPtr reply(static_cast<redisReply*>(raw));
      const std::size_t index = job.indices[k];
      if (reply->type == REDIS_REPLY_ERROR) {
        ++errors;
        job.op->set(index, absl::InternalError(absl::StrCat("G4: redis error: ", std::string(reply->str, reply->len))));
        continue;
      }
      switch (job.kind) {
        case RedisJobKind::kPut:
          if (reply->type == REDIS_REPLY_STATUS) {
            ++puts;
            put_bytes += (*job.values)[index].bytes().size();
            job.op->set(index, absl::OkStatus());
          } else {
            ++errors;
            job.op->set(index, absl::InternalError("G4: unexpected reply to SET"));
          }
          break;
        case RedisJobKind::kExists:
          if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
            ++found;
            job.op->set(index, absl::OkStatus());
          } else {
            job.op->set(index, absl::NotFoundError("G4: not stored"));
          }
          break;
        case RedisJobKind::kGet:  // execute_get
          break;
      }
    }
    if (!connection_ok && k == 0) return Outcome::kLostBeforeAnyReply;
    {
      // Counted before the op completes, so that a caller who waited on it sees them.
      MutexLock lock(&counters_->mu);
      RemoteStats& s = counters_->stats;
      s.puts += puts;
      s.put_bytes += put_bytes;
      s.exists_found += found;
      s.errors += errors;
    }
    return finish(job, k, connection_ok);
  }

  const Options& options_;
  const RemoteEndpoint endpoint_;
  Counters* const counters_;

  mutable Mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  State state_ ABSL_GUARDED_BY(mu_) = State::kStarting;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  redisContext* ctx_ = nullptr;  // the lane's thread only
  std::thread thread_;
};

// ---- RedisStore ----

absl::StatusOr<std::unique_ptr<RedisStore>> RedisStore::create(Options options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("g4.endpoints: at least one endpoint is needed");
  if (options.payload_bytes == 0) return absl::InvalidArgumentError("RedisStore: payload_bytes must be > 0");
  if (options.max_batch_blocks == 0) return absl::InvalidArgumentError("g4.max_batch_blocks must be ≥ 1");
  if (options.connect_timeout_ms == 0 || options.io_timeout_ms == 0) {
    return absl::InvalidArgumentError("g4.connect_timeout_ms and g4.io_timeout_ms must be ≥ 1");
  }
  return std::unique_ptr<RedisStore>(new RedisStore(std::move(options)));
}

absl::StatusOr<std::unique_ptr<RedisStore>> RedisStore::create(const G4Config& config, std::uint64_t fingerprint,
                                                               std::size_t payload_bytes) {
  std::vector<absl::Status> errors = config.check();
  if (!errors.empty()) return errors.front();
  auto endpoints = parse_remote_endpoints(config.endpoints);
  if (!endpoints.ok()) return endpoints.status();
  Options o;
  o.endpoints = *std::move(endpoints);
  o.key_namespace = config.key_namespace;
  o.fingerprint = fingerprint;
  o.payload_bytes = payload_bytes;
  o.ttl_seconds = config.ttl_seconds;
  o.connect_timeout_ms = config.connect_timeout_ms;
  o.io_timeout_ms = config.io_timeout_ms;
  o.max_batch_blocks = config.max_batch_blocks;
  return create(std::move(o));
}

RedisStore::RedisStore(Options options) : options_(std::move(options)), counters_(std::make_unique<Counters>()) {
  for (const RemoteEndpoint& e : options_.endpoints) {
    foreground_.push_back(std::make_unique<Lane>(options_, e, counters_.get()));
    background_.push_back(std::make_unique<Lane>(options_, e, counters_.get()));
  }
}

RedisStore::~RedisStore() { shutdown(); }

void RedisStore::shutdown() {
  for (auto& lane : foreground_) lane->stop();
  for (auto& lane : background_) lane->stop();
}

std::uint32_t RedisStore::node_of(SequenceHash hash) const {
  const std::uint64_t key = hash.value() ^ (options_.fingerprint * 0x9E3779B97F4A7C15ULL);
  return jump_consistent_hash(key, static_cast<std::uint32_t>(options_.endpoints.size()));
}

std::string RedisStore::key_of(SequenceHash hash) const {
  return remote_block_key(options_.key_namespace, options_.fingerprint, hash);
}

bool RedisStore::node_up(std::uint32_t node) const { return node < foreground_.size() && foreground_[node]->up(); }

namespace {

// Routes keys to their nodes, in pipelines of at most `max_batch` keys each (0: one per node).
std::vector<Job> make_jobs(const RedisStore& store, RedisJobKind kind, const std::shared_ptr<RemoteOp>& op,
                           std::span<const SequenceHash> hashes, std::size_t max_batch,
                           std::vector<std::uint32_t>* job_node) {
  std::vector<std::vector<std::size_t>> per_node(store.num_nodes());
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    const std::uint32_t node = store.node_of(hashes[i]);
    op->assign_node(i, node);
    per_node[node].push_back(i);
  }
  std::vector<Job> jobs;
  for (std::uint32_t node = 0; node < per_node.size(); ++node) {
    const std::size_t step = max_batch == 0 ? std::max<std::size_t>(1, per_node[node].size()) : max_batch;
    for (std::size_t at = 0; at < per_node[node].size(); at += step) {
      Job job;
      job.kind = kind;
      job.op = op;
      const std::size_t end = std::min(per_node[node].size(), at + step);
      for (std::size_t j = at; j < end; ++j) {
        const std::size_t i = per_node[node][j];
        job.indices.push_back(i);
        job.keys.push_back(store.key_of(hashes[i]));
        job.hashes.push_back(hashes[i]);
      }
      jobs.push_back(std::move(job));
      job_node->push_back(node);
    }
  }
  op->expect_parts(jobs.size());
  return jobs;
}

}  // namespace

void RedisStore::dispatch(std::vector<Job>& jobs, const std::vector<std::uint32_t>& job_node, bool background) {
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    Lane& lane = background ? *background_[job_node[j]] : *foreground_[job_node[j]];
    if (!lane.submit(jobs[j])) {
      counters_->add(&RemoteStats::unavailable, jobs[j].indices.size());
      fail_job(jobs[j], absl::UnavailableError("G4: redis node is unavailable (down, slow or saturated)"));
    }
  }
}

std::shared_ptr<RemoteOp> RedisStore::put(std::vector<RemoteValue> values) {
  std::vector<SequenceHash> hashes;
  hashes.reserve(values.size());
  for (const RemoteValue& v : values) hashes.push_back(v.info().sequence_hash);
  auto shared = std::make_shared<std::vector<RemoteValue>>(std::move(values));
  auto op = std::make_shared<RemoteOp>(hashes.size(), false);
  std::vector<std::uint32_t> job_node;
  std::vector<Job> jobs = make_jobs(*this, RedisJobKind::kPut, op, hashes, options_.max_batch_blocks, &job_node);
  for (Job& job : jobs) job.values = shared;  // values travel with the jobs
  dispatch(jobs, job_node, /*background=*/true);
  return op;
}

std::shared_ptr<RemoteOp> RedisStore::get(std::span<const SequenceHash> hashes) {
  counters_->add(&RemoteStats::gets, hashes.size());
  auto op = std::make_shared<RemoteOp>(hashes.size(), true);
  std::vector<std::uint32_t> job_node;
  std::vector<Job> jobs = make_jobs(*this, RedisJobKind::kGet, op, hashes, options_.max_batch_blocks, &job_node);
  dispatch(jobs, job_node, /*background=*/false);
  return op;
}

std::shared_ptr<RemoteOp> RedisStore::exists(std::span<const SequenceHash> hashes) {
  counters_->add(&RemoteStats::exists_keys, hashes.size());
  auto op = std::make_shared<RemoteOp>(hashes.size(), false);
  std::vector<std::uint32_t> job_node;
  // exists moves no values: one pipeline per node whatever the count.
  std::vector<Job> jobs = make_jobs(*this, RedisJobKind::kExists, op, hashes, 0, &job_node);
  dispatch(jobs, job_node, /*background=*/false);
  return op;
}

void RedisStore::report_deadline_missed(const RemoteOp& op, const RemoteResult& result) {
  std::vector<bool> slow(foreground_.size(), false);
  std::uint64_t missed = 0;
  for (std::size_t i = 0; i < result.blocks.size() && i < op.size(); ++i) {
    if (result.blocks[i].code() != absl::StatusCode::kDeadlineExceeded) continue;
    ++missed;
    slow[op.node_of(i)] = true;
  }
  counters_->add(&RemoteStats::timeouts, missed);
  for (std::size_t node = 0; node < slow.size(); ++node) {
    if (slow[node]) foreground_[node]->mark_slow();
  }
}

RemoteHealth RedisStore::health() const {
  std::size_t up = 0;
  for (const auto& lane : foreground_) up += lane->up() ? 1 : 0;
  if (up == foreground_.size()) return RemoteHealth::kAvailable;
  return up == 0 ? RemoteHealth::kUnavailable : RemoteHealth::kDegraded;
}

RemoteStats RedisStore::stats() const {
  MutexLock lock(&counters_->mu);
  return counters_->stats;
}

}  // namespace kvbm
