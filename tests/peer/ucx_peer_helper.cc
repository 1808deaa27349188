// Worker A for the UCX tests, run as a separate process by the gtest (the parent is worker B).
// Talks over stdin/stdout, one line each; exits on EOF or "quit"; alarm() ends it if the parent is gone.
//
//   ucx_peer_helper agent LAYOUT BLOCKS LAYERS OUTER PAGE INNER DTYPE KEY
//     A tier of BLOCKS blocks whose block b holds the pattern of KEY * 1000 + b; prints "BLOB <hex>".
//     Commands: "verify BLOCK KEY" → "OK" | "BAD" (block holds the pattern of KEY?).
//   ucx_peer_helper peer G1_BLOCKS NUM_TOKENS SEED
//     A KvBlockManager (G1 fully contiguous) publishing KV events over ZMQ, a PeerBlockServer, and a
//     prompt of NUM_TOKENS tokens (from SEED) whose blocks hold the pattern of their sequence hash.
//     Prints "EVENTS <pub endpoint> <replay endpoint>", "SERVER <endpoint>"; then
//     "go" → registers the prompt's blocks, prints "REGISTERED <n>";
//     "leases" → "LEASES <n>".
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>

#include "kvbm/events/event_manager.h"
#include "kvbm/events/zmq_publisher.h"
#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/peer/peer_blocks.h"
#include "kvbm/peer/ucx_agent.h"
#include "peer/ucx_test_util.h"

namespace {

using namespace kvbm;
using namespace kvbm::ucx_test;

void say(const std::string& line) {
  std::cout << line << std::endl;  // flushed: the parent waits for it
}

int fail(const std::string& what) {
  std::cerr << "ucx_peer_helper: " << what << std::endl;
  say("ERROR " + what);
  return 1;
}

int run_agent(char** argv) {
  const std::string layout = argv[0];
  const auto blocks = static_cast<std::uint32_t>(std::stoul(argv[1]));
  ModelConfig model{.num_layers = static_cast<std::uint32_t>(std::stoul(argv[2])),
                    .outer_dim = static_cast<std::uint32_t>(std::stoul(argv[3])),
                    .page_size = static_cast<std::uint32_t>(std::stoul(argv[4])),
                    .inner_dim = static_cast<std::uint32_t>(std::stoul(argv[5])),
                    .dtype_bytes = static_cast<std::uint32_t>(std::stoul(argv[6]))};
  const std::uint64_t key = std::stoull(argv[7]);
  auto tier = make_tier(layout, model, blocks);
  if (!tier) return fail("cannot build the tier");
  for (std::uint32_t b = 0; b < blocks; ++b) fill_block(*tier->memory, b, key * 1000 + b);
  auto agent = UcxAgent::create({.worker_id = 0xA, .progress_thread = true, .name = "helper"});
  if (!agent.ok()) return fail(std::string(agent.status().message()));
  if (absl::Status s = (*agent)->register_tier(CacheLevel::kG1, *tier->memory); !s.ok()) {
    return fail(std::string(s.message()));
  }
  auto blob = (*agent)->export_metadata();
  if (!blob.ok()) return fail(std::string(blob.status().message()));
  say("BLOB " + to_hex(*blob));
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "quit") break;
    if (cmd == "verify") {
      std::uint32_t block = 0;
      std::uint64_t k = 0;
      in >> block >> k;
      say(block < blocks && block_matches(*tier->memory, block, k) ? "OK" : "BAD");
    }
  }
  return 0;
}

int run_peer(char** argv) {
  const auto g1_blocks = static_cast<std::uint32_t>(std::stoul(argv[0]));
  const auto num_tokens = static_cast<std::size_t>(std::stoul(argv[1]));
  const std::uint64_t seed = std::stoull(argv[2]);
  ZmqPublisherOptions pub;
  pub.endpoint = "tcp://127.0.0.1:*";
  pub.replay_endpoint = "tcp://127.0.0.1:*";
  auto publisher = ZmqPublisher::create(pub);
  if (!publisher.ok()) return fail(std::string(publisher.status().message()));
  const std::string pub_endpoint = (*publisher)->endpoint();
  const std::string replay_endpoint = (*publisher)->replay_endpoint();
  std::vector<std::unique_ptr<EventPublisher>> publishers;
  publishers.push_back(*std::move(publisher));
  auto events = EventManager::create({.max_batch_delay = std::chrono::milliseconds(1)}, std::move(publishers));
  if (!events.ok()) return fail(std::string(events.status().message()));

  KvbmConfig config;
  config.model = kModel;
  config.g1.num_blocks = g1_blocks;
  auto kvbm = KvBlockManager::create(config, events->get());
  if (!kvbm.ok()) return fail(std::string(kvbm.status().message()));
  auto agent = UcxAgent::create({.worker_id = 0xA, .progress_thread = true, .name = "helper"});
  if (!agent.ok()) return fail(std::string(agent.status().message()));
  auto server = PeerBlockServer::create(kvbm->get(), agent->get(), PeerBlockServerOptions{});
  if (!server.ok()) return fail(std::string(server.status().message()));
  say("EVENTS " + pub_endpoint + " " + replay_endpoint);
  say("SERVER " + (*server)->endpoint());

  std::vector<std::uint32_t> tokens(num_tokens);
  for (std::size_t i = 0; i < num_tokens; ++i) tokens[i] = static_cast<std::uint32_t>((seed * 7919 + i * 31) % 50000);
  auto seq = (*kvbm)->make_sequence(tokens);
  if (!seq.ok()) return fail(std::string(seq.status().message()));
  std::vector<G1Block> held;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "quit") break;
    if (cmd == "go") {
      auto fresh = (*kvbm)->allocate(seq->num_full_blocks());
      if (!fresh.ok()) return fail(std::string(fresh.status().message()));
      for (std::size_t i = 0; i < fresh->size(); ++i) {
        fill_block((*kvbm)->g1_memory(), (*fresh)[i].id().value(), seq->sequence_hashes()[i].value());
        if (absl::Status s = (*fresh)[i].apply(seq->block(i)); !s.ok()) return fail(std::string(s.message()));
      }
      auto registered = (*kvbm)->register_blocks(*fresh);
      if (!registered.ok()) return fail(std::string(registered.status().message()));
      held = *std::move(registered);  // kept active: A is still "using" them
      (*events)->flush();
      say("REGISTERED " + std::to_string(held.size()));
    } else if (cmd == "leases") {
      say("LEASES " + std::to_string((*server)->active_leases()));
    }
  }
  server->reset();
  held.clear();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  alarm(120);  // never outlive a test that died without closing our stdin
  if (argc >= 10 && std::string(argv[1]) == "agent") return run_agent(argv + 2);
  if (argc >= 5 && std::string(argv[1]) == "peer") return run_peer(argv + 2);
  std::cerr << "usage: ucx_peer_helper agent LAYOUT BLOCKS LAYERS OUTER PAGE INNER DTYPE KEY | peer G1_BLOCKS "
               "NUM_TOKENS SEED\n";
  return 2;
}
