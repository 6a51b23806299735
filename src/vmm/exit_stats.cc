#include "vmm/exit_stats.h"

#include <fmt/format.h>

namespace vireo {

VcpuCounters LoadCounters(const VcpuCounters& live) {
  // atomic_ref needs a non-const object; the loads do not write.
  auto load = [](const uint64_t& v) {
    return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(v)).load(std::memory_order_relaxed);
  };
  VcpuCounters out;
  for (size_t i = 0; i < out.exits.size(); ++i) out.exits[i] = load(live.exits[i]);
  out.pio_unclaimed_reads = load(live.pio_unclaimed_reads);
  out.pio_unclaimed_writes = load(live.pio_unclaimed_writes);
  out.mmio_unclaimed_reads = load(live.mmio_unclaimed_reads);
  out.mmio_unclaimed_writes = load(live.mmio_unclaimed_writes);
  return out;
}

std::string FormatStats(const std::vector<VcpuCounters>& vcpus, const RunTimings& timings) {
  using accel::ExitReason;
  std::string out;
  auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  if (timings.first_guest_entry.time_since_epoch().count() != 0) {
    out += fmt::format("stats: time to first guest instruction: {:.3f} ms\n",
                       ms(timings.first_guest_entry - timings.process_start));
  }
  out += fmt::format("stats: wall time: {:.3f} ms\n", ms(timings.end - timings.process_start));

  out += fmt::format("stats: {:<16}", "exit reason");
  for (size_t i = 0; i < vcpus.size(); ++i) out += fmt::format(" {:>10}", fmt::format("vcpu{}", i));
  out += fmt::format(" {:>10}\n", "total");
  for (size_t r = 0; r < static_cast<size_t>(ExitReason::kCount); ++r) {
    uint64_t total = 0;
    for (const auto& v : vcpus) total += v.exits[r];
    if (total == 0) continue;
    out += fmt::format("stats: {:<16}", accel::ExitReasonName(static_cast<ExitReason>(r)));
    for (const auto& v : vcpus) out += fmt::format(" {:>10}", v.exits[r]);
    out += fmt::format(" {:>10}\n", total);
  }
  VcpuCounters sum;
  for (const auto& v : vcpus) {
    sum.pio_unclaimed_reads += v.pio_unclaimed_reads;
    sum.pio_unclaimed_writes += v.pio_unclaimed_writes;
    sum.mmio_unclaimed_reads += v.mmio_unclaimed_reads;
    sum.mmio_unclaimed_writes += v.mmio_unclaimed_writes;
  }
  out += fmt::format("stats: unclaimed pio_read={} pio_write={} mmio_read={} mmio_write={}\n",
                     sum.pio_unclaimed_reads, sum.pio_unclaimed_writes, sum.mmio_unclaimed_reads,
                     sum.mmio_unclaimed_writes);
  return out;
}

}  // namespace vireo
