#include "vmm/vm_state.h"

#include <gtest/gtest.h>

namespace vireo {
namespace {

TEST(VmStateTest, PauseAndResumeAlternate) {
  auto paused = Transition(VmState::kRunning, VmAction::kPause);
  ASSERT_TRUE(paused);
  EXPECT_EQ(*paused, VmState::kPaused);
  auto resumed = Transition(*paused, VmAction::kResume);
  ASSERT_TRUE(resumed);
  EXPECT_EQ(*resumed, VmState::kRunning);
}

TEST(VmStateTest, WrongStateCallsAreRefusedWithAReason) {
  struct Case {
    VmState state;
    VmAction action;
    const char* reason;
  };
  const Case cases[] = {
      {VmState::kRunning, VmAction::kResume, "not paused"},
      {VmState::kPaused, VmAction::kPause, "already paused"},
      {VmState::kPaused, VmAction::kShutdown, "paused"},
      {VmState::kShuttingDown, VmAction::kPause, "shutting down"},
      {VmState::kShuttingDown, VmAction::kShutdown, "already in progress"},
      {VmState::kShuttingDown, VmAction::kResume, "not paused"},
      {VmState::kStopping, VmAction::kStop, "stopping"},
      {VmState::kStopping, VmAction::kReset, "stopping"},
      {VmState::kStopping, VmAction::kResume, "stopping"},
  };
  for (const Case& c : cases) {
    auto next = Transition(c.state, c.action);
    ASSERT_FALSE(next) << VmStateName(c.state) << " " << VmActionName(c.action);
    EXPECT_NE(next.error().find(c.reason), std::string::npos) << next.error();
  }
}

TEST(VmStateTest, ResetAndStopWorkFromEveryLiveState) {
  for (VmState state : {VmState::kRunning, VmState::kPaused, VmState::kShuttingDown}) {
    for (VmAction action : {VmAction::kReset, VmAction::kStop}) {
      auto next = Transition(state, action);
      ASSERT_TRUE(next) << VmStateName(state) << " " << VmActionName(action);
      EXPECT_EQ(*next, VmState::kStopping);
    }
  }
}

TEST(VmStateTest, ShutdownPressesTheButtonOnlyWhileRunning) {
  auto next = Transition(VmState::kRunning, VmAction::kShutdown);
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, VmState::kShuttingDown);
}

TEST(VmStateTest, NamesAreTheApiStrings) {
  EXPECT_EQ(VmStateName(VmState::kRunning), "running");
  EXPECT_EQ(VmStateName(VmState::kPaused), "paused");
  EXPECT_EQ(VmStateName(VmState::kShuttingDown), "shutting_down");
  EXPECT_EQ(VmStateName(VmState::kStopping), "stopping");
}

}  // namespace
}  // namespace vireo
