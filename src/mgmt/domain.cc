#include "mgmt/domain.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <random>
#include <set>

#include "arch/x86/acpi/acpi.h"
#include "arch/x86/layout.h"

namespace vireo::mgmt {
namespace {

Status CheckFile(std::string_view element, const std::string& path, uint64_t* size) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Fail("{} '{}': {}; fix the path or create the file", element, path,
                std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return Fail("{} '{}': not a regular file", element, path);
  }
  if (size) *size = static_cast<uint64_t>(st.st_size);
  return {};
}

// RFC 3629 well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF): paths
// and command lines go into JSON, which holds only text.
bool IsUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;  // continuation bytes
    uint32_t cp = 0;
    if ((c >> 5) == 0x6) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c >> 4) == 0xe) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c >> 3) == 0x1e) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (text.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

Status CheckText(std::string_view element, std::string_view text) {
  if (!IsUtf8(text)) return Fail("{}: not valid UTF-8 text", element);
  // XML cannot carry most control characters and rewrites CR, tab and newline (end-of-line
  // and attribute normalisation), so a value holding one would not survive dumpxml.
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return Fail("{}: control character 0x{:02x} is not allowed; remove it", element, u);
    }
  }
  return {};
}

}  // namespace

Status ValidateName(std::string_view name) {
  if (name.empty()) return Fail("name: a domain needs a name");
  if (name.size() > 64) return Fail("name '{}': longer than 64 characters", name);
  if (name[0] == '.' || name[0] == '-') {
    return Fail("name '{}': must not start with '.' or '-'", name);
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '+' &&
        c != '-') {
      return Fail("name '{}': only letters, digits and _ . + - are allowed", name);
    }
  }
  return {};
}

