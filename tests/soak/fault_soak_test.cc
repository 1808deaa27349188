// Fault soak: a generated (`kvbm gen`-style) workload through G1 + G2 + G3 with write-through offload and
// onboarding, from two request threads at once, while the disk I/O backend injects EIO, ENOSPC, short
// reads and writes, latency spikes and corruption on reads and writes (the rates change every few hundred
// milliseconds: calm, steady, storm). Checked throughout and at the end:
//   - zero wrong bytes: every block handed out (onboarded or matched in G1) holds exactly its bytes;
//   - no deadlock: a watchdog aborts with every thread's phase and the tiers' state when no request
//     completes for kStallSeconds;
//   - no leak: LSan (ASan build) at exit;
//   - accounting: every fault is seen exactly once by the layer above —
//       engine io_errors          == injected EIO + ENOSPC + short reads + short writes
//       engine checksum_failures  == injected read corruptions + reads of blocks a corrupt write damaged
//       offload transfer_failures == engine io_errors, offload checksum_failures == engine checksum_failures
//     (one I/O per block on the disk path, no retries, and the blocks are exactly one 4 KiB stride, so
//     every flipped byte is inside the checksummed bytes);
//   - a G4 tier on a real redis-server that the chaos thread kills and restarts (empty) and pauses
//     (SIGSTOP) and resumes on a cycle: the manager keeps serving from G1–G3, G4 outages are counted
//     (unavailable / deadline / disconnects), and G4 is available again after the last restart;
//   - G3 is persistent (g3.persist): a restart after the soak finds every block it restores either
//     byte-exact or (damaged by a corrupt write) a miss — never wrong bytes.
// Runtime: a few seconds in Release; scaled down under KVBM_SANITIZER_BUILD.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>
#include <unordered_set>
#include <vector>

#include "kvbm/manager/kv_block_manager.h"
#include "kvbm/replay/generator.h"
#include "kvbm/replay/replay.h"
#include "support/redis_server.h"

