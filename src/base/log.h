// Minimal leveled logging to stderr. Set-up paths only; never on the vCPU hot path.
#pragma once

#include <cstdio>

#include <fmt/format.h>

namespace vireo {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

LogLevel GetLogLevel();
void SetLogLevel(LogLevel level);

template <typename... Args>
void Log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level > GetLogLevel()) return;
  static constexpr const char* kNames[] = {"error", "warning", "info", "debug"};
  fmt::print(stderr, "vireo: {}: {}\n", kNames[static_cast<int>(level)],
             fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace vireo
