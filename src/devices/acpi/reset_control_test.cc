#include "devices/acpi/reset_control.h"

#include <gtest/gtest.h>

#include <array>

#include "devices/testing/fakes.h"

namespace vireo {
namespace {

class ResetControlTest : public ::testing::Test {
 protected:
  void Write(uint8_t value) {
    const std::array<uint8_t, 1> bytes = {value};
    device_.Write(0, bytes);
  }
  uint8_t Read() {
    std::array<uint8_t, 1> bytes{};
    device_.Read(0, bytes);
    return bytes[0];
  }

  testing::FakeVmControl control_;
  ResetControlDevice device_{control_};
};

TEST_F(ResetControlTest, AcpiResetValueRequestsReset) {
  Write(0x06);  // FADT RESET_VALUE: SYS_RST | RST_CPU
  ASSERT_EQ(control_.requests.size(), 1u);
  EXPECT_EQ(control_.requests[0].kind, StopKind::kReset);
}

TEST_F(ResetControlTest, FullResetRequestsReset) {
  Write(0x0e);  // FULL_RST | RST_CPU | SYS_RST
  ASSERT_EQ(control_.requests.size(), 1u);
  EXPECT_EQ(control_.requests[0].kind, StopKind::kReset);
}

TEST_F(ResetControlTest, SysRstAloneOnlyArmsTheResetKind) {
  Write(0x02);  // Linux's reboot=pci writes this first, then 0x06
  EXPECT_TRUE(control_.requests.empty());
  EXPECT_EQ(Read(), 0x02);
  Write(0x06);
  EXPECT_EQ(control_.requests.size(), 1u);
}

TEST_F(ResetControlTest, ReadsReturnTheLastWrite) {
  EXPECT_EQ(Read(), 0x00);
  Write(0x0a);
  EXPECT_EQ(Read(), 0x0a);
  EXPECT_TRUE(control_.requests.empty());
  EXPECT_EQ(device_.value(), 0x0a);
}

}  // namespace
}  // namespace vireo
