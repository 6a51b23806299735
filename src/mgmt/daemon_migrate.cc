// setmem (the VM's balloon) and live migration between daemons (docs/management.md).
#include <regex>

#include "base/log.h"
#include "mgmt/daemon_internal.h"

namespace vireo::mgmt {

using namespace daemon_internal;

namespace {

constexpr uint64_t kPage = 4096;  // the balloon's unit (virtio 1.2, 5.5.6)

bool Active(const std::string& state) { return state == "running" || state == "paused"; }

}  // namespace

void Daemon::ApplyCurrentMemory(std::unique_lock<std::mutex>& lock, Domain& d,
                                const std::string& socket) {
  const uint64_t current = d.def.EffectiveCurrentMemory();
  if (!d.def.balloon || current >= d.def.memory_bytes) return;
  const uint64_t target = (d.def.memory_bytes - current) / kPage * kPage;
  const std::string name = d.def.name;
  lock.unlock();
  VmReply reply =
      CallVm(socket, "PUT", "/api/v1/vm/balloon", json{{"target_bytes", target}}.dump());
  lock.lock();
  if (reply.status != 200) {
    Log(LogLevel::kWarn, "domain '{}': currentMemory not applied: balloon answered {} {}", name,
        reply.status, reply.body.dump());
    return;
  }
  d.live_current_memory = current;
}

HttpResponse Daemon::SetMemory(const std::string& name, uint64_t size_bytes, bool live,
                               bool config) {
  std::unique_lock lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  if (!live && !config) {  // virsh's --current
    live = Active(d->state);
    config = !live;
  }
  if (!d->def.balloon) {
    return api::ErrorResponse(
        409, fmt::format("{}: domain '{}' has no memory balloon; add <memballoon "
                         "model='virtio'/> (JSON: \"balloon\": true) and restart it",
                         kNotValid, name));
  }
  if (size_bytes == 0 || size_bytes > d->def.memory_bytes) {
    return api::ErrorResponse(
        400, fmt::format("invalid argument: cannot set memory to {} KiB: it must be 1 KiB up to "
                         "the domain's maximum of {} KiB",
                         size_bytes >> 10, d->def.memory_bytes >> 10));
  }
  if (live && !Active(d->state)) {
    return api::ErrorResponse(
        409, fmt::format("{}: domain is not running (--config changes its definition)", kNotValid));
  }
  json answer = {{"name", name}, {"live", live}, {"config", config}};
  if (live) {
    // The balloon holds what the guest gives back: memory - size, in whole pages.
    const uint64_t target = (d->def.memory_bytes - size_bytes) / kPage * kPage;
    const std::string socket = Path("run", name, ".sock");
    const uint64_t generation = d->generation;
    lock.unlock();
    VmReply reply =
        CallVm(socket, "PUT", "/api/v1/vm/balloon", json{{"target_bytes", target}}.dump());
    lock.lock();
    d = Find(name);
    if (!d || d->generation != generation) {
      return api::ErrorResponse(409, "the domain changed meanwhile");
    }
    if (reply.status == 0) {
      return api::ErrorResponse(
          500, fmt::format("domain '{}': its control socket {} does not answer", name, socket));
    }
    if (reply.status != 200) {
      // A VM started before its definition had a balloon has none (409 from the VM).
      return api::ErrorResponse(
          reply.status == 409 ? 409 : 500,
          fmt::format("{}: {}", kNotValid, reply.body.value("error", "refused")));
    }
    d->live_current_memory = size_bytes;
    answer["balloon"] = reply.body;
  }
  if (config) {
    d->def.current_memory_bytes = size_bytes == d->def.memory_bytes ? 0 : size_bytes;
    if (auto s = SaveDefinition(*d); !s) return api::ErrorResponse(500, s.error().message);
  }
  answer["current_memory_bytes"] = size_bytes;
  return Ok(answer);
}

HttpResponse Daemon::StartIncoming(const std::string& name, const std::string& uri) {
  if (uri.rfind("tcp:", 0) != 0) {
    return api::ErrorResponse(400, fmt::format("incoming '{}': expected tcp:HOST:PORT", uri));
  }
  std::unique_lock lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  return StartLocked(lock, *d, "", false, uri);
}

HttpResponse Daemon::WaitForIncomingListen(std::unique_lock<std::mutex>& lock, Domain& d,
                                           uint64_t generation, const std::string& log_path) {
  // receiver.cc prints this once the socket listens.
  static const std::regex kListening(R"(waiting for an incoming migration on (\S+):(\d+))");
  const std::string name = d.def.name;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (d.generation != generation || !Active(d.state)) break;
    std::smatch m;
    const std::string log = ReadText(log_path).value_or("");
    // Only this start's part of the log (the daemon writes a "starting:" line first).
    const size_t start = log.rfind("vireo daemon: starting:");
    const std::string mine = start == std::string::npos ? log : log.substr(start);
    if (std::regex_search(mine, m, kListening)) {
      json answer = Summary(d);
      answer["incoming_uri"] = fmt::format("tcp:{}:{}", m[1].str(), m[2].str());
      return Ok(answer);
    }
    changed_.wait_for(lock, std::chrono::milliseconds(20));
  }
  if (d.generation == generation && !Active(d.state)) {
    return api::ErrorResponse(
        500, fmt::format("Failed to start domain '{}': vireo run --incoming ended: {}", name,
                         LastLogLine(log_path)));
  }
  return Ok(Summary(d));
}

