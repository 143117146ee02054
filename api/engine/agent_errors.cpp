#include <string_view>
#include <utility>

#include "api/engine/live_vm.hpp"

namespace forkvm::engine {

using api::ErrorCode;

api::ApiError from_agent_error(const Error& raw) {
  std::string_view code = agent::agent_error_code(raw);
  // The client's text is "CODE: message"; the API carries the code on its own.
  Error e = raw;
  if (!code.empty() && e.message.starts_with(std::string(code) + ": ")) e.message.erase(0, code.size() + 2);
  static constexpr std::pair<std::string_view, ErrorCode> kSame[] = {
      {"FILE_NOT_FOUND", ErrorCode::FileNotFound},
      {"USER_NOT_FOUND", ErrorCode::UserNotFound},
      {"SERVICE_NOT_FOUND", ErrorCode::ServiceNotFound},
      {"SERVICE_ALREADY_EXISTS", ErrorCode::ServiceAlreadyExists},
      {"SERVICE_NAME_EMPTY", ErrorCode::ServiceNameEmpty},
      {"SERVICE_NAME_INVALID_CHARS", ErrorCode::ServiceNameInvalidChars},
      {"SERVICE_NAME_TOO_LONG", ErrorCode::ServiceNameTooLong},
      {"SERVICE_NAME_INVALID_PREFIX", ErrorCode::ServiceNameInvalidPrefix},
      {"TERMINAL_NOT_FOUND", ErrorCode::TerminalNotFound},
      {"EXEC_EMPTY", ErrorCode::ExecEmpty},
  };
  for (const auto& [name, api_code] : kSame)
    if (code == name) return api::api_error(api_code, e.message);
  // The guest agent refused the request as malformed for its filesystem.
  if (code == "IS_A_DIRECTORY" || code == "NOT_A_DIRECTORY" || code == "NAME_TOO_LONG" ||
      code == "FILE_EXISTS" || code == "FORBIDDEN" || code == "DIRECTORY_NOT_EMPTY")
    return api::api_error(ErrorCode::FilesBadRequest, e.message);
  if (code == "BAD_REQUEST" || code == "GROUP_NOT_FOUND" || code == "USER_ALREADY_EXISTS")
    return api::api_error(ErrorCode::BadRequest, e.message);
  if (code == agent::kAgentUnavailable || code == agent::kAgentTimeout)
    return api::api_error(ErrorCode::ServiceUnavailable, "the VM's agent does not answer: " + e.message);
  if (code == agent::kAgentProtocolError)
    return api::api_error(ErrorCode::InternalError, "the VM's agent broke the protocol: " + e.message);
  return api::api_error(ErrorCode::InternalError, "inside the VM: " + e.message);
}

}  // namespace forkvm::engine
