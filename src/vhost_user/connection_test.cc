#include "vhost_user/connection.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

namespace vireo::vhost_user {
namespace {

struct Pair {
  Pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
  UniqueFd a, b;
};

TEST(Connection, RoundTripsAMessageWithFds) {
  Pair p;
  UniqueFd e1(::eventfd(0, EFD_CLOEXEC)), e2(::eventfd(0, EFD_CLOEXEC));
  const int fds[] = {e1.get(), e2.get()};
  const uint64_t value = 0x1122334455667788;
  ASSERT_TRUE(SendMessage(p.a.get(), Header{5, kVersion | kFlagNeedReply, 0}, BytesOf(value), fds));
  auto m = ReceiveMessage(p.b.get());
  ASSERT_TRUE(m) << m.error().message;
  ASSERT_TRUE(*m);
  EXPECT_EQ((*m)->header.request, 5u);
  EXPECT_TRUE((*m)->need_reply());
  EXPECT_EQ((*m)->As<uint64_t>(), value);
  EXPECT_FALSE((*m)->As<uint32_t>()) << "As<T> wants the exact size";
  ASSERT_EQ((*m)->fds.size(), 2u);
  struct stat st;
  EXPECT_EQ(::fstat((*m)->fds[0].get(), &st), 0);
}

TEST(Connection, OrderlyCloseBetweenMessagesIsNotAnError) {
  Pair p;
  p.a.reset();
  auto m = ReceiveMessage(p.b.get());
  ASSERT_TRUE(m);
  EXPECT_FALSE(*m);
}

TEST(Connection, CloseInsideAMessageIsAnError) {
  Pair p;
  Header h{1, kVersion, 8};
  ASSERT_EQ(::write(p.a.get(), &h, sizeof(h)), static_cast<ssize_t>(sizeof(h)));
  ASSERT_EQ(::write(p.a.get(), "abc", 3), 3);
  p.a.reset();
  EXPECT_FALSE(ReceiveMessage(p.b.get()));
}

TEST(Connection, HeaderSplitAcrossWritesIsReassembled) {
  Pair p;
  Header h{1, kVersion, 0};
  auto* bytes = reinterpret_cast<const uint8_t*>(&h);
  ASSERT_EQ(::write(p.a.get(), bytes, 5), 5);
  ASSERT_EQ(::write(p.a.get(), bytes + 5, sizeof(h) - 5), static_cast<ssize_t>(sizeof(h) - 5));
  auto m = ReceiveMessage(p.b.get());
  ASSERT_TRUE(m && *m);
  EXPECT_EQ((*m)->header.request, 1u);
}

TEST(Connection, RefusesOversizedPayloadsAndOtherVersions) {
  {
    Pair p;
    Header h{1, kVersion, static_cast<uint32_t>(kMaxPayload + 1)};
    ASSERT_EQ(::write(p.a.get(), &h, sizeof(h)), static_cast<ssize_t>(sizeof(h)));
    EXPECT_FALSE(ReceiveMessage(p.b.get()));
  }
  {
    Pair p;
    Header h{1, 0, 0};
    ASSERT_EQ(::write(p.a.get(), &h, sizeof(h)), static_cast<ssize_t>(sizeof(h)));
    EXPECT_FALSE(ReceiveMessage(p.b.get()));
  }
}

TEST(Connection, StopFdAbandonsAStalledRead) {
  Pair p;
  UniqueFd stop(::eventfd(1, EFD_CLOEXEC));
  auto m = ReceiveMessage(p.b.get(), stop.get());
  EXPECT_FALSE(m);
}

}  // namespace
}  // namespace vireo::vhost_user