void Daemon::OnIncomingLanded(Domain& d, const std::string& vm_state) {
  std::lock_guard lock(mutex_);
  if (d.reason != "incoming migration" || !Active(d.state)) return;
  d.state = vm_state;
  d.reason = "migrated";
  events_.Emit(d.def.name, "resumed", "migrated");
  SaveRunState(d);
  changed_.notify_all();
}

HttpResponse Daemon::Migrate(const std::string& name, const std::string& uri,
                             uint64_t max_downtime_ms, uint64_t bandwidth_mbps) {
  std::unique_lock lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  if (!Active(d->state)) {
    return api::ErrorResponse(409, fmt::format("{}: domain is not running", kNotValid));
  }
  if (d->reason == "incoming migration") {
    return api::ErrorResponse(
        409, fmt::format("{}: domain is waiting for an incoming migration", kNotValid));
  }
  json body = {{"uri", uri}};
  if (max_downtime_ms) body["max_downtime_ms"] = max_downtime_ms;
  if (bandwidth_mbps) body["bandwidth_mbps"] = bandwidth_mbps;
  const std::string socket = Path("run", name, ".sock");
  const uint64_t generation = d->generation;
  lock.unlock();
  VmReply reply = CallVm(socket, "PUT", "/api/v1/vm/migrate", body.dump());
  lock.lock();
  d = Find(name);
  if (!d || d->generation != generation) {
    return api::ErrorResponse(409, "the domain changed meanwhile");
  }
  if (reply.status == 0) {
    return api::ErrorResponse(
        500, fmt::format("domain '{}': its control socket {} does not answer", name, socket));
  }
  if (reply.status != 202) {
    const std::string why = reply.body.is_object() ? reply.body.value("error", "refused") : "";
    if (reply.status == 409) return api::ErrorResponse(409, fmt::format("{}: {}", kNotValid, why));
    if (reply.status == 400) return api::ErrorResponse(400, "invalid argument: " + why);
    return api::ErrorResponse(500, "operation failed: " + why);
  }
  d->migration = reply.body;
  json answer = reply.body;
  answer["domain"] = Summary(*d);
  return HttpResponse{202, answer, {}};
}

HttpResponse Daemon::MigrationStatus(const std::string& name) {
  std::unique_lock lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  if (Active(d->state) && d->reason != "incoming migration") {
    const std::string socket = Path("run", name, ".sock");
    const uint64_t generation = d->generation;
    lock.unlock();
    VmReply reply = CallVm(socket, "GET", "/api/v1/vm/migrate");
    lock.lock();
    d = Find(name);
    if (!d) return NoDomain(name);
    // A VM that just ended after migrating no longer answers; the watcher records how it
    // ended, and the last status seen stands until then.
    if (d->generation == generation && reply.status == 200 && reply.body.is_object()) {
      d->migration = reply.body;
    }
  }
  json answer = d->migration.is_object() ? d->migration : json{{"state", "none"}};
  answer["domain"] = Summary(*d);
  return Ok(answer);
}

}  // namespace vireo::mgmt
