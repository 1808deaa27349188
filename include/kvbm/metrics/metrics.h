// Metrics: counters, gauges and histograms recorded lock-free, rendered as Prometheus text exposition
// format 0.0.4 (issue 8/8; DESIGN.md §2 "surfaces", §8 "Metrics").
//
// Two ways a value reaches a scrape:
//   - Owned metrics (Counter, Gauge, Histogram) created by a Registry and recorded on the hot path. Recording
//     is one or two relaxed atomic read-modify-writes: no lock, no allocation, no system call.
//   - Collectors: callbacks run at scrape time that copy values which already live elsewhere (a pool's
//     PoolStatus, OffloadStats, EventManagerStats) into the exposition. Nothing is recorded twice.
//
// Exposition text: one "# HELP" and one "# TYPE" line per metric family, then its samples, families in the
// order they were first registered or written. Label values escape '\\', '"' and newline; HELP text escapes
// '\\' and newline. Histograms write cumulative `_bucket{le="..."}` samples ending with le="+Inf", then `_sum`
// and `_count` (= the +Inf bucket, read from the same snapshot).
//
// Names follow Prometheus conventions: `kvbm_` prefix, base units, `_total` for counters, unit suffixes
// (`_seconds`, `_bytes`, `_blocks`). A name or label name outside [a-zA-Z_:][a-zA-Z0-9_:]* is written with
// every bad character replaced by '_' (so a scrape never fails to parse); tests check our names are valid.
//
// Thread-safety: recording is wait-free and may happen on any thread. Registry methods may be called from
// any thread; render() runs collectors one at a time under the registry's lock, so a collector must not call
// back into the registry. remove_collector() returns only once that collector is not running and never will
// again: call it before whatever the collector reads is destroyed.
#pragma once

#include <absl/base/thread_annotations.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvbm/core/mutex.h"

namespace kvbm::metrics {

struct Label {
  std::string name;
  std::string value;
  friend bool operator==(const Label&, const Label&) = default;
};
using Labels = std::vector<Label>;

// A monotonically increasing count.
class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  [[nodiscard]] double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A histogram's values at one instant. `cumulative[i]` counts observations ≤ bounds[i]; the last entry
// (one more than bounds) is the +Inf bucket and equals `count`.
struct HistogramSnapshot {
  std::vector<double> bounds;
  std::vector<std::uint64_t> cumulative;
  double sum = 0;
  std::uint64_t count = 0;
};

// Fixed upper bounds chosen at construction; observe() finds the bucket by binary search and does two
// relaxed atomic adds (bucket, sum). The count is the sum of the buckets, so _count always equals the
// +Inf bucket; _sum may lag a concurrent observation by one sample.
class Histogram {
 public:
  // REQUIRES: `bounds` finite and strictly increasing (unsorted or repeated bounds are sorted and
  // de-duplicated; non-finite ones dropped).
  explicit Histogram(std::vector<double> bounds);

  void observe(double v) {
    const std::size_t i =
        static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
  }

  [[nodiscard]] HistogramSnapshot snapshot() const;
  [[nodiscard]] const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0.0};
};

// Bucket bounds start, start·factor, …, `count` of them. REQUIRES: start > 0, factor > 1, count ≥ 1.
[[nodiscard]] std::vector<double> exponential_buckets(double start, double factor, std::size_t count);
// 10 µs … 10 s in 1-2.5-5 steps: the latency buckets kvbm uses.
[[nodiscard]] std::vector<double> latency_buckets_seconds();

enum class MetricType : std::uint8_t { kCounter, kGauge, kHistogram };

// The text of one scrape, built family by family. Collectors write into it.
class Exposition {
 public:
  void counter(std::string_view name, std::string_view help, const Labels& labels, double value);
  void gauge(std::string_view name, std::string_view help, const Labels& labels, double value);
  void histogram(std::string_view name, std::string_view help, const Labels& labels, const HistogramSnapshot& h);

  // Prometheus text format 0.0.4.
  [[nodiscard]] std::string text() const;

 private:
  struct Family {
    std::string name;
    std::string help;
    MetricType type;
    std::string samples;
  };
  Family* family(std::string_view name, std::string_view help, MetricType type);
  std::vector<Family> families_;
};

// The metric families of one process or component, plus the collectors run at scrape time.
class Registry {
 public:
  using Collector = std::function<void(Exposition&)>;
  using CollectorId = std::uint64_t;

  // The metric with this name and labels, created on first use (same name and labels again: the same
  // object). The reference stays valid as long as the registry. REQUIRES: a name keeps one type.
  Counter& counter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {});
  // `bounds` is used when the histogram is created.
  Histogram& histogram(std::string_view name, std::string_view help, std::vector<double> bounds, Labels labels = {});

  // Runs `collector` on every render, after the owned metrics, in the order added.
  CollectorId add_collector(Collector collector);
  // Waits for a render in progress; the collector is never run again afterwards.
  void remove_collector(CollectorId id);

  // Everything as Prometheus text format 0.0.4.
  [[nodiscard]] std::string render() const;

 private:
  struct Owned {
    std::string name;
    std::string help;
    Labels labels;
    MetricType type;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  Owned& find_or_add(std::string_view name, std::string_view help, Labels labels, MetricType type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  std::vector<std::unique_ptr<Owned>> owned_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<CollectorId, Collector>> collectors_ ABSL_GUARDED_BY(mu_);
  CollectorId next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

// Text-format helpers, exposed for tests.
[[nodiscard]] std::string escape_label_value(std::string_view value);
[[nodiscard]] std::string escape_help(std::string_view help);
[[nodiscard]] std::string sanitize_name(std::string_view name);
[[nodiscard]] bool valid_name(std::string_view name);
// Shortest text that reads back as `v`; "+Inf", "-Inf", "NaN".
[[nodiscard]] std::string format_value(double v);

}  // namespace kvbm::metrics
