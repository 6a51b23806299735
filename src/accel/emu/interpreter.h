// The interpreter: fetch, decode, dispatch through one dense table of plain function
// pointers indexed by opcode, no allocation and no virtual call per instruction. Handlers
// live in insn_*.cc, one instruction group per file, and reach operands through the helpers
// here. An instruction either completes (registers, memory and RIP updated) or faults with
// no architectural effect except what the SDM allows (string iterations already done).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>

#include "accel/emu/block_cache.h"
#include "accel/emu/code_tracker.h"
#include "accel/emu/cpu.h"
#include "accel/emu/decode_cache.h"
#include "accel/emu/decoder.h"
#include "accel/emu/dirty_log.h"
#include "accel/emu/mmu.h"
#include "memory/guest_memory.h"

namespace vireo::emu {

enum class StepStatus : uint8_t {
  kOk,             // instruction retired
  kException,      // fault/trap pending: see Interpreter::exception()
  kHalt,           // HLT retired
  kIo,             // IN/OUT: see io(); OUT retired, IN completes through CompleteIn()
  kMmio,           // access outside RAM: see mmio(); a write has retired, a read has not
  kUnimplemented,  // a defined instruction this CPU does not emulate yet
  kShutdown,       // triple fault (delivery mode only): the VM shuts down, as on KVM
};

// Architectural exception vectors (SDM Vol. 3 6.3.1).
enum Vector : uint8_t {
  kDivideError = 0,
  kDebug = 1,
  kBreakpoint = 3,
  kOverflow = 4,
  kInvalidOpcode = 6,
  kDeviceNotAvailable = 7,
  kDoubleFault = 8,
  kInvalidTss = 10,
  kSegmentNotPresent = 11,
  kStackFault = 12,
  kGeneralProtection = 13,
  kPageFault = 14,
  kBoundRange = 5,
  kMathFault = 16,  // #MF: x87 floating-point error
  kAlignmentCheck = 17,
  kSimdFault = 19,  // #XM: SIMD floating-point exception
};

// How an event reaches the IDT (SDM Vol. 3 6.5, 6.12.1.1): faults return to the faulting
// instruction; traps and software interrupts to the next one, and INT n/INT3/INTO also
// check the gate's DPL against CPL; external interrupts set EXT in error codes.
enum class EventKind : uint8_t { kFault, kTrap, kSoftware, kExternal };

struct Exception {
  uint8_t vector = 0;
  bool has_error_code = false;
  uint32_t error_code = 0;
  EventKind kind = EventKind::kFault;
};

struct IoRequest {
  bool is_write = false;
  uint16_t port = 0;
  uint8_t size = 0;
  uint64_t data = 0;  // OUT's value
  uint8_t reg = 0;    // IN: destination is always rAX
};

struct MmioRequest {
  bool is_write = false;
  uint64_t address = 0;
  uint8_t size = 0;
  uint64_t data = 0;
};

// What CPUID and RDTSC answer: a narrow source so tests and the accelerator choose it.
struct CpuEnvironment {
  virtual ~CpuEnvironment() = default;
  virtual void Cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) = 0;
  virtual uint64_t ReadTsc() = 0;
  // MSRs of the local APIC, which lives outside the CPU (IA32_TSC_DEADLINE, x2APIC): false when the
  // environment has none (#GP). `tsc` is the guest's TSC now.
  virtual bool ReadApicMsr(uint32_t /*index*/, uint64_t* /*value*/) { return false; }
  virtual bool WriteApicMsr(uint32_t /*index*/, uint64_t /*value*/, uint64_t /*tsc*/) {
    return false;
  }
  // IA32_APIC_BASE took a new value (a valid one: the CPU checks it).
  virtual void ApicBaseChanged(uint64_t /*apic_base*/) {}
};