namespace kvbm {
namespace {

#ifdef KVBM_SANITIZER_BUILD
constexpr std::uint64_t kRequests = 2000;
constexpr int kStallSeconds = 120;
#else
constexpr std::uint64_t kRequests = 16000;
constexpr int kStallSeconds = 20;
#endif
constexpr int kWorkers = 2;
constexpr std::size_t kMaxPromptBlocks = 24;  // G1 must hold both workers' requests at once

// Chaos beyond the disk (the Redis G4 node), called from the chaos thread every kChaosPeriod.
struct SoakHooks {
  std::function<void(std::uint64_t tick)> on_chaos_tick;
};
constexpr auto kChaosPeriod = std::chrono::milliseconds(150);

FaultInjectingIoBackend::Faults profile(std::uint64_t tick) {
  FaultInjectingIoBackend::Faults f;
  switch (tick % 3) {
    case 0:  // calm
      break;
    case 1:  // steady
      f.read_eio = f.write_eio = f.write_enospc = f.short_read = f.short_write = 0.01;
      f.corrupt_read = f.corrupt_write = 0.02;
      f.slow = 0.01;
      f.slow_micros = 2000;
      break;
    default:  // storm, with latency spikes
      f.read_eio = f.write_eio = f.write_enospc = f.short_read = f.short_write = 0.05;
      f.corrupt_read = f.corrupt_write = 0.05;
      f.slow = 0.05;
      f.slow_micros = 5000;
      break;
  }
  return f;
}

KvbmConfig soak_config(const std::string& dir, const std::string& g4_endpoint = "") {
  KvbmConfig c;
  // 2 layers × 2 × 4 tokens × 128 × 2 bytes = exactly 4 KiB per block: one disk stride, no padding.
  c.model = ModelConfig{.num_layers = 2, .outer_dim = 2, .page_size = 4, .inner_dim = 128, .dtype_bytes = 2};
  c.g1.num_blocks = 128;
  c.g2.num_blocks = 256;
  c.g3.num_blocks = 2048;
  c.g3.directory = dir;
  c.g3.persist = true;  // and a restart after the soak finds only intact blocks
  c.offload.g3_min_frequency = 0;
  c.offload.batch_blocks = 16;
  c.g4.endpoints = g4_endpoint;  // empty: no G4
  c.g4.key_namespace = "soak";
  return c;
}

enum Phase : int { kIdle, kMatch, kOnboard, kAllocate, kRegister, kRelease, kDone };
const char* phase_name(int p) {
  static constexpr std::array<const char*, 7> kNames = {"idle",     "match",   "onboard wait", "allocate",
                                                        "register", "release", "done"};
  return p >= 0 && p < static_cast<int>(kNames.size()) ? kNames[p] : "?";
}

// Wrong chunks of a block handed out.
std::uint64_t wrong_chunks(const G1Block& b, const ModelConfig& m) {
  std::uint64_t wrong = 0;
  for (std::uint32_t l = 0; l < m.num_layers; ++l) {
    for (std::uint32_t o = 0; o < m.outer_dim; ++o) {
      wrong += !check_chunk_bytes(b.sequence_hash(), l * m.outer_dim + o, b.chunk(l, o));
    }
  }
  return wrong;
}

struct Shared {
  Mutex trace_mu;
  std::unique_ptr<TraceReader> trace ABSL_GUARDED_BY(trace_mu);
  std::atomic<std::uint64_t> completed{0}, wrong{0}, blocks_handed_out{0}, alloc_failures{0}, errors{0};
  std::array<std::atomic<int>, kWorkers> phase{};
  std::array<std::atomic<std::uint64_t>, kWorkers> request{};
};

void worker(int id, KvBlockManager& m, Shared& shared) {
  const ModelConfig& model = m.model();
  for (;;) {
    std::optional<TraceRequest> request;
    {
      MutexLock lock(&shared.trace_mu);
      auto next = shared.trace->next();
      if (!next.ok()) {
        shared.errors.fetch_add(1);
        break;
      }
      request = *std::move(next);
    }
    if (!request) break;
    std::vector<SequenceHash> hashes = request->blocks;
    if (hashes.size() > kMaxPromptBlocks) hashes.resize(kMaxPromptBlocks);
    shared.request[id].store(shared.completed.load());

    shared.phase[id].store(kMatch);
    MatchResult match = m.match(hashes);
    shared.phase[id].store(kOnboard);
    auto hits = m.onboard(std::move(match))->wait();
    if (!hits.ok()) {
      shared.errors.fetch_add(1);
      continue;
    }
    for (const G1Block& b : *hits) shared.wrong.fetch_add(wrong_chunks(b, model));
    shared.blocks_handed_out.fetch_add(hits->size());

    shared.phase[id].store(kAllocate);
    const std::size_t have = hits->size();
    auto fresh = m.allocate(hashes.size() - have);
    if (fresh.ok()) {
      for (std::size_t i = 0; i < fresh->size(); ++i) {
        const SequenceHash h = hashes[have + i];
        G1MutableBlock& b = (*fresh)[i];
        for (std::uint32_t l = 0; l < model.num_layers; ++l) {
          for (std::uint32_t o = 0; o < model.outer_dim; ++o)
            fill_chunk_bytes(h, l * model.outer_dim + o, b.chunk(l, o));
        }
        const std::optional<SequenceHash> parent =
            have + i == 0 ? std::nullopt : std::optional<SequenceHash>(hashes[have + i - 1]);
        if (!b.apply(BlockIdentity{BlockHash{h.value()}, h, parent}).ok()) shared.errors.fetch_add(1);
      }
      shared.phase[id].store(kRegister);
      auto registered = m.register_blocks(*fresh);
      if (!registered.ok()) {
        shared.errors.fetch_add(1);
      } else {
        // A block registered under a hash someone else registered first is theirs: check it too.
        for (const G1Block& b : *registered) shared.wrong.fetch_add(wrong_chunks(b, model));
        shared.phase[id].store(kRelease);
        m.release(*std::move(registered));
      }
    } else {
      shared.alloc_failures.fetch_add(1);
    }
    shared.phase[id].store(kRelease);
    m.release(*std::move(hits));
    shared.completed.fetch_add(1);
    shared.phase[id].store(kIdle);
  }
  shared.phase[id].store(kDone);
}

std::string describe(const KvBlockManager& m, const Shared& shared) {
  std::string out;
  for (int i = 0; i < kWorkers; ++i) {
    out += "  worker " + std::to_string(i) + ": " + phase_name(shared.phase[i].load()) + " (request ~" +
           std::to_string(shared.request[i].load()) + ")\n";
  }
  for (CacheLevel level : {CacheLevel::kG1, CacheLevel::kG2, CacheLevel::kG3}) {
    const PoolStatus s = m.status(level);
    out += std::string("  ") + std::string(cache_level_name(level)) + ": active " + std::to_string(s.active) +
           ", inactive " + std::to_string(s.inactive) + ", free " + std::to_string(s.free) + ", owned " +
           std::to_string(s.owned) + "\n";
  }
  const OffloadStats o = m.offload_stats();
  out += "  offload: g1->g2 " + std::to_string(o.g1_to_g2) + ", g2->g3 " + std::to_string(o.g2_to_g3) + ", g3->g1 " +
         std::to_string(o.g3_to_g1) + ", queue peaks " + std::to_string(o.queue_peak_g1_g2) + "/" +
         std::to_string(o.queue_peak_g2_g3) + "\n";
  return out;
}

TEST(FaultSoakTest, ReplayUnderInjectedDiskFaultsHandsOutNoWrongBytesAndAccountsForEveryFault) {
  std::string dir_template = ::testing::TempDir() + "kvbm-soak-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template.data()), nullptr);
  const std::string dir = dir_template;
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove_dir{dir};
  auto backend = std::make_shared<FaultInjectingIoBackend>(make_posix_io_backend(), profile(0), /*seed=*/20261127);
  testing::RedisServer redis;  // outlives the manager
  ASSERT_TRUE(redis.start()) << "redis-server did not start (scripts/install_deps.sh installs it)";
  auto created = KvBlockManager::create(soak_config(dir, redis.endpoint()), nullptr, backend);
  ASSERT_TRUE(created.ok()) << created.status();
  KvBlockManager& m = **created;

  WorkloadOptions workload;
  workload.seed = 7;
  workload.num_requests = kRequests;
  workload.num_system_prompts = 24;
  ASSERT_TRUE(validate_workload(workload).ok());
  Shared shared;
  {
    MutexLock lock(&shared.trace_mu);
    shared.trace = generate_trace(workload);
  }
  // The G4 node: killed at tick 3 and started again, empty, at tick 5 of every 8; paused (SIGSTOP: connects
  // succeed, nothing answers) at tick 6 and resumed at tick 7.
  std::uint64_t redis_kills = 0, redis_pauses = 0;
  bool redis_restart_failed = false;
  SoakHooks hooks;
  hooks.on_chaos_tick = [&](std::uint64_t tick) {
    switch (tick % 8) {
      case 3:
        redis.kill();
        ++redis_kills;
        break;
      case 5:
        redis_restart_failed |= !redis.restart();
        break;
      case 6:
        redis.pause();
        ++redis_pauses;
        break;
      case 7:
        redis.resume();
        break;
      default:
        break;
    }
  };

  std::atomic<bool> stop{false};
  std::thread chaos([&] {
    for (std::uint64_t tick = 1; !stop.load(); ++tick) {
      backend->set_faults(profile(tick));
      if (hooks.on_chaos_tick) hooks.on_chaos_tick(tick);
      std::this_thread::sleep_for(kChaosPeriod);
    }
  });
  std::thread watchdog([&] {
    std::uint64_t last = shared.completed.load();
    auto last_progress = std::chrono::steady_clock::now();
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const std::uint64_t now = shared.completed.load();
      if (now != last) {
        last = now;
        last_progress = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(kStallSeconds)) {
        std::fprintf(stderr, "fault soak watchdog: no request completed for %d s (after %llu) — deadlock?\n%s",
                     kStallSeconds, static_cast<unsigned long long>(now), describe(m, shared).c_str());
        std::abort();
      }
    }
  });

  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int i = 0; i < kWorkers; ++i) workers.emplace_back(worker, i, std::ref(m), std::ref(shared));
  for (std::thread& t : workers) t.join();
  m.flush();  // background offloads finish (still under faults)
  stop.store(true);
  chaos.join();
  watchdog.join();
  // The node comes back for good; G4 must notice (reconnect with backoff, idle PING) and be available again.
  redis.resume();
  if (!redis.running()) redis_restart_failed |= !redis.restart();
  const auto recover_by = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (m.offload_stats().g4.health != RemoteHealth::kAvailable && std::chrono::steady_clock::now() < recover_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  const FaultInjectingIoBackend::Counts c = backend->counts();
  const TransferStats t = m.transfer_stats();
  const OffloadStats o = m.offload_stats();
  std::printf(
      "fault soak: %llu requests in %.2f s, %llu blocks handed out (%llu onboarded from G3), %llu G2->G3 copies; "
      "disk I/O errors %llu, checksum failures %llu; injected: read EIO %llu, write EIO %llu, ENOSPC %llu, "
      "short read %llu, short write %llu, corrupt read %llu, corrupt write %llu (read back %llu times), "
      "latency spikes %llu\n",
      static_cast<unsigned long long>(shared.completed.load()), seconds,
      static_cast<unsigned long long>(shared.blocks_handed_out.load()), static_cast<unsigned long long>(o.g3_to_g1),
      static_cast<unsigned long long>(o.g2_to_g3), static_cast<unsigned long long>(t.io_errors),
      static_cast<unsigned long long>(t.checksum_failures), static_cast<unsigned long long>(c.read_eio),
      static_cast<unsigned long long>(c.write_eio), static_cast<unsigned long long>(c.write_enospc),
      static_cast<unsigned long long>(c.short_read), static_cast<unsigned long long>(c.short_write),
      static_cast<unsigned long long>(c.corrupt_read), static_cast<unsigned long long>(c.corrupt_write),
      static_cast<unsigned long long>(c.read_corrupted_data), static_cast<unsigned long long>(c.slow));

  EXPECT_EQ(shared.completed.load(), kRequests);
  EXPECT_EQ(shared.errors.load(), 0u);
  EXPECT_EQ(shared.alloc_failures.load(), 0u);
  EXPECT_EQ(shared.wrong.load(), 0u) << "wrong chunks handed out";
  // The workload really went through the disk, both ways, and every kind of fault was injected.
  EXPECT_GT(o.g2_to_g3, 0u);
  EXPECT_GT(o.g3_to_g1, 0u);
  for (std::uint64_t n : {c.read_eio, c.write_eio, c.write_enospc, c.short_read, c.short_write, c.corrupt_read,
                          c.corrupt_write, c.slow}) {
    EXPECT_GT(n, 0u) << "a fault kind was never injected; the soak is too short for its rates";
  }
  // Accounting: every injected failure is reported exactly once, at each layer.
  EXPECT_EQ(t.io_errors, c.failed_ops());
  EXPECT_EQ(t.checksum_failures, c.damaged_reads());
  EXPECT_EQ(o.transfer_failures, t.io_errors);
  EXPECT_EQ(o.checksum_failures, t.checksum_failures);
  EXPECT_EQ(t.blocks_failed, t.io_errors + t.checksum_failures);

  // G4: the node went away and came back; every outage was counted, and G4 serves again.
  const G4Stats& g4 = o.g4;
  std::printf(
      "fault soak G4: node killed %llu times, paused %llu times; put %llu, fetched %llu blocks into G2; "
      "unavailable %llu, deadline %llu, put dropped %llu, put failed %llu, disconnects %llu, reconnects %llu\n",
      static_cast<unsigned long long>(redis_kills), static_cast<unsigned long long>(redis_pauses),
      static_cast<unsigned long long>(g4.g2_to_g4), static_cast<unsigned long long>(g4.g4_to_g2),
      static_cast<unsigned long long>(g4.unavailable), static_cast<unsigned long long>(g4.deadline_missed),
      static_cast<unsigned long long>(g4.put_dropped), static_cast<unsigned long long>(g4.put_failed),
      static_cast<unsigned long long>(g4.store.disconnects), static_cast<unsigned long long>(g4.store.reconnects));
  EXPECT_FALSE(redis_restart_failed);
  EXPECT_GT(redis_kills, 0u);
  EXPECT_GT(g4.g2_to_g4, 0u);
  EXPECT_GT(g4.store.disconnects, 0u) << "a killed node must drop its connections";
  EXPECT_GT(g4.store.reconnects, 2u) << "two lanes connect at start; a restart must reconnect";
  EXPECT_GT(g4.unavailable + g4.deadline_missed + g4.put_dropped + g4.put_failed, 0u) << "G4 outages must be counted";
  EXPECT_EQ(g4.fetch_corrupt, 0u) << "nothing corrupts values in Redis in this soak";
  EXPECT_EQ(g4.health, RemoteHealth::kAvailable) << "G4 did not recover after the node came back";

  // Restart on the same persistent G3 (no faults now): every block found comes back byte-exact or, where
  // a corrupt write damaged it, is a miss.
  const std::size_t damaged = backend->damaged_ranges();
  created->reset();
  auto restarted = KvBlockManager::create(soak_config(dir));
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  KvBlockManager& r = **restarted;
  std::unordered_set<std::uint64_t> seen;
  auto trace = generate_trace(workload);
  std::uint64_t in_g3 = 0, intact = 0, wrong_after = 0;
  for (;;) {
    auto next = trace->next();
    ASSERT_TRUE(next.ok()) << next.status();
    if (!next->has_value()) break;
    for (SequenceHash h : (*next)->blocks) {
      if (!seen.insert(h.value()).second || !r.tier_contains(CacheLevel::kG3, h)) continue;
      ++in_g3;
      auto blocks = r.match_and_onboard(std::span<const SequenceHash>(&h, 1));
      ASSERT_TRUE(blocks.ok()) << blocks.status();
      for (const G1Block& b : *blocks) wrong_after += wrong_chunks(b, r.model());
      intact += blocks->size();
      r.release(*std::move(blocks));
    }
  }
  const std::uint64_t misses = r.offload_stats().checksum_failures;
  std::printf(
      "restart after the soak: %llu blocks restored, %llu onboarded intact, %llu damaged (misses), %zu "
      "damaged ranges left by corrupt writes\n",
      static_cast<unsigned long long>(in_g3), static_cast<unsigned long long>(intact),
      static_cast<unsigned long long>(misses), damaged);
  EXPECT_GT(intact, 0u);
  EXPECT_EQ(wrong_after, 0u);
  EXPECT_EQ(intact + misses, in_g3);
  EXPECT_LE(misses, damaged);
  EXPECT_EQ(r.offload_stats().transfer_failures, 0u);
}

}  // namespace
}  // namespace kvbm
