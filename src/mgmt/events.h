// EventLog: domain lifecycle events (defined, undefined, started, paused, resumed, stopped,
// crashed) for watchers, numbered so a client long-polling GET /api/v1/events?since=N
// misses none while it is connected; only the most recent kCapacity are kept.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vireo::mgmt {

struct Event {
  uint64_t seq = 0;
  double time = 0;  // seconds since the epoch
  std::string domain;
  std::string type;
  std::string detail;
};

nlohmann::json ToJson(const Event& event);

class EventLog {
 public:
  static constexpr size_t kCapacity = 1024;

  void Emit(std::string domain, std::string type, std::string detail);
  // Events with seq > since, waiting up to `timeout` for the first one.
  std::vector<Event> Wait(uint64_t since, std::chrono::milliseconds timeout);
  uint64_t last_seq() const;
  // Wakes every waiter (daemon shutdown).
  void Close();

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Event> events_;
  uint64_t next_seq_ = 1;
  bool closed_ = false;
};

}  // namespace vireo::mgmt
