#include "mgmt/daemon.h"

#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "base/log.h"
#include "mgmt/daemon_internal.h"
#include "mgmt/domain_codec.h"
#include "mgmt/domain_toml.h"

namespace vireo::mgmt {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace daemon_internal;

Daemon::Daemon(DaemonOptions options)
    : options_(std::move(options)), net_host_(options_.state_dir + "/run") {}

Daemon::~Daemon() {
  events_.Close();
  std::unique_lock lock(mutex_);
  for (auto& [name, d] : domains_) {
    if (d->watcher_stop) {
      uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(d->watcher_stop.get(), &one, sizeof(one));
    }
  }
  lock.unlock();
  for (auto& [name, d] : domains_) {
    if (d->watcher.joinable()) d->watcher.join();
  }
}

std::string Daemon::Path(const std::string& dir, const std::string& name, const char* ext) const {
  return fmt::format("{}/{}/{}{}", options_.state_dir, dir, name, ext);
}

Result<std::unique_ptr<Daemon>> Daemon::Open(const DaemonOptions& options) {
  std::unique_ptr<Daemon> self(new Daemon(options));
  std::error_code ec;
  for (const char* dir : {"", "/domains", "/run", "/log", "/networks", "/snapshots"}) {
    fs::create_directories(options.state_dir + dir, ec);
    if (ec) return Fail("state directory {}{}: {}", options.state_dir, dir, ec.message());
  }
  self->lock_fd_ = UniqueFd(
      ::open((options.state_dir + "/vireod.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!self->lock_fd_)
    return Fail("state directory {}: {}", options.state_dir, std::strerror(errno));
  if (::flock(self->lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    return Fail("state directory {} is in use by another vireo daemon", options.state_dir);
  }
  self->cgroups_ =
      options.cgroups ? Cgroups::Detect() : Cgroups::Disabled("disabled by --no-cgroups");
  if (self->cgroups_.enabled()) {
    Log(LogLevel::kInfo, "cgroup v{}: VMs get their definitions' CPU and memory limits",
        self->cgroups_.version());
  } else {
    Log(LogLevel::kWarn, "VMs run without cgroup limits: {}", self->cgroups_.reason());
  }
  VIREO_TRY_STATUS(self->Load());
  self->Autostart();
  return self;
}

Status Daemon::Load() {
  std::lock_guard lock(mutex_);  // watchers started here report only once loading is done
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.state_dir + "/networks", ec)) {
    if (entry.path().extension() != ".xml") continue;
    auto text = ReadText(entry.path());
    auto net = text ? ParseNetworkXml(*text, nullptr) : Result<NetworkDef>(Fail("unreadable"));
    if (!net) {
      Log(LogLevel::kError, "{}: {}; skipped", entry.path().string(), net.error().message);
      continue;
    }
    networks_[net->name] = *net;
  }
  for (const auto& entry : fs::directory_iterator(options_.state_dir + "/domains", ec)) {
    if (entry.path().extension() != ".json") continue;
    auto text = ReadText(entry.path());
    json stored = text ? json::parse(*text, nullptr, false) : json();
    if (!stored.is_object() || !stored.contains("definition")) {
      Log(LogLevel::kError, "{}: unreadable; skipped (fix or remove it)", entry.path().string());
      continue;
    }
    auto parsed = ParseDomainJson(stored["definition"].dump(), /*strict=*/false);
    if (!parsed) {
      Log(LogLevel::kError, "{}: {}; skipped", entry.path().string(), parsed.error().message);
      continue;
    }
    auto d = std::make_unique<Domain>();
    d->def = parsed->def;
    d->autostart = stored.value("autostart", false);
    const std::string name = d->def.name;
    // Where it was left: re-attach to a VM still running, or record how it ended.
    auto run_text = ReadText(Path("run", name, ".json"));
    json run = run_text ? json::parse(*run_text, nullptr, false) : json();
    if (run.is_object()) {
      d->state = run.value("state", "shutoff");
      d->reason = run.value("reason", "");
      d->process.shim_pid = run.value("shim_pid", 0);
      d->process.shim_start = run.value("shim_start", uint64_t{0});
      d->process.vm_pid = run.value("vm_pid", 0);
      d->process.vm_start = run.value("vm_start", uint64_t{0});
      d->id = run.value("id", -1);
      d->cgroup_paths = run.value("cgroups", std::vector<std::string>{});
      d->taps = run.value("taps", std::vector<std::string>{});
      if (d->state == "running" || d->state == "paused") {
        if (IsSameProcess(d->process.vm_pid, d->process.vm_start)) {
          VmReply info = CallVm(Path("run", name, ".sock"), "GET", "/api/v1/vm");
          if (info.status == 200 && info.body.value("state", "") == "paused") d->state = "paused";
          next_id_ = std::max(next_id_, d->id + 1);
          Log(LogLevel::kInfo, "domain '{}': re-attached to pid {} ({})", name, d->process.vm_pid,
              d->state);
          Watch(*d, d->reason == "incoming migration");
        } else {
          auto status = ReadExitFile(Path("run", name, ".exit"));
          d->state = "crashed";
          d->reason =
              status ? status->Describe() : "ended while the daemon was away (no exit status)";
          d->id = -1;
          cgroups_.Remove(name);
          for (const std::string& tap : d->taps) NetworkHost::DeleteTap(tap);
          d->taps.clear();
          events_.Emit(name, "crashed", d->reason);
          Log(LogLevel::kWarn, "domain '{}': ended while the daemon was away: {}", name, d->reason);
          SaveRunState(*d);
        }
      }
    }
    domains_[name] = std::move(d);
  }
  return {};
}

void Daemon::Autostart() {
  std::unique_lock lock(mutex_);
  // Networks first: autostart domains may sit on them.
  std::error_code ec;
  for (const auto& [name, net] : networks_) {
    if (!fs::exists(Path("networks", name, ".autostart"), ec) || net_host_.IsActive(net)) continue;
    if (auto s = net_host_.Start(net); !s) {
      Log(LogLevel::kError, "autostart of network '{}' failed: {}", name, s.error().message);
    }
  }
  for (auto& [name, d] : domains_) {
    if (!d->autostart || d->state == "running" || d->state == "paused") continue;
    HttpResponse r = StartLocked(lock, *d);
    if (r.status != 200) {
      Log(LogLevel::kError, "autostart of '{}' failed: {}", name, r.body.value("error", ""));
    }
  }
}

Daemon::Domain* Daemon::Find(const std::string& name) {
  auto it = domains_.find(name);
  return it == domains_.end() ? nullptr : it->second.get();
}

Status Daemon::SaveDefinition(const Domain& d) {
  json stored = {{"autostart", d.autostart}, {"definition", DomainToJson(d.def)}};
  return WriteFileAtomic(Path("domains", d.def.name, ".json"), stored.dump(2) + "\n");
}

void Daemon::SaveRunState(const Domain& d) {
  json run = {{"state", d.state},
              {"reason", d.reason},
              {"id", d.id},
              {"shim_pid", d.process.shim_pid},
              {"shim_start", d.process.shim_start},
              {"vm_pid", d.process.vm_pid},
              {"vm_start", d.process.vm_start},
              {"cgroups", d.cgroup_paths},
              {"taps", d.taps}};
  if (auto s = WriteFileAtomic(Path("run", d.def.name, ".json"), run.dump(2) + "\n"); !s) {
    Log(LogLevel::kError, "domain '{}': {}", d.def.name, s.error().message);
  }
}

json Daemon::Summary(const Domain& d) const {
  return {{"name", d.def.name}, {"uuid", d.def.uuid}, {"id", d.id},
          {"state", d.state},   {"reason", d.reason}, {"autostart", d.autostart}};
}

HttpResponse Daemon::List(bool all) {
  std::lock_guard lock(mutex_);
  json out = json::array();
  // virsh lists running domains by id, then the inactive ones by name.
  std::vector<const Domain*> active, inactive;
  for (const auto& [name, d] : domains_) {
    (d->id >= 0 ? active : inactive).push_back(d.get());
  }
  std::sort(active.begin(), active.end(), [](auto* a, auto* b) { return a->id < b->id; });
  for (const Domain* d : active) out.push_back(Summary(*d));
  if (all) {
    for (const Domain* d : inactive) out.push_back(Summary(*d));
  }
  return Ok({{"domains", out}});
}

HttpResponse Daemon::Define(const std::string& text, bool strict) {
  auto parsed = ParseDomain(text, strict);
  if (!parsed) return api::ErrorResponse(400, parsed.error().message);
  if (auto s = Validate(parsed->def, /*check_files=*/true); !s) {
    return api::ErrorResponse(400, s.error().message);
  }
  std::lock_guard lock(mutex_);
  const DomainDef& def = parsed->def;
  for (const auto& [name, d] : domains_) {
    if (name != def.name && d->def.uuid == def.uuid) {
      return api::ErrorResponse(
          409, fmt::format("uuid {} is already used by domain '{}'", def.uuid, name));
    }
  }
  Domain* existing = Find(def.name);
  if (existing && existing->def.uuid != def.uuid) {
    return api::ErrorResponse(
        409, fmt::format("domain '{}' already exists with uuid {}", def.name, existing->def.uuid));
  }
  bool created = existing == nullptr;
  if (created) {
    auto d = std::make_unique<Domain>();
    existing = d.get();
    domains_[def.name] = std::move(d);
  }
  // A running domain's new definition applies from its next start, as in libvirt.
  existing->def = def;
  if (auto s = SaveDefinition(*existing); !s) {
    if (created) domains_.erase(def.name);
    return api::ErrorResponse(500, s.error().message);
  }
  events_.Emit(def.name, "defined", created ? "added" : "updated");
  HttpResponse r = Ok({{"name", def.name}, {"uuid", def.uuid}, {"warnings", parsed->warnings}});
  r.status = created ? 201 : 200;
  return r;
}

HttpResponse Daemon::Undefine(const std::string& name) {
  std::unique_lock lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  if (d->state == "running" || d->state == "paused") {
    return api::ErrorResponse(
        409,
        fmt::format("{}: domain '{}' is running; destroy or shut it down first", kNotValid, name));
  }
  std::error_code ec;
  const std::string snapshots = Path("snapshots", name, "");
  if (fs::exists(snapshots, ec) && !fs::is_empty(snapshots, ec)) {
    return api::ErrorResponse(
        409,
        fmt::format("{}: domain '{}' has snapshots; snapshot-delete them first", kNotValid, name));
  }
  fs::remove(snapshots, ec);
  if (d->watcher.joinable()) d->watcher.join();
  for (const char* ext : {".json", ".exit", ".sock", ".in"})
    ::unlink(Path("run", name, ext).c_str());
  ::unlink(Path("domains", name, ".json").c_str());
  domains_.erase(name);
  events_.Emit(name, "undefined", "removed");
  return Ok({{"name", name}});
}

HttpResponse Daemon::Info(const std::string& name) {
  std::lock_guard lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  json info = Summary(*d);
  info["vcpus"] = d->def.vcpus;
  info["memory_bytes"] = d->def.memory_bytes;
  info["current_memory_bytes"] =
      d->live_current_memory ? d->live_current_memory : d->def.EffectiveCurrentMemory();
  info["persistent"] = true;
  info["log"] = Path("log", name, ".log");
  info["console_log"] = Path("log", name, ".console");
  if (d->state == "running" || d->state == "paused") {
    info["pid"] = d->process.vm_pid;
    info["api_socket"] = Path("run", name, ".sock");
    info["cpu_time_ns"] = CpuTimeNs(d->process.vm_pid);
    info["cgroups"] = d->cgroup_paths;
    if (!d->cgroup_note.empty()) info["cgroup_note"] = d->cgroup_note;
  }
  return Ok(info);
}

HttpResponse Daemon::Definition(const std::string& name, const std::string& format) {
  std::lock_guard lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  if (format == "json") return Ok({{"format", "json"}, {"definition", DomainToJson(d->def)}});
  if (format == "toml") return Ok({{"format", "toml"}, {"definition", DomainToToml(d->def)}});
  if (format == "xml" || format.empty()) {
    return Ok({{"format", "xml"}, {"definition", DomainToXml(d->def)}});
  }
  return api::ErrorResponse(400, fmt::format("format '{}': expected xml, json or toml", format));
}

HttpResponse Daemon::Start(const std::string& name) {
  std::unique_lock lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  return StartLocked(lock, *d);
}

HttpResponse Daemon::StartLocked(std::unique_lock<std::mutex>& lock, Domain& d,
                                 const std::string& restore_dir, bool restore_paused,
                                 const std::string& incoming_uri) {
  const std::string name = d.def.name;
  if (d.state == "running" || d.state == "paused") {
    return api::ErrorResponse(409, fmt::format("{}: domain is already running", kNotValid));
  }
  if (auto s = Validate(d.def, /*check_files=*/true); !s) {
    return api::ErrorResponse(400, s.error().message);
  }
  const bool incoming = !incoming_uri.empty();
  // Interfaces on a managed network or a host bridge get a tap of the daemon's.
  std::vector<std::string> bridges;
  for (const InterfaceDef& net : d.def.interfaces) {
    std::string bridge;
    if (net.type == "network") {
      auto it = networks_.find(net.source);
      if (it == networks_.end()) {
        return api::ErrorResponse(
            400, fmt::format("devices/interface: network '{}' is not defined", net.source));
      }
      if (!net_host_.IsActive(it->second)) {
        return api::ErrorResponse(
            409, fmt::format("{}: network '{}' is not active; net-start it first", kNotValid,
                             net.source));
      }
      bridge = it->second.bridge;
    } else if (net.type == "bridge") {
      if (!NetworkHost::LinkExists(net.source)) {
        return api::ErrorResponse(
            400, fmt::format("devices/interface: host bridge '{}' does not exist", net.source));
      }
      bridge = net.source;
    }
    bridges.push_back(bridge);
  }
  if (d.watcher.joinable()) d.watcher.join();  // the previous boot's, already finished

  LaunchSpec spec;
  const std::string socket = Path("run", name, ".sock");
  if (socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return api::ErrorResponse(500, fmt::format("control socket path {} is too long for a Unix "
                                               "socket; use a shorter --state-dir",
                                               socket));
  }
  const DomainDef& def = d.def;
  const int id = next_id_++;
  if (incoming) {
    // The source's VM brings its machine, as a snapshot does; only host-side options here.
    spec.argv = {options_.vireo_binary, "run",  "--incoming", incoming_uri,
                 "--api-socket",        socket, "--serial",   def.serial ? "stdio" : "none"};
  } else if (!restore_dir.empty()) {
    // The snapshot holds the machine (memory, vCPUs, devices, disks); only host-side
    // options go with --restore.
    spec.argv = {options_.vireo_binary, "run",  "--restore", restore_dir,
                 "--api-socket",        socket, "--serial",  def.serial ? "stdio" : "none"};
    if (restore_paused) spec.argv.push_back("--paused");
  } else {
    spec.argv = {options_.vireo_binary,
                 "run",
                 "--kernel",
                 def.kernel,
                 "--memory",
                 fmt::format("{}K", def.memory_bytes >> 10),
                 "--cpus",
                 std::to_string(def.vcpus),
                 "--api-socket",
                 socket,
                 "--serial",
                 def.serial ? "stdio" : "none"};
    if (!def.initrd.empty()) spec.argv.insert(spec.argv.end(), {"--initrd", def.initrd});
    if (!def.cmdline.empty()) spec.argv.insert(spec.argv.end(), {"--cmdline", def.cmdline});
    if (def.hugepages) spec.argv.insert(spec.argv.end(), {"--memory-backing", "hugepages"});
    if (def.locked) spec.argv.push_back("--mlock");
    if (!def.vcpupin.empty()) {
      std::string pins;
      for (const auto& [vcpu, cpu] : def.vcpupin)
        pins += fmt::format("{}{}={}", pins.empty() ? "" : ",", vcpu, cpu);
      spec.argv.insert(spec.argv.end(), {"--cpu-affinity", pins});
    }
    for (const DiskDef& disk : def.disks) {
      spec.argv.push_back("--disk");
      spec.argv.push_back(fmt::format("path={},format={}{}", disk.path, disk.format,
                                      disk.readonly ? ",readonly=on" : ""));
    }
    if (def.rng) spec.argv.push_back("--rng");
    if (def.virtio_console) spec.argv.push_back("--console");
    if (def.balloon) spec.argv.push_back("--balloon");
    if (def.vsock_cid) {
      spec.argv.push_back("--vsock");
      spec.argv.push_back(
          fmt::format("cid={},uds={}", *def.vsock_cid, Path("run", name, ".vsock")));
    }
  }
  // Each interface's tap, made afresh on its bridge for every start: a restored or migrated
  // VM gets `--net tap=NAME` only (its MAC is the snapshot's), which re-attaches its device
  // to this start's tap whatever the snapshot's was called.
  for (const std::string& tap : d.taps) NetworkHost::DeleteTap(tap);  // left by a crash
  d.taps.clear();
  for (size_t i = 0; i < def.interfaces.size(); ++i) {
    const InterfaceDef& net = def.interfaces[i];
    std::string tap = net.tap;
    if (!bridges[i].empty()) {
      if (tap.empty()) tap = fmt::format("vt{}-{}", id, i);
      if (auto s = NetworkHost::CreateTap(tap, bridges[i], net.mac); !s) {
        for (const std::string& t : d.taps) NetworkHost::DeleteTap(t);
        d.taps.clear();
        return api::ErrorResponse(500, fmt::format("Failed to start domain '{}': interface {}: {}",
                                                   name, i, s.error().message));
      }
      d.taps.push_back(tap);
    }
    const bool boot = !incoming && restore_dir.empty();
    spec.argv.push_back("--net");
    spec.argv.push_back(
        fmt::format("tap={}{}", tap, !boot || net.mac.empty() ? "" : ",mac=" + net.mac));
  }
  spec.log_path = Path("log", name, ".log");
  spec.console_path = Path("log", name, ".console");
  spec.console_input = Path("run", name, ".in");
  spec.exit_path = Path("run", name, ".exit");
  ::unlink(socket.c_str());

  d.cgroup_note.clear();
  d.cgroup_paths.clear();
  if (cgroups_.enabled()) {
    CgroupLimits limits;
    limits.cpu_period_us = def.cpu_period_us ? def.cpu_period_us : 100000;
    limits.cpu_quota_us = def.cpu_quota_us ? def.cpu_quota_us : limits.cpu_period_us * def.vcpus;
    limits.memory_bytes = def.memory_hard_limit_bytes ? def.memory_hard_limit_bytes
                                                      : def.memory_bytes + kVmmMemoryOverhead;
    auto procs = cgroups_.Create(name, limits);
    if (procs) {
      spec.cgroup_procs = *procs;
      d.cgroup_paths = cgroups_.Paths(name);
    } else {
      d.cgroup_note = procs.error().message;
      Log(LogLevel::kWarn, "domain '{}' runs without cgroup limits: {}", name, d.cgroup_note);
    }
  } else {
    d.cgroup_note = cgroups_.reason();
  }
  {
    std::ofstream log(spec.log_path, std::ios::app);
    log << "vireo daemon: starting:";
    for (const std::string& arg : spec.argv) log << ' ' << arg;
    log << '\n';
  }
  auto record = SpawnVm(spec);
  if (!record) {
    cgroups_.Remove(name);
    for (const std::string& tap : d.taps) NetworkHost::DeleteTap(tap);
    d.taps.clear();
    return api::ErrorResponse(
        500, fmt::format("Failed to start domain '{}': {}", name, record.error().message));
  }
  d.process = *record;
  d.state = restore_paused || incoming ? "paused" : "running";
  d.reason = incoming ? "incoming migration" : restore_dir.empty() ? "booted" : "from snapshot";
  d.id = id;
  d.stop_requested = false;
  d.live_current_memory = 0;
  d.migration = nullptr;
  const uint64_t generation = ++d.generation;
  SaveRunState(d);
  Watch(d, incoming);
  events_.Emit(name, "started", d.reason);
  if (incoming) return WaitForIncomingListen(lock, d, generation, spec.log_path);

  // Answer once the VM serves its control API, so the next command can use it; a VM that
  // ends first failed to start, and its log says why.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (d.generation != generation || d.state == "crashed" || d.state == "shutoff") break;
    lock.unlock();
    VmReply reply = CallVm(socket, "GET", "/api/v1/vm");
    lock.lock();
    // A restored VM reports "stopping" until its machine is rebuilt.
    const std::string vm_state = reply.body.is_object() ? reply.body.value("state", "") : "";
    if (reply.status == 200 && (vm_state == "running" || vm_state == "paused")) {
      if (restore_dir.empty()) ApplyCurrentMemory(lock, d, socket);
      return Ok(Summary(d));
    }
    changed_.wait_for(lock, std::chrono::milliseconds(20));
  }
  if (d.generation == generation && (d.state == "crashed" || d.state == "shutoff")) {
    return api::ErrorResponse(
        500, fmt::format("Failed to start domain '{}': vireo run ended ({}): {}", name, d.reason,
                         LastLogLine(spec.log_path)));
  }
  return Ok(Summary(d));
}

void Daemon::Watch(Domain& d, bool incoming) {
  d.watcher_stop = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  const ProcessRecord record = d.process;
  const int stop_fd = d.watcher_stop.get();
  const std::string socket = Path("run", d.def.name, ".sock");
  Domain* domain = &d;
  d.watcher = std::thread([this, record, stop_fd, domain, incoming, socket] {
    // `vireo run --incoming` serves its API only once the migrated VM is rebuilt.
    while (incoming && IsSameProcess(record.vm_pid, record.vm_start)) {
      pollfd stop = {stop_fd, POLLIN, 0};
      if (::poll(&stop, 1, 100) > 0) return;
      VmReply reply = CallVm(socket, "GET", "/api/v1/vm");
      const std::string state = reply.body.is_object() ? reply.body.value("state", "") : "";
      if (reply.status == 200 && (state == "running" || state == "paused")) {
        OnIncomingLanded(*domain, state);
        break;
      }
    }
    if (WaitForExit(record, stop_fd)) OnExit(*domain);
  });
}

void Daemon::OnExit(Domain& d) {
  std::lock_guard lock(mutex_);
  const std::string name = d.def.name;
  auto status = ReadExitFile(Path("run", name, ".exit"));
  const std::string last_log = LastLogLine(Path("log", name, ".log"));
  if (d.stop_requested) {
    d.state = "shutoff";
    d.reason = "destroyed";
    events_.Emit(name, "stopped", "destroyed");
  } else if (d.reason == "incoming migration") {  // it ended before the VM arrived
    d.state = "shutoff";
    d.reason = "failed";
    events_.Emit(name, "stopped", "failed");
    Log(LogLevel::kWarn, "domain '{}': the incoming migration failed: {}", name, last_log);
  } else if (status && !status->signaled && status->code == 0 &&
             last_log.rfind("vireo: migrated to ", 0) == 0) {
    // The source's VM ends with status 0 once the destination has acknowledged.
    d.state = "shutoff";
    d.reason = "migrated";
    if (!d.migration.is_object()) d.migration = json::object();
    d.migration["state"] = "completed";
    d.migration["summary"] = last_log.substr(std::strlen("vireo: "));
    events_.Emit(name, "stopped", "migrated");
  } else if (status && !status->signaled && status->code == 0) {
    d.state = "shutoff";
    d.reason = "shutdown";
    events_.Emit(name, "stopped", "shutdown");
  } else {
    d.state = "crashed";
    d.reason = status ? status->Describe() : "ended without an exit status";
    events_.Emit(name, "crashed", d.reason);
    Log(LogLevel::kWarn, "domain '{}' crashed: {} (see {})", name, d.reason,
        Path("log", name, ".log"));
  }
  d.id = -1;
  cgroups_.Remove(name);
  d.cgroup_paths.clear();
  for (const std::string& tap : d.taps) NetworkHost::DeleteTap(tap);
  d.taps.clear();
  ::unlink(Path("run", name, ".sock").c_str());
  SaveRunState(d);
  changed_.notify_all();
}

HttpResponse Daemon::Shutdown(const std::string& name) {
  return VmAction(name, "shutdown", "shutdown");
}
HttpResponse Daemon::Reboot(const std::string& name) { return VmAction(name, "reset", "reboot"); }
HttpResponse Daemon::Suspend(const std::string& name) { return VmAction(name, "pause", "suspend"); }
HttpResponse Daemon::Resume(const std::string& name) { return VmAction(name, "resume", "resume"); }

HttpResponse Daemon::VmAction(const std::string& name, const char* action, const char* verb) {
  std::unique_lock lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  const std::string what = verb;
  if (d->state != "running" && d->state != "paused") {
    return api::ErrorResponse(409, fmt::format("{}: domain is not running", kNotValid));
  }
  if (what == "resume" && d->state != "paused") {
    return api::ErrorResponse(409, fmt::format("{}: domain is not paused", kNotValid));
  }
  if (what == "suspend" && d->state == "paused") {
    return api::ErrorResponse(409, fmt::format("{}: domain is already paused", kNotValid));
  }
  const std::string socket = Path("run", name, ".sock");
  const uint64_t generation = d->generation;
  lock.unlock();
  VmReply reply = CallVm(socket, "PUT", fmt::format("/api/v1/vm/{}", action));
  lock.lock();
  d = Find(name);
  if (!d || d->generation != generation)
    return api::ErrorResponse(409, "the domain changed meanwhile");
  if (reply.status == 0) {
    return api::ErrorResponse(
        500, fmt::format("domain '{}': its control socket {} does not answer", name, socket));
  }
  if (reply.status != 200) {
    return api::ErrorResponse(
        reply.status == 409 ? 409 : 500,
        fmt::format("{}: {}", kNotValid, reply.body.value("error", "refused")));
  }
  if (what == "suspend" && d->state == "running") {
    d->state = "paused";
    d->reason = "user";
    events_.Emit(name, "paused", "user");
  } else if (what == "resume" && d->state == "paused") {
    d->state = "running";
    d->reason = "unpaused";
    events_.Emit(name, "resumed", "unpaused");
  } else if (what == "reboot") {
    events_.Emit(name, "rebooted", "user");
  }
  SaveRunState(*d);
  return Ok(Summary(*d));
}

bool Daemon::KillLocked(std::unique_lock<std::mutex>& lock, const std::string& name) {
  Domain* d = Find(name);
  // SIGKILL as in virsh destroy: immediate, whatever the guest is doing. The process
  // record's start time guards against signalling a reused pid.
  d->stop_requested = true;
  const uint64_t generation = d->generation;
  if (IsSameProcess(d->process.vm_pid, d->process.vm_start)) ::kill(d->process.vm_pid, SIGKILL);
  return changed_.wait_for(lock, std::chrono::seconds(10), [&] {
    Domain* now = Find(name);
    return !now || now->generation != generation ||
           (now->state != "running" && now->state != "paused");
  });
}

HttpResponse Daemon::Destroy(const std::string& name) {
  std::unique_lock lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  if (d->state != "running" && d->state != "paused") {
    return api::ErrorResponse(409, fmt::format("{}: domain is not running", kNotValid));
  }
  if (!KillLocked(lock, name)) {
    return api::ErrorResponse(500, fmt::format("domain '{}' did not end after SIGKILL", name));
  }
  d = Find(name);
  return Ok(d ? Summary(*d) : json{{"name", name}});
}

HttpResponse Daemon::SetAutostart(const std::string& name, bool enable) {
  std::lock_guard lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  d->autostart = enable;
  if (auto s = SaveDefinition(*d); !s) return api::ErrorResponse(500, s.error().message);
  return Ok(Summary(*d));
}

HttpResponse Daemon::Stats(const std::string& name) {
  std::unique_lock lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  json stats = Summary(*d);
  if (d->state != "running" && d->state != "paused") return Ok(stats);
  stats["cpu_time_ns"] = CpuTimeNs(d->process.vm_pid);
  if (!d->cgroup_paths.empty()) stats["cgroup_memory_bytes"] = cgroups_.Usage(name).memory_bytes;
  const std::string socket = Path("run", name, ".sock");
  lock.unlock();
  VmReply counters = CallVm(socket, "GET", "/api/v1/vm/counters");
  if (counters.status == 200) stats["counters"] = counters.body;
  return Ok(stats);
}

HttpResponse Daemon::Events(uint64_t since, int timeout_ms) {
  timeout_ms = std::clamp(timeout_ms, 0, 60000);
  std::vector<Event> events = events_.Wait(since, std::chrono::milliseconds(timeout_ms));
  json list = json::array();
  for (const Event& e : events) list.push_back(ToJson(e));
  return Ok({{"events", list}, {"last", events_.last_seq()}});
}

HttpResponse Daemon::HostInfo() {
  json cg = {{"version", cgroups_.version()}};
  if (!cgroups_.enabled()) cg["reason"] = cgroups_.reason();
  return Ok({{"version", "0.1.0"}, {"state_dir", options_.state_dir}, {"cgroups", cg}});
}

Result<std::string> Daemon::ConsoleRead(const std::string& name, std::optional<uint64_t> offset,
                                        int wait_ms, uint64_t* next, std::string* state,
                                        int* http_status) {
  std::string path;
  auto current_state = [&] {
    std::lock_guard lock(mutex_);
    Domain* d = Find(name);
    return d ? d->state : std::string();
  };
  {
    std::lock_guard lock(mutex_);
    Domain* d = Find(name);
    if (!d) {
      *http_status = 404;
      return Fail("Domain not found: no domain with matching name '{}'", name);
    }
    path = Path("log", name, ".console");
    *state = d->state;
  }
  auto file_size = [&] {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  };
  if (!offset) {
    *next = file_size();
    return std::string();
  }
  uint64_t from = *offset;
  wait_ms = std::clamp(wait_ms, 0, 30000);
  constexpr size_t kMaxChunk = 64 * 1024;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (true) {
    uint64_t size = file_size();
    if (size < from) from = 0;  // a new boot truncated the log
    if (size > from) {
      std::ifstream in(path, std::ios::binary);
      std::string data(std::min<uint64_t>(size - from, kMaxChunk), '\0');
      in.seekg(static_cast<std::streamoff>(from));
      in.read(data.data(), static_cast<std::streamsize>(data.size()));
      data.resize(static_cast<size_t>(in.gcount()));
      *next = from + data.size();
      *state = current_state();
      return data;
    }
    *state = current_state();
    if (std::chrono::steady_clock::now() >= deadline || (*state != "running" && *state != "paused"))
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  *next = from;
  return std::string();
}

HttpResponse Daemon::ConsoleWrite(const std::string& name, const std::string& bytes) {
  std::string fifo;
  {
    std::lock_guard lock(mutex_);
    Domain* d = Find(name);
    if (!d) return NoDomain(name);
    if (d->state != "running" && d->state != "paused") {
      return api::ErrorResponse(409, fmt::format("{}: domain is not running", kNotValid));
    }
    fifo = Path("run", name, ".in");
  }
  UniqueFd fd(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd)
    return api::ErrorResponse(500, fmt::format("console input {}: {}", fifo, std::strerror(errno)));
  ssize_t n = ::write(fd.get(), bytes.data(), bytes.size());
  if (n < 0) return api::ErrorResponse(500, fmt::format("console input: {}", std::strerror(errno)));
  return Ok({{"written", n}});
}

}  // namespace vireo::mgmt
