// MetricsConfig: the `metrics.*` keys of KvbmConfig (issue 8/8). Off by default.
#pragma once

#include <cstdint>
#include <string>

namespace kvbm {

struct MetricsConfig {
  std::uint32_t port = 0;        // HTTP port of GET /metrics (Prometheus text); 0 = no server
  std::string bind = "0.0.0.0";  // address the server listens on
};

}  // namespace kvbm
