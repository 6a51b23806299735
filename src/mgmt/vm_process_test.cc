#include "mgmt/vm_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/unique_fd.h"

namespace vireo::mgmt {
namespace {

class VmProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vireo-vmproc-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  LaunchSpec Spec(const std::string& script) {
    LaunchSpec spec;
    spec.argv = {"/bin/sh", "-c", script};
    spec.log_path = dir_ + "/log";
    spec.console_path = dir_ + "/console";
    spec.console_input = dir_ + "/in";
    spec.exit_path = dir_ + "/exit";
    return spec;
  }
  std::string Read(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  std::string dir_;
};

TEST_F(VmProcessTest, MonitorRecordsTheExitStatusAndWiresStdio) {
  auto record = SpawnVm(Spec("read line; echo \"out $line\"; echo err >&2; exit 3"));
  ASSERT_TRUE(record) << record.error().message;
  EXPECT_TRUE(IsSameProcess(record->vm_pid, record->vm_start));
  {
    std::ofstream in(dir_ + "/in");
    in << "hello\n";
  }
  UniqueFd stop(eventfd(0, 0));
  ASSERT_TRUE(WaitForExit(*record, stop.get()));
  auto status = ReadExitFile(dir_ + "/exit");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->Describe(), "exit status 3");
  EXPECT_EQ(Read("console"), "out hello\n");
  EXPECT_EQ(Read("log"), "err\n");
  EXPECT_FALSE(IsSameProcess(record->vm_pid, record->vm_start));
}

TEST_F(VmProcessTest, AKilledVmIsReportedWithItsSignal) {
  auto record = SpawnVm(Spec("exec sleep 30"));
  ASSERT_TRUE(record) << record.error().message;
  ASSERT_EQ(kill(record->vm_pid, SIGKILL), 0);
  UniqueFd stop(eventfd(0, 0));
  ASSERT_TRUE(WaitForExit(*record, stop.get()));
  auto status = ReadExitFile(dir_ + "/exit");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->Describe(), "killed by signal 9");
}

TEST_F(VmProcessTest, WatchingCanStopWithoutTheVmEnding) {
  auto record = SpawnVm(Spec("exec sleep 30"));
  ASSERT_TRUE(record) << record.error().message;
  UniqueFd stop(eventfd(0, 0));
  uint64_t one = 1;
  ASSERT_EQ(write(stop.get(), &one, sizeof(one)), 8);
  EXPECT_FALSE(WaitForExit(*record, stop.get()));
  EXPECT_TRUE(IsSameProcess(record->vm_pid, record->vm_start));
  kill(record->vm_pid, SIGKILL);
  UniqueFd stop2(eventfd(0, 0));
  EXPECT_TRUE(WaitForExit(*record, stop2.get()));
}

TEST(ProcessStartTime, IdentifiesAProcess) {
  EXPECT_NE(ProcessStartTime(getpid()), 0u);
  EXPECT_TRUE(IsSameProcess(getpid(), ProcessStartTime(getpid())));
  EXPECT_FALSE(IsSameProcess(getpid(), ProcessStartTime(getpid()) + 1));
  EXPECT_EQ(ProcessStartTime(0), 0u);
}

}  // namespace
}  // namespace vireo::mgmt
