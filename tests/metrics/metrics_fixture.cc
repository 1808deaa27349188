// Fixture for test_metrics_scrape.py (issue 8/8): a manager with G1+G2+G3 and metrics on a loopback port
// runs a few requests, prints one JSON line with the port and its own stats, and keeps serving until
// stdin closes. The Python test scrapes GET /metrics and parses it with prometheus_client.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <numeric>
#include <string>

#include "kvbm/manager/kv_block_manager.h"

namespace {

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s G3_DIRECTORY\n", argv[0]);
    return 2;
  }
  kvbm::KvbmConfig config;
  config.model = {.num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 16, .dtype_bytes = 2};
  config.g1.num_blocks = 16;
  config.g2.num_blocks = 128;
  config.g3.num_blocks = 256;
  config.g3.directory = argv[1];
  config.g3.unlink_after_open = true;
  config.offload.g3_min_frequency = 0;
  config.metrics.bind = "127.0.0.1";
  // metrics.port 0 means "off": take a free port from the kernel (retried if someone takes it first).
  std::unique_ptr<kvbm::KvBlockManager> m;
  for (int attempt = 0; attempt < 10 && !m; ++attempt) {
    config.metrics.port = free_port();
    if (config.metrics.port == 0) continue;
    auto created = kvbm::KvBlockManager::create(config);
    if (created.ok()) {
      m = *std::move(created);
    } else if (created.status().code() != absl::StatusCode::kAlreadyExists) {
      std::fprintf(stderr, "%s\n", std::string(created.status().message()).c_str());
      return 1;
    }
  }
  if (!m) return 1;
  std::uint64_t requests = 0, hits[3] = {};
  for (int round = 0; round < 2; ++round) {
    for (std::uint32_t p = 0; p < 8; ++p) {
      std::vector<std::uint32_t> tokens(4 * (4 + 2 * round));
      std::iota(tokens.begin(), tokens.end(), 1000 * p);
      auto seq = m->make_sequence(tokens);
      kvbm::MatchResult match = m->match(seq->sequence_hashes());
      ++requests;
      hits[0] += match.g1.size();
      hits[1] += match.g2.size();
      hits[2] += match.g3.size();
      auto held = m->onboard(std::move(match))->wait();
      if (!held.ok()) return 1;
      auto fresh = m->allocate(seq->num_full_blocks() - held->size());
      if (!fresh.ok()) return 1;
      for (std::size_t i = 0; i < fresh->size(); ++i) {
        if (!(*fresh)[i].apply(seq->block(held->size() + i)).ok()) return 1;
      }
      auto registered = m->register_blocks(*fresh);
      if (!registered.ok()) return 1;
      m->release(*std::move(registered));
      m->release(*std::move(held));
      m->flush();
    }
  }
  const kvbm::OffloadStats o = m->offload_stats();
  const kvbm::PoolStatus g1 = m->status(kvbm::CacheLevel::kG1), g2 = m->status(kvbm::CacheLevel::kG2);
  std::printf(
      "{\"port\": %u, \"requests\": %lu, \"hits_g1\": %lu, \"hits_g2\": %lu, \"hits_g3\": %lu, \"g1_to_g2\": %lu, "
      "\"g2_to_g3\": %lu, \"g2_to_g1\": %lu, \"g3_to_g1\": %lu, \"bytes_down\": %lu, \"g1_inactive\": %u, "
      "\"g1_free\": %u, \"g2_inactive\": %u, \"g2_free\": %u}\n",
      static_cast<unsigned>(m->metrics_port()), requests, hits[0], hits[1], hits[2], o.g1_to_g2, o.g2_to_g3, o.g2_to_g1,
      o.g3_to_g1, o.bytes_down, g1.inactive, g1.free, g2.inactive, g2.free);
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  return 0;
}
