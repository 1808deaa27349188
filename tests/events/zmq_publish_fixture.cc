// kvbm_zmq_fixture: a C++ publisher (EventManager + ZmqPublisher) driven over stdin, for the
// independent Python subscriber of test_zmq_wire.py.
//
//   kvbm_zmq_fixture --endpoint E [--replay R] [--topic T] [--rank N]
//
// Prints one line `{"endpoint": "...", "replay_endpoint": "..."}` once bound, then reads commands:
//   ping     publishes one batch [AllBlocksCleared] (to find out when the subscription is live)
//   publish  publishes the known batches below, one batch each, and prints `published FIRST COUNT`
//   quit     (or end of input) shuts down and exits 0
// The known batches (test_zmq_wire.py checks every field of them):
//   1. BlockStored  G1 "GPU": hashes [1, 2^63, 2^64-1], no parent, tokens 0..11, block_size 4
//   2. BlockStored  G2 "CPU": hashes [0x123456789abcdef0], parent 2^64-1, tokens 100..103, block_size 4
//   3. BlockRemoved G3 "DISK" [2^63] and BlockRemoved G4 "REMOTE" [5, 6]
//   4. AllBlocksCleared
//   5. BlockStored (enqueued as is) hashes [7], parent 1, tokens 200..215, block_size 16, medium nil,
//      lora_name "adapter-x"
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "kvbm/events/event_manager.h"
#include "kvbm/events/zmq_publisher.h"

namespace {

int usage() {
  std::cerr << "usage: kvbm_zmq_fixture --endpoint E [--replay R] [--topic T] [--rank N]\n";
  return 2;
}

std::vector<kvbm::SequenceHash> hashes(std::initializer_list<std::uint64_t> values) {
  std::vector<kvbm::SequenceHash> out;
  for (std::uint64_t v : values) out.emplace_back(v);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  kvbm::ZmqPublisherOptions po;
  std::optional<std::int64_t> rank;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string value = argv[++i];
    if (arg == "--endpoint") {
      po.endpoint = value;
    } else if (arg == "--replay") {
      po.replay_endpoint = value;
    } else if (arg == "--topic") {
      po.topic = value;
    } else if (arg == "--rank") {
      rank = std::stoll(value);
    } else {
      return usage();
    }
  }
  po.data_parallel_rank = rank;
  auto pub = kvbm::ZmqPublisher::create(po);
  if (!pub.ok()) {
    std::cerr << pub.status() << "\n";
    return 1;
  }
  kvbm::ZmqPublisher* zmq = pub->get();
  std::vector<std::unique_ptr<kvbm::EventPublisher>> pubs;
  pubs.push_back(*std::move(pub));
  // Batches are cut by flush(): a long delay and a large count never cut one on their own.
  auto manager = kvbm::EventManager::create(
      {.max_batch_events = 1000, .max_batch_delay = std::chrono::seconds(60), .data_parallel_rank = rank},
      std::move(pubs));
  if (!manager.ok()) {
    std::cerr << manager.status() << "\n";
    return 1;
  }
  kvbm::EventManager& m = **manager;
  std::cout << "{\"endpoint\": \"" << zmq->endpoint() << "\", \"replay_endpoint\": \"" << zmq->replay_endpoint()
            << "\"}" << std::endl;

  constexpr std::uint64_t k63 = 0x8000000000000000ull;
  constexpr std::uint64_t kMax = 0xFFFFFFFFFFFFFFFFull;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "ping") {
      (void)m.enqueue(kvbm::AllBlocksClearedEvent{});  // carries no tokens: never refused
      m.flush();
    } else if (line == "publish") {
      const std::uint64_t first = zmq->next_sequence();
      std::vector<std::uint32_t> tokens;
      for (std::uint32_t t = 0; t < 12; ++t) tokens.push_back(t);
      m.on_stored({kvbm::CacheLevel::kG1, hashes({1, k63, kMax}), std::nullopt, tokens, 4});
      m.flush();
      m.on_stored(
          {kvbm::CacheLevel::kG2, hashes({0x123456789abcdef0ull}), kvbm::SequenceHash{kMax}, {100, 101, 102, 103}, 4});
      m.flush();
      m.on_removed({kvbm::CacheLevel::kG3, hashes({k63})});
      m.on_removed({kvbm::CacheLevel::kG4, hashes({5, 6})});
      m.flush();
      m.on_cleared(kvbm::CacheLevel::kG1);
      m.flush();
      kvbm::BlockStoredEvent lora;
      lora.block_hashes = {7};
      lora.parent_block_hash = 1;
      lora.block_size = 16;
      for (std::uint32_t t = 200; t < 216; ++t) lora.token_ids.push_back(t);
      lora.lora_name = "adapter-x";
      if (absl::Status s = m.enqueue(lora); !s.ok()) {
        std::cerr << s << "\n";
        return 1;
      }
      m.flush();
      std::cout << "published " << first << " " << zmq->next_sequence() - first << std::endl;
    } else if (line == "quit") {
      break;
    } else {
      std::cerr << "unknown command: " << line << "\n";
    }
  }
  m.shutdown();
  return 0;
}
