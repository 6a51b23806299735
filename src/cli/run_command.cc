#include "cli/run_command.h"

#include "cli/device_options.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <thread>

#include "accel/emu/emu_accelerator.h"
#include "accel/kvm/kvm_system.h"
#include "api/http_server.h"
#include "api/vm_routes.h"
#include "arch/x86/acpi/acpi.h"
#include "arch/x86/layout.h"
#include "base/log.h"
#include "base/size_parse.h"
#include "virtio/vsock/host_socket.h"
#include "vmm/default_guest.h"
#include "vmm/machine.h"
#include "vmm/machine_controller.h"
#include "vmm/migration/receiver.h"
#include "vmm/snapshot/snapshot_files.h"

namespace vireo::cli {
namespace {

Result<int> ParseInt(std::string_view text, std::string_view what) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Fail("{}: '{}' is not a number", what, text);
  }
  return value;
}

Result<std::map<int, int>> ParseAffinity(std::string_view text, int cpus) {
  std::map<int, int> out;
  const int host_cpus = static_cast<int>(std::thread::hardware_concurrency());
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? "" : text.substr(comma + 1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return Fail("--cpu-affinity: '{}' should look like VCPU=HOSTCPU (e.g. 0=2,1=3)", item);
    }
    int vcpu = VIREO_TRY(ParseInt(item.substr(0, eq), "--cpu-affinity vCPU"));
    int host = VIREO_TRY(ParseInt(item.substr(eq + 1), "--cpu-affinity host CPU"));
    if (vcpu < 0 || vcpu >= cpus) {
      return Fail("--cpu-affinity: vCPU {} does not exist (the VM has {} vCPUs: 0-{})", vcpu, cpus,
                  cpus - 1);
    }
    if (host < 0 || host >= host_cpus) {
      return Fail("--cpu-affinity: host CPU {} does not exist (this host has CPUs 0-{})", host,
                  host_cpus - 1);
    }
    out[vcpu] = host;
  }
  return out;
}

Result<std::vector<uint8_t>> ReadFile(const std::string& path, std::string_view what,
                                      uint64_t limit) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Fail("cannot read {} '{}': {}", what, path, std::strerror(errno));
  auto size = static_cast<uint64_t>(in.tellg());
  if (size > limit) {
    return Fail("{} '{}' is {} MiB, more than the VM's {} MiB of memory; give the VM more --memory",
                what, path, size >> 20, limit >> 20);
  }
  std::vector<uint8_t> data(size);
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(size))) {
    return Fail("cannot read {} '{}'", what, path);
  }
  return data;
}

// The kernel (or the built-in guest), initrd and command line `config` names.
Result<boot::BootImage> LoadBootImage(const VmConfig& config) {
  boot::BootImage image;
  if (config.kernel_path) {
    image.kernel = VIREO_TRY(ReadFile(*config.kernel_path, "kernel", config.memory));
  } else {
    auto builtin = DefaultGuestImage();
    image.kernel.assign(builtin.begin(), builtin.end());
  }
  if (config.initrd_path) {
    image.initrd = VIREO_TRY(ReadFile(*config.initrd_path, "initrd", config.memory));
  }
  image.cmdline = config.cmdline;
  image.decompression = config.kernel_decompression;
  return image;
}

// SIGINT/SIGTERM are blocked in every thread and read from a signalfd by the main loop,
// so a signal stops the VM cleanly instead of killing the process mid-write.
int BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return ::signalfd(-1, &set, SFD_CLOEXEC);
}

void AddCounters(std::vector<VcpuCounters>& total, const std::vector<VcpuCounters>& run) {
  if (total.size() < run.size()) total.resize(run.size());
  for (size_t i = 0; i < run.size(); ++i) {
    for (size_t r = 0; r < run[i].exits.size(); ++r) total[i].exits[r] += run[i].exits[r];
    total[i].pio_unclaimed_reads += run[i].pio_unclaimed_reads;
    total[i].pio_unclaimed_writes += run[i].pio_unclaimed_writes;
    total[i].mmio_unclaimed_reads += run[i].mmio_unclaimed_reads;
    total[i].mmio_unclaimed_writes += run[i].mmio_unclaimed_writes;
  }
}

}  // namespace

