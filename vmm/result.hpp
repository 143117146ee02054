// Errors as values. Every fallible call in forkvm returns Result<T>; the
// message carries its context ("KVM_CREATE_VM: Permission denied"), and
// callers add theirs with context() on the way up. Exceptions are not used
// across module boundaries.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace forkvm {

struct Error {
  std::string message;

  // Prefixes the message with the outer operation: "boot: load kernel: ...".
  [[nodiscard]] Error context(std::string_view outer) const {
    return Error{fmt::format("{}: {}", outer, message)};
  }
};

// An Error from errno, formatted as "what: strerror(errno)".
[[nodiscard]] inline Error errno_error(std::string_view what, int err = errno) {
  return Error{fmt::format("{}: {}", what, std::strerror(err))};
}

template <typename... Args>
[[nodiscard]] Error make_error(fmt::format_string<Args...> f, Args&&... args) {
  return Error{fmt::format(f, std::forward<Args>(args)...)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}    // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

  [[nodiscard]] Result context(std::string_view outer) && {
    if (ok()) return std::move(*this);
    return error().context(outer);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  [[nodiscard]] const Error& error() const { return error_; }

  [[nodiscard]] Result context(std::string_view outer) && {
    if (ok()) return {};
    return error_.context(outer);
  }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace forkvm

// Propagates an error from an expression yielding Result<T>; evaluates to
// the value otherwise. A GNU statement expression: g++ and clang both have it.
#define FORKVM_TRY(expr)                                   \
  ({                                                       \
    auto forkvm_try_result_ = (expr);                      \
    if (!forkvm_try_result_.ok()) return forkvm_try_result_.error(); \
    std::move(forkvm_try_result_).value();                 \
  })

// The same for Result<void>.
#define FORKVM_CHECK(expr)                                 \
  do {                                                     \
    auto forkvm_check_result_ = (expr);                    \
    if (!forkvm_check_result_.ok()) return forkvm_check_result_.error(); \
  } while (0)
