#include "devices/irqchip/pc_irqchip.h"

namespace vireo::irqchip {

PcIrqchip::PcIrqchip(const Clock& clock, ApicBus& bus, uint8_t ioapic_id)
    : clock_(clock),
      bus_(bus),
      ioapic_([this](const ApicMessage& m) { return bus_.Deliver(m); }),
      pit_(clock, irq0_) {
  // The MADT gives the IOAPIC the first ID after the LAPICs' (x86::acpi::AcpiConfig).
  ioapic_.Write(Ioapic::kIoRegSel, Ioapic::kIoApicId);
  ioapic_.Write(Ioapic::kIoWin, uint32_t{ioapic_id} << 24);
}

void PcIrqchip::SetIrq(uint32_t gsi, bool level) {
  if (gsi < 16 && gsi != 2) pic_.SetIrq(static_cast<int>(gsi), level);
  const uint32_t pin = gsi == 0 ? kPitPin : gsi;
  if (pin < Ioapic::kPins) ioapic_.SetLevel(static_cast<int>(pin), level);
  if (pic_.Output()) bus_.PicOutputHigh();
}

bool PcIrqchip::ClaimsPort(uint16_t port) {
  return (port >= Pit::kBasePort && port < Pit::kBasePort + 4) || port == Pit::kPortB ||
         port == 0x20 || port == 0x21 || port == 0xa0 || port == 0xa1 ||
         port == DualPic::kElcrPort || port == DualPic::kElcrPort + 1;
}

bool PcIrqchip::HandlePio(bool is_write, uint16_t port, uint64_t* data) {
  const uint8_t byte = static_cast<uint8_t>(*data);
  uint8_t in = 0xff;
  if (port >= Pit::kBasePort && port < Pit::kBasePort + 4) {
    const uint16_t offset = port - Pit::kBasePort;
    if (is_write) {
      pit_.Write(offset, byte);
    } else {
      in = pit_.Read(offset);
    }
  } else if (port == Pit::kPortB) {
    if (is_write) {
      pit_.WritePortB(byte);
    } else {
      in = pit_.ReadPortB();
    }
  } else if (port == 0x20 || port == 0x21 || port == 0xa0 || port == 0xa1) {
    const int chip = port >= 0xa0 ? 1 : 0;
    if (is_write) {
      pic_.Write(chip, port & 1, byte);
      // An unmask or EOI may let a pending IRQ through.
      if (pic_.Output()) bus_.PicOutputHigh();
    } else {
      in = pic_.Read(chip, port & 1);
    }
  } else if (port == DualPic::kElcrPort || port == DualPic::kElcrPort + 1) {
    if (is_write) {
      pic_.WriteElcr(port & 1, byte);
    } else {
      in = pic_.ReadElcr(port & 1);
    }
  } else {
    return false;
  }
  if (!is_write) *data = in;
  return true;
}

bool PcIrqchip::HandleIoapicMmio(bool is_write, uint64_t address, uint32_t size, uint64_t* data) {
  if (!ClaimsMmio(address)) return false;
  const bool dword = size == 4 && (address & 3) == 0;
  const uint64_t offset = address - Ioapic::kDefaultBase;
  if (!is_write) {
    *data = dword ? ioapic_.Read(offset) : 0;
    return true;
  }
  if (!dword) return true;
  const uint32_t selected = ioapic_.Read(Ioapic::kIoRegSel);
  ioapic_.Write(offset, static_cast<uint32_t>(*data));
  if (offset == Ioapic::kIoWin && selected >= Ioapic::kIoRedTbl &&
      selected < Ioapic::kIoRedTbl + 2 * Ioapic::kPins) {
    bus_.RedirectionWritten(static_cast<int>((selected - Ioapic::kIoRedTbl) / 2));
  }
  return true;
}

void PcIrqchip::SaveState(accel::VmSavedState& s) {
  pit_.Poll();  // an IRQ 0 edge already due goes into the PIC/IOAPIC state saved below
  s.saved_at_ns = clock_.NowNs();
  s.pit = pit_.SaveState(s.saved_at_ns);
  pic_.SaveState(s.pic_master, s.pic_slave);
  s.ioapic = ioapic_.SaveState();
}

Status PcIrqchip::RestoreState(const accel::VmSavedState& s) {
  VIREO_TRY_STATUS(pic_.RestoreState(s.pic_master, s.pic_slave));
  VIREO_TRY_STATUS(ioapic_.RestoreState(s.ioapic));
  return pit_.RestoreState(s.pit, s.saved_at_ns);
}

}  // namespace vireo::irqchip