CLI::App* AddRunCommand(CLI::App& app, RunOptions& o) {
  CLI::App* run =
      app.add_subcommand("run", "Boot a VM (the built-in default guest if no --kernel)");
  run->add_option_function<std::string>(
      "--kernel", [&o](const std::string& v) { o.config.kernel_path = v; },
      "Kernel: bzImage, ELF vmlinux, PVH ELF or multiboot image");
  run->add_option_function<std::string>(
      "--initrd", [&o](const std::string& v) { o.config.initrd_path = v; }, "Initial ramdisk");
  run->add_option_function<std::string>(
      "--cmdline",
      [&o](const std::string& v) {
        o.config.cmdline = v;
        o.cmdline_given = true;
      },
      "Kernel command line (default with --kernel: \"console=ttyS0\")");
  run->add_option("--cpus", o.config.cpus, "Number of vCPUs")->default_val(1);
  run->add_option("--memory", o.memory_text, "Guest RAM, e.g. 512M or 2G (bare number: MiB)")
      ->default_val("256M");
  run->add_option("--serial", o.serial_text, "Serial console: stdio, file:PATH or none")
      ->default_val("stdio");
  run->add_option("--cpu-affinity", o.affinity_text, "Pin vCPU threads: VCPU=HOSTCPU,...");
  run->add_option("--memory-backing", o.backing_text, "Guest RAM backing: anon or hugepages")
      ->default_val("anon");
  run->add_flag("--mlock", o.config.memory_options.mlock, "Lock guest RAM in host memory");
  run->add_flag("--stats", o.config.stats,
                "At exit, print exits per reason and vCPU and the time to first guest entry");
  run->add_option("--boot", o.boot_text, "Boot protocol: auto, linux, pvh or multiboot")
      ->default_val("auto");
  run->add_option("--kernel-decompress", o.decompress_text,
                  "Who unpacks a bzImage's compressed kernel: guest (its own decompressor) or "
                  "host (Vireo, gzip/xz/zstd; no KASLR) (default: host with --accel emu, guest "
                  "with kvm)");
  run->add_flag("--no-reboot", o.config.no_reboot, "Exit instead of restarting on a guest reset");
  run->add_option("--disk", o.disk_texts,
                  "virtio-blk disk: "
                  "path=FILE[,format=raw|qcow2][,readonly=on][,serial=ID][,cache=none|writeback]"
                  "[,discard=on] (repeatable)");
  run->add_option("--net", o.net_texts, "virtio-net on a tap: tap=NAME[,mac=MAC] (repeatable)");
  run->add_option("--vsock", o.vsock_text,
                  "virtio-vsock: cid=N,uds=PATH (host connects to PATH and sends "
                  "\"CONNECT <port>\\n\"; guest connects go to PATH_<port>)");
  run->add_flag("--rng", o.config.rng, "Add a virtio-rng device fed by getrandom()");
  run->add_flag("--console", o.config.console,
                "Add a virtio-console (hvc0) on stdio; stdin goes to it instead of the UART");
  run->add_flag("--balloon", o.config.balloon,
                "Add a virtio-balloon (inflate returns pages to the host, stats, page reporting)");
  run->add_option("--transport", o.transport_text, "virtio transport: pci or mmio")
      ->default_val("pci");
  run->add_option("--api-socket", o.api_socket,
                  "Serve the control API (HTTP/1.1 + JSON, docs/api.yaml) on this Unix socket");
  run->add_option("--accel", o.accel_text,
                  "CPU accelerator: kvm, or emu (Vireo's software x86-64 CPU, no /dev/kvm)")
      ->default_val("kvm");
  run->add_option("--hpet", o.hpet_text,
                  "HPET at 0xfed00000 with its ACPI table: on or off (default: on with --accel "
                  "emu, off with kvm)");
  run->add_option("--irqchip", o.irqchip_text,
                  "KVM's interrupt controllers: kernel (all in KVM, the default) or split "
                  "(LAPICs in KVM; IOAPIC, PIC and PIT in Vireo). Not with --accel emu, whose "
                  "controllers are always Vireo's");
  run->add_flag("-v,--verbose", o.verbose, "Log what the VMM does");
  // Snapshots (docs/snapshot-migration.md): the snapshot decides what the VM is, so options
  // that describe the guest conflict with --restore; host-side ones (serial, API socket,
  // affinity, stats) still apply.
  CLI::Option* restore =
      run->add_option("--restore", o.restore_dir, "Resume the VM saved in this snapshot directory");
  CLI::Option* paused =
      run->add_flag("--paused", o.restore_paused, "With --restore: start paused (resume via API)");
  paused->needs(restore);
  // Live migration: the source's state decides the guest, as a snapshot's does. With block
  // migration, --disk path=FILE[,format=F] names where each of the source's disks goes.
  CLI::Option* incoming = run->add_option(
      "--incoming", o.incoming_uri,
      "Wait for a live migration on tcp:HOST:PORT and run the VM it brings (with block "
      "migration: --disk path=FILE[,format=raw|qcow2] per source disk, in order)");
  incoming->excludes(restore);
  // Not --net: tap=NAME is the host side of a network device, and may re-attach a restored
  // or migrated VM's device to another tap (the guest-visible rest stays the snapshot's).
  for (const char* name :
       {"--kernel", "--initrd", "--cmdline", "--cpus", "--memory", "--memory-backing", "--boot",
        "--disk", "--vsock", "--rng", "--console", "--balloon", "--transport", "--hpet",
        "--irqchip", "--kernel-decompress"}) {
    if (CLI::Option* other = run->get_option_no_throw(name)) {
      restore->excludes(other);
      if (std::string_view(name) != "--disk") incoming->excludes(other);
    }
  }
  return run;
}

