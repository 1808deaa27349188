// Replays an in-memory request list: the one helper replay's tests share.
#pragma once

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "kvbm/replay/replay.h"
#include "kvbm/replay/trace.h"

namespace kvbm::testing {

// The report of replaying `requests` with `options`; a failed replay fails the test and gives an empty report.
inline ReplayReport replay(std::vector<TraceRequest> requests, const ReplayOptions& options) {
  auto trace = make_vector_trace(std::move(requests));
  auto report = run_replay(*trace, options);
  EXPECT_TRUE(report.ok()) << report.status();
  return report.ok() ? *report : ReplayReport{};
}

}  // namespace kvbm::testing
