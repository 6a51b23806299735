// raw_exit_floor: the cheapest exit round trip any VMM can get on this host.
//
// Plain C++ against /dev/kvm, no Vireo code: one VM, one vCPU, 2 MiB of RAM, a guest placed
// directly in 64-bit long mode (no firmware, no boot protocol) that loops on one exiting
// instruction — `out %al,(%dx)` to port 0x1234, or a 32-bit load from 0xd0000000 (no memory
// slot there, so KVM reports KVM_EXIT_MMIO). The host answers each exit with nothing
// but the next KVM_RUN, and stops after N exits. CPL3 runs start the vCPU directly at CPL3
// (user code segment, user-accessible page tables) with a TSS whose I/O bitmap allows every
// port: kvm_pvm ignores RFLAGS.IOPL=3 for guest CPL3 (the `out` raises #GP and, with no IDT,
// the VM shuts down), but it honours the TSS I/O bitmap, as hardware does.
//
// Timing uses the difference method, as bench/run.sh does for whole VMMs: each run is timed
// from before opening /dev/kvm to after closing the VM, for N1 and N2 exits; the per-exit cost
// is median(t(N2) - t(N1)) / (N2 - N1), which cancels VM creation and teardown. The steady
// in-loop time per exit (exit N1 to exit N2 of the same run) is printed as a cross-check.
//
// `--boot-probe` is the floor for the start-up case: the guest writes '!' to COM1 (0x3f8) and
// then writes to the debug-exit port (0xf4); the host copies the byte to stdout and exits with
// status 1, as a VMM does for debug-exit value 0. `--irqchip` adds the in-kernel interrupt
// controllers and PIT (KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2) that a PC VMM creates.
//
// Output: one JSON object per case on stdout (see PrintResult).
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

// Debian 12's <linux/kvm.h> mis-sizes kvm_cpuid2 for C++ (see src/accel/kvm/kvm_abi.h), so the
// two CPUID ioctls are encoded here from the kernel's real 8-byte header.
struct Cpuid2Header {
  uint32_t nent;
  uint32_t padding;
};
constexpr unsigned long kGetSupportedCpuid =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, sizeof(Cpuid2Header));
constexpr unsigned long kSetCpuid2 = _IOC(_IOC_WRITE, KVMIO, 0x90, sizeof(Cpuid2Header));
constexpr uint32_t kMaxCpuidEntries = 256;

constexpr uint64_t kRamSize = 2 << 20;
constexpr uint64_t kGdt = 0x500;
constexpr uint64_t kPml4 = 0x1000;
constexpr uint64_t kPdpt = 0x2000;
constexpr uint64_t kPdLow = 0x3000;   // maps 0-1 GiB
constexpr uint64_t kPdHole = 0x4000;  // maps 3-4 GiB, where the MMIO target lives
constexpr uint64_t kTss = 0x6000;     // 104-byte TSS + 8 KiB I/O bitmap + 0xff terminator
constexpr uint64_t kTssIoBitmap = 0x68;
constexpr uint64_t kCode = 0x10000;
constexpr uint16_t kPioPort = 0x1234;
constexpr uint64_t kMmioAddr = 0xd0000000;
constexpr uint16_t kCom1 = 0x3f8;
constexpr uint16_t kDebugExit = 0xf4;

enum class Kind { kPio, kMmio, kBootProbe };

struct Case {
  const char* name;
  Kind kind;
  int cpl;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "raw_exit_floor: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(2);
}

int Ioctl(int fd, unsigned long request, const void* arg, const char* what) {
  int r = ::ioctl(fd, request, arg);
  if (r < 0) Die(what);
  return r;
}

