// The README's C++ quick start, compiled and run by the test suite so it cannot drift from the API.
// One request computes a prompt's KV blocks; a second request with the same prefix finds them again.
#include <cstdio>
#include <numeric>
#include <vector>

#include "kvbm/manager/kv_block_manager.h"

int main() {
  kvbm::KvbmConfig config;
  config.model = {.num_layers = 4, .outer_dim = 2, .page_size = 16, .inner_dim = 128, .dtype_bytes = 2};
  config.g1.num_blocks = 256;     // G1: system memory on a machine without a GPU
  config.g2.bytes = 64ull << 20;  // G2: 64 MiB of host memory, filled write-through in the background
  auto kvbm = kvbm::KvBlockManager::create(config);
  if (!kvbm.ok()) {
    std::fprintf(stderr, "%s\n", std::string(kvbm.status().message()).c_str());
    return 1;
  }

  std::vector<std::uint32_t> prompt(100);
  std::iota(prompt.begin(), prompt.end(), 1);
  for (int request = 0; request < 2; ++request) {
    auto seq = (*kvbm)->make_sequence(prompt);  // 6 full blocks of 16 tokens + a partial tail
    // The cached prefix, onboarded into G1 if it had to come from G2/G3.
    auto hits = (*kvbm)->match_and_onboard(seq->sequence_hashes());
    if (!hits.ok()) return 1;
    auto fresh = (*kvbm)->allocate(seq->num_full_blocks() - hits->size());
    if (!fresh.ok()) return 1;
    for (std::size_t i = 0; i < fresh->size(); ++i) {
      auto& block = (*fresh)[i];
      for (std::uint32_t layer = 0; layer < config.model.num_layers; ++layer) {
        block.chunk(layer, 0)[0] = std::byte{42};  // the engine writes K (outer 0) and V (outer 1) here
      }
      if (!block.apply(seq->block(hits->size() + i)).ok()) return 1;
    }
    auto registered = (*kvbm)->register_blocks(*fresh);
    if (!registered.ok()) return 1;
    std::printf("request %d: %zu of %zu blocks reused\n", request, hits->size(), seq->num_full_blocks());
    (*kvbm)->release(*std::move(registered));
    (*kvbm)->release(*std::move(hits));
  }
  return 0;
}
