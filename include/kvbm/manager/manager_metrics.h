// ManagerMetrics: the metrics of one KvBlockManager (issue 8/8), and its optional HTTP endpoint.
//
// Owned by the manager and always present (recording costs a relaxed atomic add); served as Prometheus
// text on GET /metrics when `metrics.port` != 0. Recorded here (no stat existed): match hits and misses per
// tier, offload batch and onboarding latency histograms. Read at scrape time from what the manager already
// keeps: blocks per state per tier (PoolStatus), OffloadStats (offload/onboard blocks and bytes, skips,
// queue depths, checksum failures) and TransferStats. Every name, type and label is listed in
// docs (notes/metrics.md) and in kManagerMetricNames below, which the tests check against a scrape.
//
// Other components add their own values with registry().add_collector() (e.g. add_event_collector() in
// kvbm/events/event_metrics.h, or a remote tier's error counts), removing them before they are destroyed.
//
// Thread-safety: record_match() and the histograms may be used from any thread. attach() and stop() are
// called by the manager (create and destructor).
#pragma once

#include <absl/status/status.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "kvbm/metrics/metrics.h"
#include "kvbm/metrics/metrics_config.h"
#include "kvbm/metrics/metrics_server.h"
#include "kvbm/offload/offload_manager.h"

namespace kvbm {

class KvBlockManager;

// Every metric family a manager with G1, G2 and G3 exposes (without _bucket/_sum/_count suffixes; the
// kvbm_g4_* families come with G4).
inline constexpr std::array<std::string_view, 26> kManagerMetricNames = {
    "kvbm_match_requests_total",
    "kvbm_match_hit_blocks_total",
    "kvbm_match_miss_blocks_total",
    "kvbm_offload_batch_seconds",
    "kvbm_onboard_seconds",
    "kvbm_pool_blocks",
    "kvbm_pool_capacity_blocks",
    "kvbm_offload_blocks_total",
    "kvbm_onboard_blocks_total",
    "kvbm_offload_bytes_total",
    "kvbm_onboard_bytes_total",
    "kvbm_offload_skipped_blocks_total",
    "kvbm_offload_write_back_blocks_total",
    "kvbm_offload_waited_blocks_total",
    "kvbm_offload_queue_depth_blocks",
    "kvbm_offload_queue_peak_blocks",
    "kvbm_onboard_queue_depth",
    "kvbm_onboard_truncated_total",
    "kvbm_checksum_failures_total",
    "kvbm_transfer_failed_blocks_total",
    "kvbm_g3_dropped_damaged_blocks_total",
    "kvbm_g3_deadline_misses_total",
    "kvbm_transfer_batches_total",
    "kvbm_transfer_blocks_total",
    "kvbm_transfer_bytes_total",
    "kvbm_transfer_io_errors_total",
};

class ManagerMetrics {
 public:
  ManagerMetrics();
  ~ManagerMetrics();  // stop()
  ManagerMetrics(const ManagerMetrics&) = delete;
  ManagerMetrics& operator=(const ManagerMetrics&) = delete;

  [[nodiscard]] metrics::Registry& registry() { return registry_; }
  [[nodiscard]] const metrics::Registry& registry() const { return registry_; }
  // Latency histograms for the OffloadManager to record into (they live as long as this object).
  [[nodiscard]] OffloadObservers offload_observers();

  // One match over `requested` hashes: the prefix found in G1, then G2, then G3 (absent tiers: 0 and
  // has_g2/has_g3 false). A tier's misses are the hashes looked up there and not found.
  void record_match(std::size_t requested, std::size_t g1, std::size_t g2, std::size_t g3, bool has_g2, bool has_g3);

  // Adds the collectors that read `manager` at scrape time and, when config.port != 0, starts the HTTP
  // server (errors: see MetricsServer::start). `manager` must stay alive until stop().
  [[nodiscard]] absl::Status attach(const KvBlockManager& manager, const MetricsConfig& config);
  // Stops the server and removes the manager's collectors. Idempotent.
  void stop();
  // The port served on; 0 when there is no server.
  [[nodiscard]] std::uint16_t port() const { return server_ ? server_->port() : 0; }

 private:
  metrics::Registry registry_;
  metrics::Counter* match_requests_;
  std::array<metrics::Counter*, 3> hits_{};    // g1, g2, g3
  std::array<metrics::Counter*, 3> misses_{};  // g1, g2, g3
  metrics::Histogram* g1_g2_seconds_;
  metrics::Histogram* g2_g3_seconds_;
  metrics::Histogram* onboard_seconds_;
  std::vector<metrics::Registry::CollectorId> collectors_;
  std::unique_ptr<metrics::MetricsServer> server_;
};

}  // namespace kvbm
