#include "devices/legacy/debug_exit.h"

#include <gtest/gtest.h>

#include <array>

#include "devices/testing/fakes.h"

namespace vireo {
namespace {

using testing::FakeVmControl;

TEST(DebugExit, StatusForEachWidth) {
  FakeVmControl vm;
  DebugExit dev(vm);
  const std::array<uint8_t, 4> zero{0, 0, 0, 0};
  const std::array<uint8_t, 4> answer{0x2a, 0, 0, 0};
  for (size_t width : {1u, 2u, 4u}) {
    dev.Write(0, std::span(zero).first(width));
    dev.Write(0, std::span(answer).first(width));
  }
  ASSERT_EQ(vm.requests.size(), 6u);
  for (size_t i = 0; i < vm.requests.size(); ++i) {
    EXPECT_EQ(vm.requests[i].kind, StopKind::kDebugExit);
    EXPECT_EQ(vm.requests[i].exit_status, i % 2 == 0 ? 1 : 0x55) << "request " << i;
  }
}

TEST(DebugExit, WideValuesUseAllBytes) {
  FakeVmControl vm;
  DebugExit dev(vm);
  const std::array<uint8_t, 2> value{0x34, 0x12};
  dev.Write(0, value);
  ASSERT_EQ(vm.requests.size(), 1u);
  EXPECT_EQ(vm.requests[0].exit_status, (0x1234 << 1) | 1);
  EXPECT_EQ(DebugExit::ExitStatus(0x7fffffff), -1);  // low 32 bits, as an int
}

TEST(DebugExit, ReadsReturnZeroAsQemu) {
  FakeVmControl vm;
  DebugExit dev(vm);
  std::array<uint8_t, 4> data{0xff, 0xff, 0xff, 0xff};
  dev.Read(0, data);
  EXPECT_EQ(data, (std::array<uint8_t, 4>{0, 0, 0, 0}));
  EXPECT_TRUE(vm.requests.empty());
}

}  // namespace
}  // namespace vireo
