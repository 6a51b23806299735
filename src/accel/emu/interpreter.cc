#include "accel/emu/interpreter.h"

#include <cstring>

namespace vireo::emu {
namespace {

constexpr uint64_t kPageSize = 4096;

bool Canonical(uint64_t linear) {
  return static_cast<uint64_t>(static_cast<int64_t>(linear << 16) >> 16) == linear;
}

}  // namespace

bool Interpreter::Linearize(Seg seg, uint64_t offset, size_t len, int asize, Access access,
                            uint64_t* linear) {
  offset &= SizeMask(asize);
  if (state_.mode() == CpuMode::kLong64) {
    uint64_t base = (seg == kFs || seg == kGs) ? state_.seg[seg].base : 0;
    *linear = base + offset;
    if (!Canonical(*linear)) {
      fault_status_ = Raise(seg == kSs ? kStackFault : kGeneralProtection, 0);
      return false;
    }
    return true;
  }
  // Legacy and compatibility modes: base + offset wrapped at 4 GiB, after the segment's
  // checks (SDM Vol. 3 5.3, 5.5).
  if (!SegmentAllows(state_, seg, offset, len, access)) {
    fault_status_ = Raise(seg == kSs ? kStackFault : kGeneralProtection, 0);
    return false;
  }
  *linear = (state_.seg[seg].base + offset) & 0xffffffffull;
  return true;
}

bool SegmentAllows(const CpuState& state, Seg seg, uint64_t offset, size_t len, Access access) {
  const accel::Segment& s = state.seg[seg];
  const bool protected_mode = state.cr0 & kCr0Pe;
  if (protected_mode) {
    // A null selector loads an unusable segment: any use is #GP(0) (#SS(0) for SS).
    if (s.unusable) return false;
    const bool code = s.type & 8;
    // Type checks (SDM Vol. 3 5.5 and Table 3-1): no writes to code or read-only data, no
    // reads of execute-only code. Real mode keeps whatever attributes the cache holds.
    if (access == Access::kWrite && (code || !(s.type & 2))) return false;
    if (access == Access::kRead && code && !(s.type & 2)) return false;
  }
  const uint64_t last = offset + len - 1;
  if ((s.type & 0xc) == 4) {
    // Expand-down data: valid offsets are limit+1 .. 0xffff or 0xffffffff (B flag).
    const uint64_t upper = s.db ? 0xffffffffull : 0xffffull;
    return offset > s.limit && last <= upper;
  }
  return last <= s.limit;
}

StepStatus Interpreter::PageFault(uint64_t linear, uint32_t error_code) {
  state_.cr2 = linear;
  return Raise(kPageFault, error_code);
}

bool Interpreter::LinearRead(uint64_t linear, uint8_t* bytes, size_t len, enum Access access) {
  const bool user = state_.cpl() == 3 && !supervisor_;
  while (len > 0) {
    size_t chunk = std::min<size_t>(len, kPageSize - (linear & (kPageSize - 1)));
    Translation t = TranslateCached(tlb_, state_, memory_, linear, access, user);
    if (!t.ok) {
      fault_status_ = PageFault(linear, t.error_code);
      return false;
    }
    if (t.host != nullptr) {
      std::memcpy(bytes, t.host, chunk);  // RAM, known from the TLB entry
      if (locked_ && access == Access::kRead) ArmLocked(t.physical, bytes, chunk);
    } else if (memory_.Read(t.physical, {bytes, chunk})) {
      if (locked_ && access == Access::kRead) ArmLocked(t.physical, bytes, chunk);
    } else if (!ReadMmio(t.physical, bytes, chunk, access)) {
      return false;
    }
    linear += chunk;
    bytes += chunk;
    len -= chunk;
  }
  return true;
}

bool Interpreter::LinearWrite(uint64_t linear, const uint8_t* bytes, size_t len) {
  const bool user = state_.cpl() == 3 && !supervisor_;
  // Translate every page first so a fault on the second page leaves the first untouched.
  uint64_t phys[2];
  uint8_t* host[2];
  size_t first = std::min<size_t>(len, kPageSize - (linear & (kPageSize - 1)));
  for (int i = 0; i < (first < len ? 2 : 1); ++i) {
    uint64_t at = i == 0 ? linear : linear + first;
    Translation t = TranslateCached(tlb_, state_, memory_, at, Access::kWrite, user);
    if (!t.ok) {
      fault_status_ = PageFault(at, t.error_code);
      return false;
    }
    phys[i] = t.physical;
    host[i] = t.host;
  }
  for (int i = 0; i < (first < len ? 2 : 1); ++i) {
    const uint8_t* src = i == 0 ? bytes : bytes + first;
    size_t n = i == 0 ? first : len - first;
    // Self-modifying code: a later fetch must see this store (SDM Vol. 3 8.1.3).
    if (decoded_.InvalidateWrite(phys[i], n)) leave_block_ = true;
    NoteOwnWrite(phys[i] >> 12);
    if (locked_armed_ && phys[i] == locked_physical_ && n == locked_len_) {
      if (!LockedWrite(src)) {
        retry_ = true;  // another thread changed the operand: run the instruction again
        fault_status_ = StepStatus::kOk;
        return false;
      }
      if (dirty_log_ != nullptr) dirty_log_->Mark(phys[i], n);
      continue;
    }
    if (host[i] != nullptr) {
      std::memcpy(host[i], src, n);  // RAM, known from the TLB entry
      if (dirty_log_ != nullptr) dirty_log_->Mark(phys[i], n);
    } else if (!memory_.Write(phys[i], {src, n})) {
      // A store to MMIO is held until the instruction retires, then becomes the exit. One
      // per instruction (a REP string stops after it); wider or second stores to MMIO are
      // not emulated (compilers emit neither for device registers).
      if (mmio_write_pending_ || n > 8) {
        fault_status_ = StepStatus::kUnimplemented;
        return false;
      }
      uint64_t data = 0;
      std::memcpy(&data, src, n);
      mmio_ = {true, phys[i], static_cast<uint8_t>(n), data};
      mmio_write_pending_ = true;
      leave_block_ = true;
    } else if (dirty_log_ != nullptr) {
      dirty_log_->Mark(phys[i], n);
    }
  }
  return true;
}

bool Interpreter::ReadMmio(uint64_t physical, uint8_t* bytes, size_t len, enum Access access) {
  // Code in MMIO and reads wider than 8 bytes (SSE) from device registers are not emulated.
  if (access == Access::kExecute || len > 8) {
    fault_status_ = StepStatus::kUnimplemented;
    return false;
  }
  if (mmio_reads_used_ < mmio_reads_count_) {
    const MmioReadDone& done = mmio_reads_[mmio_reads_used_];
    if (done.address == physical && done.size == len) {
      std::memcpy(bytes, &done.data, len);
      ++mmio_reads_used_;
      return true;
    }
    mmio_reads_count_ = mmio_reads_used_;  // a different path: the rest no longer applies
  }
  if (mmio_reads_count_ == mmio_reads_.size()) {
    fault_status_ = StepStatus::kUnimplemented;
    return false;
  }
  mmio_ = {false, physical, static_cast<uint8_t>(len), 0};
  fault_status_ = StepStatus::kMmio;
  return false;
}

void Interpreter::ArmLocked(uint64_t physical, const uint8_t* bytes, size_t len) {
  if (locked_armed_) return;  // the first read is the operand (CMPXCHG8B/16B read it once)
  auto host = memory_.Span(physical, len);
  // Operands within one naturally aligned unit only: a split LOCK (across pages or the
  // unit's alignment) falls back to a plain write, atomic only on a single vCPU.
  if (!host || (len != 1 && len != 2 && len != 4 && len != 8 && len != 16) ||
      reinterpret_cast<uintptr_t>(host->data()) % len != 0) {
    return;
  }
  locked_armed_ = true;
  locked_physical_ = physical;
  locked_len_ = static_cast<uint8_t>(len);
  locked_host_ = host->data();
  std::memcpy(locked_old_, bytes, len);
}

bool Interpreter::LockedWrite(const uint8_t* src) {
  // Compare-and-swap against the value the instruction read: the write happens only if no
  // other thread (vCPU or device) wrote the operand in between, which makes the whole
  // read-modify-write atomic, as the LOCK prefix promises (SDM Vol. 3 8.1.2).
  auto cas = [&](auto* host, auto expected) {
    decltype(expected) desired;
    std::memcpy(&desired, src, sizeof(desired));
    std::memcpy(&expected, locked_old_, sizeof(expected));
    return __atomic_compare_exchange_n(host, &expected, desired, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
  };
  switch (locked_len_) {
    case 1:
      return cas(reinterpret_cast<uint8_t*>(locked_host_), uint8_t{});
    case 2:
      return cas(reinterpret_cast<uint16_t*>(locked_host_), uint16_t{});
    case 4:
      return cas(reinterpret_cast<uint32_t*>(locked_host_), uint32_t{});
    case 8:
      return cas(reinterpret_cast<uint64_t*>(locked_host_), uint64_t{});
    default:
      return cas(reinterpret_cast<unsigned __int128*>(locked_host_), (unsigned __int128){});
  }
}

void Interpreter::CompleteMmioRead(uint64_t data) {
  if (mmio_reads_count_ == mmio_reads_.size()) return;
  const uint64_t mask = mmio_.size >= 8 ? ~uint64_t{0} : (uint64_t{1} << (mmio_.size * 8)) - 1;
  mmio_reads_[mmio_reads_count_++] = {mmio_.address, mmio_.size, data & mask};
}

void Interpreter::NotifyExternalWrite(uint64_t physical, uint64_t len) {
  // Page by page: InvalidateWrite takes at most one page's worth.
  while (len > 0) {
    const uint64_t chunk = std::min<uint64_t>(len, kPageSize - (physical & (kPageSize - 1)));
    decoded_.InvalidateWrite(physical, chunk);
    if (code_tracker_) code_tracker_->NoteWrite(physical >> 12);
    physical += chunk;
    len -= chunk;
  }
}

bool Interpreter::AlignmentFault(uint64_t linear, int size_log) {
  // #AC(0): a misaligned data access at CPL3 with CR0.AM and RFLAGS.AC both set (SDM Vol. 3
  // 6.15, interrupt 17). Implicit supervisor accesses (descriptors, frames) are exempt.
  if (!(state_.cr0 & kCr0Am) || size_log == kSize8 || (linear & ((1u << size_log) - 1)) == 0 ||
      state_.cpl() != 3 || supervisor_ || !state_.flags.ac()) {
    return false;
  }
  fault_status_ = Raise(kAlignmentCheck, 0);
  return true;
}

bool Interpreter::ReadSlow(Seg seg, uint64_t offset, int size_log, uint64_t* value, int asize) {
  uint64_t linear;
  if (!Linearize(seg, offset, size_t{1} << size_log, asize, Access::kRead, &linear)) return false;
  if (AlignmentFault(linear, size_log)) return false;
  uint8_t bytes[8] = {};
  if (!LinearRead(linear, bytes, size_t{1} << size_log, Access::kRead)) return false;
  uint64_t v = 0;
  std::memcpy(&v, bytes, 8);
  *value = v & SizeMask(size_log);
  return true;
}

bool Interpreter::WriteSlow(Seg seg, uint64_t offset, int size_log, uint64_t value, int asize) {
  uint64_t linear;
  if (!Linearize(seg, offset, size_t{1} << size_log, asize, Access::kWrite, &linear)) return false;
  if (AlignmentFault(linear, size_log)) return false;
  uint8_t bytes[8];
  std::memcpy(bytes, &value, 8);
  return LinearWrite(linear, bytes, size_t{1} << size_log);
}

bool Interpreter::ReadBytes(Seg seg, uint64_t offset, std::span<uint8_t> bytes, int asize) {
  uint64_t linear;
  if (!Linearize(seg, offset, bytes.size(), asize, Access::kRead, &linear)) return false;
  return LinearRead(linear, bytes.data(), bytes.size(), Access::kRead);
}

bool Interpreter::WriteBytes(Seg seg, uint64_t offset, std::span<const uint8_t> bytes, int asize) {
  uint64_t linear;
  if (!Linearize(seg, offset, bytes.size(), asize, Access::kWrite, &linear)) return false;
  return LinearWrite(linear, bytes.data(), bytes.size());
}

int Interpreter::StackSizeLog() const {
  if (state_.mode() == CpuMode::kLong64) return kSize64;
  return state_.seg[kSs].db ? kSize32 : kSize16;
}

bool Interpreter::Push(int size_log, uint64_t value) {
  const int ss = StackSizeLog();
  const uint64_t rsp = (state_.gpr[kRsp] - (uint64_t{1} << size_log)) & SizeMask(ss);
  if (!Write(kSs, rsp, size_log, value, ss)) return false;
  SetGpr(kRsp, ss, rsp);
  return true;
}

bool Interpreter::Pop(int size_log, uint64_t* value) {
  const int ss = StackSizeLog();
  const uint64_t rsp = state_.gpr[kRsp] & SizeMask(ss);
  if (!Read(kSs, rsp, size_log, value, ss)) return false;
  SetGpr(kRsp, ss, rsp + (uint64_t{1} << size_log));
  return true;
}

void Interpreter::Branch(uint64_t target, int size_log) {
  next_rip_ = target & SizeMask(size_log == kSize8 ? kSize16 : size_log);
}

StepStatus Interpreter::Raise(uint8_t vector) {
  exception_ = {vector, false, 0};
  return StepStatus::kException;
}

StepStatus Interpreter::Raise(uint8_t vector, uint32_t error_code) {
  exception_ = {vector, true, error_code};
  return StepStatus::kException;
}

void Interpreter::CompleteIn(uint64_t data) {
  SetGpr(kRax, io_.size == 1 ? kSize8 : io_.size == 2 ? kSize16 : kSize32, data);
  state_.rip = pending_in_rip_;
}

StepStatus Interpreter::Step() {
  // The shadow covers exactly one instruction: the one after STI / MOV SS (which may set it
  // again; SDM Vol. 2 "STI": only the first of consecutive STIs opens a window).
  const bool shadow = state_.interrupt_shadow;
  state_.interrupt_shadow = false;
  // RFLAGS.TF at the start of an instruction: a #DB trap once it retires (SDM Vol. 3 17.3.1.4).
  const bool single_step = state_.flags.tf();
  StepStatus result = Execute();
  if (single_step && result == StepStatus::kOk) {
    state_.dr[6] |= kDr6SingleStep;
    result = RaiseSoftware(kDebug, EventKind::kTrap);
  }
  if (result == StepStatus::kException && deliver_) {
    state_.interrupt_shadow = false;
    return Deliver();
  }
  const bool retired = result == StepStatus::kOk || result == StepStatus::kHalt ||
                       result == StepStatus::kIo || (result == StepStatus::kMmio && mmio_.is_write);
  if (!retired) {
    state_.interrupt_shadow = shadow;  // the instruction did not retire
  }
  return result;
}

StepStatus Interpreter::Execute() {
  const CpuMode mode = state_.mode();
  uint64_t linear = state_.rip;
  const accel::Segment& cs = state_.seg[kCs];
  if (mode != CpuMode::kLong64) {
    // Outside 64-bit mode a fetch beyond CS's limit is #GP(0) (SDM Vol. 3 5.3).
    if (state_.rip > cs.limit) return Raise(kGeneralProtection, 0);
    linear = (cs.base + state_.rip) & 0xffffffffull;
  }
  if (mode == CpuMode::kLong64 && !Canonical(linear)) return Raise(kGeneralProtection, 0);
  // The fetch is translated (and its rights checked) through the TLB, except while it stays
  // on the code page of the last translated fetch: that translation stands until the TLB is
  // flushed in any way (which MOV CR0/CR3/CR4, EFER.NXE, INVLPG, a page fault and a new
  // vCPU state all do) or the privilege of the fetch changes.
  const bool user = state_.cpl() == 3 && !supervisor_;
  uint64_t physical;
  if ((linear >> 12) == fetch_page_ && tlb_.version() == fetch_version_ && user == fetch_user_ &&
      (state_.cr0 & kCr0Pg)) {
    physical = fetch_frame_ | (linear & (kPageSize - 1));
  } else {
    const Translation fetch =
        TranslateCached(tlb_, state_, memory_, linear, Access::kExecute, user);
    if (!fetch.ok) return PageFault(linear, fetch.error_code);
    physical = fetch.physical;
    if (state_.cr0 & kCr0Pg) {
      fetch_page_ = linear >> 12;
      fetch_frame_ = physical & ~(kPageSize - 1);
      fetch_version_ = tlb_.version();
      fetch_user_ = user;
    }
  }
  // The handler runs on the cached record itself (no copy): the cache never rewrites an
  // entry's bytes except in Insert, which only this function calls, before dispatch.
  const DecodedInsn* insn = decoded_.Lookup(physical, mode);
  DecodedInsn fresh;
  if (insn == nullptr) {
    // Marked before the bytes are read, so a store another vCPU makes after this read finds
    // the mark.
    if (code_tracker_) code_tracker_->MarkCode(physical >> 12);
    uint8_t bytes[kMaxInsnLength];
    // Fetch what is on the current page; cross to the next only if the decoder needs it, so
    // a fault on the next page is raised only for an instruction that really spans it.
    const size_t got = std::min<size_t>(kMaxInsnLength, kPageSize - (linear & (kPageSize - 1)));
    if (!LinearRead(linear, bytes, got, Access::kExecute)) return fault_status_;
    DecodeStatus status = Decoder::Decode(bytes, got, mode, &fresh);
    if (status == DecodeStatus::kOk) {
      // Decoded from this page's bytes alone: it lies in one page, so it can be cached.
      insn = decoded_.Insert(physical, mode, fresh);
    } else {
      if (status == DecodeStatus::kTruncated) {
        if (!LinearRead(linear + got, bytes + got, kMaxInsnLength - got, Access::kExecute))
          return fault_status_;
        status = Decoder::Decode(bytes, kMaxInsnLength, mode, &fresh);
      }
      switch (status) {
        case DecodeStatus::kOk:
          insn = &fresh;
          break;
        case DecodeStatus::kTooLong:
          return Raise(kGeneralProtection, 0);
        default:
          return Raise(kInvalidOpcode);
      }
    }
  }
  decoded_.Prefetch(physical + insn->length());  // most often the next one to run
  next_rip_ = state_.rip + insn->length();
  if (mode != CpuMode::kLong64) {
    if (next_rip_ - 1 > cs.limit) return Raise(kGeneralProtection, 0);  // the last byte too
    next_rip_ &= cs.db ? 0xffffffffull : 0xffffull;
  }
  return Dispatch(*insn, Table()[insn->opcode()]);
}

[[gnu::always_inline]] inline StepStatus Interpreter::Dispatch(const DecodedInsn& insn,
                                                               Handler handler) {
  fault_status_ = StepStatus::kOk;
  mmio_reads_used_ = 0;
  mmio_write_pending_ = false;
  locked_ = IsLocked(insn);
  locked_armed_ = false;
  return Retire(handler(*this, insn), insn);
}

[[gnu::always_inline]] inline StepStatus Interpreter::Retire(StepStatus result,
                                                             const DecodedInsn& insn) {
  locked_ = false;
  if (retry_) {
    retry_ = false;  // nothing happened: RIP stays, the next step runs the instruction again
    mmio_reads_count_ = 0;
    return StepStatus::kOk;
  }
  if (result == StepStatus::kOk && mmio_write_pending_) result = StepStatus::kMmio;
  if (result == StepStatus::kOk && insn.opcode() == 0xcf) state_.nmi_blocked = false;  // IRET
  // Answered reads belong to this instruction only, unless it is waiting for another one.
  if (result != StepStatus::kMmio || mmio_.is_write) mmio_reads_count_ = 0;
  switch (result) {
    case StepStatus::kOk:
    case StepStatus::kHalt:
      state_.rip = next_rip_;
      break;
    case StepStatus::kIo:
      if (io_.is_write) {
        state_.rip = next_rip_;
      } else {
        pending_in_rip_ = next_rip_;
      }
      break;
    case StepStatus::kMmio:
      if (mmio_.is_write) state_.rip = next_rip_;  // retired; a read runs again when answered
      break;
    default:
      break;
  }
  return result;
}

StepStatus Interpreter::InjectNmi() {
  state_.nmi_blocked = true;
  return InjectInterrupt(2);
}

StepStatus Interpreter::RunLocked(Interpreter& cpu, const DecodedInsn& insn) {
  cpu.locked_ = true;
  cpu.locked_armed_ = false;
  const StepStatus result = Table()[insn.opcode()](cpu, insn);
  cpu.locked_ = false;
  if (cpu.retry_) {
    cpu.retry_ = false;  // another thread changed the operand: nothing retires, run it again
    cpu.mmio_reads_count_ = 0;
    cpu.next_rip_ = cpu.state_.rip;
    cpu.leave_block_ = true;
    return StepStatus::kOk;
  }
  return result;
}

bool Interpreter::BlocksApply() const {
  // 64-bit code only (no CS limit, no wrap of RIP), and none of what Step() handles around
  // one instruction: the interrupt shadow, single-stepping, an MMIO read being replayed.
  return blocks_enabled_ && state_.mode() == CpuMode::kLong64 && !state_.interrupt_shadow &&
         !state_.flags.tf() && mmio_reads_count_ == 0;
}

const Block* Interpreter::EnterBlock() {
  const uint64_t linear = state_.rip;
  if (!Canonical(linear)) return nullptr;  // Step raises the #GP
  const bool user = state_.cpl() == 3 && !supervisor_;
  uint64_t physical;
  if ((linear >> 12) == fetch_page_ && tlb_.version() == fetch_version_ && user == fetch_user_) {
    physical = fetch_frame_ | (linear & (kPageSize - 1));
  } else {
    const Translation fetch =
        TranslateCached(tlb_, state_, memory_, linear, Access::kExecute, user);
    if (!fetch.ok) return nullptr;  // Step raises the #PF
    physical = fetch.physical;
    fetch_page_ = linear >> 12;
    fetch_frame_ = physical & ~(kPageSize - 1);
    fetch_version_ = tlb_.version();
    fetch_user_ = user;
  }
  if (const Block* block = blocks_.Lookup(physical, decoded_)) return block;
  const uint64_t page = physical & ~(kPageSize - 1);
  auto code = memory_.Span(page, kPageSize);
  if (!code) return nullptr;  // code outside RAM: Step reports it
  // Marked before the bytes are read, so a store another vCPU makes after this read finds
  // the mark.
  if (code_tracker_) code_tracker_->MarkCode(physical >> 12);
  const size_t offset = physical - page;
  return blocks_.Build(physical, code->data() + offset, kPageSize - offset, decoded_,
                       Table().data());
}

StepStatus Interpreter::RunBlocks(uint64_t max, uint64_t* retired) {
  uint64_t n = *retired;  // a local: the handlers' stores cannot alias it
  StepStatus status = StepStatus::kOk;
  while (n < max) {
    const Block* block = EnterBlock();
    if (block == nullptr) {
      // What a block cannot hold (a fault on the fetch, an instruction across the page's
      // end, code outside RAM): one step, which raises or runs it.
      status = Step();
      if (status == StepStatus::kOk) ++n;
      break;
    }
    // At most the budget: the last instruction run is the block's own last, or the one the
    // budget ends on; it takes the full Dispatch path, which any instruction may.
    const uint64_t count = std::min<uint64_t>(block->count, max - n);
    const BlockInsn* insn = blocks_.insns(*block);
    const BlockInsn* const last = insn + count - 1;
    // Nothing of an MMIO access is pending at a block's start (BlocksApply). The inner
    // instructions are plain: they neither branch nor change how code is fetched, so each
    // simply retires on kOk unless it raised leave_block_ (an MMIO store pending, a store
    // that dropped decodes, a LOCK retry).
    mmio_reads_used_ = 0;
    mmio_write_pending_ = false;
    leave_block_ = false;
    const uint64_t start = n;
    bool leave = false;
    for (; insn != last; ++insn) {
      next_rip_ = state_.rip + insn->insn.length();
      fault_status_ = StepStatus::kOk;
      status = insn->handler(*this, insn->insn);
      if (status != StepStatus::kOk || leave_block_) [[unlikely]] {
        status = Retire(status, insn->insn);
        leave = true;
        break;
      }
      state_.rip = next_rip_;
    }
    n = start + static_cast<uint64_t>(insn - blocks_.insns(*block));
    if (!leave) {
      next_rip_ = state_.rip + insn->insn.length();
      status = Dispatch(insn->insn, insn->handler);  // the full path for the last one
    }
    if (status != StepStatus::kOk) {
      if (status == StepStatus::kException && deliver_) {
        status = Deliver();
        if (status == StepStatus::kOk) ++n;
      }
      break;
    }
    ++n;
    if (leave || n == max) break;
    // The last instruction may have changed the mode, the shadow, TF or the MMIO replay.
    if (!BlocksApply()) break;
  }
  *retired = n;
  return status;
}

StepStatus Interpreter::Run(uint64_t max, uint64_t* retired) {
  uint64_t n = 0;
  StepStatus status = StepStatus::kOk;
  while (n < max) {
    if (BlocksApply()) {
      status = RunBlocks(max, &n);
    } else {
      status = Step();
      if (status == StepStatus::kOk) ++n;
    }
    if (status != StepStatus::kOk) break;
  }
  if (retired) *retired = n;
  return status;
}

}  // namespace vireo::emu
