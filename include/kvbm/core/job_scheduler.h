// JobScheduler: where kvbm's background work runs (DESIGN.md §2, core: "job scheduler interface").
//
// Work is posted as jobs to lanes. Jobs of one lane run one at a time, in the order they were posted;
// jobs of different lanes may run at the same time. The offload layer gives each tier link and the
// onboarding path a lane of its own, so host copies never wait behind disk or network I/O.
//
// Implementations:
//   ThreadLaneScheduler  one thread per lane (the default of a KvBlockManager)
//   InlineScheduler      runs every job on the posting thread before post() returns, nested when a job
//                        posts another: everything happens in a fixed order, so a single-threaded driver
//                        (kvbm replay) gets the same result on every run, on any machine
//   ManualScheduler      tests/support/manual_scheduler.h: jobs wait until the test runs them, in any order
//                        across lanes it chooses (CacheLib navy's MockJobScheduler is the model)
//
// Thread-safety: every method may be called from any thread, jobs included.
#pragma once

#include <absl/functional/any_invocable.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "kvbm/core/types.h"

namespace kvbm {

struct JobLaneTag {};
// A lane of one scheduler.
using JobLane = StrongId<JobLaneTag, std::uint32_t>;

class JobScheduler {
 public:
  using Job = absl::AnyInvocable<void() &&>;

  virtual ~JobScheduler() = default;

  // A new lane; `name` is for threads and diagnostics.
  [[nodiscard]] virtual JobLane add_lane(std::string_view name) = 0;
  // Queues `job` on `lane`. Once shutdown() has begun, the job runs on the calling thread instead: a job
  // is never dropped. REQUIRES: `lane` came from add_lane() of this scheduler.
  virtual void post(JobLane lane, Job job) = 0;
  // Whether every job has run by the time post() returns.
  [[nodiscard]] virtual bool runs_inline() const { return false; }
  // Runs every queued job, then stops the lanes (joining their threads). Idempotent.
  virtual void shutdown() = 0;
};

// One thread per lane, started by add_lane(); the destructor shuts down.
[[nodiscard]] std::unique_ptr<JobScheduler> make_thread_lane_scheduler();

// Runs jobs on the posting thread (see the top of this file).
class InlineScheduler final : public JobScheduler {
 public:
  [[nodiscard]] JobLane add_lane(std::string_view name) override;
  void post(JobLane lane, Job job) override;
  [[nodiscard]] bool runs_inline() const override { return true; }
  void shutdown() override {}

 private:
  std::atomic<std::uint32_t> lanes_{0};
};

}  // namespace kvbm
