// The tests' name for RedisServerProcess (include/kvbm/remote/redis_server_process.h): a real redis-server
// child on a free loopback port, killed and reaped when it goes out of scope.
#pragma once

#include "kvbm/remote/redis_server_process.h"

namespace kvbm::testing {

using kvbm::redis_server_path;
using RedisServer = kvbm::RedisServerProcess;

}  // namespace kvbm::testing