// Whether a data access of `len` bytes at `offset` through `seg` passes the legacy-mode
// segment checks: null (unusable) selector, type (no writes to code or read-only data, no
// reads of execute-only code: protected mode only), limit with expand-down (SDM Vol. 3 5.3).
bool SegmentAllows(const CpuState& state, Seg seg, uint64_t offset, size_t len, Access access);

using HandlerTable = std::array<Handler, kOpcodeCount>;

class Interpreter {
 public:
  Interpreter(CpuState& state, const GuestMemory& memory, CpuEnvironment& env)
      : state_(state), memory_(memory), env_(env) {}

  // Executes one instruction. With exception delivery on, a fault or trap is delivered
  // through the IDT (the step then returns kOk, or kShutdown on a triple fault); off (the
  // default, used by the differential harness), it is returned as kException.
  StepStatus Step();
  void set_deliver_exceptions(bool on) { deliver_ = on; }
  // Delivers an external interrupt now (the caller checked InterruptWindowOpen()).
  StepStatus InjectInterrupt(uint8_t vector);
  // IF set and no STI/MOV SS shadow: an external interrupt may be taken before the next step.
  bool InterruptWindowOpen() const { return state_.flags.ifl() && !state_.interrupt_shadow; }
  // Delivers an NMI through IDT vector 2 and blocks further NMIs until an IRET.
  StepStatus InjectNmi();
  bool NmiWindowOpen() const { return !state_.nmi_blocked && !state_.interrupt_shadow; }
  // Executes until something other than kOk, or `max` instructions; counts retired ones.
  // 64-bit code runs by decoded blocks (block_cache.h) unless they are turned off; the
  // architectural result is the same either way.
  StepStatus Run(uint64_t max, uint64_t* retired);
  void set_blocks_enabled(bool on) { blocks_enabled_ = on; }

  const Exception& exception() const { return exception_; }
  const IoRequest& io() const { return io_; }
  const MmioRequest& mmio() const { return mmio_; }

  CpuState& state() { return state_; }
  const GuestMemory& memory() const { return memory_; }

  // --- Helpers for handlers -------------------------------------------------------------
  // Registers by ModRM number and size; 8-bit numbers 4-7 are AH..BH without REX.
  // Inline (below): they run several times per instruction.
  uint64_t Reg(int reg, int size_log, bool rex) const;
  void SetReg(int reg, int size_log, bool rex, uint64_t value);
  uint64_t Gpr(int reg, int size_log) const { return state_.gpr[reg] & SizeMask(size_log); }
  void SetGpr(int reg, int size_log, uint64_t value) { SetReg(reg, size_log, true, value); }

  // The effective address (offset in its segment) of a ModRM/moffs memory operand.
  uint64_t EffectiveAddress(const DecodedInsn& insn) const;
  // Memory through a segment: false means an exception or MMIO exit is pending.
  // Inline (below): a 64-bit access within one RAM page that the TLB already holds, with
  // the rights for it, is a copy; anything else takes the full path (ReadSlow/WriteSlow).
  bool Read(Seg seg, uint64_t offset, int size_log, uint64_t* value, int asize = kSize64);
  bool Write(Seg seg, uint64_t offset, int size_log, uint64_t value, int asize = kSize64);
  // Memory operands wider than 8 bytes (SSE m128, the FXSAVE image): all or nothing.
  bool ReadBytes(Seg seg, uint64_t offset, std::span<uint8_t> bytes, int asize = kSize64);
  bool WriteBytes(Seg seg, uint64_t offset, std::span<const uint8_t> bytes, int asize = kSize64);
  // The r/m operand (register or memory) of `insn`, size by `size_log`.
  bool ReadRm(const DecodedInsn& insn, int size_log, uint64_t* value);
  bool WriteRm(const DecodedInsn& insn, int size_log, uint64_t value);
  // Stack with the current stack size (64-bit in long mode).
  bool Push(int size_log, uint64_t value);
  bool Pop(int size_log, uint64_t* value);
  int StackSizeLog() const;

