#include "kvbm/manager/manager_metrics.h"

#include "kvbm/manager/kv_block_manager.h"

namespace kvbm {
namespace {

using metrics::Exposition;
using metrics::Labels;

constexpr const char* kTierNames[3] = {"g1", "g2", "g3"};
constexpr CacheLevel kLevels[3] = {CacheLevel::kG1, CacheLevel::kG2, CacheLevel::kG3};

Labels pair_labels(const char* src, const char* dst) { return {{"src", src}, {"dst", dst}}; }

void collect_pools(const KvBlockManager& m, Exposition& e) {
  for (int t = 0; t < 3; ++t) {
    if (!m.has_tier(kLevels[t])) continue;
    const PoolStatus s = m.status(kLevels[t]);
    const char* help =
        "Blocks of a tier by state: active (registered, held), inactive (registered, evictable), "
        "free, owned (held by a MutableBlock)";
    e.gauge("kvbm_pool_blocks", help, {{"tier", kTierNames[t]}, {"state", "active"}}, s.active);
    e.gauge("kvbm_pool_blocks", help, {{"tier", kTierNames[t]}, {"state", "inactive"}}, s.inactive);
    e.gauge("kvbm_pool_blocks", help, {{"tier", kTierNames[t]}, {"state", "free"}}, s.free);
    e.gauge("kvbm_pool_blocks", help, {{"tier", kTierNames[t]}, {"state", "owned"}}, s.owned);
  }
  for (int t = 0; t < 3; ++t) {
    if (!m.has_tier(kLevels[t])) continue;
    e.gauge("kvbm_pool_capacity_blocks", "Blocks a tier holds in all", {{"tier", kTierNames[t]}},
            m.config().tier_blocks(kLevels[t]));
  }
}

// The G4 remote tier (Redis): blocks moved, lookups, and every way the network can fail.
void collect_g4(const OffloadStats& s, Exposition& e) {
  const G4Stats& g = s.g4;
  const auto d = [](std::uint64_t v) { return static_cast<double>(v); };
  e.counter("kvbm_offload_blocks_total", "Blocks copied to a lower tier and registered there", pair_labels("g2", "g4"),
            d(g.g2_to_g4));
  e.counter("kvbm_onboard_blocks_total",
            "Blocks onboarded into G1 (dst=g1), or staged from G3 into G2 on their way (dst=g2)",
            pair_labels("g4", "g2"), d(g.g4_to_g2));
  e.counter("kvbm_g4_put_bytes_total", "Value bytes put to the remote store", {}, d(g.put_bytes));
  e.counter("kvbm_g4_fetch_bytes_total", "Payload bytes fetched from the remote store into G2", {}, d(g.fetch_bytes));
  e.counter("kvbm_g4_lookup_blocks_total", "Sequence hashes looked up in G4 by match()", {}, d(g.lookups));
  e.counter("kvbm_g4_hit_blocks_total", "Blocks match() found in G4 (after G1-G3 ended)", {}, d(g.hits));
  const char* err_help =
      "G4 remote errors by kind: put_failed, put_dropped (queue full or store unavailable), unavailable (calls "
      "answered without asking), deadline (calls cut at g4.deadline_ms), corrupt (values failing verification), "
      "error_reply, disconnect";
  e.counter("kvbm_g4_errors_total", err_help, {{"kind", "put_failed"}}, d(g.put_failed));
  e.counter("kvbm_g4_errors_total", err_help, {{"kind", "put_dropped"}}, d(g.put_dropped));
  e.counter("kvbm_g4_errors_total", err_help, {{"kind", "unavailable"}}, d(g.unavailable));
  e.counter("kvbm_g4_errors_total", err_help, {{"kind", "deadline"}}, d(g.deadline_missed));
  e.counter("kvbm_g4_errors_total", err_help, {{"kind", "corrupt"}}, d(g.fetch_corrupt));
  e.counter("kvbm_g4_errors_total", err_help, {{"kind", "error_reply"}}, d(g.store.errors));
  e.counter("kvbm_g4_errors_total", err_help, {{"kind", "disconnect"}}, d(g.store.disconnects));
  e.counter("kvbm_g4_reconnects_total", "Connections to G4 nodes established (the first ones included)", {},
            d(g.store.reconnects));
  e.gauge("kvbm_g4_available", "1 while every G4 node answers, 0.5 while some do, 0 while none does", {},
          g.health == RemoteHealth::kAvailable  ? 1.0
          : g.health == RemoteHealth::kDegraded ? 0.5
                                                : 0.0);
}

void collect_offload(const KvBlockManager& m, Exposition& e) {
  if (!m.has_tier(CacheLevel::kG2)) return;  // no offload manager
  const OffloadStats s = m.offload_stats();
  const bool g3 = m.has_tier(CacheLevel::kG3);
  const auto d = [](std::uint64_t v) { return static_cast<double>(v); };

  const char* blocks_help = "Blocks copied to a lower tier and registered there";
  e.counter("kvbm_offload_blocks_total", blocks_help, pair_labels("g1", "g2"), d(s.g1_to_g2));
  if (g3) e.counter("kvbm_offload_blocks_total", blocks_help, pair_labels("g2", "g3"), d(s.g2_to_g3));
  const char* onboard_help = "Blocks onboarded into G1 (dst=g1), or staged from G3 into G2 on their way (dst=g2)";
  e.counter("kvbm_onboard_blocks_total", onboard_help, pair_labels("g2", "g1"), d(s.g2_to_g1));
  if (g3) {
    e.counter("kvbm_onboard_blocks_total", onboard_help, pair_labels("g3", "g1"), d(s.g3_to_g1));
    e.counter("kvbm_onboard_blocks_total", onboard_help, pair_labels("g3", "g2"), d(s.g3_to_g2));
  }
  e.counter("kvbm_offload_bytes_total", "Bytes copied down the tiers (offload and write-back)", {}, d(s.bytes_down));
  e.counter("kvbm_onboard_bytes_total", "Bytes copied up the tiers (onboarding)", {}, d(s.bytes_up));

  const char* skip_help =
      "Offloads not done, by reason: present (target held it: touched instead), evicted (offload.backlog = drop: "
      "source evicted before its copy), frequency (kept off G3 by the frequency filter), no_space (target full "
      "of held blocks), queue_full (offload.backlog = drop: dropped at enqueue)";
  e.counter("kvbm_offload_skipped_blocks_total", skip_help, {{"reason", "present"}}, d(s.skipped_present));
  e.counter("kvbm_offload_skipped_blocks_total", skip_help, {{"reason", "evicted"}}, d(s.skipped_evicted));
  e.counter("kvbm_offload_skipped_blocks_total", skip_help, {{"reason", "frequency"}}, d(s.filtered_frequency));
  e.counter("kvbm_offload_skipped_blocks_total", skip_help, {{"reason", "no_space"}}, d(s.no_space));
  e.counter("kvbm_offload_skipped_blocks_total", skip_help, {{"reason", "queue_full"}}, d(s.dropped_queue_full));
  e.counter("kvbm_offload_write_back_blocks_total", "Blocks copied down at eviction (write-back mode)", {},
            d(s.write_back_blocks));
  const char* waited_help =
      "Queued write-through copies made ahead of their turn so that nothing is lost (offload.backlog = wait), by "
      "who made them: eviction (the eviction of the source, before its slot was reused), producer (a release "
      "that found the queue full)";
  e.counter("kvbm_offload_waited_blocks_total", waited_help, {{"by", "eviction"}}, d(s.copied_at_eviction));
  e.counter("kvbm_offload_waited_blocks_total", waited_help, {{"by", "producer"}}, d(s.copied_by_producer));

  const char* depth_help = "Offloads queued now per tier pair";
  e.gauge("kvbm_offload_queue_depth_blocks", depth_help, pair_labels("g1", "g2"), d(s.queue_depth_g1_g2));
  if (g3) e.gauge("kvbm_offload_queue_depth_blocks", depth_help, pair_labels("g2", "g3"), d(s.queue_depth_g2_g3));
  const char* peak_help = "Most offloads ever queued at once per tier pair";
  e.gauge("kvbm_offload_queue_peak_blocks", peak_help, pair_labels("g1", "g2"), d(s.queue_peak_g1_g2));
  if (g3) e.gauge("kvbm_offload_queue_peak_blocks", peak_help, pair_labels("g2", "g3"), d(s.queue_peak_g2_g3));
  e.gauge("kvbm_onboard_queue_depth", "Onboardings waiting for the onboarding thread", {}, d(s.onboard_queue_depth));
  e.counter("kvbm_onboard_truncated_total", "Onboardings cut short by a failed block or no G1 space", {},
            d(s.onboard_truncated));
  e.counter("kvbm_checksum_failures_total",
            "Blocks read back from a tier with a wrong checksum (DataLoss), treated as misses", {},
            d(s.checksum_failures));
  e.counter("kvbm_transfer_failed_blocks_total", "Offloaded or onboarded blocks whose copy failed (I/O error, short)",
            {}, d(s.transfer_failures));
  if (g3) {
    e.counter("kvbm_g3_dropped_damaged_blocks_total",
              "G3 blocks read back damaged (checksum), dropped from G3 at once so that they are never read again", {},
              d(s.dropped_damaged));
    e.counter("kvbm_g3_deadline_misses_total",
              "G3 block reads that missed g3.deadline_ms, treated as misses (the prefix ends there)", {},
              d(s.deadline_misses));
  }

  if (m.has_tier(CacheLevel::kG4)) collect_g4(s, e);

  const TransferStats t = m.transfer_stats();
  e.counter("kvbm_transfer_batches_total", "Transfer engine batches run", {}, d(t.batches));
  e.counter("kvbm_transfer_blocks_total", "Blocks the transfer engine copied, by result", {{"result", "ok"}},
            d(t.blocks_ok));
  e.counter("kvbm_transfer_blocks_total", "Blocks the transfer engine copied, by result", {{"result", "failed"}},
            d(t.blocks_failed));
  e.counter("kvbm_transfer_bytes_total", "Bytes the transfer engine copied", {}, d(t.bytes));
  e.counter("kvbm_transfer_io_errors_total", "Failed or short disk I/O operations", {}, d(t.io_errors));
}

}  // namespace

ManagerMetrics::ManagerMetrics() {
  match_requests_ = &registry_.counter("kvbm_match_requests_total", "Prefix lookups (match) across the tiers");
  for (int t = 0; t < 3; ++t) {
    hits_[t] = &registry_.counter("kvbm_match_hit_blocks_total", "Blocks a match found in this tier",
                                  {{"tier", kTierNames[t]}});
  }
  for (int t = 0; t < 3; ++t) {
    misses_[t] =
        &registry_.counter("kvbm_match_miss_blocks_total",
                           "Blocks a match looked up in this tier and did not find there", {{"tier", kTierNames[t]}});
  }
  const char* batch_help =
      "Seconds per offload batch, from dequeue to registration in the lower tier (g1->g2 includes write-back)";
  g1_g2_seconds_ = &registry_.histogram("kvbm_offload_batch_seconds", batch_help, metrics::latency_buckets_seconds(),
                                        pair_labels("g1", "g2"));
  g2_g3_seconds_ = &registry_.histogram("kvbm_offload_batch_seconds", batch_help, metrics::latency_buckets_seconds(),
                                        pair_labels("g2", "g3"));
  onboard_seconds_ = &registry_.histogram("kvbm_onboard_seconds",
                                          "Seconds from onboard() to completion, for matches that needed G2 or G3",
                                          metrics::latency_buckets_seconds());
}

ManagerMetrics::~ManagerMetrics() { stop(); }

OffloadObservers ManagerMetrics::offload_observers() {
  return OffloadObservers{g1_g2_seconds_, g2_g3_seconds_, onboard_seconds_};
}

void ManagerMetrics::record_match(std::size_t requested, std::size_t g1, std::size_t g2, std::size_t g3, bool has_g2,
                                  bool has_g3) {
  match_requests_->inc();
  hits_[0]->inc(g1);
  misses_[0]->inc(requested - g1);
  std::size_t left = requested - g1;
  if (has_g2 && left > 0) {
    hits_[1]->inc(g2);
    misses_[1]->inc(left - g2);
    left -= g2;
  }
  if (has_g3 && left > 0) {
    hits_[2]->inc(g3);
    misses_[2]->inc(left - g3);
  }
}

absl::Status ManagerMetrics::attach(const KvBlockManager& manager, const MetricsConfig& config) {
  collectors_.push_back(registry_.add_collector([&manager](Exposition& e) { collect_pools(manager, e); }));
  collectors_.push_back(registry_.add_collector([&manager](Exposition& e) { collect_offload(manager, e); }));
  if (config.port == 0) return absl::OkStatus();
  auto server = metrics::MetricsServer::start(&registry_, config.bind, static_cast<std::uint16_t>(config.port));
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  return absl::OkStatus();
}

void ManagerMetrics::stop() {
  if (server_) server_->stop();
  for (auto id : collectors_) registry_.remove_collector(id);
  collectors_.clear();
}

}  // namespace kvbm
