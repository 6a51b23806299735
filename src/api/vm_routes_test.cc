#include "api/vm_routes.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vireo::api {
namespace {

// A VM that follows the real state machine and records what the API asked of it.
class FakeController : public VmController {
 public:
  ControlResult<VmInfo> Info() override {
    VmInfo info;
    info.state = state;
    info.vcpus = 2;
    info.memory_bytes = 256ull << 20;
    info.kernel = "built-in";
    info.transport = "pci";
    info.accelerator = "kvm";
    info.irqchip = "split";
    info.devices = {"blk0"};
    info.boots = 1;
    return info;
  }
  ControlResult<VmCounters> Counters() override {
    VmCounters counters;
    counters.vcpus.resize(2);
    counters.vcpus[1].Count(accel::ExitReason::kIo);
    counters.vcpus[1].Count(accel::ExitReason::kIo);
    counters.vcpus[0].pio_unclaimed_reads = 3;
    counters.devices.push_back({"blk0", {{"reads", 7}, {"writes", 1}}});
    return counters;
  }
  ControlResult<VmState> Apply(VmAction action) override {
    auto next = Transition(state, action);
    if (!next) return tl::unexpected(ControlError{ControlError::Kind::kConflict, next.error()});
    if (fail_next) {
      fail_next = false;
      return tl::unexpected(ControlError{ControlError::Kind::kFailed, "vCPUs did not stop"});
    }
    actions.push_back(action);
    state = *next;
    return state;
  }

  ControlResult<MigrationInfo> Migrate(const MigrationRequest& request) override {
    migrations.push_back(request);
    MigrationInfo info;
    info.state = "active";
    info.uri = request.uri;
    info.block = request.block;
    if (request.block) info.disk_bytes_total = 1 << 20;
    info.postcopy_after_rounds = request.postcopy_after_rounds;
    return info;
  }
  std::vector<MigrationRequest> migrations;
  ControlResult<SnapshotInfo> Snapshot(const std::string& path, bool diff) override {
    if (state != VmState::kPaused) {
      return tl::unexpected(ControlError{ControlError::Kind::kConflict, "pause it first"});
    }
    snapshots.emplace_back(path, diff);
    return SnapshotInfo{path, diff ? "diff" : "full", 4096, 100, 7};
  }

  // A 64 MiB VM with a balloon; the controller checks the target's range (kInvalid).
  ControlResult<BalloonInfo> BalloonStatus() override {
    return BalloonInfo{balloon_target, balloon_target / 2, 64ull << 20};
  }
  ControlResult<BalloonInfo> SetBalloonTarget(uint64_t target_bytes) override {
    if (target_bytes > (64ull << 20)) {
      return tl::unexpected(ControlError{ControlError::Kind::kInvalid, "above the VM's memory"});
    }
    balloon_target = target_bytes;
    return BalloonStatus();
  }
  uint64_t balloon_target = 0;

  VmState state = VmState::kRunning;
  bool fail_next = false;
  std::vector<VmAction> actions;
  std::vector<std::pair<std::string, bool>> snapshots;
};

class VmRoutesTest : public ::testing::Test {
 protected:
  VmRoutesTest() { AddVmRoutes(router_, vm_); }
  HttpResponse Call(const std::string& method, const std::string& path, std::string body = "") {
    return router_.Dispatch({method, "/api/v1" + path, std::move(body)});
  }

  FakeController vm_;
  Router router_;
};

TEST_F(VmRoutesTest, InfoHasStateAndConfigSummary) {
  HttpResponse r = Call("GET", "/vm");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["state"], "running");
  EXPECT_EQ(r.body["boots"], 1);
  EXPECT_EQ(r.body["config"]["vcpus"], 2);
  EXPECT_EQ(r.body["config"]["memory_bytes"], 256ull << 20);
  EXPECT_EQ(r.body["config"]["kernel"], "built-in");
  EXPECT_EQ(r.body["config"]["transport"], "pci");
  EXPECT_EQ(r.body["config"]["irqchip"], "split");
  EXPECT_EQ(r.body["config"]["devices"], nlohmann::json::array({"blk0"}));
}

