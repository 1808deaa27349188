// PeerBlockServer / PeerBlockClient: sequence hashes → pinned block ids + checksums over ZMQ REQ/REP,
// then UCX reads into freshly allocated G1 blocks, verified before they are registered.
#include "kvbm/peer/peer_blocks.h"

#include <absl/strings/str_cat.h>

#include <cstring>
#include <utility>

#include "kvbm/core/hashing.h"
#include "kvbm/core/little_endian.h"

namespace kvbm {
namespace {

enum Op : std::uint8_t { kMetadata = 1, kResolve = 2, kRelease = 3 };
constexpr std::size_t kEntryBytes = 16;

std::string error_reply(const absl::Status& status) {
  std::string out(1, static_cast<char>(status.code()));
  out.append(std::string(status.message()));
  return out;
}

// The status an error reply carries (OK for a success reply, whose payload follows byte 0).
absl::Status reply_status(std::string_view reply) {
  if (reply.empty()) return absl::DataLossError("peer blocks: empty reply");
  const auto code = static_cast<unsigned char>(reply[0]);
  if (code == 0) return absl::OkStatus();
  if (code > static_cast<unsigned>(absl::StatusCode::kUnauthenticated)) {
    return absl::DataLossError(absl::StrCat("peer blocks: reply with unknown status code ", code));
  }
  return absl::Status(static_cast<absl::StatusCode>(code), absl::StrCat("peer: ", std::string(reply.substr(1))));
}

}  // namespace

absl::Status register_manager_tiers(UcxAgent& agent, KvBlockManager& kvbm) {
  if (absl::Status s = agent.register_tier(CacheLevel::kG1, kvbm.g1_memory()); !s.ok()) return s;
  const TierMemory* g2 = kvbm.tier_memory(CacheLevel::kG2);
  if (g2 != nullptr && g2->host_addressable()) {
    if (absl::Status s = agent.register_tier(CacheLevel::kG2, *g2); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::uint64_t canonical_block_checksum(const TierMemory& memory, BlockId block, std::uint64_t tag) {
  const ModelConfig& model = memory.layout().model();
  std::vector<std::byte> buf(model.bytes_per_block());
  memory.pack(block.value(), buf);
  return xxh3_64(buf.data(), buf.size(), tag);
}

// ---- PeerBlockServer ----

PeerBlockServer::PeerBlockServer(KvBlockManager* kvbm, UcxAgent* agent, PeerBlockServerOptions options)
    : kvbm_(kvbm), agent_(agent), options_(std::move(options)), socket_(context_, zmq::socket_type::rep) {}

absl::StatusOr<std::unique_ptr<PeerBlockServer>> PeerBlockServer::create(KvBlockManager* kvbm, UcxAgent* agent,
                                                                         PeerBlockServerOptions options) {
  if (kvbm == nullptr || agent == nullptr)
    return absl::InvalidArgumentError("PeerBlockServer: kvbm and agent are required");
  if (options.max_leases == 0 || options.max_hashes == 0 || options.max_lease.count() <= 0) {
    return absl::InvalidArgumentError("PeerBlockServer: max_leases, max_hashes and max_lease must be > 0");
  }
  if (absl::Status s = register_manager_tiers(*agent, *kvbm); !s.ok()) return s;
  std::unique_ptr<PeerBlockServer> server(new PeerBlockServer(kvbm, agent, std::move(options)));
  auto blob = agent->export_metadata();
  if (!blob.ok()) return blob.status();
  server->blob_ = *std::move(blob);
  try {
    server->socket_.set(zmq::sockopt::linger, 0);
    server->socket_.bind(server->options_.endpoint);
    server->endpoint_ = server->socket_.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return absl::UnavailableError(
        absl::StrCat("PeerBlockServer: cannot bind endpoint ", server->options_.endpoint, ": ", e.what()));
  }
  server->thread_ = std::thread([s = server.get()] { s->serve(); });
  return server;
}

PeerBlockServer::~PeerBlockServer() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
  std::map<std::uint64_t, Lease> leases;
  {
    MutexLock lock(&mu_);
    leases.swap(leases_);
  }
  // Handles release outside the lock (they call into the pools).
}

std::size_t PeerBlockServer::active_leases() const {
  MutexLock lock(&mu_);
  return leases_.size();
}

PeerBlockServerStats PeerBlockServer::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

void PeerBlockServer::serve() {
  while (!stop_.load(std::memory_order_relaxed)) {
    expire_leases();
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    int ready = 0;
    try {
      ready = zmq::poll(&item, 1, options_.poll_interval);
    } catch (const zmq::error_t&) {
      continue;  // EINTR
    }
    if (ready <= 0) continue;
    zmq::message_t request;
    try {
      if (!socket_.recv(request, zmq::recv_flags::dontwait)) continue;
      std::string reply = handle(std::string_view(static_cast<const char*>(request.data()), request.size()));
      (void)socket_.send(zmq::buffer(reply), zmq::send_flags::none);
    } catch (const zmq::error_t&) {
      // A REP socket in a bad state cannot recover its envelope: go on with the next request.
    }
  }
}

std::string PeerBlockServer::handle(std::string_view request) {
  {
    MutexLock lock(&mu_);
    ++stats_.requests;
  }
  if (request.empty()) {
    MutexLock lock(&mu_);
    ++stats_.bad_requests;
    return error_reply(absl::InvalidArgumentError("empty request"));
  }
  switch (static_cast<std::uint8_t>(request[0])) {
    case kMetadata:
      return std::string(1, '\0') + blob_;
    case kResolve:
      return resolve(request.substr(1));
    case kRelease:
      return release(request.substr(1));
    default: {
      MutexLock lock(&mu_);
      ++stats_.bad_requests;
      return error_reply(absl::InvalidArgumentError(
          absl::StrCat("unknown op ", static_cast<unsigned>(static_cast<std::uint8_t>(request[0])),
                       ", expected 1 (metadata), 2 (resolve) or 3 (release)")));
    }
  }
}

std::string PeerBlockServer::resolve(std::string_view body) {
  if (body.size() < 12) {
    MutexLock lock(&mu_);
    ++stats_.bad_requests;
    return error_reply(absl::InvalidArgumentError("resolve: truncated header"));
  }
  const std::uint64_t lease_ms = load_le<std::uint64_t>(body.data());
  const std::uint64_t n = load_le<std::uint32_t>(body.data() + 8);
  if (n == 0 || n > options_.max_hashes || body.size() != 12 + n * 8) {
    MutexLock lock(&mu_);
    ++stats_.bad_requests;
    return error_reply(absl::InvalidArgumentError(
        absl::StrCat("resolve: hash count must be in [1, ", options_.max_hashes, "] and match the request size, got ",
                     n, " hashes in ", body.size() - 12, " bytes")));
  }
  std::vector<SequenceHash> hashes;
  hashes.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) hashes.emplace_back(load_le<std::uint64_t>(body.data() + 12 + i * 8));
  {
    MutexLock lock(&mu_);
    if (leases_.size() >= options_.max_leases) {
      return error_reply(absl::ResourceExhaustedError(
          absl::StrCat("resolve: ", leases_.size(), " leases outstanding (max_leases ", options_.max_leases, ")")));
    }
  }
  // Pins the longest prefix held in G1, continued in G2. G3 (disk) is not readable over RMA.
  MatchResult match = kvbm_->match(hashes);
  match.g3.clear();
  std::string reply(1, '\0');
  const std::size_t m = match.g1.size() + match.g2.size();
  std::string entries;
  entries.reserve(m * kEntryBytes);
  auto add = [&](CacheLevel level, BlockId id, std::uint64_t checksum) {
    entries.push_back(static_cast<char>(level));
    entries.append(3, '\0');
    append_le<std::uint32_t>(&entries, id.value());
    append_le<std::uint64_t>(&entries, checksum);
  };
  for (const G1Block& b : match.g1) {
    add(CacheLevel::kG1, b.id(), canonical_block_checksum(kvbm_->g1_memory(), b.id(), b.sequence_hash().value()));
  }
  for (const G2Block& b : match.g2) {
    add(CacheLevel::kG2, b.id(),
        canonical_block_checksum(*kvbm_->tier_memory(CacheLevel::kG2), b.id(), b.sequence_hash().value()));
  }
  std::uint64_t lease_id = 0;
  if (m > 0) {
    const auto lease = std::min<std::chrono::milliseconds>(
        lease_ms == 0 ? options_.max_lease : std::chrono::milliseconds(std::min<std::uint64_t>(lease_ms, 1ull << 40)),
        options_.max_lease);
    MutexLock lock(&mu_);
    lease_id = next_lease_++;
    leases_.emplace(lease_id, Lease{.g1 = std::move(match.g1),
                                    .g2 = std::move(match.g2),
                                    .expiry = std::chrono::steady_clock::now() + lease});
    stats_.resolved_blocks += m;
  }
  append_le<std::uint64_t>(&reply, lease_id);
  append_le<std::uint32_t>(&reply, static_cast<std::uint32_t>(m));
  reply += entries;
  return reply;
}

std::string PeerBlockServer::release(std::string_view body) {
  if (body.size() != 8) {
    MutexLock lock(&mu_);
    ++stats_.bad_requests;
    return error_reply(absl::InvalidArgumentError("release: the body must be one u64 lease id"));
  }
  Lease lease;
  {
    MutexLock lock(&mu_);
    auto it = leases_.find(load_le<std::uint64_t>(body.data()));
    if (it == leases_.end()) {
      return error_reply(
          absl::NotFoundError(absl::StrCat("release: no lease ", load_le<std::uint64_t>(body.data()), " (expired?)")));
    }
    lease = std::move(it->second);
    leases_.erase(it);
    ++stats_.leases_released;
  }
  return std::string(1, '\0');  // `lease` releases its blocks here, outside the lock
}

void PeerBlockServer::expire_leases() {
  std::vector<Lease> expired;
  {
    MutexLock lock(&mu_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.expiry <= now) {
        expired.push_back(std::move(it->second));
        it = leases_.erase(it);
        ++stats_.leases_expired;
      } else {
        ++it;
      }
    }
  }
}

// ---- PeerBlockClient ----

PeerBlockClient::PeerBlockClient(KvBlockManager* kvbm, UcxAgent* agent, PeerBlockClientOptions options)
    : kvbm_(kvbm), agent_(agent), options_(std::move(options)), socket_(context_, zmq::socket_type::req) {}

PeerBlockClient::~PeerBlockClient() {
  if (peer_.value() != 0) agent_->remove_peer(peer_);
}

absl::StatusOr<std::unique_ptr<PeerBlockClient>> PeerBlockClient::connect(KvBlockManager* kvbm, UcxAgent* agent,
                                                                          PeerBlockClientOptions options) {
  if (kvbm == nullptr || agent == nullptr)
    return absl::InvalidArgumentError("PeerBlockClient: kvbm and agent are required");
  if (absl::Status s = register_manager_tiers(*agent, *kvbm); !s.ok()) return s;
  std::unique_ptr<PeerBlockClient> client(new PeerBlockClient(kvbm, agent, std::move(options)));
  try {
    client->socket_.set(zmq::sockopt::linger, 0);
    // A request that timed out must not wedge the REQ socket: allow a new send, match replies by id.
    client->socket_.set(zmq::sockopt::req_relaxed, 1);
    client->socket_.set(zmq::sockopt::req_correlate, 1);
    client->socket_.connect(client->options_.endpoint);
  } catch (const zmq::error_t& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("PeerBlockClient: cannot connect to endpoint ", client->options_.endpoint, ": ", e.what()));
  }
  auto reply = client->call(std::string(1, static_cast<char>(kMetadata)));
  if (!reply.ok()) return reply.status();
  auto peer = agent->import_peer(std::string_view(*reply).substr(1));
  if (!peer.ok()) return peer.status();
  client->peer_ = *peer;
  auto meta = agent->peer_metadata(*peer);
  if (meta.ok()) client->peer_worker_id_ = meta->worker_id;
  return client;
}

