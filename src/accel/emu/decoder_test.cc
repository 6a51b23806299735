// Decoder unit tests: hand-checked encodings (SDM Vol. 2 examples) for each field, then
// GNU objdump as a length oracle over thousands of generated instructions.
#include "accel/emu/decoder.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "accel/emu/opcode_table.h"

namespace vireo::emu {
namespace {

struct Decoded {
  DecodeStatus status;
  DecodedInsn insn;
};

Decoded Decode64(std::vector<uint8_t> bytes, CpuMode mode = CpuMode::kLong64) {
  Decoded d{};
  d.status = Decoder::Decode(bytes.data(), bytes.size(), mode, &d.insn);
  return d;
}

TEST(Decoder, SimpleRegisterForms) {
  auto d = Decode64({0x48, 0x89, 0xc3});  // mov rbx, rax
  ASSERT_EQ(d.status, DecodeStatus::kOk);
  EXPECT_EQ(d.insn.length(), 3);
  EXPECT_EQ(d.insn.opcode(), 0x89);
  EXPECT_EQ(d.insn.operand_size(), kSize64);
  EXPECT_TRUE(d.insn.is_reg_form());
  EXPECT_EQ(d.insn.reg(), 0);  // rax
  EXPECT_EQ(d.insn.rm(), 3);   // rbx

  d = Decode64({0x45, 0x01, 0xc8});  // add r8d, r9d
  ASSERT_EQ(d.status, DecodeStatus::kOk);
  EXPECT_EQ(d.insn.reg(), 9);
  EXPECT_EQ(d.insn.rm(), 8);
  EXPECT_EQ(d.insn.operand_size(), kSize32);

  d = Decode64({0x66, 0x01, 0xc8});  // add ax, cx
  EXPECT_EQ(d.insn.operand_size(), kSize16);
  d = Decode64({0x66, 0x48, 0x01, 0xc8});  // REX.W beats 66
  EXPECT_EQ(d.insn.operand_size(), kSize64);
  d = Decode64({0x00, 0xc8});  // add al, cl
  EXPECT_EQ(d.insn.operand_size(), kSize8);
}

TEST(Decoder, SibAndDisplacements) {
  // mov rax, [rbx + rcx*8 + 0x12345678]
  auto d = Decode64({0x48, 0x8b, 0x84, 0xcb, 0x78, 0x56, 0x34, 0x12});
  ASSERT_EQ(d.status, DecodeStatus::kOk);
  EXPECT_EQ(d.insn.length(), 8);
  EXPECT_EQ(d.insn.base(), 3);
  EXPECT_EQ(d.insn.index(), 1);
  EXPECT_EQ(d.insn.scale_log(), 3);
  EXPECT_EQ(d.insn.disp(), 0x12345678);
  EXPECT_EQ(d.insn.segment(), kDs);

  // mov eax, [rsp - 8]: SIB without index, SS default segment
  d = Decode64({0x8b, 0x44, 0x24, 0xf8});
  ASSERT_EQ(d.status, DecodeStatus::kOk);
  EXPECT_EQ(d.insn.base(), 4);
  EXPECT_EQ(d.insn.index(), kNoReg);
  EXPECT_EQ(d.insn.disp(), -8);
  EXPECT_EQ(d.insn.segment(), kSs);

  // mov eax, [r12 + r12*1]: REX.X makes index 12 valid, REX.B base 12; DS (not SS) for r12
  d = Decode64({0x43, 0x8b, 0x04, 0x24});
  EXPECT_EQ(d.insn.base(), 12);
  EXPECT_EQ(d.insn.index(), 12);
  EXPECT_EQ(d.insn.segment(), kDs);

  // mov eax, [disp32] via SIB with no base (base=101, mod=00)
  d = Decode64({0x8b, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00});
  EXPECT_EQ(d.insn.length(), 7);
  EXPECT_EQ(d.insn.base(), kNoReg);
  EXPECT_EQ(d.insn.index(), kNoReg);
  EXPECT_EQ(d.insn.disp(), 0x1000);

  // mov eax, [r13]: needs mod=01 disp8=0 (r13 base with mod=00 is disp32-no-base)
  d = Decode64({0x41, 0x8b, 0x45, 0x00});
  EXPECT_EQ(d.insn.base(), 13);
  EXPECT_EQ(d.insn.length(), 4);
}

TEST(Decoder, RipRelativeOnlyIn64BitMode) {
  auto d = Decode64({0x8b, 0x05, 0x10, 0x00, 0x00, 0x00});
  ASSERT_EQ(d.status, DecodeStatus::kOk);
  EXPECT_TRUE(d.insn.rip_relative());
  EXPECT_EQ(d.insn.disp(), 0x10);
  d = Decode64({0x8b, 0x05, 0x10, 0x00, 0x00, 0x00}, CpuMode::kProtected32);
  EXPECT_FALSE(d.insn.rip_relative());
  EXPECT_EQ(d.insn.base(), kNoReg);
}

TEST(Decoder, SixteenBitAddressing) {
  // mov ax, [bp+si+0x10] in real mode: SS default
  auto d = Decode64({0x8b, 0x42, 0x10}, CpuMode::kReal16);
  ASSERT_EQ(d.status, DecodeStatus::kOk);
  EXPECT_EQ(d.insn.length(), 3);
  EXPECT_EQ(d.insn.base(), 5);
  EXPECT_EQ(d.insn.index(), 6);
  EXPECT_EQ(d.insn.segment(), kSs);
  EXPECT_EQ(d.insn.operand_size(), kSize16);
  EXPECT_EQ(d.insn.address_size(), kSize16);
  // mov ax, [0x1234]: mod=00 rm=110 is disp16
  d = Decode64({0x8b, 0x06, 0x34, 0x12}, CpuMode::kReal16);
  EXPECT_EQ(d.insn.length(), 4);
  EXPECT_EQ(d.insn.base(), kNoReg);
  EXPECT_EQ(d.insn.disp(), 0x1234);
  // 67 switches real mode to 32-bit addressing: mov ax, [eax*2+0] with SIB
  d = Decode64({0x67, 0x8b, 0x04, 0x45, 0, 0, 0, 0}, CpuMode::kReal16);
  EXPECT_EQ(d.insn.length(), 8);
  EXPECT_EQ(d.insn.index(), 0);
  EXPECT_EQ(d.insn.scale_log(), 1);
  // 66 in real mode: 32-bit operand, Iz is 4 bytes
  d = Decode64({0x66, 0xb8, 1, 2, 3, 4}, CpuMode::kReal16);
  EXPECT_EQ(d.insn.length(), 6);
  EXPECT_EQ(d.insn.imm(), 0x04030201u);
}

TEST(Decoder, Immediates) {
  auto d = Decode64({0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8});  // mov rax, imm64
  ASSERT_EQ(d.status, DecodeStatus::kOk);
  EXPECT_EQ(d.insn.length(), 10);
  EXPECT_EQ(d.insn.imm(), 0x0807060504030201u);
  d = Decode64({0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff});  // mov rax, -1 (imm32 sign-ext)
  EXPECT_EQ(d.insn.imm(), ~0ull);
  d = Decode64({0x83, 0xc0, 0x80});  // add eax, -128
  EXPECT_EQ(d.insn.imm(), static_cast<uint64_t>(-128));
  d = Decode64({0xa1, 1, 2, 3, 4, 5, 6, 7, 8});  // mov eax, moffs64
  EXPECT_EQ(d.insn.length(), 9);
  EXPECT_TRUE(d.insn.has_moffs());
  EXPECT_TRUE(d.insn.has_memory_operand());
  EXPECT_EQ(d.insn.imm(), 0x0807060504030201u);
  d = Decode64({0x67, 0xa1, 1, 2, 3, 4});  // moffs32 with 67
  EXPECT_EQ(d.insn.length(), 6);
  d = Decode64({0xc8, 0x10, 0x00, 0x02});  // enter 16, 2
  EXPECT_EQ(d.insn.length(), 4);
  EXPECT_EQ(d.insn.imm(), 16u);
  EXPECT_EQ(d.insn.imm2(), 2);
  d = Decode64({0xf7, 0xc0, 1, 0, 0, 0});  // test eax, 1: group 3 /0 has Iz
  EXPECT_EQ(d.insn.length(), 6);
  d = Decode64({0xf7, 0xd8});  // neg eax: /3 has none
  EXPECT_EQ(d.insn.length(), 2);
  d = Decode64({0x66, 0x68, 0x34, 0x12});  // push imm16
  EXPECT_EQ(d.insn.length(), 4);
  EXPECT_EQ(d.insn.operand_size(), kSize16);
  d = Decode64({0x68, 1, 0, 0, 0});  // push imm32 (64-bit operation)
  EXPECT_EQ(d.insn.operand_size(), kSize64);
  d = Decode64({0x0f, 0x3a, 0x0f, 0xc1, 0x08});  // palignr xmm0, xmm1, 8
  EXPECT_EQ(d.insn.length(), 5);
  EXPECT_EQ(d.insn.opcode(), kMap0F3A | 0x0f);
  d = Decode64({0xe9, 0xfb, 0xff, 0xff, 0xff});  // jmp rel32
  EXPECT_EQ(d.insn.imm(), static_cast<uint64_t>(-5));
  EXPECT_EQ(d.insn.operand_size(), kSize64);
}

TEST(Decoder, PrefixRules) {
  // REX followed by a legacy prefix is ignored: 48 66 01 c8 is add ax, cx.
  auto d = Decode64({0x48, 0x66, 0x01, 0xc8});
  ASSERT_EQ(d.status, DecodeStatus::kOk);
  EXPECT_FALSE(d.insn.rex());
  EXPECT_EQ(d.insn.operand_size(), kSize16);
  // Two REX: the last one counts.
  d = Decode64({0x48, 0x41, 0x01, 0xc8});
  EXPECT_EQ(d.insn.rex_bits(), 0x41);
  EXPECT_EQ(d.insn.operand_size(), kSize32);
  EXPECT_EQ(d.insn.rm(), 8);
  // Last segment override wins; ES/CS/SS/DS are ignored in 64-bit mode.
  d = Decode64({0x64, 0x65, 0x8b, 0x00});
  EXPECT_EQ(d.insn.segment(), kGs);
  d = Decode64({0x64, 0x2e, 0x8b, 0x00});
  EXPECT_EQ(d.insn.segment(), kFs);
  d = Decode64({0x2e, 0x8b, 0x00}, CpuMode::kProtected32);
  EXPECT_EQ(d.insn.segment(), kCs);
  // F2/F3: the last one wins and is the mandatory prefix over 66.
  d = Decode64({0xf2, 0xf3, 0xa4});
  EXPECT_TRUE(d.insn.rep());
  EXPECT_FALSE(d.insn.repne());
  d = Decode64({0xf3, 0x66, 0x0f, 0x6f, 0xc1});
  EXPECT_EQ(d.insn.mandatory_prefix(), 2);
  d = Decode64({0x66, 0x0f, 0x6f, 0xc1});
  EXPECT_EQ(d.insn.mandatory_prefix(), 1);
  // 14 redundant prefixes + a 1-byte opcode is 15 bytes: fine. One more is #GP.
  std::vector<uint8_t> ok(14, 0x66);
  ok.push_back(0x90);
  EXPECT_EQ(Decode64(ok).status, DecodeStatus::kOk);
  EXPECT_EQ(Decode64(ok).insn.length(), 15);
  std::vector<uint8_t> too_long(15, 0x66);
  too_long.push_back(0x90);
  EXPECT_EQ(Decode64(too_long).status, DecodeStatus::kTooLong);
  // A valid body pushed past 15 bytes by prefixes: 11 prefixes + 5-byte insn.
  std::vector<uint8_t> long_body(11, 0x2e);
  for (uint8_t b : {0x05, 1, 2, 3, 4}) long_body.push_back(b);
  EXPECT_EQ(Decode64(long_body).status, DecodeStatus::kTooLong);
  // Running out of bytes before 15 is not #GP: the caller fetches more.
  EXPECT_EQ(Decode64({0x48, 0x8b}).status, DecodeStatus::kTruncated);
  EXPECT_EQ(Decode64({0x66, 0x66}).status, DecodeStatus::kTruncated);
}

TEST(Decoder, UndefinedAndModeInvalidOpcodes) {
  for (uint8_t op : {0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x60, 0x61,
                     0x9a, 0xce, 0xd4, 0xd5, 0xd6, 0xea}) {
    EXPECT_EQ(Decode64({op, 0, 0, 0, 0, 0, 0, 0}).status, DecodeStatus::kUndefined) << int(op);
  }
  EXPECT_EQ(Decode64({0x06}, CpuMode::kProtected32).status, DecodeStatus::kOk);  // push es
  EXPECT_EQ(Decode64({0x40}, CpuMode::kProtected32).insn.opcode(), 0x40);        // inc eax
  EXPECT_EQ(Decode64({0x0f, 0x0b}).status, DecodeStatus::kOk);                   // ud2 decodes
  EXPECT_EQ(Decode64({0x0f, 0x04}).status, DecodeStatus::kUndefined);
  EXPECT_EQ(Decode64({0xff, 0xf8}).status, DecodeStatus::kUndefined);  // FF /7
  EXPECT_EQ(Decode64({0xfe, 0xd0}).status, DecodeStatus::kUndefined);  // FE /2
  // LOCK: only read-modify-write with a memory destination.
  EXPECT_EQ(Decode64({0xf0, 0x01, 0x03}).status, DecodeStatus::kOk);         // lock add [rbx],eax
  EXPECT_EQ(Decode64({0xf0, 0x01, 0xc3}).status, DecodeStatus::kUndefined);  // register dest
  EXPECT_EQ(Decode64({0xf0, 0x39, 0x03}).status, DecodeStatus::kUndefined);  // cmp
  EXPECT_EQ(Decode64({0xf0, 0x8b, 0x03}).status, DecodeStatus::kUndefined);  // mov
  EXPECT_EQ(Decode64({0xf0, 0x0f, 0xc7, 0x0b}).status, DecodeStatus::kOk);   // cmpxchg8b
  EXPECT_EQ(Decode64({0xf0, 0x83, 0x3b, 0x01}).status, DecodeStatus::kUndefined);  // cmp imm
}

TEST(Decoder, MovCrIgnoresMod) {
  // mov rax, cr0 encoded with mod=00 and rm=100: no SIB follows.
  auto d = Decode64({0x0f, 0x20, 0x04});
  ASSERT_EQ(d.status, DecodeStatus::kOk);
  EXPECT_EQ(d.insn.length(), 3);
  EXPECT_TRUE(d.insn.is_reg_form());
  EXPECT_EQ(d.insn.rm(), 4);
}

// --- objdump as a length oracle ---------------------------------------------------------

bool IsLegacyPrefix(uint8_t b) {
  switch (b) {
    case 0x26:
    case 0x2e:
    case 0x36:
    case 0x3e:
    case 0x64:
    case 0x65:
    case 0x66:
    case 0x67:
    case 0xf0:
    case 0xf2:
    case 0xf3:
      return true;
    default:
      return false;
  }
}

// Random but plausible instructions: prefixes, maybe REX, an opcode from any map, and random
// tail bytes for ModRM/SIB/displacement/immediate.
std::vector<uint8_t> RandomInsn(std::mt19937_64& rng) {
  static constexpr uint8_t kPrefixes[] = {0x66, 0x67, 0xf2, 0xf3, 0x2e, 0x3e, 0x64, 0x65, 0xf0};
  std::vector<uint8_t> b;
  int nprefix = rng() % 4 == 0 ? static_cast<int>(rng() % 4) : 0;
  for (int i = 0; i < nprefix; ++i) b.push_back(kPrefixes[rng() % std::size(kPrefixes)]);
  if (rng() % 2) b.push_back(0x40 | (rng() & 0xf));
  switch (rng() % 8) {
    case 0:
    case 1:
    case 2:
    case 3: {
      // Not a second REX or a prefix after the REX: objdump then drops every earlier prefix as
      // "stray", the CPU drops only the REX and keeps 66/67 (see PrefixRules): no oracle there.
      uint8_t op;
      do op = rng() & 0xff;
      while ((op & 0xf0) == 0x40 || IsLegacyPrefix(op));
      b.push_back(op);
      break;
    }
    case 4:
    case 5:
      b.push_back(0x0f);
      b.push_back(rng() & 0xff);
      break;
    case 6:
      b.push_back(0x0f);
      b.push_back(0x38);
      b.push_back(rng() & 0xff);
      break;
    default:
      b.push_back(0x0f);
      b.push_back(0x3a);
      b.push_back(rng() & 0xff);
      break;
  }
  while (b.size() < 15) b.push_back(rng() & 0xff);
  return b;
}

// Opcodes whose length objdump and this CPU may legitimately disagree on, or that we decode
// as #UD on purpose (VEX/EVEX/XOP, 3DNow!, SSE4a, VMX): skipped by the oracle.
bool OracleSkips(const DecodedInsn& insn) {
  uint16_t op = insn.opcode();
  // 66-prefixed near branches: AMD (this CPU) takes rel16, objdump's default follows Intel.
  if (DecodeTable()[op].branch64 && insn.opsize_prefix() && !insn.rex_w()) return true;
  if (op == 0xff && insn.opsize_prefix() && (insn.group_op() == 2 || insn.group_op() == 4))
    return true;
  return false;
}

// Runs the oracle for one mode; objdump's machine name for it.
void RunObjdumpOracle(CpuMode mode, const char* machine) {
  if (std::system("objdump --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "no objdump";
  std::mt19937_64 rng(12345);
  constexpr int kCases = 20000;
  constexpr size_t kSlot = 32;
  std::vector<uint8_t> image;
  std::vector<std::vector<uint8_t>> cases;
  std::vector<int> lengths;
  int decoded = 0;
  while (static_cast<int>(cases.size()) < kCases) {
    auto bytes = RandomInsn(rng);
    DecodedInsn insn;
    if (Decoder::Decode(bytes.data(), bytes.size(), mode, &insn) != DecodeStatus::kOk) continue;
    if (OracleSkips(insn)) continue;
    ++decoded;
    bytes.resize(insn.length());
    cases.push_back(bytes);
    lengths.push_back(insn.length());
    size_t start = image.size();
    image.insert(image.end(), bytes.begin(), bytes.end());
    image.resize(start + kSlot, 0x90);
  }
  char path[] = "/tmp/vireo-decoder-oracle-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, image.data(), image.size()), static_cast<ssize_t>(image.size()));
  ::close(fd);
  std::string cmd = fmt::format("objdump -D -b binary -m {} --insn-width=16 {}", machine, path);
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  // objdump's instruction starts and texts, in address order.
  std::vector<std::pair<long, std::string>> lines;
  char line[512];
  while (std::fgets(line, sizeof(line), pipe)) {
    char* colon = std::strchr(line, ':');
    if (!colon || line[0] != ' ') continue;
    char* end = nullptr;
    long addr = std::strtol(line, &end, 16);
    if (end != colon) continue;
    lines.emplace_back(addr, line);
  }
  ::pclose(pipe);
  ::unlink(path);
  lines.emplace_back(static_cast<long>(image.size()), "end");

  // objdump prints prefixes it considers stray (e.g. "rex.W", "data16", "fs", "lock") as
  // instructions of their own; such lines may precede the instruction that ends where ours does.
  auto prefix_only = [](const std::string& text) {
    size_t tab = text.rfind('\t');
    std::string rest = tab == std::string::npos ? text : text.substr(tab + 1);
    size_t pos = 0;
    while (pos < rest.size()) {
      size_t next = rest.find_first_of(" \n", pos);
      if (next == std::string::npos) next = rest.size();
      std::string token = rest.substr(pos, next - pos);
      pos = next + 1;
      if (token.empty()) continue;
      bool known = token.rfind("rex", 0) == 0;
      for (const char* p : {"data16", "addr32", "lock", "repz", "repnz", "rep", "fs", "gs", "cs",
                            "ds", "es", "ss", "bnd", "notrack"}) {
        known = known || token == p;
      }
      if (!known) return false;
    }
    return true;
  };
  int compared = 0, mismatches = 0;
  size_t li = 0;
  for (int i = 0; i < kCases; ++i) {
    const long start = static_cast<long>(i * kSlot);
    while (li < lines.size() && lines[li].first < start) ++li;
    if (li >= lines.size() || lines[li].first != start) continue;  // objdump out of sync
    // Walk objdump's lines covering [start, start + length): all but the last must be
    // stray prefixes, and one must end exactly where ours does.
    const long our_end = start + lengths[i];
    size_t j = li;
    bool bad = false, stray_ok = true;
    while (j + 1 < lines.size() && lines[j].first < our_end) {
      if (lines[j].second.find("(bad)") != std::string::npos) bad = true;
      if (lines[j + 1].first < our_end && !prefix_only(lines[j].second)) stray_ok = false;
      ++j;
    }
    if (bad) continue;
    const long their_end = lines[j].first;
    ++compared;
    if (their_end != start + lengths[i] || !stray_ok) {
      if (++mismatches <= 20) {
        std::string hex;
        for (uint8_t b : cases[i]) hex += fmt::format("{:02x} ", b);
        ADD_FAILURE() << "ours " << lengths[i] << " objdump ends at +" << (their_end - start)
                      << ": " << hex << "| " << lines[li].second;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(compared, kCases / 2) << "too few cases reached the oracle";
  std::printf("objdump oracle (%s): %d generated, %d compared, %d mismatches\n", machine, decoded,
              compared, mismatches);
}

TEST(DecoderOracle, LengthsMatchObjdump64) { RunObjdumpOracle(CpuMode::kLong64, "i386:x86-64"); }
TEST(DecoderOracle, LengthsMatchObjdump32) { RunObjdumpOracle(CpuMode::kProtected32, "i386"); }
TEST(DecoderOracle, LengthsMatchObjdump16) { RunObjdumpOracle(CpuMode::kReal16, "i8086"); }

}  // namespace
}  // namespace vireo::emu
