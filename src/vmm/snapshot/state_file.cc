#include "vmm/snapshot/state_file.h"

#include <zlib.h>

#include <cstring>

#include "vmm/snapshot/device_records.h"
#include "vmm/snapshot/state_codec.h"

namespace vireo::snapshot {
namespace {

// Bounds on counts and lengths, so a hostile file cannot ask for huge allocations.
constexpr size_t kMaxPath = 4096;
constexpr size_t kMaxText = 1u << 20;
constexpr size_t kMaxDevices = 64;
constexpr size_t kMaxVcpus = 1024;
constexpr size_t kMaxRegions = 16;
constexpr size_t kMaxCpuid = 256;
constexpr size_t kMaxMsrs = 4096;
constexpr size_t kMaxXcrs = 16;
constexpr size_t kMaxXsave = 1u << 20;
constexpr size_t kLapicSize = 1024;

// ---- VmConfig (the guest-visible parts) ----

void Put(StateWriter& w, const VmConfig& c) {
  w.Bool(c.kernel_path.has_value());
  w.String(c.kernel_path.value_or(""));
  w.Bool(c.initrd_path.has_value());
  w.String(c.initrd_path.value_or(""));
  w.String(c.cmdline);
  w.U32(static_cast<uint32_t>(c.cpus));
  w.U64(c.memory);
  w.U8(static_cast<uint8_t>(c.boot_protocol));
  w.U8(c.transport == VirtioTransport::kPci ? 0 : 1);
  w.U32(static_cast<uint32_t>(c.disks.size()));
  for (const DiskConfig& d : c.disks) {
    w.String(d.path);
    w.Bool(d.read_only);
    w.String(d.serial);
    w.Bool(d.cache_none);
    w.Bool(d.discard);
    w.U8(static_cast<uint8_t>(d.format));
  }
  w.U32(static_cast<uint32_t>(c.nets.size()));
  for (const NetConfig& n : c.nets) {
    w.String(n.tap);
    w.String(n.mac);
  }
  w.Bool(c.vsock.has_value());
  w.U64(c.vsock ? c.vsock->cid : 0);
  w.String(c.vsock ? c.vsock->uds : "");
  w.Bool(c.rng);
  w.Bool(c.console);
  w.Bool(c.balloon);
  w.Bool(c.hpet);
  w.U8(static_cast<uint8_t>(c.irqchip));
}

void Get(StateReader& r, VmConfig& c, uint32_t version) {
  bool has_kernel = r.Bool();
  std::string kernel = r.String(kMaxPath);
  if (has_kernel) c.kernel_path = kernel;
  bool has_initrd = r.Bool();
  std::string initrd = r.String(kMaxPath);
  if (has_initrd) c.initrd_path = initrd;
  c.cmdline = r.String(kMaxText);
  c.cpus = static_cast<int>(r.U32());
  if (r.ok() && (c.cpus < 1 || static_cast<size_t>(c.cpus) > kMaxVcpus)) {
    r.Invalid(fmt::format("{} vCPUs", c.cpus));
  }
  c.memory = r.U64();
  if (r.ok() && (c.memory == 0 || c.memory % kPageSize != 0)) {
    r.Invalid(fmt::format("memory size {:#x} is not a positive multiple of 4 KiB", c.memory));
  }
  uint8_t protocol = r.U8();
  if (protocol > static_cast<uint8_t>(boot::BootProtocol::kMultiboot)) r.Invalid("boot protocol");
  c.boot_protocol = static_cast<boot::BootProtocol>(protocol);
  uint8_t transport = r.U8();
  if (transport > 1) r.Invalid("virtio transport");
  c.transport = transport == 0 ? VirtioTransport::kPci : VirtioTransport::kMmio;
  c.disks.resize(r.Count(kMaxDevices, "disks"));
  for (DiskConfig& d : c.disks) {
    d.path = r.String(kMaxPath);
    d.read_only = r.Bool();
    d.serial = r.String(kMaxPath);
    d.cache_none = r.Bool();
    d.discard = r.Bool();
    uint8_t format = r.U8();
    if (format > static_cast<uint8_t>(block::ImageFormat::kQcow2)) r.Invalid("disk format");
    d.format = static_cast<block::ImageFormat>(format);
  }
  c.nets.resize(r.Count(kMaxDevices, "network devices"));
  for (NetConfig& n : c.nets) {
    n.tap = r.String(kMaxPath);
    n.mac = r.String(kMaxPath);
  }
  bool has_vsock = r.Bool();
  uint64_t cid = r.U64();
  std::string uds = r.String(kMaxPath);
  if (has_vsock) c.vsock = VmConfig::Vsock{cid, uds};
  c.rng = r.Bool();
  c.console = r.Bool();
  c.balloon = r.Bool();
  c.hpet = version >= 2 && r.Bool();
  if (version >= 2) {
    const uint8_t irqchip = r.U8();
    if (r.ok() && irqchip > static_cast<uint8_t>(IrqchipMode::kSplit)) {
      r.Invalid(fmt::format("irqchip mode {}", irqchip));
    }
    c.irqchip = static_cast<IrqchipMode>(irqchip);
  }
}

// ---- vCPU ----

void Put(StateWriter& w, const accel::Segment& s) {
  w.U64(s.base), w.U32(s.limit), w.U16(s.selector), w.U8(s.type), w.Bool(s.present);
  w.U8(s.dpl), w.Bool(s.db), w.Bool(s.s), w.Bool(s.l), w.Bool(s.g), w.Bool(s.avl);
  w.Bool(s.unusable);
}

void Get(StateReader& r, accel::Segment& s) {
  s.base = r.U64(), s.limit = r.U32(), s.selector = r.U16(), s.type = r.U8();
  s.present = r.Bool(), s.dpl = r.U8(), s.db = r.Bool(), s.s = r.Bool(), s.l = r.Bool();
  s.g = r.Bool(), s.avl = r.Bool(), s.unusable = r.Bool();
}

void Put(StateWriter& w, const accel::VcpuSavedState& v) {
  w.U32(static_cast<uint32_t>(v.cpuid.size()));
  for (const auto& e : v.cpuid) {
    w.U32(e.function), w.U32(e.index), w.U32(e.flags);
    w.U32(e.eax), w.U32(e.ebx), w.U32(e.ecx), w.U32(e.edx);
  }
  const accel::Registers& g = v.regs;
  for (uint64_t x : {g.rax, g.rbx, g.rcx, g.rdx, g.rsi, g.rdi, g.rsp, g.rbp, g.r8, g.r9, g.r10,
                     g.r11, g.r12, g.r13, g.r14, g.r15, g.rip, g.rflags}) {
    w.U64(x);
  }
  const accel::SpecialRegisters& s = v.sregs;
  for (const accel::Segment* seg : {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt}) {
    Put(w, *seg);
  }
  w.U64(s.gdt.base), w.U16(s.gdt.limit), w.U64(s.idt.base), w.U16(s.idt.limit);
  for (uint64_t x : {s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer, s.apic_base}) w.U64(x);
  w.Bytes(v.xsave);
  w.U32(static_cast<uint32_t>(v.xcrs.size()));
  for (const auto& x : v.xcrs) w.U32(x.index), w.U64(x.value);
  w.U32(static_cast<uint32_t>(v.msrs.size()));
  for (const auto& m : v.msrs) w.U32(m.index), w.U64(m.value);
  w.Bytes(v.lapic);
  w.U32(static_cast<uint32_t>(v.mp_state));
  const accel::VcpuEvents& e = v.events;
  w.Bool(e.exception_injected), w.U8(e.exception_nr), w.Bool(e.exception_has_error_code);
  w.Bool(e.exception_pending), w.U32(e.exception_error_code);
  w.Bool(e.interrupt_injected), w.U8(e.interrupt_nr), w.Bool(e.interrupt_soft);
  w.U8(e.interrupt_shadow);
  w.Bool(e.nmi_injected), w.Bool(e.nmi_pending), w.Bool(e.nmi_masked);
  w.U32(e.sipi_vector);
  w.Bool(e.smm), w.Bool(e.smm_pending), w.Bool(e.smm_inside_nmi), w.U8(e.smm_latched_init);
  for (uint64_t x : v.debug.db) w.U64(x);
  w.U64(v.debug.dr6), w.U64(v.debug.dr7);
}

void Get(StateReader& r, accel::VcpuSavedState& v) {
  v.cpuid.resize(r.Count(kMaxCpuid, "CPUID entries"));
  for (auto& e : v.cpuid) {
    e.function = r.U32(), e.index = r.U32(), e.flags = r.U32();
    e.eax = r.U32(), e.ebx = r.U32(), e.ecx = r.U32(), e.edx = r.U32();
  }
  accel::Registers& g = v.regs;
  for (uint64_t* x : {&g.rax, &g.rbx, &g.rcx, &g.rdx, &g.rsi, &g.rdi, &g.rsp, &g.rbp, &g.r8, &g.r9,
                      &g.r10, &g.r11, &g.r12, &g.r13, &g.r14, &g.r15, &g.rip, &g.rflags}) {
    *x = r.U64();
  }
  accel::SpecialRegisters& s = v.sregs;
  for (accel::Segment* seg : {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt}) {
    Get(r, *seg);
  }
  s.gdt.base = r.U64(), s.gdt.limit = r.U16(), s.idt.base = r.U64(), s.idt.limit = r.U16();
  for (uint64_t* x : {&s.cr0, &s.cr2, &s.cr3, &s.cr4, &s.cr8, &s.efer, &s.apic_base}) {
    *x = r.U64();
  }
  v.xsave = r.Bytes(kMaxXsave);
  v.xcrs.resize(r.Count(kMaxXcrs, "XCRs"));
  for (auto& x : v.xcrs) x.index = r.U32(), x.value = r.U64();
  v.msrs.resize(r.Count(kMaxMsrs, "MSRs"));
  for (auto& m : v.msrs) m.index = r.U32(), m.value = r.U64();
  v.lapic = r.Bytes(kLapicSize);
  // Empty: the accelerator keeps no LAPIC page (the software CPU's interrupt controllers
  // live in the VMM); restoring such a vCPU on KVM then fails there, naming the LAPIC.
  if (r.ok() && !v.lapic.empty() && v.lapic.size() != kLapicSize) {
    r.Invalid("the LAPIC page is neither 1 KiB nor empty");
  }
  uint32_t mp = r.U32();
  if (mp > static_cast<uint32_t>(accel::MpState::kSipiReceived)) r.Invalid("MP state");
  v.mp_state = static_cast<accel::MpState>(mp);
  accel::VcpuEvents& e = v.events;
  e.exception_injected = r.Bool(), e.exception_nr = r.U8(), e.exception_has_error_code = r.Bool();
  e.exception_pending = r.Bool(), e.exception_error_code = r.U32();
  e.interrupt_injected = r.Bool(), e.interrupt_nr = r.U8(), e.interrupt_soft = r.Bool();
  e.interrupt_shadow = r.U8();
  e.nmi_injected = r.Bool(), e.nmi_pending = r.Bool(), e.nmi_masked = r.Bool();
  e.sipi_vector = r.U32();
  e.smm = r.Bool(), e.smm_pending = r.Bool(), e.smm_inside_nmi = r.Bool();
  e.smm_latched_init = r.U8();
  for (uint64_t& x : v.debug.db) x = r.U64();
  v.debug.dr6 = r.U64(), v.debug.dr7 = r.U64();
}

// ---- VM platform state ----

void Put(StateWriter& w, const accel::PicState& p) {
  for (uint8_t x : {p.last_irr, p.irr, p.imr, p.isr, p.priority_add, p.irq_base, p.read_reg_select,
                    p.poll, p.special_mask, p.init_state, p.auto_eoi, p.rotate_on_auto_eoi,
                    p.special_fully_nested_mode, p.init4, p.elcr, p.elcr_mask}) {
    w.U8(x);
  }
}

void Get(StateReader& r, accel::PicState& p) {
  for (uint8_t* x :
       {&p.last_irr, &p.irr, &p.imr, &p.isr, &p.priority_add, &p.irq_base, &p.read_reg_select,
        &p.poll, &p.special_mask, &p.init_state, &p.auto_eoi, &p.rotate_on_auto_eoi,
        &p.special_fully_nested_mode, &p.init4, &p.elcr, &p.elcr_mask}) {
    *x = r.U8();
  }
}

void Put(StateWriter& w, const accel::VmSavedState& s) {
  Put(w, s.pic_master);
  Put(w, s.pic_slave);
  w.U64(s.ioapic.base_address), w.U32(s.ioapic.ioregsel), w.U32(s.ioapic.id);
  w.U32(s.ioapic.irr);
  for (uint64_t x : s.ioapic.redirection) w.U64(x);
  for (const auto& c : s.pit.channels) {
    w.U32(c.count), w.U16(c.latched_count);
    for (uint8_t x : {c.count_latched, c.status_latched, c.status, c.read_state, c.write_state,
                      c.write_latch, c.rw_mode, c.mode, c.bcd, c.gate}) {
      w.U8(x);
    }
    w.I64(c.count_load_time);
  }
  w.U32(s.pit.flags);
  w.U64(s.clock_ns);
  w.U64(s.saved_at_ns);
}

void Get(StateReader& r, accel::VmSavedState& s, uint32_t version) {
  Get(r, s.pic_master);
  Get(r, s.pic_slave);
  s.ioapic.base_address = r.U64(), s.ioapic.ioregsel = r.U32(), s.ioapic.id = r.U32();
  s.ioapic.irr = r.U32();
  for (uint64_t& x : s.ioapic.redirection) x = r.U64();
  for (auto& c : s.pit.channels) {
    c.count = r.U32(), c.latched_count = r.U16();
    for (uint8_t* x : {&c.count_latched, &c.status_latched, &c.status, &c.read_state,
                       &c.write_state, &c.write_latch, &c.rw_mode, &c.mode, &c.bcd, &c.gate}) {
      *x = r.U8();
    }
    c.count_load_time = r.I64();
  }
  s.pit.flags = r.U32();
  s.clock_ns = r.U64();
  s.saved_at_ns = version >= 2 ? r.U64() : 0;
}

// ---- Devices ----

void Put(StateWriter& w, const DeviceStates& d) {
  const Serial8250State& u = d.com1;
  for (uint8_t x : {u.ier, u.fcr, u.lcr, u.mcr, u.lsr, u.msr, u.scr, u.dll, u.dlm}) w.U8(x);
  w.Bool(u.thr_interrupt);
  w.Bytes(u.rx_fifo);
  w.Bytes(d.rtc.cmos);
  w.U8(d.rtc.index), w.Bool(d.rtc.nmi_disabled), w.I64(d.rtc.offset_seconds);
  const I8042State& k = d.i8042;
  for (uint8_t x : {k.status, k.command_byte, k.output_port, k.output_buffer, k.pending}) w.U8(x);
  w.U16(d.pm.pm1_sts), w.U16(d.pm.pm1_en), w.U16(d.pm.pm1_cnt);
  Put(w, d.virtio);
}

void Get(StateReader& r, DeviceStates& d) {
  Serial8250State& u = d.com1;
  for (uint8_t* x : {&u.ier, &u.fcr, &u.lcr, &u.mcr, &u.lsr, &u.msr, &u.scr, &u.dll, &u.dlm}) {
    *x = r.U8();
  }
  u.thr_interrupt = r.Bool();
  u.rx_fifo = r.Bytes(Serial8250::kRxFifoSize);
  auto cmos = r.Bytes(CmosRtc::kRamSize);
  if (r.ok() && cmos.size() != CmosRtc::kRamSize) r.Invalid("the CMOS RAM is not 128 bytes");
  if (r.ok()) std::memcpy(d.rtc.cmos.data(), cmos.data(), CmosRtc::kRamSize);
  d.rtc.index = r.U8(), d.rtc.nmi_disabled = r.Bool(), d.rtc.offset_seconds = r.I64();
  I8042State& k = d.i8042;
  for (uint8_t* x : {&k.status, &k.command_byte, &k.output_port, &k.output_buffer, &k.pending}) {
    *x = r.U8();
  }
  d.pm.pm1_sts = r.U16(), d.pm.pm1_en = r.U16(), d.pm.pm1_cnt = r.U16();
  Get(r, d.virtio);
}

void PutLe(uint8_t* out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t GetLe(const uint8_t* in, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(in[i]) << (8 * i);
  return v;
}

uint32_t Crc32(std::span<const uint8_t> data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes at most UINT_MAX bytes a call; the payload is bounded far below that.
  crc = crc32(crc, data.data(), static_cast<uInt>(data.size()));
  return static_cast<uint32_t>(crc);
}

}  // namespace

uint64_t MemoryFileSize(std::span<const RamRange> ram) {
  uint64_t total = 0;
  for (const RamRange& r : ram) total += r.size;
  return total;
}

std::vector<uint8_t> EncodeStateFile(const SnapshotState& s) {
  StateWriter w;
  Put(w, s.config);
  w.String(s.accelerator);
  w.U8(static_cast<uint8_t>(s.type));
  w.U32(static_cast<uint32_t>(s.ram.size()));
  for (const RamRange& r : s.ram) w.U64(r.base), w.U64(r.size);
  w.String(s.parent);
  w.U32(static_cast<uint32_t>(s.dirty.size()));
  for (const auto& bitmap : s.dirty) {
    w.U32(static_cast<uint32_t>(bitmap.size()));
    for (uint64_t x : bitmap) w.U64(x);
  }
  Put(w, s.vm);
  w.U32(static_cast<uint32_t>(s.vcpus.size()));
  for (const auto& v : s.vcpus) Put(w, v);
  Put(w, s.devices);
  PutDeviceRecords(w, s.devices);

  std::vector<uint8_t> payload = w.Take();
  std::vector<uint8_t> file(kHeaderSize);
  std::memcpy(file.data(), kMagic, sizeof(kMagic));
  PutLe(&file[8], kFormatVersion, 4);
  PutLe(&file[12], 0, 4);  // flags: none defined
  PutLe(&file[16], payload.size(), 4);
  PutLe(&file[20], Crc32(payload), 4);
  file.insert(file.end(), payload.begin(), payload.end());
  return file;
}

Result<SnapshotState> DecodeStateFile(std::span<const uint8_t> file) {
  if (file.size() < kHeaderSize || std::memcmp(file.data(), kMagic, sizeof(kMagic)) != 0) {
    return Fail("not a Vireo snapshot state file (no VIREOSNP header)");
  }
  const uint32_t version = static_cast<uint32_t>(GetLe(&file[8], 4));
  if (version < kOldestReadableVersion || version > kFormatVersion) {
    return Fail("snapshot format version {}; this vireo reads versions {} to {}", version,
                kOldestReadableVersion, kFormatVersion);
  }
  if (GetLe(&file[12], 4) != 0) return Fail("snapshot state file has unknown flags set");
  const uint64_t size = GetLe(&file[16], 4);
  if (size > kMaxStateFileSize) return Fail("snapshot state file claims {} bytes of state", size);
  const uint32_t crc = static_cast<uint32_t>(GetLe(&file[20], 4));
  std::span<const uint8_t> payload = file.subspan(kHeaderSize);
  if (payload.size() < size) {
    return Fail("snapshot state file is truncated: {} bytes of state expected, {} present", size,
                payload.size());
  }
  if (payload.size() > size) {
    return Fail("snapshot state file has {} unexpected bytes after its state",
                payload.size() - size);
  }
  if (const uint32_t actual = Crc32(payload); actual != crc) {
    return Fail("snapshot state file is corrupt: CRC-32 {:#010x}, the header says {:#010x}", actual,
                crc);
  }

  StateReader r(payload);
  SnapshotState s;
  Get(r, s.config, version);
  s.accelerator = r.String(kMaxPath);
  const uint8_t type = r.U8();
  if (type > 1) r.Invalid("snapshot type");
  s.type = static_cast<SnapshotType>(type);
  s.ram.resize(r.Count(kMaxRegions, "RAM regions"));
  for (RamRange& range : s.ram) {
    range.base = r.U64(), range.size = r.U64();
    if (r.ok() && (range.size == 0 || range.size % kPageSize != 0 || range.base % kPageSize != 0 ||
                   range.base + range.size < range.base)) {
      r.Invalid(fmt::format("RAM region {:#x}+{:#x} is not page-aligned", range.base, range.size));
    }
  }
  if (r.ok() && MemoryFileSize(s.ram) != s.config.memory) {
    r.Invalid("the RAM regions do not add up to the memory size");
  }
  s.parent = r.String(kMaxPath);
  s.dirty.resize(r.Count(kMaxRegions, "dirty bitmaps"));
  for (size_t i = 0; i < s.dirty.size(); ++i) {
    const size_t words = r.Count(kMaxStateFileSize / 8, "bitmap words");
    if (r.ok() && (i >= s.ram.size() || words != (s.ram[i].size / kPageSize + 63) / 64)) {
      r.Invalid("a dirty bitmap does not match its RAM region");
    }
    s.dirty[i].resize(words);
    for (uint64_t& x : s.dirty[i]) x = r.U64();
  }
  if (r.ok() && s.type == SnapshotType::kDiff &&
      (s.parent.empty() || s.dirty.size() != s.ram.size())) {
    r.Invalid("a diff snapshot without its parent or dirty bitmaps");
  }
  Get(r, s.vm, version);
  s.vcpus.resize(r.Count(kMaxVcpus, "vCPUs"));
  if (r.ok() && s.vcpus.size() != static_cast<size_t>(s.config.cpus)) {
    r.Invalid(fmt::format("{} vCPU states for {} vCPUs", s.vcpus.size(), s.config.cpus));
  }
  for (auto& v : s.vcpus) Get(r, v);
  Get(r, s.devices);
  if (version >= 2) GetDeviceRecords(r, s.devices);
  if (r.ok() && s.devices.hpet.has_value() != s.config.hpet) {
    r.Invalid(s.config.hpet ? "an HPET without its state" : "HPET state without an HPET");
  }
  VIREO_TRY_STATUS(r.Finish("snapshot state file"));
  return s;
}

}  // namespace vireo::snapshot
