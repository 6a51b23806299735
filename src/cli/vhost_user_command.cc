#include "cli/vhost_user_command.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "base/event_loop.h"
#include "base/log.h"
#include "cli/device_options.h"
#include "cli/run_command.h"
#include "vhost_user/server.h"
#include "virtio/blk.h"
#include "virtio/net/mac.h"
#include "virtio/net/net.h"
#include "virtio/rng.h"
#include "vmm/blk_device.h"

namespace vireo::cli {
namespace {

void AddCommon(CLI::App* sub, VhostUserOptions& o) {
  sub->add_option("--socket", o.socket, "Unix socket path to listen on (the front-end connects)")
      ->required();
  sub->add_flag("--once", o.once, "Exit after the first front-end disconnects");
  sub->add_flag("-v,--verbose", o.verbose,
                "Log connections and the device's counters at exit; twice: every message");
}

// The same construction as Machine::CreateVirtioDevices, minus the VM.
Result<std::unique_ptr<virtio::VirtioDevice>> CreateDevice(const std::string& kind,
                                                           const VhostUserOptions& o,
                                                           EventLoop& loop) {
  if (kind == "blk") {
    DiskConfig disk = VIREO_TRY(ParseDiskOption(o.disk_text));
    return std::unique_ptr<virtio::VirtioDevice>(VIREO_TRY(CreateBlkDevice(disk, loop)));
  }
  if (kind == "net") {
    virtio::NetOptions options;
    options.tap_name = o.tap;
    if (!o.mac.empty()) {
      auto mac = virtio::ParseMac(o.mac);
      if (!mac) return Wrap(fmt::format("--mac {}", o.mac), mac.error());
      options.mac = *mac;
    }
    auto net = virtio::Net::Create(options, loop);
    if (!net) return Wrap(fmt::format("--tap {}", o.tap), net.error());
    return std::unique_ptr<virtio::VirtioDevice>(std::move(*net));
  }
  return std::unique_ptr<virtio::VirtioDevice>(std::make_unique<virtio::Rng>());
}

// One line of the device's counters at exit (with -v): what the front-end's guest did, for tests
// and for a user wondering whether the device was used at all.
void LogCounters(const virtio::VirtioDevice& device) {
  if (const auto* blk = dynamic_cast<const virtio::Blk*>(&device)) {
    const virtio::BlkCounters c = blk->counters();
    Log(LogLevel::kInfo,
        "blk counters: reads={} writes={} flushes={} discards={} write_zeroes={} "
        "bytes_read={} bytes_written={} io_errors={} bad_requests={}",
        c.reads, c.writes, c.flushes, c.discards, c.write_zeroes, c.bytes_read, c.bytes_written,
        c.io_errors, c.bad_requests);
  } else if (const auto* net = dynamic_cast<const virtio::Net*>(&device)) {
    const virtio::NetCounters c = net->counters();
    Log(LogLevel::kInfo,
        "net counters: rx_packets={} rx_bytes={} rx_dropped={} tx_packets={} tx_bytes={} "
        "tx_dropped={} tx_bad_chains={}",
        c.rx_packets, c.rx_bytes, c.rx_dropped, c.tx_packets, c.tx_bytes, c.tx_dropped,
        c.tx_bad_chains);
  } else if (const auto* rng = dynamic_cast<const virtio::Rng*>(&device)) {
    const virtio::RngCounters c = rng->counters();
    Log(LogLevel::kInfo, "rng counters: requests={} bytes={} bad_chains={}", c.requests, c.bytes,
        c.bad_chains);
  }
}

}  // namespace

CLI::App* AddVhostUserCommand(CLI::App& app, VhostUserOptions& o) {
  CLI::App* vu = app.add_subcommand(
      "vhost-user", "Serve a virtio device to a vhost-user front-end (QEMU, ...) on a socket");
  vu->require_subcommand(1);
  CLI::App* blk = vu->add_subcommand("blk", "virtio-blk on a disk image (vhost-user-blk)");
  AddCommon(blk, o);
  blk->add_option("--disk", o.disk_text,
                  "path=FILE[,format=raw|qcow2][,readonly=on][,serial=ID][,cache=none|writeback]"
                  "[,discard=on]")
      ->required();
  CLI::App* net = vu->add_subcommand("net", "virtio-net on a Linux tap (vhost-user net)");
  AddCommon(net, o);
  net->add_option("--tap", o.tap, "tap device (created if missing; needs CAP_NET_ADMIN)")
      ->required();
  net->add_option("--mac", o.mac, "MAC in the device's config (QEMU shows the guest its own)");
  CLI::App* rng = vu->add_subcommand("rng", "virtio-rng from getrandom() (vhost-user-rng)");
  AddCommon(rng, o);
  return vu;
}

int RunVhostUser(CLI::App& command, VhostUserOptions& o) {
  if (o.verbose > 0) SetLogLevel(o.verbose > 1 ? LogLevel::kDebug : LogLevel::kInfo);
  std::string kind;
  for (const char* name : {"blk", "net", "rng"}) {
    if (command.get_subcommand(name)->parsed()) kind = name;
  }
  auto fail = [&](const Error& e) {
    fmt::print(stderr, "vireo: error: vhost-user {}: {}\n", kind, e.message);
    return kExitError;
  };
  // Signals arrive on the signalfd only: blocked before any thread starts, so every thread
  // inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  if (::pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0) {
    return fail(Error{"cannot block SIGINT/SIGTERM/SIGHUP"});
  }
  UniqueFd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd) return fail(Error{fmt::format("signalfd: {}", std::strerror(errno))});

  auto loop = EventLoop::Create("vireo-io");
  if (!loop) return fail(loop.error());
  if (auto started = (*loop)->Start(); !started) return fail(started.error());
  auto device = CreateDevice(kind, o, **loop);
  if (!device) return fail(device.error());
  auto server = vhost_user::Server::Listen(o.socket);
  if (!server) return fail(server.error());
  Log(LogLevel::kInfo, "vhost-user {} back-end listening on {}", kind, o.socket);

  Status served = server->Serve(**device, **loop, signal_fd.get(), o.once);
  LogCounters(**device);
  device->reset();  // before the loop it uses
  (*loop)->Stop();
  if (!served) return fail(served.error());
  signalfd_siginfo info{};
  if (::read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
    return 128 + static_cast<int>(info.ssi_signo);
  }
  return kExitOk;
}

}  // namespace vireo::cli