  // Exceptions and exits.
  StepStatus Raise(uint8_t vector);
  StepStatus Raise(uint8_t vector, uint32_t error_code);
  // INT n / INT3 / INTO / INT1: delivered with RIP past the instruction.
  StepStatus RaiseSoftware(uint8_t vector, EventKind kind) {
    exception_ = {vector, false, 0, kind};
    return StepStatus::kException;
  }
  // Reads/writes at a linear address as an implicit supervisor access (descriptor tables,
  // the TSS, the exception stack frame): SDM Vol. 3 4.6.1.
  bool SystemRead(uint64_t linear, void* bytes, size_t len);
  bool SystemWrite(uint64_t linear, const void* bytes, size_t len);
  // Reads the 8-byte GDT/LDT descriptor of `selector`; #GP(selector) when out of limits.
  bool ReadDescriptor(uint16_t selector, uint64_t* descriptor);
  // Loads CS (far transfers) from a code descriptor: 64-bit or compatibility code.
  static accel::Segment CodeSegmentFrom(uint16_t selector, uint64_t descriptor);
  StepStatus Halt() { return StepStatus::kHalt; }
  StepStatus Unimplemented() { return StepStatus::kUnimplemented; }
  StepStatus IoExit(const IoRequest& io) {
    io_ = io;
    return StepStatus::kIo;
  }
  // Finishes an IN after an kIo exit: the handler's data goes to AL/AX/EAX, RIP advances.
  void CompleteIn(uint64_t data);
  // Answers the MMIO read of a kMmio read exit. The instruction has not retired: the next
  // Step runs it again from the start and its MMIO reads, in order, are answered from the
  // data given so far (as KVM's emulator does), so it completes exactly once.
  void CompleteMmioRead(uint64_t data);
  // An instruction is between an MMIO read exit and its completion: no event may be
  // delivered before it retires.
  bool instruction_in_flight() const { return mmio_reads_count_ != 0; }
  // The instruction in progress has reached MMIO: a REP string instruction stops after this
  // iteration, so each exit carries one access.
  bool touched_mmio() const { return mmio_reads_used_ != 0 || mmio_write_pending_; }
  // The status a failed Read/Write left (exception or MMIO).
  StepStatus MemoryFault() const { return fault_status_; }

  // RIP of the next instruction; branches overwrite it (masked by operand size on retire).
  uint64_t next_rip() const { return next_rip_; }
  void Branch(uint64_t target, int size_log);
  // A taken branch from inside a decoded block (a specialized Jcc, which does not end its
  // block): the block is left after this instruction.
  void BranchOutOfBlock(uint64_t target) {
    next_rip_ = target;
    leave_block_ = true;
  }
  CpuEnvironment& env() { return env_; }
  // Software TLB maintenance (CR0/CR3/CR4 writes, INVLPG): all entries, or all but global.
  void FlushTlb(bool include_global) { tlb_.Flush(include_global); }
  void FlushTlbPage(uint64_t linear) { tlb_.FlushPage(linear); }
  void FlushDecodeCache() { decoded_.Clear(); }
  // The VM's cross-vCPU code tracker (code_tracker.h), with more than one vCPU.
  void set_code_tracker(CodeTracker* tracker) {
    code_tracker_ = tracker;
    code_generation_ = tracker ? tracker->generation() : 0;
  }
  // Drops this vCPU's decodes if another vCPU stored to code since the last look: at slice
  // boundaries and serializing instructions.
  void SyncCode() {
    if (code_tracker_ && code_tracker_->generation() != code_generation_) {
      code_generation_ = code_tracker_->generation();
      decoded_.Clear();
    }
  }
  // A guest store by this vCPU to `page` (its own decodes are already dropped): tells the
  // other vCPUs. When this vCPU had seen every generation before the one its store starts,
  // it has seen that one too, and keeps its decodes at the next SyncCode.
  void NoteOwnWrite(uint64_t page) {
    uint64_t before;
    if (code_tracker_ && code_tracker_->NoteWrite(page, &before) && before == code_generation_)
      code_generation_ = before + 1;
  }
  const Tlb& tlb() const { return tlb_; }
  // Guest memory written outside this interpreter (DMA, the VMM, another vCPU, a test
  // patching code): drops cached decodes of [physical, physical + len). Stores made by the
  // guest through this interpreter do this themselves.
  void NotifyExternalWrite(uint64_t physical, uint64_t len);
  // Guest stores to RAM are marked here when dirty tracking is on (null: not tracked).
  void set_dirty_log(DirtyLog* log) { dirty_log_ = log; }

