#include "vmm/exit_stats.h"

#include <gtest/gtest.h>

namespace vireo {
namespace {

TEST(FormatStats, ReportsPerVcpuAndTotals) {
  std::vector<VcpuCounters> vcpus(2);
  vcpus[0].Count(accel::ExitReason::kIo);
  vcpus[0].Count(accel::ExitReason::kIo);
  vcpus[1].Count(accel::ExitReason::kIo);
  vcpus[1].mmio_unclaimed_writes = 4;
  RunTimings t;
  t.process_start = std::chrono::steady_clock::now();
  t.first_guest_entry = t.process_start + std::chrono::milliseconds(3);
  t.end = t.process_start + std::chrono::milliseconds(10);
  std::string s = FormatStats(vcpus, t);
  EXPECT_NE(s.find("time to first guest instruction: 3.000 ms"), std::string::npos) << s;
  EXPECT_NE(s.find("vcpu1"), std::string::npos);
  EXPECT_NE(s.find("stats: io                        2          1          3"), std::string::npos)
      << s;
  EXPECT_NE(s.find("stats: unclaimed pio_read=0 pio_write=0 mmio_read=0 mmio_write=4"),
            std::string::npos);
  EXPECT_EQ(s.find("mmio   "), std::string::npos) << "reasons with no exits are left out";
}

}  // namespace
}  // namespace vireo
