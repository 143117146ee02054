#include "api/models/api_error.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "api/models/json.hpp"

namespace forkvm::api {

namespace {

struct CodeInfo {
  std::string_view name;
  int status;
};

// Indexed by ErrorCode. Statuses match the SDK's table (freestyle-sandboxes
// 0.1.46) for the codes it knows; the rest follow the OpenAPI document
// (EXEC_TIMED_OUT 408) or plain HTTP meaning (METHOD_NOT_ALLOWED 405).
constexpr CodeInfo kCodes[] = {
    {"BAD_REQUEST", 400},
    {"UNAUTHORIZED", 401},
    {"FORBIDDEN", 403},
    {"NOT_FOUND", 404},
    {"METHOD_NOT_ALLOWED", 405},
    {"PAYLOAD_TOO_LARGE", 413},
    {"REQUEST_HEADER_FIELDS_TOO_LARGE", 431},
    {"INTERNAL_ERROR", 500},
    {"NOT_IMPLEMENTED", 501},
    {"SERVICE_UNAVAILABLE", 503},
    {"INVALID_PARAMETERS", 400},
    {"VM_NOT_FOUND", 404},
    {"INVALID_VM_ID", 400},
    {"VM_DELETED", 410},
    {"VM_NOT_RUNNING", 400},
    {"VM_IS_SUSPENDING", 409},
    {"VM_START_TIMEOUT", 504},
    {"VM_LIMIT_EXCEEDED", 403},
    {"CREATE_VM_BAD_REQUEST", 400},
    {"FORK_VM_NOT_FOUND", 404},
    {"SNAPSHOT_NOT_FOUND", 404},
    {"INVALID_SNAPSHOT_ID", 400},
    {"SNAPSHOT_ALREADY_DELETED", 409},
    {"SNAPSHOT_VM_BAD_REQUEST", 400},
    {"CREATE_SNAPSHOT_BAD_REQUEST", 400},
    {"BUILD_NOT_FOUND", 404},
    {"BUILD_NOT_FOUND_FOR_VM", 404},
    {"FILE_NOT_FOUND", 404},
    {"FILES_BAD_REQUEST", 400},
    {"EXEC_EMPTY", 400},
    {"EXEC_TIMED_OUT", 408},
    {"USER_NOT_FOUND", 404},
    {"SERVICE_NOT_FOUND", 404},
    {"SERVICE_ALREADY_EXISTS", 409},
    {"SERVICE_NAME_EMPTY", 400},
    {"SERVICE_NAME_INVALID_CHARS", 400},
    {"SERVICE_NAME_TOO_LONG", 400},
    {"SERVICE_NAME_INVALID_PREFIX", 400},
    {"TERMINAL_NOT_FOUND", 404},
    {"RESIZE_FAILED", 500},
};
static_assert(std::size(kCodes) == static_cast<size_t>(ErrorCode::ResizeFailed) + 1,
              "kCodes must list every ErrorCode in order");

const CodeInfo& info(ErrorCode code) { return kCodes[static_cast<size_t>(code)]; }

}  // namespace

std::string_view error_code_name(ErrorCode code) { return info(code).name; }
int error_http_status(ErrorCode code) { return info(code).status; }

std::string error_body(std::string_view code_name, std::string_view message) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&](std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); };
  w.StartObject();
  w.Key("error");
  str(code_name);
  w.Key("code");
  str(code_name);
  // Messages quote client input, which may not be UTF-8.
  std::string clean = json::sanitize_utf8(message);
  w.Key("message");
  str(clean);
  w.Key("description");
  str(clean);
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

std::string error_body(const ApiError& error) {
  return error_body(error_code_name(error.code), error.message);
}

}  // namespace forkvm::api