Status ValidateRunOptions(RunOptions& o) {
  VmConfig& c = o.config;
  if (o.accel_text != "kvm" && o.accel_text != "emu") {
    return Fail("--accel {}: expected kvm or emu", o.accel_text);
  }
  if (c.cpus < 1) return Fail("--cpus {}: a VM needs at least 1 vCPU", c.cpus);
  if (c.cpus > x86::acpi::kMaxCpus) {
    return Fail("--cpus {}: Vireo supports at most {} vCPUs", c.cpus, x86::acpi::kMaxCpus);
  }
  auto memory = ParseSize(o.memory_text, /*default_unit_mib=*/true);
  if (!memory) return Wrap("--memory", memory.error());
  c.memory = *memory;
  if (c.memory < x86::kMinMemory) {
    return Fail("--memory {}: too small, a VM needs at least {} MiB", o.memory_text,
                x86::kMinMemory >> 20);
  }
  if (c.memory > x86::kMaxMemory) {
    return Fail("--memory {}: too large, Vireo supports at most {} GiB", o.memory_text,
                x86::kMaxMemory >> 30);
  }
  if (c.memory % (2ull << 20) != 0 && o.backing_text == "hugepages") {
    return Fail("--memory {}: must be a multiple of 2 MiB with --memory-backing hugepages",
                o.memory_text);
  }
  if (c.memory % 4096 != 0) return Fail("--memory {}: must be a multiple of 4 KiB", o.memory_text);

  if (o.serial_text == "stdio") {
    c.serial = SerialMode::kStdio;
  } else if (o.serial_text == "none") {
    c.serial = SerialMode::kNone;
  } else if (o.serial_text.rfind("file:", 0) == 0 && o.serial_text.size() > 5) {
    c.serial = SerialMode::kFile;
    c.serial_path = o.serial_text.substr(5);
  } else {
    return Fail("--serial {}: expected stdio, file:PATH or none", o.serial_text);
  }

  if (o.backing_text == "anon") {
    c.memory_options.backing = MemoryBacking::kAnonymous;
  } else if (o.backing_text == "hugepages") {
    c.memory_options.backing = MemoryBacking::kHugePages;
  } else {
    return Fail("--memory-backing {}: expected anon or hugepages", o.backing_text);
  }

  if (o.boot_text == "auto") {
    c.boot_protocol = boot::BootProtocol::kAuto;
  } else if (o.boot_text == "linux") {
    c.boot_protocol = boot::BootProtocol::kLinux;
  } else if (o.boot_text == "pvh") {
    c.boot_protocol = boot::BootProtocol::kPvh;
  } else if (o.boot_text == "multiboot") {
    c.boot_protocol = boot::BootProtocol::kMultiboot;
  } else {
    return Fail("--boot {}: expected auto, linux, pvh or multiboot", o.boot_text);
  }

  for (const std::string& text : o.disk_texts) c.disks.push_back(VIREO_TRY(ParseDiskOption(text)));
  for (const DiskConfig& disk : c.disks) {
    if (!o.incoming_uri.empty() &&
        (disk.read_only || !disk.serial.empty() || disk.cache_none || disk.discard)) {
      return Fail(
          "--disk {} with --incoming: only path= and format= (where a block migration puts the "
          "source's disk); its other options come from the source",
          disk.path);
    }
  }
  for (const std::string& text : o.net_texts) c.nets.push_back(VIREO_TRY(ParseNetOption(text)));
  if (!o.vsock_text.empty()) {
    auto vsock = virtio::vsock::ParseVsockSpec(o.vsock_text);
    if (!vsock) return Wrap("--vsock", vsock.error());
    c.vsock = VmConfig::Vsock{vsock->guest_cid, vsock->uds_path};
  }
  c.transport = VIREO_TRY(ParseTransport(o.transport_text));
  // Linux on the software CPU expects an HPET (its clockevent and TSC calibration); on KVM
  // the kvm-clock and the in-kernel LAPIC timer serve better, and every HPET access would
  // be a VMM exit, so it is opt-in there (docs/devices.md).
  if (o.hpet_text == "auto") {
    c.hpet = o.accel_text == "emu";
  } else if (o.hpet_text == "on" || o.hpet_text == "off") {
    c.hpet = o.hpet_text == "on";
  } else {
    return Fail("--hpet {}: expected on or off", o.hpet_text);
  }
  // The software CPU interprets the guest's decompressor for minutes; on KVM it runs at
  // native speed and keeps the kernel's own KASLR, so the host unpacks only for emu.
  if (o.decompress_text == "auto") {
    c.kernel_decompression = o.accel_text == "emu" ? boot::PayloadDecompression::kHost
                                                   : boot::PayloadDecompression::kGuest;
  } else if (o.decompress_text == "host") {
    c.kernel_decompression = boot::PayloadDecompression::kHost;
  } else if (o.decompress_text == "guest") {
    c.kernel_decompression = boot::PayloadDecompression::kGuest;
  } else {
    return Fail("--kernel-decompress {}: expected host or guest", o.decompress_text);
  }
  if (o.irqchip_text == "split") {
    c.irqchip = IrqchipMode::kSplit;
  } else if (o.irqchip_text.empty() || o.irqchip_text == "kernel") {
    c.irqchip = IrqchipMode::kKernel;
  } else {
    return Fail("--irqchip {}: expected kernel or split", o.irqchip_text);
  }
  if (!o.irqchip_text.empty() && o.accel_text == "emu") {
    return Fail(
        "--irqchip {}: --accel emu always uses Vireo's own LAPICs, IOAPIC, PIC and PIT; drop "
        "--irqchip, or use it with --accel kvm",
        o.irqchip_text);
  }
  if (!o.affinity_text.empty()) c.cpu_affinity = VIREO_TRY(ParseAffinity(o.affinity_text, c.cpus));
  if (c.kernel_path && !o.cmdline_given) c.cmdline = "console=ttyS0";
  return {};
}

