#include "img/progress.h"

#include <gtest/gtest.h>

#include <string>

namespace vireo::img {
namespace {

// Runs `body` against a Progress writing into a temporary file and returns what it wrote.
template <typename Body>
std::string Capture(bool enabled, double step, Body body) {
  std::FILE* f = std::tmpfile();
  {
    Progress p(enabled, f, step);
    body(p);
  }
  std::string out;
  std::rewind(f);
  for (int c; (c = std::fgetc(f)) != EOF;) out += static_cast<char>(c);
  std::fclose(f);
  return out;
}

TEST(ProgressTest, PrintsQemuStyleLineInPlace) {
  std::string out = Capture(true, 1.0, [](Progress& p) {
    p.Start(1000);
    p.Add(420);
    p.Add(580);
    p.Finish();
  });
  EXPECT_EQ(out, "    (0.00/100%)\r    (42.00/100%)\r    (100.00/100%)\r\n");
}

TEST(ProgressTest, SkipsSmallSteps) {
  std::string out = Capture(true, 1.0, [](Progress& p) {
    p.Start(10000);
    for (int i = 0; i < 50; ++i) p.Add(1);  // 0.5% in all: below the 1% step.
    p.Add(100);                             // 1.5%
  });
  EXPECT_EQ(out, "    (0.00/100%)\r    (1.50/100%)\r    (100.00/100%)\r\n");
}

TEST(ProgressTest, DisabledPrintsNothing) {
  EXPECT_EQ(Capture(false, 1.0,
                    [](Progress& p) {
                      p.Start(10);
                      p.Add(10);
                      p.Finish();
                    }),
            "");
}

TEST(ProgressTest, EmptyJobAndDoubleFinish) {
  std::string out = Capture(true, 1.0, [](Progress& p) {
    p.Start(0);
    p.Add(0);
    p.Finish();
    p.Finish();
  });
  EXPECT_EQ(out, "    (0.00/100%)\r    (100.00/100%)\r\n");
}

TEST(ProgressTest, NeverPastHundred) {
  std::string out = Capture(true, 1.0, [](Progress& p) {
    p.Start(100);
    p.Add(50);
    p.Add(500);  // More than the total: clamped, and 100% waits for Finish.
  });
  EXPECT_EQ(out, "    (0.00/100%)\r    (50.00/100%)\r    (100.00/100%)\r\n");
}

}  // namespace
}  // namespace vireo::img
