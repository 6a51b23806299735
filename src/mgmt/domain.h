// DomainDef: a VM definition as the daemon persists it, independent of the text format it
// came in (Vireo JSON in domain_json.h, libvirt domain XML in domain_xml.h). Validate()
// checks what no format can express alone: names, sizes against Vireo's limits, files.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vireo::mgmt {

struct DiskDef {
  std::string path;
  std::string format = "raw";  // raw | qcow2
  std::string target = "vda";  // the guest-visible name libvirt uses; order is what counts
  bool readonly = false;
};

struct InterfaceDef {
  std::string type = "ethernet";  // ethernet (a tap) | bridge | network
  std::string source;             // bridge or network name
  std::string tap;                // ethernet: the tap device (libvirt's <target dev>)
  std::string mac;                // empty: Vireo picks one
};

struct DomainDef {
  std::string name;
  std::string uuid;  // canonical 8-4-4-4-12 lower-case; generated when absent
  uint64_t memory_bytes = 256ull << 20;
  uint64_t current_memory_bytes = 0;  // 0: same as memory_bytes (balloon target otherwise)
  uint32_t vcpus = 1;
  std::map<uint32_t, std::string> vcpupin;       // vCPU -> host cpuset (Vireo takes one CPU)
  std::string cpu_mode;                          // host-passthrough | host-model | "" (default)
  uint32_t sockets = 0, cores = 0, threads = 0;  // 0: no topology given
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  bool acpi = true;
  bool hugepages = false;
  bool locked = false;
  std::vector<DiskDef> disks;
  std::vector<InterfaceDef> interfaces;
  bool serial = true;           // COM1, captured by the daemon (console)
  bool virtio_console = false;  // <console><target type='virtio'/>
  bool rng = false;
  bool balloon = false;
  std::optional<uint32_t> vsock_cid;
  // Limits the daemon puts on the VM's cgroup. 0: derived (vCPUs x 100% CPU; memory plus
  // the VMM's overhead allowance).
  uint64_t cpu_quota_us = 0;
  uint64_t cpu_period_us = 0;
  uint64_t memory_hard_limit_bytes = 0;

  uint64_t EffectiveCurrentMemory() const {
    return current_memory_bytes == 0 ? memory_bytes : current_memory_bytes;
  }
};

// Names: 1-64 of [A-Za-z0-9_.+-], not starting with '.' or '-' (they become file names).
Status ValidateName(std::string_view name);
// "6ba7b810-9dad-11d1-80b4-00c04fd430c8" (any case, with or without dashes) -> canonical.
Result<std::string> CanonicalUuid(std::string_view text);
std::string NewUuid();

// Checks the definition against Vireo's limits; with check_files, that the kernel, initrd
// and disk files exist and the memory holds the kernel and initrd. Messages name the
// element and the reason.
Status Validate(const DomainDef& def, bool check_files);

// libvirt memory units (https://libvirt.org/formatdomain.html#memory-allocation):
// b/bytes, KB/MB/GB/TB (powers of 1000), k/KiB, M/MiB, G/GiB, T/TiB (powers of 1024).
// An empty unit is KiB, as in libvirt.
Result<uint64_t> ScaleUnit(uint64_t value, std::string_view unit);

// The extra memory a VM's cgroup allows over guest RAM: the VMM's own allocations.
inline constexpr uint64_t kVmmMemoryOverhead = 256ull << 20;

}  // namespace vireo::mgmt
