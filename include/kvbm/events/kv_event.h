// The KV cache events of specs/kv-events-wire-format.md (vLLM-compatible), as C++ values.
//
// Publishers encode EventBatch values to the wire (events as maps, batch shape B or C); subscribers decode
// every shape into them; the router index consumes them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace kvbm {

struct BlockStoredEvent {
  std::vector<std::uint64_t> block_hashes;         // kvbm sequence hashes (each names a whole prefix)
  std::optional<std::uint64_t> parent_block_hash;  // parent of block_hashes[0]
  // Tokens of exactly these blocks, in order: block_hashes.size() × block_size of them (the wire format's
  // rule; stored_token_count()). kvbm synthesizes them for blocks it holds without tokens
  // (synthesize_block_tokens, event_manager.h).
  std::vector<std::uint32_t> token_ids;
  std::uint32_t block_size = 0;
  std::optional<std::int64_t> lora_id;  // kvbm always publishes nil
  std::optional<std::string> medium;    // "GPU" | "CPU" | "DISK" | "REMOTE"
  std::optional<std::string> lora_name;
  friend bool operator==(const BlockStoredEvent&, const BlockStoredEvent&) = default;
};

struct BlockRemovedEvent {
  std::vector<std::uint64_t> block_hashes;
  std::optional<std::string> medium;
  friend bool operator==(const BlockRemovedEvent&, const BlockRemovedEvent&) = default;
};

struct AllBlocksClearedEvent {
  friend bool operator==(const AllBlocksClearedEvent&, const AllBlocksClearedEvent&) = default;
};

using KvEvent = std::variant<BlockStoredEvent, BlockRemovedEvent, AllBlocksClearedEvent>;

// How many token_ids a BlockStored must carry: blocks × block_size.
[[nodiscard]] inline std::uint64_t stored_token_count(const BlockStoredEvent& e) {
  return std::uint64_t{e.block_hashes.size()} * e.block_size;
}

// One published batch: `[timestamp, events, data_parallel_rank]` on the wire.
struct EventBatch {
  double timestamp = 0;  // seconds since the Unix epoch
  std::vector<KvEvent> events;
  std::optional<std::int64_t> data_parallel_rank;
  friend bool operator==(const EventBatch&, const EventBatch&) = default;
};

}  // namespace kvbm
