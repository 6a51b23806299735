#include "api/router.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace vireo::api {
namespace {

Router MakeRouter() {
  Router router;
  router.Add("GET", "/a", [](const HttpRequest&) { return HttpResponse{200, {{"ok", true}}, {}}; });
  router.Add("PUT", "/a", [](const HttpRequest& r) {
    return HttpResponse{201, {{"body", r.body}}, {}};
  });
  router.Add("GET", "/throws",
             [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
  return router;
}

TEST(RouterTest, MatchesPathThenMethod) {
  Router router = MakeRouter();
  HttpResponse get = router.Dispatch({"GET", "/a", ""});
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body["ok"], true);
  HttpResponse put = router.Dispatch({"PUT", "/a", "x"});
  EXPECT_EQ(put.status, 201);
  EXPECT_EQ(put.body["body"], "x");
}

TEST(RouterTest, UnknownPathIs404WithJsonError) {
  HttpResponse r = MakeRouter().Dispatch({"GET", "/nope", ""});
  EXPECT_EQ(r.status, 404);
  ASSERT_TRUE(r.body.contains("error"));
  EXPECT_NE(r.body["error"].get<std::string>().find("/nope"), std::string::npos);
  // Paths match exactly: no prefix or trailing-slash guessing.
  EXPECT_EQ(MakeRouter().Dispatch({"GET", "/a/", ""}).status, 404);
}

TEST(RouterTest, WrongMethodIs405WithAllow) {
  HttpResponse r = MakeRouter().Dispatch({"DELETE", "/a", ""});
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.allow, "GET, PUT");
  EXPECT_TRUE(r.body.contains("error"));
}

TEST(RouterTest, HandlerExceptionBecomes500) {
  HttpResponse r = MakeRouter().Dispatch({"GET", "/throws", ""});
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body["error"].get<std::string>().find("boom"), std::string::npos);
}

TEST(RouterTest, ListsRoutes) {
  auto routes = MakeRouter().routes();
  EXPECT_EQ(routes.size(), 3u);
}

}  // namespace
}  // namespace vireo::api
