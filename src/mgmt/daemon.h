// Daemon: `vireo daemon`'s core, independent of HTTP. It owns a state directory:
//
//   STATE/vireod.lock           flock: one daemon per state directory
//   STATE/domains/NAME.json     persistent definitions {"autostart", "definition"}
//   STATE/run/NAME.json         the VM's last known state, pids and start times
//   STATE/run/NAME.sock         the VM's control API (vireo run --api-socket)
//   STATE/run/NAME.in           FIFO: the VM's COM1 input
//   STATE/run/NAME.exit         written by the VM's monitor when it ends
//   STATE/log/NAME.log          the VM's stderr;  STATE/log/NAME.console: its COM1 output
//   STATE/networks/NAME.xml     managed networks (libvirt network XML)
//   STATE/snapshots/NAME/SNAP   snapshots (vireo run's format), SNAP.json their metadata
//
// Each running VM is a `vireo run` process under a monitor (vm_process.h) in cgroups with
// its limits (cgroup.h). A watcher thread per VM turns its end into shut off (powered off
// or destroyed) or crashed (any other end, with the exit status); nothing is restarted.
// A restarted daemon re-attaches to VMs whose pid and start time still match, and marks
// the others crashed with the status their monitor recorded.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "api/router.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "mgmt/cgroup.h"
#include "mgmt/domain.h"
#include "mgmt/events.h"
#include "mgmt/network.h"
#include "mgmt/vm_process.h"

namespace vireo::mgmt {

struct DaemonOptions {
  std::string state_dir;
  std::string vireo_binary;  // the `vireo` that runs VMs (default: this executable)
  bool cgroups = true;
};

using api::HttpResponse;

class Daemon {
 public:
  static Result<std::unique_ptr<Daemon>> Open(const DaemonOptions& options);
  // Stops watching; running VMs keep running (a later daemon re-attaches).
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Each answers as the HTTP API does (docs/daemon-api.yaml): a status and a JSON body.
  HttpResponse List(bool all);
  HttpResponse Define(const std::string& text, bool strict);
  HttpResponse Undefine(const std::string& name);
  HttpResponse Info(const std::string& name);
  HttpResponse Definition(const std::string& name, const std::string& format);
  HttpResponse Start(const std::string& name);
  HttpResponse Shutdown(const std::string& name);
  HttpResponse Destroy(const std::string& name);
  HttpResponse Reboot(const std::string& name);
  HttpResponse Suspend(const std::string& name);
  HttpResponse Resume(const std::string& name);
  HttpResponse SetAutostart(const std::string& name, bool enable);
  HttpResponse Stats(const std::string& name);
  HttpResponse Events(uint64_t since, int timeout_ms);
  HttpResponse HostInfo();
  // Console output from byte `offset` of the current boot's log (waiting up to wait_ms for
  // some); `next` is the offset to ask for next. Input goes to the VM's COM1.
  // No offset: nothing, and `next` is the end (a console that shows only new output).
  // `state` is the domain's, so a client can tell when to stop following.
  Result<std::string> ConsoleRead(const std::string& name, std::optional<uint64_t> offset,
                                  int wait_ms, uint64_t* next, std::string* state,
                                  int* http_status);
  HttpResponse ConsoleWrite(const std::string& name, const std::string& bytes);

  // Snapshots (docs/snapshot-migration.md's format), in STATE/snapshots/NAME/SNAP with
  // SNAP.json beside it: taken from the running VM's API (paused around the write), reverted
  // to by ending the VM and starting `vireo run --restore`.
  HttpResponse SnapshotCreate(const std::string& name, const std::string& snapshot);
  HttpResponse SnapshotList(const std::string& name);
  HttpResponse SnapshotRevert(const std::string& name, const std::string& snapshot);
  HttpResponse SnapshotDelete(const std::string& name, const std::string& snapshot);