int Run(RunOptions& o, std::chrono::steady_clock::time_point process_start) {
  if (o.verbose) SetLogLevel(LogLevel::kInfo);
  auto fail = [](const Error& e) {
    fmt::print(stderr, "vireo: error: {}\n", e.message);
    return kExitError;
  };

  // --incoming: the whole VM arrives first (memory and state), then it is restored as a
  // snapshot is; the source keeps the guest until this side acknowledges.
  std::optional<migration::IncomingMigration> incoming;
  // With KVM, the VM (KVM_CREATE_VM, the in-kernel irqchip and PIT, the memory slots) is
  // created while pages arrive, not inside the downtime (docs/performance.md, "Live
  // migration"). It has the kernel irqchip: a source VM with --irqchip split gets a new one.
  std::unique_ptr<kvm::KvmAccelerator> early_kvm;
  if (!o.incoming_uri.empty() && o.accel_text != "emu") {
    auto kvm = kvm::KvmAccelerator::Open();
    if (!kvm) return fail(kvm.error());
    early_kvm = std::move(*kvm);
  }
  if (!o.incoming_uri.empty()) {
    migration::PrepareVm prepare;
    if (early_kvm) {
      prepare = [&early_kvm](const GuestMemory& memory) -> Result<std::unique_ptr<accel::Vm>> {
        auto vm = VIREO_TRY(early_kvm->CreateVm(1));  // the kernel irqchip ignores the count
        VIREO_TRY_STATUS(vm->MapMemory(memory));
        return vm;
      };
    }
    auto received = migration::ReceiveMigration(o.incoming_uri, o.config.disks, prepare);
    if (!received) return fail(Error{"--incoming: " + received.error().message});
    Log(LogLevel::kInfo, "incoming migration: {}", received->summary());
    incoming.emplace(std::move(*received));
  }
  const std::string restore_option = incoming ? "--incoming: " : "--restore: ";

  // --restore: the snapshot's configuration with this run's host-side options.
  std::optional<snapshot::LoadedSnapshot> restoring;
  if (!o.restore_dir.empty() || incoming) {
    auto loaded = incoming ? Result<snapshot::LoadedSnapshot>(std::move(incoming->snapshot()))
                           : snapshot::LoadSnapshot(o.restore_dir);
    if (!loaded) return fail(Error{"--restore: " + loaded.error().message});
    VmConfig merged = loaded->state.config;
    merged.serial = o.config.serial;
    merged.serial_path = o.config.serial_path;
    merged.cpu_affinity = o.config.cpu_affinity;
    merged.memory_options.mlock = o.config.memory_options.mlock;
    merged.stats = o.config.stats;
    merged.no_reboot = o.config.no_reboot;
    // Block migration filled the images --disk named (the receiver checked there is one per
    // source disk); the VM opens those instead of the source's paths.
    for (size_t i = 0; incoming && i < o.config.disks.size() && i < merged.disks.size(); ++i) {
      merged.disks[i].path = o.config.disks[i].path;
      merged.disks[i].format = o.config.disks[i].format;
    }
    // --net tap=NAME per network device: the taps to re-attach instead of the snapshot's
    // (each device keeps the snapshot's MAC, which the guest knows).
    if (!o.config.nets.empty()) {
      std::string refused;
      if (o.config.nets.size() != merged.nets.size()) {
        refused = fmt::format(
            "--net: the VM has {} network devices; give one --net tap=NAME per device, in "
            "order, or none to re-attach the snapshot's taps",
            merged.nets.size());
      }
      for (size_t i = 0; refused.empty() && i < o.config.nets.size(); ++i) {
        if (!o.config.nets[i].mac.empty()) {
          refused = fmt::format(
              "--net tap={},mac={}: a restored network device keeps the snapshot's MAC ({}); "
              "drop mac=",
              o.config.nets[i].tap, o.config.nets[i].mac, merged.nets[i].mac);
        }
        merged.nets[i].tap = o.config.nets[i].tap;
      }
      if (!refused.empty()) {
        if (incoming) incoming->Refuse(refused);
        return fail(Error{refused});
      }
    }
    for (const auto& [vcpu, host] : merged.cpu_affinity) {
      if (vcpu >= merged.cpus) {
        if (incoming) incoming->Refuse("the destination's --cpu-affinity names a missing vCPU");
        return fail(
            Error{fmt::format("--cpu-affinity: vCPU {} does not exist (the snapshot's VM "
                              "has {} vCPUs)",
                              vcpu, merged.cpus)});
      }
    }
    o.config = std::move(merged);
    restoring.emplace(std::move(*loaded));
  }
  const VmConfig& config = o.config;

  boot::BootImage image;
  if (!restoring) {  // a restored VM reads its kernel only if it resets (below)
    auto boot_image = LoadBootImage(config);
    if (!boot_image) return fail(boot_image.error());
    image = std::move(*boot_image);
  }

  int signal_fd = BlockStopSignals();
  std::unique_ptr<accel::Accelerator> accelerator;
  if (o.accel_text == "emu") {
    accelerator = std::make_unique<emu::EmuAccelerator>();
  } else {
    auto kvm = early_kvm ? Result<std::unique_ptr<kvm::KvmAccelerator>>(std::move(early_kvm))
                         : kvm::KvmAccelerator::Open();
    if (!kvm) return fail(kvm.error());
    if (config.irqchip == IrqchipMode::kSplit) {
      if (auto split = (*kvm)->EnableSplitIrqchip(); !split) return fail(split.error());
      if (restoring) restoring->vm.reset();  // made ahead with the kernel irqchip
    }
    accelerator = std::move(*kvm);
  }
  if (config.cpus > accelerator->max_vcpus()) {
    const bool emu = o.accel_text == "emu";
    return fail(Error{
        fmt::format("--cpus {}: the {} accelerator supports at most {} vCPU(s){}", config.cpus,
                    accelerator->name(), accelerator->max_vcpus(),
                    emu ? " (starting APs with INIT/SIPI is not emulated on the software CPU yet); "
                          "use --cpus 1 or --accel kvm"
                        : " on this host")});
  }

  // The control API outlives each Machine: a reset builds a new one behind the same socket.
  std::unique_ptr<MachineController> controller;
  std::unique_ptr<api::ApiServer> api_server;
  if (!o.api_socket.empty()) {
    controller = std::make_unique<MachineController>(config);
    api::Router router;
    api::AddVmRoutes(router, *controller);
    auto server = api::ApiServer::Start(o.api_socket, std::move(router));
    if (!server) return fail(server.error());
    api_server = std::move(*server);
  }

  RunOutcome outcome;
  std::vector<VcpuCounters> counters;
  RunTimings timings;
  timings.process_start = process_start;
  {
    auto persistent = PersistentDevices::Create(config);
    if (!persistent) return fail(persistent.error());
    for (int boot_count = 0;; ++boot_count) {
      const bool restore_now = restoring && boot_count == 0;
      if (restoring && boot_count == 1) {
        // A restored guest that resets boots its kernel afresh, as it was first booted.
        auto reboot_image = LoadBootImage(config);
        if (!reboot_image) {
          outcome = {StopReason::kError, kExitError, "rebooting: " + reboot_image.error().message};
          break;
        }
        image = std::move(*reboot_image);
      }
      const auto build_start = std::chrono::steady_clock::now();
      auto machine = restore_now ? Machine::Restore(config, *accelerator, *persistent, *restoring)
                                 : Machine::Build(config, *accelerator, *persistent, image);
      const auto build_done = std::chrono::steady_clock::now();
      if (!machine) {
        outcome = {
            StopReason::kError, kExitError,
            restore_now ? restore_option + machine.error().message : machine.error().message};
        if (restore_now && incoming) incoming->Refuse(machine.error().message);
        break;
      }
      if (restore_now && incoming) {
        // From here on the guest is this side's; if the source cannot be told, it resumes the
        // guest itself, so this side must not run it too.
        if (auto acked = incoming->Acknowledge(); !acked) {
          outcome = {StopReason::kError, kExitError, "--incoming: " + acked.error().message};
          break;
        }
        // The destination's share of the downtime (-v): the stream's end to the VM rebuilt
        // (Machine::Restore) to the acknowledgement.
        const auto now = std::chrono::steady_clock::now();
        auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
        Log(LogLevel::kInfo,
            "incoming migration phases: stream end to rebuild {:.1f} ms, rebuild {:.1f} ms, "
            "acknowledgement {:.1f} ms; {:.1f} ms from the stream's end to the ACK",
            ms(build_start - incoming->stream_end()), ms(build_done - build_start),
            ms(now - build_done), ms(now - incoming->stream_end()));
        fmt::print(stderr, "vireo: incoming migration {} ({}); running the VM\n",
                   incoming->postcopy() ? "switched to post-copy" : "complete",
                   incoming->summary());
      }
      if (restore_now && o.restore_paused) (*machine)->StartPaused();
      Log(LogLevel::kInfo, "booting: {}", (*machine)->boot_entry().description);
      RunTimings run_timings = timings;
      if (controller) controller->Attach(**machine, restore_now && o.restore_paused);
      outcome = (*machine)->Run(signal_fd, run_timings);
      if (controller) controller->Detach();
      if (boot_count == 0) timings.first_guest_entry = run_timings.first_guest_entry;
      timings.end = run_timings.end;
      AddCounters(counters, (*machine)->counters());
      if (outcome.reason != StopReason::kReset || config.no_reboot) break;
      Log(LogLevel::kInfo, "guest reset ({}): restarting", outcome.detail);
    }
  }  // the console (and the terminal's mode) is restored here, before the last words

  if (config.stats) fmt::print(stderr, "{}", FormatStats(counters, timings));
  switch (outcome.reason) {
    case StopReason::kPowerOff:
      return kExitOk;
    case StopReason::kDebugExit:
      return outcome.exit_status;
    case StopReason::kReset:
      fmt::print(stderr, "vireo: guest reset ({}), not restarting (--no-reboot)\n", outcome.detail);
      return kExitOk;
    case StopReason::kSignal:
      fmt::print(stderr, "vireo: stopped by signal ({})\n", outcome.detail);
      return outcome.exit_status;
    case StopReason::kError:
      fmt::print(stderr, "vireo: error: {}\n", outcome.detail);
      return kExitError;
    case StopReason::kApiStop:
      fmt::print(stderr, "vireo: stopped through the control API\n");
      return kExitOk;
    case StopReason::kMigrated:
      fmt::print(stderr, "vireo: {}\n", outcome.detail);
      return kExitOk;
  }
  return kExitError;
}

}  // namespace vireo::cli
