// The error every API layer speaks: a code from the SDK's table (the SDK keys
// its typed errors on `code` alone, sdk-wire-notes §9), the HTTP status that
// goes with it, and a sentence for humans. Routes, models and the VM engine
// all return ApiResult<T>, so an engine failure reaches the wire unchanged.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace forkvm::api {

// One enumerator per wire code we emit. The name table and statuses live in
// api_error.cpp; statuses follow the SDK's own table where it has the code.
enum class ErrorCode {
  BadRequest,
  Unauthorized,
  Forbidden,
  NotFound,
  MethodNotAllowed,
  PayloadTooLarge,
  HeadersTooLarge,
  InternalError,
  NotImplemented,
  ServiceUnavailable,
  InvalidParameters,
  VmNotFound,
  InvalidVmId,
  VmDeleted,
  VmNotRunning,
  VmIsSuspending,
  VmStartTimeout,
  VmLimitExceeded,
  CreateVmBadRequest,
  ForkVmNotFound,
  SnapshotNotFound,
  InvalidSnapshotId,
  SnapshotAlreadyDeleted,
  SnapshotVmBadRequest,
  CreateSnapshotBadRequest,
  BuildNotFound,
  BuildNotFoundForVm,
  FileNotFound,
  FilesBadRequest,
  ExecEmpty,
  ExecTimedOut,
  UserNotFound,
  ServiceNotFound,
  ServiceAlreadyExists,
  ServiceNameEmpty,
  ServiceNameInvalidChars,
  ServiceNameTooLong,
  ServiceNameInvalidPrefix,
  TerminalNotFound,
  ResizeFailed,
};

// "VM_NOT_FOUND" for ErrorCode::VmNotFound.
[[nodiscard]] std::string_view error_code_name(ErrorCode code);
// The HTTP status that goes with the code (404 for VM_NOT_FOUND).
[[nodiscard]] int error_http_status(ErrorCode code);

struct ApiError {
  ErrorCode code = ErrorCode::InternalError;
  std::string message;
};

[[nodiscard]] inline ApiError api_error(ErrorCode code, std::string message) {
  return ApiError{code, std::move(message)};
}

// The wire body: {"error":CODE,"code":CODE,"message":...,"description":...}.
// `description` repeats the message because the SDK prints body.description
// for codes missing from its table (NOT_IMPLEMENTED, EXEC_TIMED_OUT, ...).
[[nodiscard]] std::string error_body(std::string_view code_name, std::string_view message);
[[nodiscard]] std::string error_body(const ApiError& error);

// Result with an ApiError; the same surface as forkvm::Result so FORKVM_TRY
// and FORKVM_CHECK work inside functions that return ApiResult<U>.
template <typename T>
class [[nodiscard]] ApiResult {
 public:
  ApiResult(T value) : v_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  ApiResult(ApiError error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  [[nodiscard]] const ApiError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, ApiError> v_;
};

template <>
class [[nodiscard]] ApiResult<void> {
 public:
  ApiResult() = default;
  ApiResult(ApiError error)
      : error_(std::move(error)), failed_(true) {}  // NOLINT(google-explicit-constructor)
  [[nodiscard]] bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  [[nodiscard]] const ApiError& error() const { return error_; }

 private:
  ApiError error_;
  bool failed_ = false;
};

using ApiStatus = ApiResult<void>;

}  // namespace forkvm::api
