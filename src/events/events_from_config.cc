#include "kvbm/events/events_from_config.h"

#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <absl/strings/strip.h>

#include <optional>
#include <string>
#include <utility>

#include "kvbm/events/nats_publisher.h"
#include "kvbm/events/zmq_publisher.h"

namespace kvbm {
namespace {

absl::Status named(std::string_view key, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(std::string(key), ": ", s.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventManager>> make_event_manager(const EventsConfig& config,
                                                                 std::vector<std::unique_ptr<EventPublisher>> extra,
                                                                 EventManagerOptions base) {
  const std::optional<std::int64_t> rank =
      config.data_parallel_rank >= 0 ? std::optional<std::int64_t>(config.data_parallel_rank) : std::nullopt;
  std::vector<std::unique_ptr<EventPublisher>> publishers;
  if (!config.endpoint.empty()) {
    ZmqPublisherOptions zo;
    zo.endpoint = config.endpoint;
    zo.topic = config.topic;
    if (!config.replay_endpoint.empty()) zo.replay_endpoint = config.replay_endpoint;
    zo.hwm = static_cast<int>(config.hwm);
    zo.replay_buffer_batches = config.replay_buffer_batches;
    zo.data_parallel_rank = rank;
    auto zmq = ZmqPublisher::create(std::move(zo));
    if (!zmq.ok()) return named("events.endpoint", zmq.status());
    publishers.push_back(*std::move(zmq));
  } else if (!config.replay_endpoint.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("events.replay_endpoint \"", config.replay_endpoint,
                                                   "\" needs events.endpoint (replay serves the ZMQ stream)"));
  }
  if (!config.nats_url.empty()) {
    NatsPublisherOptions no;
    no.servers.clear();
    for (absl::string_view url : absl::StrSplit(config.nats_url, ',', absl::SkipWhitespace())) {
      no.servers.emplace_back(absl::StripAsciiWhitespace(url));
    }
    no.subject = config.nats_subject;
    no.worker_id = rank.value_or(0) >= 0 ? static_cast<std::uint64_t>(rank.value_or(0)) : 0;
    auto nats = NatsPublisher::create(std::move(no));
    if (!nats.ok()) return named("events.nats_url", nats.status());
    publishers.push_back(*std::move(nats));
  }
  for (std::unique_ptr<EventPublisher>& p : extra) publishers.push_back(std::move(p));
  base.data_parallel_rank = rank;
  base.batch_format = config.batch_format;
  base.media = config.media;
  auto manager = EventManager::create(std::move(base), std::move(publishers));
  if (!manager.ok()) return named("events", manager.status());
  return manager;
}

}  // namespace kvbm
