// bench_emu: the CPL3 compute suite for the software CPU benchmark (bench/emu_bench.sh): the
// same guest under KVM (native), `--accel emu` and QEMU TCG. "emu.work=" picks one workload,
// "emu.n=" its size:
//   int       xorshift64 steps (ALU and shifts)
//   sse       SSE2 memcpy (MOVDQU) of 64 KiB and an SSE2 strlen (PCMPEQB/PMOVMSKB) of a
//             64 KiB string, n rounds
//   branchy   a bytecode interpreter whose jump table and branches follow random opcodes
//   pagewalk  one read and write per 4 KiB page over 32 MiB mapped with 4 KiB pages, n rounds
//             (every access a TLB miss for a 256-entry TLB: a page walk each)
// Prints "bench_emu: work=W n=N checksum=0x..." (the same on every engine, or one is wrong) and
// debug-exits 0 (status 1); 3 (status 7) for an unknown workload.
#include "runtime.h"

namespace {

constexpr const char* kName = "bench_emu";

bool Equal(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}

uint64_t IntWork(uint64_t n) {
  uint64_t x = 88172645463325252ull;
  for (uint64_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

constexpr uint64_t kBuf = 64 * 1024;
alignas(64) uint8_t src[kBuf];
alignas(64) uint8_t dst[kBuf];

// Guests build with -mgeneral-regs-only: the compiler never uses XMM registers, so the asm
// below needs no XMM clobbers (and may not name them).
uint64_t SseWork(uint64_t n) {
  uint64_t sum = 0;
  for (uint64_t round = 0; round < n; ++round) {
    // memcpy: 16 bytes per MOVDQU pair.
    for (uint64_t i = 0; i < kBuf; i += 64) {
      asm volatile(
          "movdqu (%0), %%xmm0\n movdqu 16(%0), %%xmm1\n movdqu 32(%0), %%xmm2\n"
          "movdqu 48(%0), %%xmm3\n movdqu %%xmm0, (%1)\n movdqu %%xmm1, 16(%1)\n"
          "movdqu %%xmm2, 32(%1)\n movdqu %%xmm3, 48(%1)\n" ::"r"(src + i),
          "r"(dst + i)
          : "memory");
    }
    // strlen: the first zero byte of dst, 16 bytes per compare.
    uint64_t len = 0;
    for (;; len += 16) {
      uint32_t mask;
      asm volatile(
          "pxor %%xmm4, %%xmm4\n movdqu (%1), %%xmm5\n pcmpeqb %%xmm5, %%xmm4\n"
          "pmovmskb %%xmm4, %0\n"
          : "=r"(mask)
          : "r"(dst + len)
          : "memory");
      if (mask != 0) {
        len += static_cast<uint64_t>(__builtin_ctz(mask));
        break;
      }
    }
    sum += len + dst[round % kBuf];
    // Changes the next round's copy; values stay in 1..250, so the only zero is the last byte.
    uint8_t& b = src[round % (kBuf - 1)];
    b = static_cast<uint8_t>(b % 250 + 1);
  }
  return sum;
}

uint64_t BranchyWork(uint64_t n) {
  // Random bytecode: 8 operations on two accumulators, chosen by the program bytes.
  uint8_t program[4096];
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (uint8_t& op : program) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    op = static_cast<uint8_t>(x);
  }
  uint64_t a = 1, b = 2;
  for (uint64_t i = 0; i < n; ++i) {
    const uint8_t op = program[i & 4095];
    switch (op & 7) {
      case 0:
        a += b;
        break;
      case 1:
        b ^= a >> 3;
        break;
      case 2:
        if (a & 1)
          a = a * 3 + 1;
        else
          a >>= 1;
        break;
      case 3:
        b += op;
        break;
      case 4:
        if (a > b)
          a -= b;
        else
          b -= a;
        break;
      case 5:
        a = (a << 7) | (a >> 57);
        break;
      case 6:
        if (op & 0x80) b = ~b;
        break;
      default:
        a ^= b;
        b += 0x9e37;
        break;
    }
  }
  return a ^ (b << 1);
}

// 32 MiB at linear 4 GiB (PML4[0] -> PDPT[4]) in 4 KiB pages onto physical 64-96 MiB.
constexpr uint64_t kWalkLinear = 4ull << 30;
constexpr uint64_t kWalkPhysical = 64ull << 20;
constexpr uint64_t kWalkPages = 8192;
alignas(4096) uint64_t walk_pd[512];
alignas(4096) uint64_t walk_pt[kWalkPages / 512][512];

void MapWalkRegion() {
  constexpr uint64_t kPresentWriteUser = 7;
  for (uint64_t i = 0; i < kWalkPages; ++i) {
    walk_pt[i / 512][i % 512] = (kWalkPhysical + i * 4096) | kPresentWriteUser;
  }
  for (uint64_t t = 0; t < kWalkPages / 512; ++t) {
    walk_pd[t] = reinterpret_cast<uint64_t>(walk_pt[t]) | kPresentWriteUser;
  }
  uint64_t cr3;
  asm volatile("mov %%cr3, %0" : "=r"(cr3));
  auto* pml4 = reinterpret_cast<uint64_t*>(cr3 & ~0xfffull);
  auto* pdpt = reinterpret_cast<uint64_t*>(pml4[0] & 0x000ffffffffff000ull);
  pdpt[4] = reinterpret_cast<uint64_t>(walk_pd) | kPresentWriteUser;
  asm volatile("mov %0, %%cr3" ::"r"(cr3) : "memory");
}

uint64_t PagewalkWork(uint64_t n) {
  auto* base = reinterpret_cast<volatile uint64_t*>(kWalkLinear);
  uint64_t sum = 0;
  for (uint64_t round = 0; round < n; ++round) {
    // A stride of 4 KiB + 64 B: every access a new page, and not all in one cache set.
    for (uint64_t page = 0; page < kWalkPages; ++page) {
      volatile uint64_t* p = base + page * 512 + (page + round) % 8 * 8;
      sum += *p;
      *p = sum ^ page;
    }
  }
  return sum;
}

void EnableSse() {
  // CR0: MP set, EM clear; CR4: OSFXSR | OSXMMEXCPT (SDM Vol. 3 13.1.3).
  uint64_t cr0, cr4;
  asm volatile("mov %%cr0, %0" : "=r"(cr0));
  asm volatile("mov %0, %%cr0" ::"r"((cr0 | 2) & ~uint64_t{4}));
  asm volatile("mov %%cr4, %0" : "=r"(cr4));
  asm volatile("mov %0, %%cr4" ::"r"(cr4 | (3u << 9)));
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  char work[16] = "int";
  rt::CmdlineValue(info, "emu.work", work, sizeof(work));
  const uint64_t n = rt::CmdlineNumber(info, "emu.n", 1000000);
  uint64_t checksum = 0;
  if (Equal(work, "int")) {
    checksum = rt::RunAtCpl3(IntWork, n);
  } else if (Equal(work, "sse")) {
    EnableSse();
    for (uint64_t i = 0; i < kBuf - 1; ++i) src[i] = static_cast<uint8_t>(i % 251 + 1);
    checksum = rt::RunAtCpl3(SseWork, n);
  } else if (Equal(work, "branchy")) {
    checksum = rt::RunAtCpl3(BranchyWork, n);
  } else if (Equal(work, "pagewalk")) {
    MapWalkRegion();
    checksum = rt::RunAtCpl3(PagewalkWork, n);
  } else {
    rt::Fail(kName, 3, "unknown emu.work (int, sse, branchy or pagewalk)");
  }
  rt::Printf("bench_emu: work=%s n=%lu checksum=%#lx\n", work, n, checksum);
  return 0;
}
