#include "devices/pci/msix.h"

#include <algorithm>

#include "base/bytes.h"

namespace vireo::pci {
namespace {

constexpr uint64_t kDword = 4;
constexpr uint64_t kQword = 8;

const BarDefinition* FindMemoryBar(const ConfigSpace& config, int index) {
  for (const BarDefinition& bar : config.bars()) {
    if (bar.index == index && bar.type != BarType::kIo) return &bar;
  }
  return nullptr;
}

Status CheckLocation(const ConfigSpace& config, Msix::Location where, uint64_t size,
                     std::string_view what) {
  const BarDefinition* bar = FindMemoryBar(config, where.bar);
  if (bar == nullptr) return Fail("MSI-X {}: BAR {} is not a memory BAR", what, where.bar);
  if (where.offset % kQword != 0) {
    return Fail("MSI-X {}: offset {:#x} is not QWORD-aligned", what, where.offset);
  }
  if (!RangeFits(where.offset, size, bar->size)) {
    return Fail("MSI-X {}: {:#x}+{:#x} does not fit in BAR {} ({:#x} bytes)", what, where.offset,
                size, where.bar, bar->size);
  }
  return {};
}

// The access as whole dwords: 1 for an aligned DWORD, 2 for an aligned QWORD, else 0.
uint64_t DwordCount(uint64_t offset, size_t size, uint64_t region_size) {
  if ((size != kDword && size != kQword) || offset % size != 0) return 0;
  if (!RangeFits(offset, size, region_size)) return 0;
  return size / kDword;
}

}  // namespace

Msix::Msix(uint16_t vectors, uint8_t capability, MsiSink& sink)
    : capability_(capability), sink_(sink), entries_(vectors), pba_((vectors + 63) / 64) {}

Result<std::unique_ptr<Msix>> Msix::Create(ConfigSpace& config, uint16_t vectors, Location table,
                                           Location pba, MsiSink& sink) {
  if (vectors < 1 || vectors > msix::kMaxVectors) {
    return Fail("MSI-X: {} vectors requested; a function has 1 to {}", vectors, msix::kMaxVectors);
  }
  const uint64_t table_size = uint64_t{vectors} * msix::kEntrySize;
  const uint64_t pba_size = (uint64_t{vectors} + 63) / 64 * kQword;
  VIREO_TRY_STATUS(CheckLocation(config, table, table_size, "table"));
  VIREO_TRY_STATUS(CheckLocation(config, pba, pba_size, "PBA"));
  if (table.bar == pba.bar && table.offset < pba.offset + pba_size &&
      pba.offset < table.offset + table_size) {
    return Fail("MSI-X: table and PBA overlap in BAR {}", table.bar);
  }
  const uint8_t at = VIREO_TRY(config.AddCapability(capability_id::kMsix, msix::kCapabilityLength));
  config.Set16(at + msix::kMessageControl, static_cast<uint16_t>(vectors - 1));
  config.SetMasks(at + msix::kMessageControl, 2, msix::kFunctionMask | msix::kEnable);
  config.Set32(at + msix::kTableOffsetBir, table.offset | static_cast<uint32_t>(table.bar));
  config.Set32(at + msix::kPbaOffsetBir, pba.offset | static_cast<uint32_t>(pba.bar));
  return std::unique_ptr<Msix>(new Msix(vectors, at, sink));
}

void Msix::ConfigWritten(const ConfigSpace& config) {
  const uint16_t control = config.Get16(capability_ + msix::kMessageControl);
  std::lock_guard lock(mutex_);
  enabled_ = control & msix::kEnable;
  function_masked_ = control & msix::kFunctionMask;
  SendPendingLocked();
}

MsixState Msix::state() const {
  std::lock_guard lock(mutex_);
  MsixState state;
  for (const Entry& e : entries_) {
    state.table.push_back({e.address_low, e.address_high, e.data, e.control});
  }
  state.pba = pba_;
  return state;
}

Status Msix::Restore(const MsixState& state, const ConfigSpace& config) {
  std::lock_guard lock(mutex_);
  if (state.table.size() != entries_.size() || state.pba.size() != pba_.size()) {
    return Fail("MSI-X state has {} vectors and {} PBA words; this function has {} and {}",
                state.table.size(), state.pba.size(), entries_.size(), pba_.size());
  }
  for (size_t word = 0; word < pba_.size(); ++word) {
    const size_t valid = std::min<size_t>(64, entries_.size() - word * 64);
    const uint64_t mask = valid == 64 ? ~uint64_t{0} : (uint64_t{1} << valid) - 1;
    if ((state.pba[word] & ~mask) != 0) {
      return Fail("MSI-X state: pending bits set beyond vector {}", entries_.size() - 1);
    }
  }
  for (size_t i = 0; i < entries_.size(); ++i) {
    const MsixEntryState& e = state.table[i];
    // Vector Control bits 31:1 are reserved (read 0, §6.8.2.9).
    entries_[i] = Entry{e.address_low, e.address_high, e.data, e.control & msix::kMaskBit};
  }
  pba_ = state.pba;
  const uint16_t control = config.Get16(capability_ + msix::kMessageControl);
  enabled_ = control & msix::kEnable;
  function_masked_ = control & msix::kFunctionMask;
  return {};
}

MsixNotify Msix::Notify(uint16_t vector) {
  std::lock_guard lock(mutex_);
  if (vector >= entries_.size()) {
    if (vector != msix::kNoVector) bad_accesses_.fetch_add(1, std::memory_order_relaxed);
    return MsixNotify::kBadVector;
  }
  if (!enabled_) return MsixNotify::kDisabled;
  if (MaskedLocked(vector)) {
    pba_[vector / 64] |= uint64_t{1} << (vector % 64);
    return MsixNotify::kPending;
  }
  SendLocked(vector);
  return MsixNotify::kSent;
}

bool Msix::MaskedLocked(uint16_t vector) const {
  return function_masked_ || (entries_[vector].control & msix::kMaskBit);
}

void Msix::SendLocked(uint16_t vector) {
  pba_[vector / 64] &= ~(uint64_t{1} << (vector % 64));
  const Entry& e = entries_[vector];
  sink_.SendMsi(uint64_t{e.address_high} << 32 | e.address_low, e.data);
}

void Msix::SendPendingLocked() {
  if (!enabled_ || function_masked_) return;
  for (size_t word = 0; word < pba_.size(); ++word) {
    for (int bit = 0; bit < 64 && pba_[word] != 0; ++bit) {
      const auto vector = static_cast<uint16_t>(word * 64 + bit);
      if ((pba_[word] >> bit & 1) && !MaskedLocked(vector)) SendLocked(vector);
    }
  }
}

uint32_t Msix::TableDwordLocked(uint64_t index) const {
  const Entry& e = entries_[index / 4];
  switch (index % 4) {
    case 0:
      return e.address_low;
    case 1:
      return e.address_high;
    case 2:
      return e.data;
    default:
      return e.control;
  }
}

void Msix::SetTableDwordLocked(uint64_t index, uint32_t value) {
  const auto vector = static_cast<uint16_t>(index / 4);
  Entry& e = entries_[vector];
  switch (index % 4) {
    case 0:
      e.address_low = value;
      break;
    case 1:
      e.address_high = value;
      break;
    case 2:
      e.data = value;
      break;
    default: {
      // Bits 31:1 are reserved (read 0). Clearing the Mask Bit sends a pending message.
      const bool was_masked = MaskedLocked(vector);
      e.control = value & msix::kMaskBit;
      const bool pending = pba_[vector / 64] >> (vector % 64) & 1;
      if (was_masked && !MaskedLocked(vector) && pending && enabled_) SendLocked(vector);
      break;
    }
  }
}

void Msix::TableRead(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  const uint64_t count = DwordCount(offset, data.size(), table_size());
  if (count == 0) {
    bad_accesses_.fetch_add(1, std::memory_order_relaxed);
    std::fill(data.begin(), data.end(), 0xff);
    return;
  }
  for (uint64_t i = 0; i < count; ++i) {
    StoreLe(data, i * kDword, TableDwordLocked(offset / kDword + i));
  }
}

void Msix::TableWrite(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  const uint64_t count = DwordCount(offset, data.size(), table_size());
  if (count == 0) {
    bad_accesses_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Low dword first: a QWORD write of Message Data + Vector Control sets the data before
  // it unmasks.
  for (uint64_t i = 0; i < count; ++i) {
    SetTableDwordLocked(offset / kDword + i, LoadLe<uint32_t>(data, i * kDword));
  }
}

void Msix::PbaRead(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  const uint64_t count = DwordCount(offset, data.size(), pba_size());
  if (count == 0) {
    bad_accesses_.fetch_add(1, std::memory_order_relaxed);
    std::fill(data.begin(), data.end(), 0xff);
    return;
  }
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t dword = offset / kDword + i;
    StoreLe(data, i * kDword, static_cast<uint32_t>(pba_[dword / 2] >> (32 * (dword % 2))));
  }
}

void Msix::PbaWrite(uint64_t, std::span<const uint8_t>) {
  bad_accesses_.fetch_add(1, std::memory_order_relaxed);
}

bool Msix::enabled() const {
  std::lock_guard lock(mutex_);
  return enabled_;
}

bool Msix::function_masked() const {
  std::lock_guard lock(mutex_);
  return function_masked_;
}

bool Msix::vector_masked(uint16_t vector) const {
  std::lock_guard lock(mutex_);
  return vector < entries_.size() && (entries_[vector].control & msix::kMaskBit);
}

bool Msix::pending(uint16_t vector) const {
  std::lock_guard lock(mutex_);
  return vector < entries_.size() && (pba_[vector / 64] >> (vector % 64) & 1);
}

}  // namespace vireo::pci
