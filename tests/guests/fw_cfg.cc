// fw_cfg: reads the QEMU-compatible fw_cfg device (ports 0x510 selector, 0x511 data; QEMU's
// docs/specs/fw_cfg.rst) the way firmware does, and checks it against the boot info: the
// "QEMU" signature, the CPU count, the RAM size, and an "etc/e820" file that matches the
// memory map the guest was booted with. Prints what it read; PASS -> debug-exit 0 (status 1),
// a mismatch -> debug-exit 3 (status 7).
#include "runtime.h"

namespace {

constexpr uint16_t kSelector = 0x510;
constexpr uint16_t kData = 0x511;
constexpr uint16_t kSignature = 0x0000, kRamSize = 0x0003, kNbCpus = 0x0005, kFileDir = 0x0019;

void Select(uint16_t key) { rt::Outw(kSelector, key); }
uint8_t Byte() { return rt::Inb(kData); }
uint64_t Le(int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{Byte()} << (8 * i);
  return v;
}
uint64_t Be(int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | Byte();
  return v;
}

bool NameIs(const char* name, const char* want) {
  for (int i = 0;; ++i) {
    if (name[i] != want[i]) return false;
    if (name[i] == 0) return true;
  }
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  bool ok = true;
  Select(kSignature);
  char sig[5] = {};
  for (int i = 0; i < 4; ++i) sig[i] = static_cast<char>(Byte());
  rt::Printf("signature: %s\n", sig);
  ok &= NameIs(sig, "QEMU");

  Select(kNbCpus);
  uint64_t cpus = Le(2);
  Select(kRamSize);
  uint64_t ram = Le(8);
  rt::Printf("cpus: %d\nram: %d MiB\n", static_cast<int>(cpus), static_cast<int>(ram >> 20));

  // Find etc/e820 in the file directory: u32 BE count, then {u32 BE size, u16 BE select,
  // u16 reserved, char name[56]}.
  Select(kFileDir);
  uint64_t count = Be(4);
  uint16_t e820_key = 0;
  uint32_t e820_size = 0;
  for (uint64_t f = 0; f < count && f < 64; ++f) {
    uint32_t size = static_cast<uint32_t>(Be(4));
    uint16_t key = static_cast<uint16_t>(Be(2));
    Be(2);
    char name[56];
    for (char& c : name) c = static_cast<char>(Byte());
    name[55] = 0;
    if (NameIs(name, "etc/e820")) e820_key = key, e820_size = size;
  }
  ok &= e820_key != 0;
  int entries = static_cast<int>(e820_size / 20);
  rt::Printf("etc/e820: %d entries\n", entries);
  ok &= entries == info.memory_count;
  Select(e820_key);
  for (int i = 0; i < entries && i < info.memory_count; ++i) {
    uint64_t addr = Le(8), size = Le(8);
    uint32_t type = static_cast<uint32_t>(Le(4));
    const auto& want = info.memory[i];
    bool same = addr == want.addr && size == want.size && type == want.type;
    rt::Printf("  %p +%p type %d%s\n", reinterpret_cast<void*>(addr), reinterpret_cast<void*>(size),
               static_cast<int>(type), same ? "" : " MISMATCH");
    ok &= same;
  }
  rt::Printf(ok ? "PASS fw_cfg\n" : "FAIL fw_cfg\n");
  return ok ? 0 : 3;
}
