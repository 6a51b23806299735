// Daemon: snapshots (daemon.h describes the layout in the state directory).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "base/log.h"
#include "mgmt/daemon.h"
#include "mgmt/daemon_internal.h"
#include "mgmt/domain_codec.h"
#include "mgmt/network.h"

namespace vireo::mgmt {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace daemon_internal;

HttpResponse Daemon::SnapshotCreate(const std::string& name, const std::string& snapshot) {
  if (auto s = ValidateName(snapshot); !s) {
    return api::ErrorResponse(400, "snapshot " + s.error().message);
  }
  std::unique_lock lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  if (d->state != "running" && d->state != "paused") {
    return api::ErrorResponse(409, fmt::format("{}: domain is not running", kNotValid));
  }
  const std::string dir = fmt::format("{}/snapshots/{}/{}", options_.state_dir, name, snapshot);
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    return api::ErrorResponse(
        409, fmt::format("snapshot '{}' already exists for domain '{}'", snapshot, name));
  }
  fs::create_directories(fs::path(dir).parent_path(), ec);
  const bool was_running = d->state == "running";
  const std::string socket = Path("run", name, ".sock");
  const uint64_t generation = d->generation;
  lock.unlock();
  // A snapshot is of a paused VM: pause around it when it runs.
  VmReply reply;
  if (was_running) reply = CallVm(socket, "PUT", "/api/v1/vm/pause");
  if (!was_running || reply.status == 200) {
    httplib::Client client(socket);
    client.set_address_family(AF_UNIX);
    client.set_read_timeout(std::chrono::seconds(120));
    auto res = client.Put("/api/v1/vm/snapshot", json{{"path", dir}}.dump(), "application/json");
    reply.status = res ? res->status : 0;
    reply.body = res ? json::parse(res->body, nullptr, false) : json();
  }
  if (was_running) CallVm(socket, "PUT", "/api/v1/vm/resume");
  lock.lock();
  if (reply.status != 200) {
    fs::remove_all(dir, ec);
    std::string why = reply.status == 0        ? "the VM's control socket does not answer"
                      : reply.body.is_object() ? reply.body.value("error", "failed")
                                               : "failed";
    return api::ErrorResponse(reply.status == 409 ? 409 : 500,
                              fmt::format("snapshot '{}' of domain '{}': {}", snapshot, name, why));
  }
  json meta = {{"name", snapshot},
               {"domain", name},
               {"created", std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count()},
               {"state", was_running ? "running" : "paused"},
               {"bytes", reply.body.value("memory_bytes_written", uint64_t{0}) +
                             reply.body.value("state_bytes", uint64_t{0})}};
  if (auto s = WriteFileAtomic(dir + ".json", meta.dump(2) + "\n"); !s) {
    return api::ErrorResponse(500, s.error().message);
  }
  d = Find(name);
  if (d && d->generation == generation) events_.Emit(name, "snapshot", "created " + snapshot);
  return Ok(meta);
}

HttpResponse Daemon::SnapshotList(const std::string& name) {
  std::lock_guard lock(mutex_);
  if (!Find(name)) return NoDomain(name);
  json list = json::array();
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(Path("snapshots", name, ""), ec)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    auto text = ReadText(file);
    json meta = text ? json::parse(*text, nullptr, false) : json();
    if (meta.is_object()) list.push_back(meta);
  }
  std::stable_sort(list.begin(), list.end(), [](const json& a, const json& b) {
    return a.value("created", 0) < b.value("created", 0);
  });
  return Ok({{"snapshots", list}});
}

HttpResponse Daemon::SnapshotRevert(const std::string& name, const std::string& snapshot) {
  std::unique_lock lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  const std::string dir = fmt::format("{}/snapshots/{}/{}", options_.state_dir, name, snapshot);
  auto text = ReadText(dir + ".json");
  json meta = text ? json::parse(*text, nullptr, false) : json();
  if (!ValidateName(snapshot) || !meta.is_object()) {
    return api::ErrorResponse(
        404,
        fmt::format("Domain snapshot not found: no snapshot '{}' of domain '{}'", snapshot, name));
  }
  if ((d->state == "running" || d->state == "paused") && !KillLocked(lock, name)) {
    return api::ErrorResponse(500, fmt::format("domain '{}' did not end after SIGKILL", name));
  }
  d = Find(name);
  if (!d) return NoDomain(name);
  HttpResponse r = StartLocked(lock, *d, dir, meta.value("state", "running") == "paused");
  if (r.status == 200) events_.Emit(name, "reverted", snapshot);
  return r;
}

HttpResponse Daemon::SnapshotDelete(const std::string& name, const std::string& snapshot) {
  std::lock_guard lock(mutex_);
  if (!Find(name)) return NoDomain(name);
  const std::string dir = fmt::format("{}/snapshots/{}/{}", options_.state_dir, name, snapshot);
  std::error_code ec;
  if (!ValidateName(snapshot) || !fs::exists(dir + ".json", ec)) {
    return api::ErrorResponse(
        404,
        fmt::format("Domain snapshot not found: no snapshot '{}' of domain '{}'", snapshot, name));
  }
  fs::remove_all(dir, ec);
  fs::remove(dir + ".json", ec);
  return Ok({{"name", snapshot}});
}

}  // namespace vireo::mgmt
