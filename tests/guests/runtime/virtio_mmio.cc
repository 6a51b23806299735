// virtio-mmio discovery. The cmdline format is Linux's (drivers/virtio/virtio_mmio.c,
// "virtio_mmio.device=<size>@<baseaddr>:<irq>[:<id>]"); Vireo and QEMU's microvm both use it.
#include "virtio_mmio.h"

#include "serial.h"

namespace rt::virtio {

namespace {

constexpr char kParam[] = "virtio_mmio.device=";
constexpr int kParamLen = sizeof(kParam) - 1;

// Parses an unsigned number at s[*i..len): "0x" hex or decimal. False if no digits.
bool ParseNumber(const char* s, int len, int* i, uint64_t* out) {
  uint64_t v = 0;
  int base = 10;
  if (*i + 1 < len && s[*i] == '0' && (s[*i + 1] == 'x' || s[*i + 1] == 'X')) {
    base = 16;
    *i += 2;
  }
  int start = *i;
  for (; *i < len; ++*i) {
    char c = s[*i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      break;
    }
    v = v * base + d;
  }
  *out = v;
  return *i > start;
}

bool ProbeSlot(uint64_t base) {
  MmioRegs regs(base);
  return regs.Read(kMagicValue) == kMagic;
}

}  // namespace

const char* DeviceName(uint32_t device_id) {
  switch (device_id) {
    case 0:
      return "none";
    case kDeviceNet:
      return "net";
    case kDeviceBlock:
      return "block";
    case kDeviceConsole:
      return "console";
    case kDeviceEntropy:
      return "entropy";
    default:
      return "other";
  }
}

bool ParseMmioDeviceParam(const char* value, int len, MmioSlot& out) {
  int i = 0;
  uint64_t size, base, gsi;
  if (!ParseNumber(value, len, &i, &size)) return false;
  if (i < len && (value[i] == 'K' || value[i] == 'k'))
    size <<= 10, ++i;
  else if (i < len && (value[i] == 'M' || value[i] == 'm'))
    size <<= 20, ++i;
  else if (i < len && (value[i] == 'G' || value[i] == 'g'))
    size <<= 30, ++i;
  if (i >= len || value[i++] != '@') return false;
  if (!ParseNumber(value, len, &i, &base)) return false;
  if (i >= len || value[i++] != ':') return false;
  if (!ParseNumber(value, len, &i, &gsi)) return false;
  if (i < len && value[i] != ':') return false;  // an optional ":<id>" may follow
  if (size < kConfig || gsi > 255) return false;
  out = {base, size, static_cast<uint32_t>(gsi), true};
  return true;
}

int DiscoverSlots(const BootInfo& info, MmioSlot* out, int max) {
  int n = 0;
  const char* p = info.cmdline;
  while (*p && n < max) {
    while (*p == ' ') ++p;
    const char* word = p;
    while (*p && *p != ' ') ++p;
    int wlen = static_cast<int>(p - word);
    bool match = wlen > kParamLen;
    for (int i = 0; match && i < kParamLen; ++i) match = word[i] == kParam[i];
    if (!match) continue;
    if (ParseMmioDeviceParam(word + kParamLen, wlen - kParamLen, out[n])) {
      ++n;
    } else {
      char copy[64];
      int k = 0;
      for (; k < wlen && k < static_cast<int>(sizeof(copy)) - 1; ++k) copy[k] = word[k];
      copy[k] = 0;
      Printf("virtio: ignoring malformed %s\n", copy);
    }
  }
  if (n > 0) return n;
  for (int i = 0; i < 8 && n < max; ++i) {
    uint64_t base = kVireoMmioBase + i * kVireoMmioSlotSize;
    if (ProbeSlot(base)) out[n++] = {base, kVireoMmioSlotSize, kVireoMmioGsis[i], false};
  }
  return n;
}

bool FindDevice(const BootInfo& info, uint32_t device_id, MmioSlot& out, int instance) {
  MmioSlot slots[kMaxSlots];
  int n = DiscoverSlots(info, slots, kMaxSlots);
  for (int i = 0; i < n; ++i) {
    MmioRegs regs(slots[i].base);
    uint32_t magic = regs.Read(kMagicValue);
    uint32_t id = regs.Read(kDeviceId);
    Printf("virtio: slot %#lx gsi %u (%s): magic %#x version %u device %u (%s)\n", slots[i].base,
           slots[i].gsi, slots[i].from_cmdline ? "cmdline" : "probe", magic, regs.Read(kVersion),
           id, DeviceName(id));
    if (magic == kMagic && id == device_id && instance-- == 0) {
      out = slots[i];
      return true;
    }
  }
  if (n == 0) Printf("virtio: no virtio-mmio slots found\n");
  return false;
}

}  // namespace rt::virtio