// The guest programs. The exit loops are the instructions g++ 12 -O2 emits for the loops in
// tests/guests/bench_exits.cc (PioLoop, MmioLoop), with an endless count, so that at emulated
// CPL0 the floor pays for the same non-exiting instructions per iteration as the VMM guests.
std::vector<uint8_t> GuestCode(Kind kind) {
  constexpr uint8_t kPortLo = kPioPort & 0xff, kPortHi = kPioPort >> 8;
  constexpr uint8_t kComLo = kCom1 & 0xff, kComHi = kCom1 >> 8;
  // One instruction per line, as the disassembly would show it.
  // clang-format off
  switch (kind) {
    case Kind::kPio:
      return {0x66, 0xba, kPortLo, kPortHi,              // mov $0x1234,%dx
              0x48, 0xc7, 0xc7, 0xff, 0xff, 0xff, 0xff,  // mov $-1,%rdi
              0x31, 0xc9,                                // xor %ecx,%ecx
              0xee,                                      // 1: out %al,(%dx)
              0x48, 0x83, 0xc1, 0x01,                    // add $1,%rcx
              0x48, 0x39, 0xcf,                          // cmp %rcx,%rdi
              0x75, 0xf6};                               // jne 1b
    case Kind::kMmio:
      return {0xbe, 0x00, 0x00, 0x00, 0xd0,              // mov $0xd0000000,%esi
              0x48, 0xc7, 0xc7, 0xff, 0xff, 0xff, 0xff,  // mov $-1,%rdi
              0x31, 0xd2,                                // xor %edx,%edx
              0x31, 0xc9,                                // xor %ecx,%ecx
              0x8b, 0x06,                                // 1: mov (%rsi),%eax
              0x48, 0x83, 0xc2, 0x01,                    // add $1,%rdx
              0x48, 0x01, 0xc1,                          // add %rax,%rcx
              0x48, 0x39, 0xd7,                          // cmp %rdx,%rdi
              0x75, 0xf2};                               // jne 1b
    case Kind::kBootProbe:
      return {0x66, 0xba, kComLo, kComHi,      // mov $0x3f8,%dx
              0xb0, '!',                       // mov $'!',%al
              0xee,                            // out %al,(%dx)
              0x66, 0xba, kDebugExit, 0x00,    // mov $0xf4,%dx
              0x31, 0xc0,                      // xor %eax,%eax
              0xef,                            // out %eax,(%dx)
              0xeb, 0xfe};                     // 1: jmp 1b
  }
  // clang-format on
  return {};
}

kvm_segment Segment(uint16_t selector, uint8_t type, int dpl, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = static_cast<uint8_t>(dpl);
  s.db = code ? 0 : 1;  // a 64-bit code segment has L=1, D=0
  s.s = 1;
  s.l = code ? 1 : 0;
  s.g = 1;
  return s;
}

// The guest's memory image: GDT, identity page tables (2 MiB pages, user-accessible at every
// level so CPL3 can reach code and the MMIO target), and the code.
void BuildImage(uint8_t* ram, Kind kind) {
  auto put64 = [ram](uint64_t addr, uint64_t v) { std::memcpy(ram + addr, &v, 8); };
  // Selectors: 0x08 kernel code64, 0x10 kernel data, 0x18 user data, 0x20 user code64.
  put64(kGdt + 0x08, 0x00af9b000000ffff);
  put64(kGdt + 0x10, 0x00cf93000000ffff);
  put64(kGdt + 0x18, 0x00cff3000000ffff);
  put64(kGdt + 0x20, 0x00affb000000ffff);
  constexpr uint64_t kTable = 0x7;       // P | RW | US
  constexpr uint64_t kLargePage = 0x87;  // P | RW | US | PS
  put64(kPml4, kPdpt | kTable);
  put64(kPdpt + 0 * 8, kPdLow | kTable);
  put64(kPdpt + 3 * 8, kPdHole | kTable);
  for (uint64_t i = 0; i < 512; ++i) {
    put64(kPdLow + i * 8, (i << 21) | kLargePage);
    put64(kPdHole + i * 8, ((3ull << 30) + (i << 21)) | kLargePage | 0x18);  // PCD | PWT
  }
  // SDM Vol. 1 19.5.2: the I/O permission bitmap sits at TSS + iomap_base (offset 102); a
  // clear bit allows the port, and the byte after the bitmap must be 0xff.
  uint16_t iomap_base = kTssIoBitmap;
  std::memcpy(ram + kTss + 102, &iomap_base, 2);
  ram[kTss + kTssIoBitmap + 8192] = 0xff;
  std::vector<uint8_t> code = GuestCode(kind);
  std::memcpy(ram + kCode, code.data(), code.size());
}

struct RunTimes {
  double total_ns;   // open /dev/kvm .. VM closed
  double steady_ns;  // from exit `mark` to the last exit (0 when mark == 0)
};

