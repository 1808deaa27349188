// Child process of persistent_g3_test: offloads heavily to a persistent G3 and writes the sequence hash of
// every block it sees committed there (registered in the G3 pool, which happens only after the slot's
// header record was written) to stdout, one decimal per line, as soon as it sees it. Then prints DONE and
// waits to be killed.
//
// Usage: persistent_g3_child <directory> <g3_blocks> <requests>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_set>

#include "offload/persistent_g3_util.h"

namespace {

void write_line(const std::string& line) {
  std::string out = line + "\n";
  const char* p = out.data();
  std::size_t left = out.size();
  while (left > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n <= 0) std::_Exit(3);  // the parent went away
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kvbm;
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <directory> <g3_blocks> <requests>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const auto g3_blocks = static_cast<std::uint32_t>(std::strtoul(argv[2], nullptr, 10));
  const auto requests = static_cast<std::uint32_t>(std::strtoul(argv[3], nullptr, 10));
  auto m = KvBlockManager::create(persist_test::persist_config(dir, g3_blocks));
  if (!m.ok()) {
    std::fprintf(stderr, "create: %s\n", std::string(m.status().message()).c_str());
    return 1;
  }
  const KvBlockManager& kvbm = **m;
  std::unordered_set<std::uint64_t> pending, reported;
  auto report = [&] {
    for (auto it = pending.begin(); it != pending.end();) {
      if (kvbm.tier_contains(CacheLevel::kG3, SequenceHash{*it})) {
        write_line(std::to_string(*it));
        reported.insert(*it);
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
  };
  std::size_t wrong = 0;
  for (std::uint32_t r = 0; r < requests; ++r) {
    auto hashes = persist_test::run_request(**m, r, &wrong);
    if (!hashes.ok()) {
      std::fprintf(stderr, "request %u: %s\n", r, std::string(hashes.status().message()).c_str());
      return 1;
    }
    for (SequenceHash h : *hashes) {
      if (!reported.contains(h.value())) pending.insert(h.value());
    }
    report();
  }
  (*m)->flush();
  report();
  write_line(wrong == 0 ? "DONE" : "WRONG " + std::to_string(wrong));
  for (;;) ::pause();  // until killed
}