  static const HandlerTable& Table();
  // A LOCKed instruction (or XCHG with memory) inside a block: the generic handler with the
  // locked operand set up, and a retry that retires nothing (next RIP left at RIP).
  static StepStatus RunLocked(Interpreter& cpu, const DecodedInsn& insn);
  // LOCK, and XCHG with memory (always locked): the operand's update is a host CAS.
  static bool IsLocked(const DecodedInsn& insn) {
    return insn.lock() || ((insn.opcode() == 0x86 || insn.opcode() == 0x87) && !insn.is_reg_form());
  }

 private:
  bool ReadSlow(Seg seg, uint64_t offset, int size_log, uint64_t* value, int asize);
  bool WriteSlow(Seg seg, uint64_t offset, int size_log, uint64_t value, int asize);
  // The host bytes of a data access that needs none of the full path: 64-bit mode, no
  // alignment check due, within one page, a TLB hit allowing the access (a write also needs
  // the D bit already set), RAM. Null otherwise (the full path decides).
  uint8_t* FastHost(Seg seg, uint64_t offset, int size_log, int asize, Access access,
                    uint64_t* physical) const;
  // Copies guest bytes at `linear`; false with the fault (or MMIO exit) recorded.
  bool LinearRead(uint64_t linear, uint8_t* bytes, size_t len, enum Access access);
  bool LinearWrite(uint64_t linear, const uint8_t* bytes, size_t len);
  // A read that missed RAM: answered from the replayed MMIO reads, or an MMIO exit.
  bool ReadMmio(uint64_t physical, uint8_t* bytes, size_t len, enum Access access);
  // LOCKed read-modify-write: remember the operand as read, then write it back only if it
  // still holds that value (false: it changed, the instruction must run again).
  void ArmLocked(uint64_t physical, const uint8_t* bytes, size_t len);
  bool LockedWrite(const uint8_t* src);
  // Segment + offset -> linear for `len` bytes: the 64-bit canonical check, or outside
  // 64-bit mode the segment's limit and type checks (#GP(0), or #SS(0) for SS).
  bool Linearize(Seg seg, uint64_t offset, size_t len, int asize, Access access, uint64_t* linear);
  StepStatus PageFault(uint64_t linear, uint32_t error_code);
  // True (with #AC recorded) for a misaligned access that alignment checking catches.
  bool AlignmentFault(uint64_t linear, int size_log);
  StepStatus Execute();
  // Runs one decoded instruction whose next_rip_ is set, and retires it (or not) by status.
  StepStatus Dispatch(const DecodedInsn& insn, Handler handler);
  StepStatus Retire(StepStatus result, const DecodedInsn& insn);
  // Blocks: whether the next instruction may start one, the block at RIP (null: Step must
  // run it), and the loop over blocks (counts retired instructions into *n).
  bool BlocksApply() const;
  const Block* EnterBlock();
  StepStatus RunBlocks(uint64_t max, uint64_t* n);
  // Delivers exception_ through the IDT, escalating to #DF and shutdown (exception.cc).
  StepStatus Deliver();
  bool DeliverOnce(const Exception& e);
  // Legacy protected mode: 8-byte gates, stack switch through the TSS (exception.cc).
  bool DeliverProtected(const Exception& e, uint64_t return_rip);