TEST_F(VmRoutesTest, CountersPerVcpuPerReasonAndPerDevice) {
  HttpResponse r = Call("GET", "/vm/counters");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body["vcpus"].size(), 2u);
  EXPECT_EQ(r.body["vcpus"][1]["id"], 1);
  EXPECT_EQ(r.body["vcpus"][1]["exits"]["io"], 2);
  EXPECT_EQ(r.body["vcpus"][0]["exits"]["io"], 0);  // every reason is listed
  EXPECT_EQ(r.body["vcpus"][0]["unclaimed"]["pio_reads"], 3);
  ASSERT_EQ(r.body["devices"].size(), 1u);
  EXPECT_EQ(r.body["devices"][0]["name"], "blk0");
  EXPECT_EQ(r.body["devices"][0]["counters"]["reads"], 7);
}

TEST_F(VmRoutesTest, PauseResumeAnswerTheNewState) {
  HttpResponse paused = Call("PUT", "/vm/pause");
  ASSERT_EQ(paused.status, 200);
  EXPECT_EQ(paused.body["state"], "paused");
  HttpResponse resumed = Call("PUT", "/vm/resume", "{}");
  ASSERT_EQ(resumed.status, 200);
  EXPECT_EQ(resumed.body["state"], "running");
  EXPECT_EQ(vm_.actions, (std::vector<VmAction>{VmAction::kPause, VmAction::kResume}));
}

TEST_F(VmRoutesTest, WrongStateIs409WithReasonAndChangesNothing) {
  HttpResponse r = Call("PUT", "/vm/resume");
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body["error"].get<std::string>().find("not paused"), std::string::npos);
  ASSERT_EQ(Call("PUT", "/vm/pause").status, 200);
  HttpResponse again = Call("PUT", "/vm/pause");
  EXPECT_EQ(again.status, 409);
  EXPECT_NE(again.body["error"].get<std::string>().find("already paused"), std::string::npos);
  EXPECT_EQ(Call("PUT", "/vm/shutdown").status, 409);  // paused: the guest cannot react
  EXPECT_EQ(vm_.state, VmState::kPaused);
  EXPECT_EQ(vm_.actions.size(), 1u);
}

TEST_F(VmRoutesTest, StopThenEverythingIs409) {
  ASSERT_EQ(Call("PUT", "/vm/stop").status, 200);
  EXPECT_EQ(Call("PUT", "/vm/reset").status, 409);
  EXPECT_EQ(Call("PUT", "/vm/stop").status, 409);
}

TEST_F(VmRoutesTest, FailedActionIs500) {
  vm_.fail_next = true;
  HttpResponse r = Call("PUT", "/vm/pause");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body["error"], "vCPUs did not stop");
}

TEST_F(VmRoutesTest, BadBodiesAndMethods) {
  EXPECT_EQ(Call("PUT", "/vm/pause", "not json").status, 400);
  EXPECT_EQ(Call("PUT", "/vm/pause", "{\"x\": 1}").status, 400);
  EXPECT_TRUE(vm_.actions.empty());
  HttpResponse r = Call("GET", "/vm/pause");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.allow, "PUT");
  EXPECT_EQ(Call("POST", "/vm").status, 405);
  EXPECT_EQ(Call("GET", "/vm/nope").status, 404);
  EXPECT_EQ(Call("POST", "/vm/migrate").status, 405);
  EXPECT_EQ(Call("GET", "/vm/snapshot").status, 405);  // PUT only
}

TEST_F(VmRoutesTest, EveryRouteIsUnderTheVersionedPrefix) {
  for (const auto& [method, path] : router_.routes()) {
    EXPECT_EQ(path.rfind("/api/v1/vm", 0), 0u) << method << " " << path;
  }
  EXPECT_EQ(router_.routes().size(), 12u);  // docs/api.yaml's operations
}

