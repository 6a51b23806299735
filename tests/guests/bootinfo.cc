// bootinfo: reports what the loader told the guest, so a test can compare it with what it gave.
//
// Prints, one item per line:
//   protocol: linux|pvh|multiboot
//   cmdline: <text>
//   e820: addr=0x<hex> size=0x<hex> type=<n>     (one line per entry)
//   e820 count: <n>
//   mem_lower=<KiB> mem_upper=<KiB>               (multiboot only)
//   initrd: addr=0x<hex> size=<bytes> cksum=<POSIX cksum, decimal>   or "initrd: none"
//   rsdp: 0x<hex> (boot info|scan)
// The checksum is the POSIX `cksum` CRC, so the host computes it with coreutils.
// Exit: debug-exit 0 (status 1) after "PASS bootinfo"; 3 (status 7) if the boot info was
// invalid (bad magic) or the protocol unknown.
#include "runtime.h"

namespace {

// POSIX cksum: CRC-32 (polynomial 0x04C11DB7, MSB first) over the data, then over the length
// in as few little-endian bytes as needed, then complemented.
uint32_t CksumByte(uint32_t crc, uint8_t b) {
  crc ^= uint32_t{b} << 24;
  for (int i = 0; i < 8; ++i) crc = crc & 0x80000000u ? (crc << 1) ^ 0x04C11DB7u : crc << 1;
  return crc;
}

// Runs at CPL3 because the initrd may be large and CPL0 is slow on some hosts.
uint64_t Cksum(uint64_t arg) {
  const auto* p = reinterpret_cast<const uint64_t*>(arg);
  const auto* data = reinterpret_cast<const volatile uint8_t*>(p[0]);
  uint64_t size = p[1];
  uint32_t crc = 0;
  for (uint64_t i = 0; i < size; ++i) crc = CksumByte(crc, data[i]);
  for (uint64_t n = size; n; n >>= 8) crc = CksumByte(crc, n & 0xff);
  return ~crc;
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  using rt::Printf;
  Printf("protocol: %s\n", rt::BootProtocolName(info.protocol));
  if (!info.valid) rt::Fail("bootinfo", 3, "invalid boot info");
  Printf("cmdline: %s%s\n", info.cmdline, info.cmdline_truncated ? " [truncated]" : "");
  for (int i = 0; i < info.memory_count; ++i) {
    const auto& m = info.memory[i];
    Printf("e820: addr=%#lx size=%#lx type=%u\n", m.addr, m.size, m.type);
  }
  Printf("e820 count: %d\n", info.memory_count);
  if (info.protocol == rt::BootProtocol::kMultiboot) {
    Printf("mem_lower=%u mem_upper=%u\n", info.mb_mem_lower, info.mb_mem_upper);
  }
  if (info.initrd_addr && info.initrd_size) {
    uint64_t args[2] = {info.initrd_addr, info.initrd_size};
    uint64_t sum = rt::RunAtCpl3(Cksum, reinterpret_cast<uint64_t>(args));
    Printf("initrd: addr=%#lx size=%lu cksum=%lu\n", info.initrd_addr, info.initrd_size, sum);
  } else {
    Printf("initrd: none\n");
  }
  Printf("rsdp: %#lx (%s)\n", info.rsdp_addr, info.rsdp_from_boot_info ? "boot info" : "scan");
  rt::Pass("bootinfo");
}