absl::StatusOr<std::string> PeerBlockClient::call(const std::string& request) {
  try {
    (void)socket_.send(zmq::buffer(request), zmq::send_flags::none);
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, options_.request_timeout) <= 0) {
      return absl::UnavailableError(absl::StrCat("peer blocks: no reply from ", options_.endpoint, " within ",
                                                 options_.request_timeout.count(), " ms"));
    }
    zmq::message_t msg;
    if (!socket_.recv(msg, zmq::recv_flags::dontwait)) {
      return absl::UnavailableError(absl::StrCat("peer blocks: no reply from ", options_.endpoint));
    }
    std::string reply(static_cast<const char*>(msg.data()), msg.size());
    if (absl::Status s = reply_status(reply); !s.ok()) return s;
    return reply;
  } catch (const zmq::error_t& e) {
    return absl::UnavailableError(absl::StrCat("peer blocks: ", options_.endpoint, ": ", e.what()));
  }
}

absl::StatusOr<PullResult> PeerBlockClient::pull_prefix(const TokenBlockSequence& seq) {
  PullResult result;
  std::span<const SequenceHash> hashes = seq.sequence_hashes();
  if (hashes.empty()) return result;
  if (seq.page_size() != kvbm_->page_size()) {
    return absl::InvalidArgumentError(absl::StrCat("pull_prefix: the sequence's page_size ", seq.page_size(),
                                                   " is not this manager's ", kvbm_->page_size()));
  }
  result.blocks = kvbm_->match_g1(hashes);
  result.local_blocks = result.blocks.size();
  const std::size_t k = result.blocks.size();
  if (k == hashes.size()) return result;

  std::string request(1, static_cast<char>(kResolve));
  append_le<std::uint64_t>(&request, static_cast<std::uint64_t>(options_.lease.count()));
  append_le<std::uint32_t>(&request, static_cast<std::uint32_t>(hashes.size() - k));
  for (std::size_t i = k; i < hashes.size(); ++i) append_le<std::uint64_t>(&request, hashes[i].value());
  auto reply = call(request);
  if (!reply.ok()) return reply.status();
  const std::string_view r = *reply;
  if (r.size() < 13) return absl::DataLossError("pull_prefix: truncated resolve reply");
  const std::uint64_t lease_id = load_le<std::uint64_t>(r.data() + 1);
  const std::size_t m = load_le<std::uint32_t>(r.data() + 9);
  if (m > hashes.size() - k || r.size() != 13 + m * kEntryBytes || (m > 0) != (lease_id != 0)) {
    return absl::DataLossError(absl::StrCat("pull_prefix: malformed resolve reply (", m, " entries in ", r.size(),
                                            " bytes for ", hashes.size() - k, " hashes)"));
  }
  if (m == 0) return result;
  // From here on the lease is released on every path (it also expires on its own).
  struct LeaseGuard {
    PeerBlockClient* client;
    std::uint64_t id;
    ~LeaseGuard() {
      std::string release(1, static_cast<char>(kRelease));
      append_le<std::uint64_t>(&release, id);
      (void)client->call(release);
    }
  } guard{this, lease_id};

  struct Entry {
    CacheLevel level;
    BlockId id;
    std::uint64_t checksum;
  };
  std::vector<Entry> entries(m);
  for (std::size_t i = 0; i < m; ++i) {
    const std::size_t at = 13 + i * kEntryBytes;
    const auto level = static_cast<std::uint8_t>(r[at]);
    if (level != static_cast<std::uint8_t>(CacheLevel::kG1) && level != static_cast<std::uint8_t>(CacheLevel::kG2)) {
      return absl::DataLossError(absl::StrCat("pull_prefix: entry ", i, " names tier ", level, ", expected G1 or G2"));
    }
    entries[i] = Entry{static_cast<CacheLevel>(level), BlockId(load_le<std::uint32_t>(r.data() + at + 4)),
                       load_le<std::uint64_t>(r.data() + at + 8)};
  }
  auto fresh = kvbm_->allocate(m);
  if (!fresh.ok()) return fresh.status();
  // One read per source tier, both in flight at once.
  std::vector<std::unique_ptr<UcxRequest>> requests;
  for (CacheLevel level : {CacheLevel::kG1, CacheLevel::kG2}) {
    std::vector<BlockId> remote;
    std::vector<BlockId> local;
    for (std::size_t i = 0; i < m; ++i) {
      if (entries[i].level != level) continue;
      remote.push_back(entries[i].id);
      local.push_back((*fresh)[i].id());
    }
    if (remote.empty()) continue;
    auto req = agent_->read_blocks(peer_, level, remote, CacheLevel::kG1, local);
    if (!req.ok()) {
      for (auto& pending : requests) (void)pending->wait(std::chrono::steady_clock::now() + options_.transfer_timeout);
      return req.status();
    }
    result.pulled_bytes += (*req)->bytes();
    requests.push_back(*std::move(req));
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.transfer_timeout;
  absl::Status status;
  for (auto& req : requests) {
    absl::Status s = req->wait(deadline);
    if (status.ok() && !s.ok()) status = s;
  }
  if (!status.ok()) return status;
  for (std::size_t i = 0; i < m; ++i) {
    const std::uint64_t tag = hashes[k + i].value();
    const std::uint64_t got = canonical_block_checksum(kvbm_->g1_memory(), (*fresh)[i].id(), tag);
    if (got != entries[i].checksum) {
      return absl::DataLossError(absl::StrCat("pull_prefix: block ", k + i, " (peer ",
                                              std::string(cache_level_name(entries[i].level)), " block ",
                                              entries[i].id.value(), ") checksum mismatch: peer 0x",
                                              absl::Hex(entries[i].checksum), ", read 0x", absl::Hex(got)));
    }
    if (absl::Status s = (*fresh)[i].apply(seq.block(k + i)); !s.ok()) return s;
  }
  auto registered = kvbm_->register_blocks(*fresh);
  if (!registered.ok()) return registered.status();
  result.pulled_blocks = m;
  for (G1Block& b : *registered) result.blocks.push_back(std::move(b));
  return result;
}

}  // namespace kvbm
