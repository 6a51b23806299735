#include "mgmt/events.h"

namespace vireo::mgmt {

nlohmann::json ToJson(const Event& e) {
  return {{"seq", e.seq},
          {"time", e.time},
          {"domain", e.domain},
          {"type", e.type},
          {"detail", e.detail}};
}

void EventLog::Emit(std::string domain, std::string type, std::string detail) {
  std::lock_guard lock(mutex_);
  Event e;
  e.seq = next_seq_++;
  e.time =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  e.domain = std::move(domain);
  e.type = std::move(type);
  e.detail = std::move(detail);
  events_.push_back(std::move(e));
  if (events_.size() > kCapacity) events_.pop_front();
  changed_.notify_all();
}

std::vector<Event> EventLog::Wait(uint64_t since, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return closed_ || next_seq_ - 1 > since; });
  std::vector<Event> out;
  for (const Event& e : events_) {
    if (e.seq > since) out.push_back(e);
  }
  return out;
}

uint64_t EventLog::last_seq() const {
  std::lock_guard lock(mutex_);
  return next_seq_ - 1;
}

void EventLog::Close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  changed_.notify_all();
}

}  // namespace vireo::mgmt
