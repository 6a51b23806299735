#include "vmm/snapshot/device_records.h"

#include <fmt/format.h>

#include "virtio/balloon/balloon.h"
#include "virtio/net/net.h"
#include "vmm/snapshot/state_file.h"

namespace vireo::snapshot {
namespace {

constexpr size_t kMaxRecords = 256;
constexpr size_t kMaxRecordBytes = 1u << 20;
constexpr size_t kMaxNets = 64;

void Put(StateWriter& w, const virtio::NetSavedState& n) {
  for (uint8_t b : n.mac) w.U8(b);
  w.U16(n.status);
  w.Bytes(n.rx_pending);
}

void Get(StateReader& r, virtio::NetSavedState& n) {
  for (uint8_t& b : n.mac) b = r.U8();
  n.status = r.U16();
  n.rx_pending = r.Bytes(virtio::Net::kMaxPacketBytes);
}

void Put(StateWriter& w, const virtio::balloon::BalloonSavedState& b) {
  w.U32(b.num_pages), w.U32(b.actual);
  w.Bool(b.stats_head.has_value());
  w.U16(b.stats_head.value_or(0));
  w.U32(static_cast<uint32_t>(b.stats.size()));
  for (const auto& [tag, value] : b.stats) w.U16(tag), w.U64(value);
}

void Get(StateReader& r, virtio::balloon::BalloonSavedState& b) {
  b.num_pages = r.U32(), b.actual = r.U32();
  const bool has_head = r.Bool();
  const uint16_t head = r.U16();
  if (has_head) b.stats_head = head;
  // One encoding per state: no head is written as 0.
  if (r.ok() && !has_head && head != 0) r.Invalid("a balloon stats head without its flag");
  b.stats.resize(r.Count(virtio::balloon::Balloon::kMaxStats, "balloon statistics"));
  for (auto& [tag, value] : b.stats) tag = r.U16(), value = r.U64();
}

void Put(StateWriter& w, const virtio::VsockSavedState& v) { w.U64(v.guest_cid); }
void Get(StateReader& r, virtio::VsockSavedState& v) { v.guest_cid = r.U64(); }

void Put(StateWriter& w, const irqchip::HpetState& h) {
  w.U64(h.config), w.U64(h.int_status), w.U64(h.counter);
  for (const auto& t : h.timers) {
    w.U64(t.config), w.U64(t.comparator), w.U64(t.period), w.U64(t.from);
    w.Bool(t.line_high), w.U32(t.line), w.Bool(t.line_legacy);
  }
}

void Get(StateReader& r, irqchip::HpetState& h) {
  h.config = r.U64(), h.int_status = r.U64(), h.counter = r.U64();
  for (auto& t : h.timers) {
    t.config = r.U64(), t.comparator = r.U64(), t.period = r.U64(), t.from = r.U64();
    t.line_high = r.Bool(), t.line = r.U32(), t.line_legacy = r.Bool();
  }
}

template <typename T>
void PutRecord(StateWriter& w, RecordKind kind, const T& state) {
  StateWriter payload;
  Put(payload, state);
  w.U16(static_cast<uint16_t>(kind));
  w.Bytes(payload.bytes());
}

// Decodes one record's payload; a payload longer or shorter than its kind's layout is
// corruption.
template <typename T>
void GetRecord(StateReader& r, std::span<const uint8_t> bytes, std::string_view what, T& state) {
  StateReader payload(bytes);
  Get(payload, state);
  if (auto ok = payload.Finish(what); !ok) r.Invalid(ok.error().message);
}

}  // namespace

void PutDeviceRecords(StateWriter& w, const DeviceStates& d) {
  const VirtioStates& v = d.virtio;
  const size_t count = v.nets.size() + (v.balloon ? 1 : 0) + (v.vsock ? 1 : 0) + (d.hpet ? 1 : 0);
  w.U32(static_cast<uint32_t>(count));
  for (const auto& net : v.nets) PutRecord(w, RecordKind::kVirtioNet, net);
  if (v.balloon) PutRecord(w, RecordKind::kVirtioBalloon, *v.balloon);
  if (v.vsock) PutRecord(w, RecordKind::kVirtioVsock, *v.vsock);
  if (d.hpet) PutRecord(w, RecordKind::kHpet, *d.hpet);
}

void GetDeviceRecords(StateReader& r, DeviceStates& d) {
  VirtioStates& v = d.virtio;
  const size_t count = r.Count(kMaxRecords, "device records");
  uint16_t last_kind = 0;
  for (size_t i = 0; i < count && r.ok(); ++i) {
    const uint16_t kind = r.U16();
    const std::vector<uint8_t> bytes = r.Bytes(kMaxRecordBytes);
    if (!r.ok()) break;
    // In kind order, as PutDeviceRecords writes them: one encoding per state.
    if (kind < last_kind) {
      return r.Invalid(
          fmt::format("device record kind {} after kind {} (out of order)", kind, last_kind));
    }
    last_kind = kind;
    switch (static_cast<RecordKind>(kind)) {
      case RecordKind::kVirtioNet:
        if (v.nets.size() == kMaxNets) return r.Invalid("more than 64 virtio-net records");
        GetRecord(r, bytes, "the virtio-net record", v.nets.emplace_back());
        break;
      case RecordKind::kVirtioBalloon:
        if (v.balloon) return r.Invalid("a second virtio-balloon record");
        GetRecord(r, bytes, "the virtio-balloon record", v.balloon.emplace());
        break;
      case RecordKind::kVirtioVsock:
        if (v.vsock) return r.Invalid("a second virtio-vsock record");
        GetRecord(r, bytes, "the virtio-vsock record", v.vsock.emplace());
        break;
      case RecordKind::kHpet:
        if (d.hpet) return r.Invalid("a second HPET record");
        GetRecord(r, bytes, "the HPET record", d.hpet.emplace());
        break;
      default:
        return r.Invalid(fmt::format(
            "device record kind {} is unknown to this vireo (a snapshot from a newer one?)", kind));
    }
  }
}

}  // namespace vireo::snapshot