  CpuState& state_;
  const GuestMemory& memory_;
  CpuEnvironment& env_;
  uint64_t next_rip_ = 0;
  uint64_t pending_in_rip_ = 0;
  Exception exception_;
  IoRequest io_;
  MmioRequest mmio_;
  // MMIO reads of the current instruction already answered (CompleteMmioRead), and how many
  // of them this execution has consumed.
  struct MmioReadDone {
    uint64_t address = 0;
    uint8_t size = 0;
    uint64_t data = 0;
  };
  std::array<MmioReadDone, 4> mmio_reads_{};
  uint8_t mmio_reads_count_ = 0;
  uint8_t mmio_reads_used_ = 0;
  // An MMIO store is held until the instruction retires, then reported as the kMmio exit.
  bool mmio_write_pending_ = false;
  DirtyLog* dirty_log_ = nullptr;
  CodeTracker* code_tracker_ = nullptr;
  uint64_t code_generation_ = 0;
  // The LOCKed operand of the instruction in progress (ArmLocked / LockedWrite).
  bool locked_ = false;
  bool locked_armed_ = false;
  bool retry_ = false;
  uint8_t locked_len_ = 0;
  uint64_t locked_physical_ = 0;
  uint8_t* locked_host_ = nullptr;
  alignas(16) uint8_t locked_old_[16] = {};
  StepStatus fault_status_ = StepStatus::kOk;
  bool deliver_ = false;
  bool supervisor_ = false;  // implicit supervisor accesses (SystemRead/SystemWrite)
  // Not architectural state: a new Interpreter starts empty, which the SDM allows.
  Tlb tlb_;
  DecodeCache decoded_;
  BlockCache blocks_;
  bool blocks_enabled_ = true;
  // Set inside a block's run when its next instruction must not simply follow: a store
  // dropped decodes (maybe this block's), an MMIO store is pending, a LOCK retry.
  bool leave_block_ = false;
  // The last translated fetch's linear page and frame, good while tlb_.version() is
  // fetch_version_ and the fetch's privilege is fetch_user_ (Execute).
  uint64_t fetch_page_ = ~uint64_t{0};
  uint64_t fetch_frame_ = 0;
  uint64_t fetch_version_ = 0;
  bool fetch_user_ = false;
};

// --- Inline hot paths ---------------------------------------------------------------------

inline uint64_t Interpreter::Reg(int reg, int size_log, bool rex) const {
  if (size_log == kSize8 && !rex && reg >= 4 && reg < 8) {
    return (state_.gpr[reg - 4] >> 8) & 0xff;  // AH CH DH BH
  }
  return state_.gpr[reg] & SizeMask(size_log);
}

inline void Interpreter::SetReg(int reg, int size_log, bool rex, uint64_t value) {
  uint64_t& r = state_.gpr[size_log == kSize8 && !rex && reg >= 4 && reg < 8 ? reg - 4 : reg];
  switch (size_log) {
    case kSize8:
      if (!rex && reg >= 4 && reg < 8) {
        r = (r & ~0xff00ull) | ((value & 0xff) << 8);
      } else {
        r = (r & ~0xffull) | (value & 0xff);
      }
      break;
    case kSize16:
      r = (r & ~0xffffull) | (value & 0xffff);
      break;
    case kSize32:
      r = value & 0xffffffffull;  // 32-bit writes zero-extend (SDM Vol. 1 3.4.1.1)
      break;
    default:
      r = value;
      break;
  }
}

inline uint64_t Interpreter::EffectiveAddress(const DecodedInsn& insn) const {
  if (insn.has_moffs()) return insn.imm();
  uint64_t ea = static_cast<uint64_t>(static_cast<int64_t>(insn.disp()));
  if (insn.base() == kRipReg) {
    ea += next_rip_;
  } else if (insn.base() != kNoReg) {
    ea += state_.gpr[insn.base()];
  }
  if (insn.index() != kNoReg) ea += state_.gpr[insn.index()] << insn.scale_log();
  return ea & SizeMask(insn.address_size());
}

