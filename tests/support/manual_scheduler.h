// ManualScheduler: a JobScheduler whose jobs wait until the test runs them (CacheLib navy's
// MockJobScheduler is the model). A test picks the interleaving across lanes — run one lane's next job,
// then another's — so every ordering of background work can be reproduced exactly.
//
// Thread-safety: post() may be called from any thread; run_*() from the test's thread.
#pragma once

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "kvbm/core/job_scheduler.h"
#include "kvbm/core/mutex.h"

namespace kvbm::testing {

class ManualScheduler final : public JobScheduler {
 public:
  JobLane add_lane(std::string_view name) override {
    MutexLock lock(&mu_);
    lanes_.push_back(Lane{std::string(name), {}});
    return JobLane{static_cast<std::uint32_t>(lanes_.size() - 1)};
  }
  void post(JobLane lane, Job job) override {
    {
      MutexLock lock(&mu_);
      if (!stopped_) {
        lanes_[lane.value()].jobs.push_back(std::move(job));
        return;
      }
    }
    std::move(job)();
  }
  // Runs every queued job (lanes in turn, one job each) until none is left.
  void shutdown() override {
    run_all();
    MutexLock lock(&mu_);
    stopped_ = true;
  }

  // The lane called `name`; aborts the test binary when there is none (a typo in a test).
  JobLane lane(std::string_view name) const {
    MutexLock lock(&mu_);
    for (std::size_t i = 0; i < lanes_.size(); ++i) {
      if (lanes_[i].name == name) return JobLane{static_cast<std::uint32_t>(i)};
    }
    std::abort();
  }
  std::size_t pending(JobLane lane) const {
    MutexLock lock(&mu_);
    return lanes_[lane.value()].jobs.size();
  }
  std::size_t pending() const {
    MutexLock lock(&mu_);
    std::size_t n = 0;
    for (const Lane& l : lanes_) n += l.jobs.size();
    return n;
  }
  // Runs the oldest job of `lane`; false when it has none.
  bool run_one(JobLane lane) {
    Job job;
    {
      MutexLock lock(&mu_);
      auto& jobs = lanes_[lane.value()].jobs;
      if (jobs.empty()) return false;
      job = std::move(jobs.front());
      jobs.pop_front();
    }
    std::move(job)();
    return true;
  }
  // Runs jobs of `lane` until it has none (including jobs they post there); returns how many ran.
  std::size_t run_lane(JobLane lane) {
    std::size_t n = 0;
    while (run_one(lane)) ++n;
    return n;
  }
  // Runs every lane's jobs, one job per lane in turn, until all are empty; returns how many ran.
  std::size_t run_all() {
    std::size_t n = 0;
    for (bool ran = true; ran;) {
      ran = false;
      std::size_t lanes = 0;
      {
        MutexLock lock(&mu_);
        lanes = lanes_.size();
      }
      for (std::size_t i = 0; i < lanes; ++i) {
        if (run_one(JobLane{static_cast<std::uint32_t>(i)})) {
          ran = true;
          ++n;
        }
      }
    }
    return n;
  }

 private:
  struct Lane {
    std::string name;
    std::deque<Job> jobs;
  };
  mutable Mutex mu_;
  std::deque<Lane> lanes_ ABSL_GUARDED_BY(mu_);  // a deque: its jobs are move-only, lanes never move
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kvbm::testing