  // vCPU threads (named vcpuN by the VMM): host CPU, state, time and affinity; pinning a
  // running VM's vCPU to host CPUs ("0-2,4"), and with `config` also in its definition.
  HttpResponse VcpuInfo(const std::string& name);
  HttpResponse VcpuPin(const std::string& name, uint32_t vcpu, const std::string& cpuset,
                       bool config);

  // setmem: the guest's memory becomes `size_bytes` through the balloon (target = memory -
  // size). `live`: the running VM (its PUT /vm/balloon); `config`: the definition's
  // currentMemory. Neither: live when the domain runs, else config (virsh's --current).
  HttpResponse SetMemory(const std::string& name, uint64_t size_bytes, bool live, bool config);

  // Live migration (daemon_migrate.cc). The destination's daemon starts the domain as
  // `vireo run --incoming URI`: paused ("incoming migration") until the VM lands, then
  // running ("migrated"). The source's asks its VM to migrate (PUT /vm/migrate) and follows
  // it; when the VM ends after a completed migration the domain is shut off ("migrated").
  HttpResponse StartIncoming(const std::string& name, const std::string& uri);
  HttpResponse Migrate(const std::string& name, const std::string& uri, uint64_t max_downtime_ms,
                       uint64_t bandwidth_mbps);
  HttpResponse MigrationStatus(const std::string& name);

  // Managed networks (network.h), persisted as STATE/networks/NAME.xml.
  HttpResponse NetList();
  HttpResponse NetDefine(const std::string& xml);
  HttpResponse NetInfo(const std::string& name);
  HttpResponse NetStart(const std::string& name);
  HttpResponse NetDestroy(const std::string& name);
  HttpResponse NetUndefine(const std::string& name);
  // Start the network whenever the daemon starts (STATE/networks/NAME.autostart).
  HttpResponse NetAutostart(const std::string& name, bool enable);

  EventLog& events() { return events_; }
  const std::string& state_dir() const { return options_.state_dir; }

 private:
  struct Domain;
  explicit Daemon(DaemonOptions options);
  Status Load();
  void Autostart();
  std::string Path(const std::string& dir, const std::string& name, const char* ext) const;
  Status SaveDefinition(const Domain& d);
  void SaveRunState(const Domain& d);
  // `incoming`: first wait for the incoming migration to land (OnIncomingLanded).
  void Watch(Domain& d, bool incoming = false);
  void OnIncomingLanded(Domain& d, const std::string& vm_state);
  void OnExit(Domain& d);
  Domain* Find(const std::string& name);
  HttpResponse StartLocked(std::unique_lock<std::mutex>& lock, Domain& d,
                           const std::string& restore_dir = "", bool restore_paused = false,
                           const std::string& incoming_uri = "");
  // After starting `vireo run --incoming`: answers once it listens (with the address, whose
  // port may have been 0), or with the reason it ended.
  HttpResponse WaitForIncomingListen(std::unique_lock<std::mutex>& lock, Domain& d,
                                     uint64_t generation, const std::string& log_path);
  // A definition's currentMemory below its memory becomes the new VM's balloon target.
  void ApplyCurrentMemory(std::unique_lock<std::mutex>& lock, Domain& d, const std::string& socket);
  // Ends the VM (SIGKILL) and waits for the watcher to record it.
  bool KillLocked(std::unique_lock<std::mutex>& lock, const std::string& name);
  HttpResponse VmAction(const std::string& name, const char* action, const char* verb);
  nlohmann::json Summary(const Domain& d) const;

  DaemonOptions options_;
  UniqueFd lock_fd_;
  Cgroups cgroups_;
  EventLog events_;
  std::mutex mutex_;
  std::condition_variable changed_;  // a domain's state changed
  std::map<std::string, std::unique_ptr<Domain>> domains_;
  std::map<std::string, NetworkDef> networks_;
  NetworkHost net_host_;
  int next_id_ = 1;
};

}  // namespace vireo::mgmt
