#include "api/http_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace vireo::api {
namespace {

std::string TempSocketPath() {
  char dir[] = "/tmp/vireo-api-test-XXXXXX";
  EXPECT_NE(::mkdtemp(dir), nullptr);
  return std::string(dir) + "/api.sock";
}

// One request over a fresh connection (Connection: close): the raw response text.
std::string Request(const std::string& path, const std::string& raw) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  (void)!::write(fd, raw.data(), raw.size());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

Router CountingRouter(std::atomic<int>& calls) {
  Router router;
  router.Add("GET", "/ping", [&calls](const HttpRequest&) {
    calls++;
    return HttpResponse{200, {{"pong", true}}, {}};
  });
  router.Add("PUT", "/ping", [](const HttpRequest& r) {
    return HttpResponse{200, {{"len", r.body.size()}}, {}};
  });
  return router;
}

TEST(ApiServerTest, ServesJsonOverAUnixSocketAndCleansUp) {
  const std::string path = TempSocketPath();
  std::atomic<int> calls{0};
  {
    auto server = ApiServer::Start(path, CountingRouter(calls));
    ASSERT_TRUE(server) << server.error().message;
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    std::string ok = Request(path, "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u) << ok;
    EXPECT_NE(ok.find("application/json"), std::string::npos);
    EXPECT_NE(ok.find("{\"pong\":true}"), std::string::npos);

    std::string body = Request(
        path, "PUT /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    EXPECT_NE(body.find("{\"len\":2}"), std::string::npos) << body;

    std::string missing =
        Request(path, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(missing.rfind("HTTP/1.1 404", 0), 0u) << missing;
    EXPECT_NE(missing.find("\"error\""), std::string::npos);

    std::string wrong =
        Request(path, "DELETE /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(wrong.rfind("HTTP/1.1 405", 0), 0u) << wrong;
    EXPECT_NE(wrong.find("Allow: GET, PUT"), std::string::npos) << wrong;

    // Garbage is the library's to reject; the answer is still JSON.
    std::string garbage = Request(path, "NOT HTTP AT ALL\r\n\r\n");
    EXPECT_EQ(garbage.rfind("HTTP/1.1 400", 0), 0u) << garbage;
    EXPECT_NE(garbage.find("\"error\""), std::string::npos) << garbage;

    // Concurrent clients all get answers.
    std::vector<std::thread> clients;
    std::atomic<int> ok_count{0};
    for (int i = 0; i < 8; ++i) {
      clients.emplace_back([&] {
        for (int j = 0; j < 10; ++j) {
          std::string r =
              Request(path, "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
          if (r.rfind("HTTP/1.1 200", 0) == 0) ok_count++;
        }
      });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(ok_count.load(), 80);
    EXPECT_EQ(calls.load(), 81);
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0);  // removed on shutdown
}

TEST(ApiServerTest, ReplacesAStaleSocketButNeverARegularFile) {
  const std::string path = TempSocketPath();
  std::atomic<int> calls{0};
  { std::ofstream(path) << "precious"; }
  auto refused = ApiServer::Start(path, CountingRouter(calls));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("not a socket"), std::string::npos);
  EXPECT_EQ(::access(path.c_str(), F_OK), 0);  // left alone
  ::unlink(path.c_str());

  int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(::bind(stale, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(stale);  // the file stays: a stale socket
  auto server = ApiServer::Start(path, CountingRouter(calls));
  ASSERT_TRUE(server) << server.error().message;
}

TEST(ApiServerTest, RejectsOverlongPaths) {
  std::atomic<int> calls{0};
  EXPECT_FALSE(ApiServer::Start("/tmp/" + std::string(200, 'x'), CountingRouter(calls)));
}

}  // namespace
}  // namespace vireo::api
