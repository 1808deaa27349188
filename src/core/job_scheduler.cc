// JobScheduler implementations; see include/kvbm/core/job_scheduler.h.
#include "kvbm/core/job_scheduler.h"

#include <condition_variable>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "kvbm/core/mutex.h"

namespace kvbm {
namespace {

// One thread per lane. A lane's jobs run in order on its thread; shutdown() lets every lane finish what
// is queued before joining it.
class ThreadLaneScheduler final : public JobScheduler {
 public:
  ~ThreadLaneScheduler() override { shutdown(); }

  JobLane add_lane(std::string_view name) override {
    MutexLock lock(&mu_);
    auto lane = std::make_unique<Lane>();
    lane->name = std::string(name);
    Lane* raw = lane.get();
    raw->thread = std::thread([this, raw] { run(*raw); });
    lanes_.push_back(std::move(lane));
    return JobLane{static_cast<std::uint32_t>(lanes_.size() - 1)};
  }

  void post(JobLane lane, Job job) override {
    Lane* l = nullptr;
    {
      MutexLock lock(&mu_);
      l = lanes_[lane.value()].get();
      if (!stopping_) {
        l->jobs.push_back(std::move(job));
        l->cv.notify_one();
        return;
      }
    }
    std::move(job)();  // shutting down: never drop a job
  }

  void shutdown() override {
    std::vector<std::thread> threads;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      stopping_ = true;
      for (auto& lane : lanes_) {
        lane->cv.notify_all();
        threads.push_back(std::move(lane->thread));
      }
    }
    for (std::thread& t : threads) t.join();
  }

 private:
  struct Lane {
    std::string name;
    std::deque<Job> jobs;
    std::condition_variable_any cv;
    std::thread thread;
  };

  void run(Lane& lane) {
    for (;;) {
      Job job;
      {
        MutexLock lock(&mu_);
        while (lane.jobs.empty() && !stopping_) lane.cv.wait(mu_);
        if (lane.jobs.empty()) return;  // stopping, and everything queued has run
        job = std::move(lane.jobs.front());
        lane.jobs.pop_front();
      }
      std::move(job)();
    }
  }

  Mutex mu_;
  std::vector<std::unique_ptr<Lane>> lanes_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

std::unique_ptr<JobScheduler> make_thread_lane_scheduler() { return std::make_unique<ThreadLaneScheduler>(); }

JobLane InlineScheduler::add_lane(std::string_view) { return JobLane{lanes_++}; }

void InlineScheduler::post(JobLane, Job job) { std::move(job)(); }

}  // namespace kvbm
