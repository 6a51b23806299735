#include "vmm/snapshot/virtio_state.h"

#include <fmt/format.h>

#include "devices/pci/config_space.h"

namespace vireo::snapshot {
namespace {

constexpr size_t kMaxDevices = 64;
constexpr size_t kMaxQueues = pci::msix::kMaxVectors - 1;
constexpr size_t kMaxPbaWords = (pci::msix::kMaxVectors + 63) / 64;

void Put(StateWriter& w, const virtio::QueueState& q) {
  w.U16(q.size);
  w.U64(q.desc_table), w.U64(q.avail_ring), w.U64(q.used_ring);
  w.Bool(q.ready);
  w.U16(q.next_avail), w.U16(q.next_used), w.U16(q.signalled_used);
  w.Bool(q.event_idx), w.Bool(q.indirect_desc);
}

void Get(StateReader& r, virtio::QueueState& q) {
  q.size = r.U16();
  q.desc_table = r.U64(), q.avail_ring = r.U64(), q.used_ring = r.U64();
  q.ready = r.Bool();
  q.next_avail = r.U16(), q.next_used = r.U16(), q.signalled_used = r.U16();
  q.event_idx = r.Bool(), q.indirect_desc = r.Bool();
}

void Put(StateWriter& w, const virtio::TransportState& t) {
  w.U8(t.status);
  w.U32(t.device_features_select), w.U32(t.driver_features_select);
  w.U64(t.driver_features);
  w.U32(t.queue_select);
  w.U32(t.config_generation);
  w.U8(t.interrupt_status);
  w.U32(static_cast<uint32_t>(t.queues.size()));
  for (const virtio::QueueState& q : t.queues) Put(w, q);
  w.U16(t.config_vector);
  w.U32(static_cast<uint32_t>(t.queue_vectors.size()));
  for (uint16_t v : t.queue_vectors) w.U16(v);
  w.Bytes(t.pci_config);
  w.U32(static_cast<uint32_t>(t.msix.table.size()));
  for (const pci::MsixEntryState& e : t.msix.table) {
    w.U32(e.address_low), w.U32(e.address_high), w.U32(e.data), w.U32(e.control);
  }
  w.U32(static_cast<uint32_t>(t.msix.pba.size()));
  for (uint64_t word : t.msix.pba) w.U64(word);
}

void Get(StateReader& r, virtio::TransportState& t) {
  t.status = r.U8();
  t.device_features_select = r.U32(), t.driver_features_select = r.U32();
  t.driver_features = r.U64();
  t.queue_select = r.U32();
  t.config_generation = r.U32();
  t.interrupt_status = r.U8();
  t.queues.resize(r.Count(kMaxQueues, "virtqueues"));
  for (virtio::QueueState& q : t.queues) Get(r, q);
  t.config_vector = r.U16();
  t.queue_vectors.resize(r.Count(kMaxQueues, "queue MSI-X vectors"));
  for (uint16_t& v : t.queue_vectors) v = r.U16();
  t.pci_config = r.Bytes(pci::kConfigSpaceSize);
  t.msix.table.resize(r.Count(pci::msix::kMaxVectors, "MSI-X table entries"));
  for (pci::MsixEntryState& e : t.msix.table) {
    e.address_low = r.U32(), e.address_high = r.U32(), e.data = r.U32(), e.control = r.U32();
  }
  t.msix.pba.resize(r.Count(kMaxPbaWords, "MSI-X PBA words"));
  for (uint64_t& word : t.msix.pba) word = r.U64();
}

}  // namespace

void Put(StateWriter& w, const VirtioStates& v) {
  w.Bytes(v.host_bridge);
  w.U32(v.pci_config_address);
  w.U32(static_cast<uint32_t>(v.transports.size()));
  for (const virtio::TransportState& t : v.transports) Put(w, t);
}

void Get(StateReader& r, VirtioStates& v) {
  v.host_bridge = r.Bytes(pci::kConfigSpaceSize);
  if (r.ok() && !v.host_bridge.empty() && v.host_bridge.size() != pci::kConfigSpaceSize) {
    r.Invalid(fmt::format("the PCI host bridge's configuration space is {} bytes, not 256",
                          v.host_bridge.size()));
  }
  v.pci_config_address = r.U32();
  v.transports.resize(r.Count(kMaxDevices, "virtio devices"));
  for (virtio::TransportState& t : v.transports) Get(r, t);
}

}  // namespace vireo::snapshot