// One whole VM life: create, run until `exits` exits of the expected kind, tear down.
RunTimes RunVm(Kind kind, int cpl, uint64_t exits, uint64_t mark, bool irqchip) {
  using Clock = std::chrono::steady_clock;
  auto start = Clock::now();
  int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) Die("open /dev/kvm");
  int vm = Ioctl(kvm, KVM_CREATE_VM, nullptr, "KVM_CREATE_VM");
  if (irqchip) {
    // What every PC-compatible VMM creates (Vireo and QEMU alike): on this host these two
    // ioctls, and tearing down what they create, cost milliseconds, which the start-up floor
    // should show separately from the bare VM.
    Ioctl(vm, KVM_CREATE_IRQCHIP, nullptr, "KVM_CREATE_IRQCHIP");
    kvm_pit_config pit{};
    pit.flags = KVM_PIT_SPEAKER_DUMMY;
    Ioctl(vm, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");
  }
  void* mem = ::mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) Die("mmap guest RAM");
  auto* ram = static_cast<uint8_t*>(mem);
  BuildImage(ram, kind);
  kvm_userspace_memory_region region{};
  region.slot = 0;
  region.guest_phys_addr = 0;
  region.memory_size = kRamSize;
  region.userspace_addr = reinterpret_cast<uint64_t>(ram);
  Ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
  int vcpu = Ioctl(vm, KVM_CREATE_VCPU, nullptr, "KVM_CREATE_VCPU");
  int run_size = Ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, nullptr, "KVM_GET_VCPU_MMAP_SIZE");
  void* run_map = ::mmap(nullptr, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run_map == MAP_FAILED) Die("mmap kvm_run");
  auto* run = static_cast<kvm_run*>(run_map);

  // The host's CPUID as-is: long mode must be visible to the guest for EFER.LME to stick.
  std::vector<uint8_t> cpuid(sizeof(Cpuid2Header) + kMaxCpuidEntries * sizeof(kvm_cpuid_entry2));
  reinterpret_cast<Cpuid2Header*>(cpuid.data())->nent = kMaxCpuidEntries;
  Ioctl(kvm, kGetSupportedCpuid, cpuid.data(), "KVM_GET_SUPPORTED_CPUID");
  Ioctl(vcpu, kSetCpuid2, cpuid.data(), "KVM_SET_CPUID2");

  kvm_sregs sregs{};
  Ioctl(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
  bool user = cpl == 3;
  sregs.cs = user ? Segment(0x20 | 3, 11, 3, true) : Segment(0x08, 11, 0, true);
  kvm_segment data = user ? Segment(0x18 | 3, 3, 3, false) : Segment(0x10, 3, 0, false);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.gdt.base = kGdt;
  sregs.gdt.limit = 0x27;
  sregs.tr.type = 11;  // busy 64-bit TSS: VM entry insists on one in long mode
  sregs.tr.present = 1;
  sregs.tr.base = kTss;
  sregs.tr.limit = kTssIoBitmap + 8192;
  sregs.cr3 = kPml4;
  sregs.cr4 = 0x20;        // PAE
  sregs.cr0 = 0x80050033;  // PG | WP | NE | ET | MP | PE
  sregs.efer = 0x500;      // LMA | LME
  Ioctl(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
  kvm_regs regs{};
  regs.rip = kCode;
  regs.rsp = 0x8000;
  regs.rflags = 0x2;  // IF=0, IOPL=0: CPL3 port access comes from the TSS I/O bitmap
  Ioctl(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");

  auto mark_time = Clock::now();
  uint64_t seen = 0;
  while (seen < exits) {
    if (::ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      Die("KVM_RUN");
    }
    bool expected = false;
    switch (run->exit_reason) {
      case KVM_EXIT_IO:
        if (kind == Kind::kBootProbe && run->io.port == kCom1) {
          auto* bytes = reinterpret_cast<const char*>(run) + run->io.data_offset;
          if (::write(STDOUT_FILENO, bytes, 1) != 1) Die("write stdout");
          expected = true;
        } else if (kind == Kind::kBootProbe && run->io.port == kDebugExit) {
          expected = true;
        } else {
          expected = kind == Kind::kPio && run->io.port == kPioPort;
        }
        break;
      case KVM_EXIT_MMIO:
        if (kind == Kind::kMmio && run->mmio.phys_addr == kMmioAddr && !run->mmio.is_write) {
          std::memset(run->mmio.data, 0xff, sizeof(run->mmio.data));  // unclaimed: all ones
          expected = true;
        }
        break;
      default:
        break;
    }
    if (!expected) {
      std::fprintf(stderr, "raw_exit_floor: unexpected exit reason %u after %lu exits\n",
                   run->exit_reason, static_cast<unsigned long>(seen));
      std::exit(3);
    }
    ++seen;
    if (seen == mark) mark_time = Clock::now();
  }
  auto steady_end = Clock::now();
  ::munmap(run_map, run_size);
  ::close(vcpu);
  ::close(vm);
  ::munmap(mem, kRamSize);
  ::close(kvm);
  auto end = Clock::now();
  auto ns = [](auto d) { return std::chrono::duration<double, std::nano>(d).count(); };
  return {ns(end - start), mark == 0 ? 0.0 : ns(steady_end - mark_time)};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void PrintResult(const Case& c, uint64_t n1, uint64_t n2, const std::vector<double>& t1,
                 const std::vector<double>& t2, const std::vector<double>& steady) {
  std::vector<double> diff;
  for (size_t i = 0; i < t1.size(); ++i) diff.push_back((t2[i] - t1[i]) / double(n2 - n1));
  std::printf(
      "{\"case\": \"%s\", \"cpl\": %d, \"n1\": %lu, \"n2\": %lu, \"runs\": %zu, "
      "\"ns_per_exit\": %.1f, \"steady_ns_per_exit\": %.1f, \"median_t_n1_ms\": %.3f, "
      "\"median_t_n2_ms\": %.3f}\n",
      c.name, c.cpl, static_cast<unsigned long>(n1), static_cast<unsigned long>(n2), t1.size(),
      Median(diff), Median(steady), Median(t1) / 1e6, Median(t2) / 1e6);
  std::fflush(stdout);
}

struct Options {
  int runs = 11;
  uint64_t n1_cpl0 = 1000, n2_cpl0 = 21000;
  // CPL3 exits cost ~3x CPL0 exits on kvm_pvm, so the same counts keep runs short.
  uint64_t n1_cpl3 = 1000, n2_cpl3 = 21000;
  bool boot_probe = false;
  bool irqchip = false;
  std::string only;  // a case name, or empty for all
};

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto next = [&]() -> uint64_t {
      if (i + 1 >= argc) throw std::invalid_argument(std::string(a) + " needs a value");
      return std::stoull(argv[++i]);
    };
    if (a == "--runs") {
      o.runs = static_cast<int>(next());
    } else if (a == "--cpl0-n") {
      o.n1_cpl0 = next();
      o.n2_cpl0 = next();
    } else if (a == "--cpl3-n") {
      o.n1_cpl3 = next();
      o.n2_cpl3 = next();
    } else if (a == "--case") {
      if (i + 1 >= argc) throw std::invalid_argument("--case needs a value");
      o.only = argv[++i];
    } else if (a == "--boot-probe") {
      o.boot_probe = true;
    } else if (a == "--irqchip") {
      o.irqchip = true;
    } else {
      throw std::invalid_argument("unknown option " + std::string(a));
    }
  }
  if (o.runs < 1 || o.n2_cpl0 <= o.n1_cpl0 || o.n2_cpl3 <= o.n1_cpl3) {
    throw std::invalid_argument("need runs >= 1 and N2 > N1");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = ParseOptions(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "raw_exit_floor: %s\nusage: raw_exit_floor [--runs R] [--cpl0-n N1 N2] "
                 "[--cpl3-n N1 N2] [--case pio_cpl0|pio_cpl3|mmio_cpl0|mmio_cpl3] "
                 "| --boot-probe [--irqchip]\n",
                 e.what());
    return 2;
  }
  if (o.boot_probe) {
    RunVm(Kind::kBootProbe, 0, 2, 0, o.irqchip);
    return 1;  // what a VMM returns for debug-exit 0, so the probe checks all alike
  }
  const Case cases[] = {{"pio_cpl0", Kind::kPio, 0},
                        {"pio_cpl3", Kind::kPio, 3},
                        {"mmio_cpl0", Kind::kMmio, 0},
                        {"mmio_cpl3", Kind::kMmio, 3}};
  for (const Case& c : cases) {
    if (!o.only.empty() && o.only != c.name) continue;
    uint64_t n1 = c.cpl == 3 ? o.n1_cpl3 : o.n1_cpl0;
    uint64_t n2 = c.cpl == 3 ? o.n2_cpl3 : o.n2_cpl0;
    RunVm(c.kind, c.cpl, n1, 0, o.irqchip);  // warm-up: page cache, KVM module paths
    std::vector<double> t1, t2, steady;
    for (int r = 0; r < o.runs; ++r) {
      // Interleaved so slow drift on the host hits both sizes alike.
      t1.push_back(RunVm(c.kind, c.cpl, n1, 0, o.irqchip).total_ns);
      RunTimes big = RunVm(c.kind, c.cpl, n2, n1, o.irqchip);
      t2.push_back(big.total_ns);
      steady.push_back(big.steady_ns / double(n2 - n1));
    }
    PrintResult(c, n1, n2, t1, t2, steady);
  }
  return 0;
}
