// Internals shared by daemon.cc and its daemon_*.cc parts: the domain
// record and small helpers (atomic files, calls to a VM's own control API). Not an interface.
#pragma once

#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "mgmt/daemon.h"

namespace vireo::mgmt {

namespace daemon_internal {

using nlohmann::json;
namespace fs = std::filesystem;
inline constexpr const char* kNotValid = "Requested operation is not valid";

inline HttpResponse Ok(json body) {
  HttpResponse r;
  r.body = std::move(body);
  return r;
}

inline HttpResponse NoDomain(const std::string& name) {
  return api::ErrorResponse(
      404, fmt::format("Domain not found: no domain with matching name '{}'", name));
}

inline Status WriteFileAtomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return Fail("cannot write {}: {}", tmp, std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Fail("cannot rename {} to {}: {}", tmp, path, std::strerror(errno));
  }
  return {};
}

inline std::optional<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline std::string LastLogLine(const std::string& path) {
  auto text = ReadText(path);
  if (!text) return "";
  std::string s = *text;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

// One call to a VM's own control API (docs/api.yaml) over its Unix socket.
struct VmReply {
  int status = 0;  // 0: could not connect
  json body;
};

inline VmReply CallVm(const std::string& socket, const std::string& method, const std::string& path,
                      const std::string& body = "") {
  httplib::Client client(socket);
  client.set_address_family(AF_UNIX);
  client.set_connection_timeout(std::chrono::seconds(2));
  client.set_read_timeout(std::chrono::seconds(10));
  httplib::Result res =
      method == "GET" ? client.Get(path) : client.Put(path, body, "application/json");
  VmReply reply;
  if (!res) return reply;
  reply.status = res->status;
  reply.body = json::parse(res->body, nullptr, false);
  return reply;
}

inline uint64_t CpuTimeNs(pid_t pid) {
  auto text = ReadText(fmt::format("/proc/{}/stat", pid));
  if (!text) return 0;
  size_t close = text->rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text->substr(close + 1));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return (utime + stime) * (1000000000ull / static_cast<uint64_t>(::sysconf(_SC_CLK_TCK)));
}

}  // namespace daemon_internal

struct Daemon::Domain {
  DomainDef def;
  bool autostart = false;
  std::string state = "shutoff";  // shutoff | running | paused | crashed
  std::string reason = "defined";
  int id = -1;
  ProcessRecord process;
  bool stop_requested = false;  // destroy: the end that follows is not a crash
  std::string cgroup_note;      // why the VM runs without cgroup limits, if it does
  std::vector<std::string> cgroup_paths;
  std::vector<std::string> taps;  // created by the daemon for network/bridge interfaces
  std::thread watcher;
  UniqueFd watcher_stop;             // eventfd: end the watcher without the VM ending
  uint64_t generation = 0;           // bumped per start: tells one boot's watcher from the next
  uint64_t live_current_memory = 0;  // setmem on the running VM; 0: the definition's
  nlohmann::json migration;          // the last migration status seen (daemon_migrate.cc)
};

}  // namespace vireo::mgmt