Result<std::string> CanonicalUuid(std::string_view text) {
  std::string hex;
  for (char c : text) {
    if (c == '-') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return Fail("uuid '{}': not a UUID (32 hex digits, dashes optional)", text);
    }
    hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (hex.size() != 32) return Fail("uuid '{}': not a UUID (32 hex digits, dashes optional)", text);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

std::string NewUuid() {
  std::random_device rd;
  uint8_t bytes[16];
  for (auto& b : bytes) b = static_cast<uint8_t>(rd());
  bytes[6] = (bytes[6] & 0x0f) | 0x40;  // version 4 (RFC 4122 §4.4)
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  std::string hex;
  for (uint8_t b : bytes) hex += fmt::format("{:02x}", b);
  return *CanonicalUuid(hex);
}

Result<uint64_t> ScaleUnit(uint64_t value, std::string_view unit) {
  struct Unit {
    std::string_view name;
    uint64_t scale;
  };
  static constexpr Unit kUnits[] = {
      {"b", 1},           {"bytes", 1},        {"KB", 1000},        {"k", 1024},
      {"KiB", 1024},      {"MB", 1000000},     {"M", 1 << 20},      {"MiB", 1 << 20},
      {"GB", 1000000000}, {"G", 1ull << 30},   {"GiB", 1ull << 30}, {"TB", 1000000000000},
      {"T", 1ull << 40},  {"TiB", 1ull << 40}, {"", 1024},
  };
  for (const Unit& u : kUnits) {
    if (u.name != unit) continue;
    if (value > UINT64_MAX / u.scale) return Fail("{} {} overflows 64 bits", value, unit);
    return value * u.scale;
  }
  return Fail("unknown unit '{}' (expected b, KB, KiB, MB, MiB, GB, GiB, TB or TiB)", unit);
}

Status Validate(const DomainDef& def, bool check_files) {
  VIREO_TRY_STATUS(ValidateName(def.name));
  if (!def.uuid.empty()) VIREO_TRY_STATUS(CanonicalUuid(def.uuid));
  if (def.memory_bytes < x86::kMinMemory) {
    return Fail("memory: {} KiB is below Vireo's minimum of {} MiB", def.memory_bytes >> 10,
                x86::kMinMemory >> 20);
  }
  if (def.memory_bytes > x86::kMaxMemory) {
    return Fail("memory: {} KiB is above Vireo's maximum of {} GiB", def.memory_bytes >> 10,
                x86::kMaxMemory >> 30);
  }
  if (def.memory_bytes % 4096 != 0) return Fail("memory: must be a multiple of 4 KiB");
  if (def.hugepages && def.memory_bytes % (2ull << 20) != 0) {
    return Fail("memory: must be a multiple of 2 MiB with memoryBacking/hugepages");
  }
  if (def.current_memory_bytes > def.memory_bytes) {
    return Fail("currentMemory: {} KiB is above memory ({} KiB)", def.current_memory_bytes >> 10,
                def.memory_bytes >> 10);
  }
  if (def.vcpus < 1 || def.vcpus > static_cast<uint32_t>(x86::acpi::kMaxCpus)) {
    return Fail("vcpu: {} is out of range (1-{})", def.vcpus, x86::acpi::kMaxCpus);
  }
  if (def.sockets || def.cores || def.threads) {
    uint64_t product = uint64_t{def.sockets} * def.cores * def.threads;
    if (product != def.vcpus) {
      return Fail("cpu/topology: sockets {} x cores {} x threads {} = {}, but vcpu is {}",
                  def.sockets, def.cores, def.threads, product, def.vcpus);
    }
  }
  if (!def.cpu_mode.empty() && def.cpu_mode != "host-passthrough" && def.cpu_mode != "host-model") {
    return Fail("cpu mode '{}': Vireo supports host-passthrough and host-model", def.cpu_mode);
  }
  for (const auto& [vcpu, cpuset] : def.vcpupin) {
    if (vcpu >= def.vcpus) {
      return Fail("cputune/vcpupin vcpu='{}': the domain has {} vCPUs", vcpu, def.vcpus);
    }
    int host = -1;
    auto [end, ec] = std::from_chars(cpuset.data(), cpuset.data() + cpuset.size(), host);
    if (ec != std::errc() || end != cpuset.data() + cpuset.size() || host < 0) {
      return Fail("cputune/vcpupin vcpu='{}' cpuset='{}': Vireo pins a vCPU to one host CPU", vcpu,
                  cpuset);
    }
  }
  if (def.kernel.empty()) return Fail("os/kernel: a domain needs a kernel (direct boot)");
  VIREO_TRY_STATUS(CheckText("os/kernel", def.kernel));
  VIREO_TRY_STATUS(CheckText("os/initrd", def.initrd));
  VIREO_TRY_STATUS(CheckText("os/cmdline", def.cmdline));
  VIREO_TRY_STATUS(CheckText("cpu mode", def.cpu_mode));
  for (const DiskDef& disk : def.disks) {
    VIREO_TRY_STATUS(CheckText("devices/disk source", disk.path));
    VIREO_TRY_STATUS(CheckText("devices/disk target", disk.target));
  }
  for (const InterfaceDef& net : def.interfaces) {
    for (const std::string* text : {&net.source, &net.tap, &net.mac}) {
      VIREO_TRY_STATUS(CheckText("devices/interface", *text));
    }
  }
  std::set<std::string> targets;
  for (const DiskDef& disk : def.disks) {
    if (disk.path.empty()) return Fail("devices/disk: source file is missing");
    if (disk.format != "raw" && disk.format != "qcow2") {
      return Fail("devices/disk '{}': driver type '{}' is not raw or qcow2", disk.path,
                  disk.format);
    }
    if (!targets.insert(disk.target).second) {
      return Fail("devices/disk '{}': target dev '{}' is used twice", disk.path, disk.target);
    }
  }
  for (const InterfaceDef& net : def.interfaces) {
    if (net.type != "ethernet" && net.type != "bridge" && net.type != "network") {
      return Fail("devices/interface type '{}': expected ethernet, bridge or network", net.type);
    }
    if (net.type == "ethernet" && net.tap.empty()) {
      return Fail("devices/interface type='ethernet': needs <target dev='TAP'/>");
    }
    if (net.type != "ethernet" && net.source.empty()) {
      return Fail("devices/interface type='{}': needs <source {}='NAME'/>", net.type,
                  net.type == "bridge" ? "bridge" : "network");
    }
  }
  if (def.vsock_cid && *def.vsock_cid < 3) {
    return Fail("devices/vsock cid {}: guest CIDs start at 3", *def.vsock_cid);
  }
  if (def.cpu_period_us != 0 && (def.cpu_period_us < 1000 || def.cpu_period_us > 1000000)) {
    return Fail("cputune/period {}: must be 1000-1000000 us", def.cpu_period_us);
  }
  // The kernel's CFS bandwidth limit (MAX_BW, 2^44 - 1 us); it refuses a larger quota.
  if (def.cpu_quota_us > (1ull << 44) - 1) {
    return Fail("cputune/quota {}: must be at most {} us", def.cpu_quota_us, (1ull << 44) - 1);
  }
  if (!check_files) return {};
  uint64_t kernel_size = 0, initrd_size = 0;
  VIREO_TRY_STATUS(CheckFile("os/kernel", def.kernel, &kernel_size));
  if (!def.initrd.empty()) VIREO_TRY_STATUS(CheckFile("os/initrd", def.initrd, &initrd_size));
  // The loaders place kernel and initrd in guest RAM, beside the boot structures.
  const uint64_t needed = kernel_size + initrd_size + (8ull << 20);
  if (def.memory_bytes < needed) {
    return Fail("memory: {} KiB is below what the kernel and initrd need ({} KiB)",
                def.memory_bytes >> 10, needed >> 10);
  }
  for (const DiskDef& disk : def.disks) {
    VIREO_TRY_STATUS(CheckFile("devices/disk source", disk.path, nullptr));
  }
  return {};
}

}  // namespace vireo::mgmt