// PUT /vm/snapshot: the body's path and type reach the controller; anything else is 400, and
// the controller's refusal (not paused) is 409.
TEST_F(VmRoutesTest, SnapshotTakesPathAndTypeAndRefusesBadBodies) {
  EXPECT_EQ(Call("PUT", "/vm/snapshot", R"({"path": "/s"})").status, 409);
  vm_.state = VmState::kPaused;
  auto full = Call("PUT", "/vm/snapshot", R"({"path": "/s"})");
  ASSERT_EQ(full.status, 200) << full.body.dump();
  EXPECT_EQ(full.body["type"], "full");
  EXPECT_EQ(full.body["memory_bytes_written"], 4096);
  auto diff = Call("PUT", "/vm/snapshot", R"({"path": "/d", "type": "diff"})");
  ASSERT_EQ(diff.status, 200);
  EXPECT_EQ(diff.body["type"], "diff");
  ASSERT_EQ(vm_.snapshots.size(), 2u);
  EXPECT_EQ(vm_.snapshots[1], std::make_pair(std::string("/d"), true));
  for (const char* bad :
       {"", "{}", "not json", R"({"path": 5})", R"({"path": ""})",
        R"({"path": "/s", "type": "half"})", R"({"path": "/s", "extra": 1})", R"(["/s"])"}) {
    EXPECT_EQ(Call("PUT", "/vm/snapshot", bad).status, 400) << bad;
  }
  EXPECT_EQ(vm_.snapshots.size(), 2u);
}

// PUT /vm/migrate: uri, max_downtime_ms, bandwidth_mbps and block reach the controller and the
// answer is 202 (with the block fields for a block migration); bad bodies are 400 and reach
// nothing; GET reports (none before any).
TEST_F(VmRoutesTest, MigrateTakesItsParametersAndRefusesBadBodies) {
  auto none = Call("GET", "/vm/migrate");
  ASSERT_EQ(none.status, 200);
  EXPECT_EQ(none.body["state"], "none");
  auto started = Call("PUT", "/vm/migrate",
                      R"({"uri": "tcp:h:1", "max_downtime_ms": 50, "bandwidth_mbps": 800})");
  ASSERT_EQ(started.status, 202) << started.body.dump();
  EXPECT_EQ(started.body["state"], "active");
  ASSERT_EQ(vm_.migrations.size(), 1u);
  EXPECT_EQ(vm_.migrations[0].uri, "tcp:h:1");
  EXPECT_EQ(vm_.migrations[0].max_downtime_ms, 50u);
  EXPECT_EQ(vm_.migrations[0].bandwidth_mbps, 800u);
  ASSERT_EQ(Call("PUT", "/vm/migrate", R"({"uri": "tcp:h:1"})").status, 202);
  EXPECT_EQ(vm_.migrations[1].max_downtime_ms, 300u);  // the default
  EXPECT_FALSE(vm_.migrations[1].block);
  auto block = Call("PUT", "/vm/migrate", R"({"uri": "tcp:h:1", "block": true})");
  ASSERT_EQ(block.status, 202) << block.body.dump();
  ASSERT_EQ(vm_.migrations.size(), 3u);
  EXPECT_TRUE(vm_.migrations[2].block);
  EXPECT_EQ(block.body["block"], true);
  EXPECT_EQ(block.body["disk_bytes_total"], 1u << 20);
  for (const char* body :
       {"", "[]", R"({"uri": 5})", R"({"uri": "unix:/x"})",
        R"({"uri": "tcp:h:1", "max_downtime_ms": -1})",
        R"({"uri": "tcp:h:1", "max_downtime_ms": 0})",
        R"({"uri": "tcp:h:1", "bandwidth_mbps": "fast"})", R"({"uri": "tcp:h:1", "colour": 1})",
        R"({"uri": "tcp:h:1", "block": 1})", R"({"uri": "tcp:h:1", "block": "yes"})"}) {
    EXPECT_EQ(Call("PUT", "/vm/migrate", body).status, 400) << body;
  }
  EXPECT_EQ(vm_.migrations.size(), 3u);
}

