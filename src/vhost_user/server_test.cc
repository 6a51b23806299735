#include "vhost_user/server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <thread>

#include "block/testing.h"
#include "vhost_user/connection.h"
#include "virtio/rng.h"

namespace vireo::vhost_user {
namespace {

UniqueFd Connect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  return fd;
}

std::optional<uint64_t> GetFeatures(int fd) {
  if (!SendMessage(fd, Header{static_cast<uint32_t>(Request::kGetFeatures), kVersion, 0}, {})) {
    return std::nullopt;
  }
  auto reply = ReceiveMessage(fd);
  if (!reply || !*reply) return std::nullopt;
  return (*reply)->As<uint64_t>();
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    path_ = dir_.path() + "/vhost.sock";
    auto loop = EventLoop::Create("vhost-test");
    ASSERT_TRUE(loop);
    loop_ = std::move(*loop);
    ASSERT_TRUE(loop_->Start());
  }
  block::testing::TempDir dir_;
  std::string path_;
  std::unique_ptr<EventLoop> loop_;
  virtio::Rng rng_;
};

TEST_F(ServerTest, AcceptsAgainAfterAFrontendLeavesUntilStopped) {
  auto server = Server::Listen(path_);
  ASSERT_TRUE(server) << server.error().message;
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
  Status served;
  std::thread t([&] { served = server->Serve(rng_, *loop_, stop.get(), /*once=*/false); });
  for (int i = 0; i < 3; ++i) {
    UniqueFd c = Connect(path_);
    ASSERT_TRUE(c) << "connection " << i;
    EXPECT_TRUE(GetFeatures(c.get())) << "connection " << i;
  }
  const uint64_t one = 1;
  ASSERT_EQ(::write(stop.get(), &one, sizeof(one)), 8);
  t.join();
  EXPECT_TRUE(served);
  EXPECT_EQ(server->connections(), 3u);
}

TEST_F(ServerTest, OnceReturnsAfterTheFirstFrontend) {
  auto server = Server::Listen(path_);
  ASSERT_TRUE(server);
  std::thread t([&] { EXPECT_TRUE(server->Serve(rng_, *loop_, -1, /*once=*/true)); });
  {
    UniqueFd c = Connect(path_);
    ASSERT_TRUE(c);
    EXPECT_TRUE(GetFeatures(c.get()));
  }
  t.join();
  EXPECT_EQ(server->connections(), 1u);
}

TEST_F(ServerTest, StopEndsAStalledConnection) {
  auto server = Server::Listen(path_);
  ASSERT_TRUE(server);
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
  std::thread t([&] { EXPECT_TRUE(server->Serve(rng_, *loop_, stop.get(), false)); });
  UniqueFd c = Connect(path_);
  ASSERT_TRUE(c);
  Header partial{static_cast<uint32_t>(Request::kSetFeatures), kVersion, 8};
  ASSERT_EQ(::write(c.get(), &partial, sizeof(partial)), 12);  // and never the payload
  const uint64_t one = 1;
  ASSERT_EQ(::write(stop.get(), &one, sizeof(one)), 8);
  t.join();
}

TEST_F(ServerTest, ReplacesAStaleSocketButNotALiveOneOrAFile) {
  {
    auto first = Server::Listen(path_);
    ASSERT_TRUE(first);
    auto second = Server::Listen(path_);
    ASSERT_FALSE(second) << "a listening back-end owns the path";
    EXPECT_NE(second.error().message.find("in use"), std::string::npos);
  }
  struct stat st;
  // ~Server removed the file. A killed back-end leaves one nobody listens on: bind, no listen.
  UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  ASSERT_EQ(::bind(stale.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  stale.reset();
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  auto replaced = Server::Listen(path_);
  ASSERT_TRUE(replaced) << replaced.error().message;

  const std::string file = dir_.File("plain", {1, 2, 3});
  auto refused = Server::Listen(file);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("not a socket"), std::string::npos);
}

}  // namespace
}  // namespace vireo::vhost_user
