// Result<T>: the error type for set-up and configuration paths (rule 7).
// An Error's message names the problem and, where there is one, the fix.
#pragma once

#include <string>
#include <utility>

#include <fmt/format.h>
#include <tl/expected.hpp>

namespace vireo {

struct Error {
  std::string message;
};

template <typename T>
using Result = tl::expected<T, Error>;

// Status: a Result with no value.
using Status = Result<void>;

template <typename... Args>
tl::unexpected<Error> Fail(fmt::format_string<Args...> format, Args&&... args) {
  return tl::unexpected<Error>(Error{fmt::format(format, std::forward<Args>(args)...)});
}

// Prefixes context onto an error travelling up: "loading kernel: <inner>".
inline tl::unexpected<Error> Wrap(std::string_view context, const Error& inner) {
  return tl::unexpected<Error>(Error{fmt::format("{}: {}", context, inner.message)});
}

}  // namespace vireo

// Propagates the error of an expression returning Result<T>; evaluates to its value.
#define VIREO_TRY(expr)                                                       \
  ({                                                                          \
    auto vireo_try_result_ = (expr);                                          \
    if (!vireo_try_result_) return tl::unexpected(vireo_try_result_.error()); \
    std::move(*vireo_try_result_);                                            \
  })

// Same for Status (Result<void>).
#define VIREO_TRY_STATUS(expr)                                                \
  do {                                                                        \
    auto vireo_try_status_ = (expr);                                          \
    if (!vireo_try_status_) return tl::unexpected(vireo_try_status_.error()); \
  } while (0)