// Post-copy: "postcopy": true switches after 3 rounds unless "postcopy_after_rounds" says
// otherwise (1 to 30); the answer carries the post-copy fields; without postcopy, or with a
// non-boolean or a round count out of range, it is 400 and reaches nothing.
TEST_F(VmRoutesTest, MigrateTakesThePostcopyFields) {
  auto plain = Call("PUT", "/vm/migrate", R"({"uri": "tcp:h:1"})");
  ASSERT_EQ(plain.status, 202);
  EXPECT_FALSE(plain.body.contains("postcopy"));
  EXPECT_EQ(vm_.migrations[0].postcopy_after_rounds, 0u);  // never switches
  auto by_default = Call("PUT", "/vm/migrate", R"({"uri": "tcp:h:1", "postcopy": true})");
  ASSERT_EQ(by_default.status, 202) << by_default.body.dump();
  EXPECT_EQ(vm_.migrations[1].postcopy_after_rounds, 3u);
  EXPECT_EQ(by_default.body["postcopy"], true);
  EXPECT_EQ(by_default.body["postcopy_after_rounds"], 3u);
  EXPECT_EQ(by_default.body["postcopy_switched"], false);
  EXPECT_EQ(by_default.body["postcopy_requests"], 0u);
  auto after_one = Call("PUT", "/vm/migrate",
                        R"({"uri": "tcp:h:1", "postcopy": true, "postcopy_after_rounds": 1})");
  ASSERT_EQ(after_one.status, 202) << after_one.body.dump();
  EXPECT_EQ(vm_.migrations[2].postcopy_after_rounds, 1u);
  ASSERT_EQ(Call("PUT", "/vm/migrate", R"({"uri": "tcp:h:1", "postcopy": false})").status, 202);
  EXPECT_EQ(vm_.migrations[3].postcopy_after_rounds, 0u);
  for (const char* body :
       {R"({"uri": "tcp:h:1", "postcopy": 1})", R"({"uri": "tcp:h:1", "postcopy_after_rounds": 2})",
        R"({"uri": "tcp:h:1", "postcopy": true, "postcopy_after_rounds": 0})",
        R"({"uri": "tcp:h:1", "postcopy": true, "postcopy_after_rounds": 31})",
        R"({"uri": "tcp:h:1", "postcopy": true, "postcopy_after_rounds": -1})"}) {
    EXPECT_EQ(Call("PUT", "/vm/migrate", body).status, 400) << body;
  }
  EXPECT_EQ(vm_.migrations.size(), 4u);
}

TEST_F(VmRoutesTest, BalloonSetsTheTargetAndRefusesBadBodies) {
  auto set = Call("PUT", "/vm/balloon", R"({"target_bytes": 16777216})");
  ASSERT_EQ(set.status, 200) << set.body.dump();
  EXPECT_EQ(set.body["target_bytes"], 16ull << 20);
  EXPECT_EQ(set.body["num_pages"], 4096u);
  auto get = Call("GET", "/vm/balloon");
  ASSERT_EQ(get.status, 200);
  EXPECT_EQ(get.body["actual_bytes"], 8ull << 20);
  EXPECT_EQ(get.body["actual_pages"], 2048u);
  EXPECT_EQ(get.body["memory_bytes"], 64ull << 20);
  auto above = Call("PUT", "/vm/balloon", R"({"target_bytes": 67112960})");
  EXPECT_EQ(above.status, 400);
  EXPECT_EQ(above.body["error"], "above the VM's memory");
  for (const char* body : {"", "{}", R"({"target_bytes": -1})", R"({"target_bytes": "1G"})",
                           R"({"target_bytes": 0, "colour": 1})"}) {
    EXPECT_EQ(Call("PUT", "/vm/balloon", body).status, 400) << body;
  }
  EXPECT_EQ(vm_.balloon_target, 16ull << 20);
}

// A controller that keeps VmController's defaults: no balloon is a 409 with the reason.
TEST(VmRoutesDefaults, NoBalloonIs409) {
  struct Minimal : VmController {
    ControlResult<VmInfo> Info() override { return VmInfo{}; }
    ControlResult<VmCounters> Counters() override { return VmCounters{}; }
    ControlResult<VmState> Apply(VmAction) override { return VmState::kRunning; }
  } vm;
  Router router;
  AddVmRoutes(router, vm);
  auto get = router.Dispatch({"GET", "/api/v1/vm/balloon", ""});
  EXPECT_EQ(get.status, 409);
  EXPECT_EQ(get.body["error"], "the VM has no balloon");
  EXPECT_EQ(router.Dispatch({"PUT", "/api/v1/vm/balloon", R"({"target_bytes": 0})"}).status, 409);
}

}  // namespace
}  // namespace vireo::api