[[gnu::always_inline]] inline uint8_t* Interpreter::FastHost(Seg seg, uint64_t offset, int size_log,
                                                             int asize, Access access,
                                                             uint64_t* physical) const {
  if (!(state_.efer & kEferLma) || !state_.seg[kCs].l) return nullptr;
  const bool user = state_.cpl() == 3 && !supervisor_;
  // Alignment checking applies to CPL3 with CR0.AM and RFLAGS.AC (Linux keeps CR0.AM on).
  if (user && (state_.cr0 & kCr0Am) && state_.flags.ac()) return nullptr;
  uint64_t linear = offset & SizeMask(asize);
  if (seg == kFs || seg == kGs) linear += state_.seg[seg].base;
  if ((linear & 0xfff) + (uint64_t{1} << size_log) > 0x1000) return nullptr;
  // A hit means a canonical address: only translated (canonical) pages are ever inserted.
  const TlbEntry* e = tlb_.Lookup(linear);
  if (e == nullptr || e->host == nullptr) return nullptr;
  const uint8_t f = e->flags;
  if (AccessDenied(state_, access, user, f & kTlbWritable, f & kTlbUser, f & kTlbNx) ||
      (access == Access::kWrite && !(f & kTlbDirty))) {
    return nullptr;
  }
  *physical = e->frame | (linear & 0xfff);
  return e->host + (linear & 0xfff);
}

inline bool Interpreter::Read(Seg seg, uint64_t offset, int size_log, uint64_t* value, int asize) {
  uint64_t physical;
  const uint8_t* host;
  if (locked_ ||
      (host = FastHost(seg, offset, size_log, asize, Access::kRead, &physical)) == nullptr) {
    return ReadSlow(seg, offset, size_log, value, asize);
  }
  switch (size_log) {
    case kSize8:
      *value = *host;
      break;
    case kSize16: {
      uint16_t v;
      std::memcpy(&v, host, 2);
      *value = v;
      break;
    }
    case kSize32: {
      uint32_t v;
      std::memcpy(&v, host, 4);
      *value = v;
      break;
    }
    default:
      std::memcpy(value, host, 8);
      break;
  }
  return true;
}

inline bool Interpreter::Write(Seg seg, uint64_t offset, int size_log, uint64_t value, int asize) {
  uint64_t physical;
  uint8_t* host;
  if (locked_ ||
      (host = FastHost(seg, offset, size_log, asize, Access::kWrite, &physical)) == nullptr) {
    return WriteSlow(seg, offset, size_log, value, asize);
  }
  const size_t len = size_t{1} << size_log;
  // As LinearWrite: stale decodes of this page go, other vCPUs hear of it, dirty tracking.
  if (decoded_.InvalidateWrite(physical, len)) leave_block_ = true;
  NoteOwnWrite(physical >> 12);
  std::memcpy(host, &value, len);  // little-endian host: the low `len` bytes
  if (dirty_log_ != nullptr) dirty_log_->Mark(physical, len);
  return true;
}

inline bool Interpreter::ReadRm(const DecodedInsn& insn, int size_log, uint64_t* value) {
  if (insn.is_reg_form()) {
    *value = Reg(insn.rm(), size_log, insn.rex());
    return true;
  }
  return Read(insn.segment(), EffectiveAddress(insn), size_log, value, insn.address_size());
}

inline bool Interpreter::WriteRm(const DecodedInsn& insn, int size_log, uint64_t value) {
  if (insn.is_reg_form()) {
    SetReg(insn.rm(), size_log, insn.rex(), value);
    return true;
  }
  return Write(insn.segment(), EffectiveAddress(insn), size_log, value, insn.address_size());
}

}  // namespace vireo::emu
