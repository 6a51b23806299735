#include "acpi.h"

#include "boot_info.h"
#include "serial.h"

namespace rt {

namespace {

Madt madt;
Fadt fadt;
bool available;
uint64_t xsdt;  // or the RSDT when rsdt_entry_size == 4
int sdt_entry_size;

template <typename T>
T Load(uint64_t addr) {
  return *reinterpret_cast<const volatile T*>(addr);
}

bool SigIs(uint64_t table, const char* sig) {
  for (int i = 0; i < 4; ++i) {
    if (Load<char>(table + i) != sig[i]) return false;
  }
  return true;
}

// Header: signature[4], length u32 @4, revision @8, checksum @9 ...; 36 bytes in all.
constexpr uint64_t kSdtHeaderSize = 36;

bool ChecksumOk(uint64_t table) {
  uint32_t len = Load<uint32_t>(table + 4);
  if (len < kSdtHeaderSize || len > (1 << 20)) return false;
  uint8_t sum = 0;
  for (uint32_t i = 0; i < len; ++i) sum += Load<uint8_t>(table + i);
  return sum == 0;
}

void ParseMadt(uint64_t t) {
  madt.lapic_addr = Load<uint32_t>(t + 36);
  uint64_t end = t + Load<uint32_t>(t + 4);
  for (uint64_t p = t + 44; p + 2 <= end;) {
    uint8_t type = Load<uint8_t>(p);
    uint8_t len = Load<uint8_t>(p + 1);
    if (len < 2 || p + len > end) break;
    if (type == 0 && len >= 8) {  // Processor Local APIC: flags bit 0 enabled
      if ((Load<uint32_t>(p + 4) & 1) && madt.cpu_count < Madt::kMaxCpus) {
        madt.cpus[madt.cpu_count++] = {Load<uint8_t>(p + 2), Load<uint8_t>(p + 3)};
      }
    } else if (type == 1 && len >= 12 && madt.ioapic_count < Madt::kMaxIoapics) {
      madt.ioapics[madt.ioapic_count++] = {Load<uint8_t>(p + 2), Load<uint32_t>(p + 4),
                                           Load<uint32_t>(p + 8)};
    } else if (type == 2 && len >= 10 && madt.override_count < Madt::kMaxOverrides) {
      madt.overrides[madt.override_count++] = {Load<uint8_t>(p + 3), Load<uint32_t>(p + 4),
                                               Load<uint16_t>(p + 8)};
    } else if (type == 5 && len >= 12) {  // Local APIC Address Override
      madt.lapic_addr = Load<uint64_t>(p + 4);
    }
    p += len;
  }
}

// AML: a PkgLength is 1-4 bytes; bits 6-7 of the first byte count the extra bytes.
uint64_t SkipPkgLength(uint64_t p) { return p + 1 + (Load<uint8_t>(p) >> 6); }

// Reads one small integer element of a package: BytePrefix 0x0A, ZeroOp, OneOp, or a raw byte.
uint64_t ReadSmallInt(uint64_t p, uint8_t& v) {
  uint8_t op = Load<uint8_t>(p);
  if (op == 0x0a) {
    v = Load<uint8_t>(p + 1);
    return p + 2;
  }
  v = op == 0x01 ? 1 : (op == 0xff ? 0xff : op);
  return p + 1;
}

// The usual "_S5_" scan (as in many hobby kernels): find NameOp "_S5_" followed by PackageOp.
void FindS5(uint64_t dsdt) {
  uint32_t len = Load<uint32_t>(dsdt + 4);
  for (uint64_t p = dsdt + kSdtHeaderSize; p + 8 < dsdt + len; ++p) {
    if (Load<uint32_t>(p) != 0x5f35535f) continue;  // "_S5_"
    uint8_t before = Load<uint8_t>(p - 1);
    bool named = before == 0x08 || (before == '\\' && Load<uint8_t>(p - 2) == 0x08);
    if (!named || Load<uint8_t>(p + 4) != 0x12) continue;  // NameOp ... PackageOp
    uint64_t q = SkipPkgLength(p + 5) + 1;                 // then NumElements
    q = ReadSmallInt(q, fadt.s5_slp_typ_a);
    ReadSmallInt(q, fadt.s5_slp_typ_b);
    fadt.s5_found = true;
    return;
  }
}

void ParseFadt(uint64_t t) {
  uint32_t len = Load<uint32_t>(t + 4);
  fadt.pm1a_evt = static_cast<uint16_t>(Load<uint32_t>(t + 56));  // PM1a_EVT_BLK
  fadt.pm1a_cnt = static_cast<uint16_t>(Load<uint32_t>(t + 64));
  fadt.pm1b_cnt = static_cast<uint16_t>(Load<uint32_t>(t + 68));
  fadt.dsdt = Load<uint32_t>(t + 40);
  if (len >= 129) {
    fadt.reset_supported = Load<uint32_t>(t + 112) & (1 << 10);
    fadt.reset_space = Load<uint8_t>(t + 116);  // Generic Address Structure at 116
    fadt.reset_addr = Load<uint64_t>(t + 120);
    fadt.reset_value = Load<uint8_t>(t + 128);
  }
  if (len >= 148 && Load<uint64_t>(t + 140)) fadt.dsdt = Load<uint64_t>(t + 140);  // X_DSDT
  if (!fadt.pm1a_cnt && len >= 184 && Load<uint8_t>(t + 172) == 1) {               // X_PM1a_CNT
    fadt.pm1a_cnt = static_cast<uint16_t>(Load<uint64_t>(t + 176));
  }
  if (fadt.dsdt && SigIs(fadt.dsdt, "DSDT") && ChecksumOk(fadt.dsdt)) FindS5(fadt.dsdt);
}

}  // namespace

uint64_t AcpiFindTable(const char sig[4]) {
  if (!xsdt) return 0;
  uint32_t len = Load<uint32_t>(xsdt + 4);
  for (uint64_t p = xsdt + kSdtHeaderSize; p + sdt_entry_size <= xsdt + len; p += sdt_entry_size) {
    uint64_t t = sdt_entry_size == 8 ? Load<uint64_t>(p) : Load<uint32_t>(p);
    if (t && SigIs(t, sig)) {
      if (!ChecksumOk(t)) {
        Printf("acpi: table %c%c%c%c has a bad checksum\n", sig[0], sig[1], sig[2], sig[3]);
        return 0;
      }
      return t;
    }
  }
  return 0;
}

bool AcpiInit(uint64_t rsdp) {
  if (available) return true;
  if (!rsdp) rsdp = ScanForRsdp();
  if (!rsdp || Load<uint64_t>(rsdp) != 0x2052545020445352ull) {  // "RSD PTR "
    Printf("acpi: no RSDP\n");
    return false;
  }
  uint8_t revision = Load<uint8_t>(rsdp + 15);
  uint64_t x = revision >= 2 ? Load<uint64_t>(rsdp + 24) : 0;
  if (x && SigIs(x, "XSDT") && ChecksumOk(x)) {
    xsdt = x;
    sdt_entry_size = 8;
  } else {
    uint64_t r = Load<uint32_t>(rsdp + 16);
    if (!r || !SigIs(r, "RSDT") || !ChecksumOk(r)) {
      Printf("acpi: no valid XSDT or RSDT\n");
      return false;
    }
    xsdt = r;
    sdt_entry_size = 4;
  }
  if (uint64_t t = AcpiFindTable("APIC")) ParseMadt(t);
  if (uint64_t t = AcpiFindTable("FACP")) ParseFadt(t);
  available = true;
  Printf("acpi: rsdp=%#lx rev=%u %s cpus=%d ioapics=%d overrides=%d pm1a_cnt=%#x s5=%s%u\n", rsdp,
         revision, sdt_entry_size == 8 ? "xsdt" : "rsdt", madt.cpu_count, madt.ioapic_count,
         madt.override_count, fadt.pm1a_cnt, fadt.s5_found ? "" : "(default)", fadt.s5_slp_typ_a);
  return true;
}

bool AcpiAvailable() { return available; }
const Madt& GetMadt() { return madt; }
const Fadt& GetFadt() { return fadt; }

}  // namespace rt
