// `kvbm bench tiers`: kvbm's tier-to-tier throughput next to the machine's own limits, measured in the
// same run (issue 2, "Benchmarks").
//
// Limits: memcpy of one large buffer (one thread), and O_DIRECT sequential write and read of the disk
// directory through an IoBackend at queue depth 16 (its own file, written once untimed first, as the G3
// file is, so that neither write figure pays for converting fallocated extents). Each
// row measures its limit in slices that alternate with its own, so that drifting load on the machine
// (other processes, a virtual disk's neighbours) affects both alike. Then kvbm's
// TransferEngine moves the working set (block i to block i, in batches of 64 MiB, two in flight) G1→G2
// and G2→G1 (host ↔ host; G1 is system memory on a machine without a GPU), G2→G3 and G3→G2 (host ↔
// disk), for FullyContiguous and LayerSeparate (32 layers, outer-contiguous) layouts on both host tiers,
// at 256 KiB and 2 MiB blocks. Each figure is reported as a ratio to its limit: memcpy for host ↔ host,
// the probe's write (read) bandwidth at the same block size for G2→G3 (G3→G2). Both the probe and the G3
// tier use O_DIRECT, so neither is measuring the page cache.
//
// Thread-safety: none; one call at a time.
#pragma once

#include <absl/status/statusor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kvbm::bench {

struct TiersOptions {
  double seconds = 0.5;                    // measured seconds per figure
  std::string dir;                         // disk directory; empty: the system temp dir
  std::uint64_t total_bytes = 1ull << 30;  // working set per tier (capped to free memory and disk)
  std::vector<std::uint64_t> block_bytes = {256ull << 10, 2ull << 20};
};

struct TiersLimits {
  double memcpy_gbps = 0;      // the best of the per-row measurements
  double disk_write_gbps = 0;  // the best of the per-row probe measurements
  double disk_read_gbps = 0;
};

struct TiersRow {
  std::string path;    // "g1->g2", "g2->g1", "g2->g3", "g3->g2"
  std::string layout;  // "fully_contiguous", "layer_separate"
  std::uint64_t block_bytes = 0;
  double gbps = 0;        // GB/s (1e9 bytes per second)
  double limit_gbps = 0;  // the limit this row is compared with (host rows: memcpy measured beside it)
  double ratio = 0;
  double target = 0;  // issue 2's target ratio
};

struct TiersReport {
  TiersLimits limits;
  std::vector<TiersRow> rows;
  std::uint64_t total_bytes = 0;  // working set actually used
  std::string dir;
  std::string io_backend;
  bool direct_io = false;
  double wall_seconds = 0;
};

// Runs every measurement. An error means set-up failed or a transfer did not complete intact.
// REQUIRES: options.seconds > 0, options.block_bytes non-empty with multiples of 4 KiB.
[[nodiscard]] absl::StatusOr<TiersReport> run_tiers_bench(const TiersOptions& options);

}  // namespace kvbm::bench
