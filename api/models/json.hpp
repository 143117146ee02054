// Strict, typed reading of request JSON. A Reader walks one object and turns
// every type mismatch into an ApiError whose message names the field path
// ("template.vcpuCount: expected an integer or null"), with the error code the
// endpoint uses for bad input. Unknown fields are ignored (sdk-wire-notes §6);
// explicit nulls mean "absent", because the SDK sends them (exec's terminal).
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/models/api_error.hpp"

namespace forkvm::api::json {

using Value = rapidjson::Value;

// Parses a request body that must be a JSON object. An empty body counts as
// `{}`: the SDK sends bodyless POSTs (stop, kill, fork without options).
[[nodiscard]] ApiResult<rapidjson::Document> parse_object(std::string_view body, ErrorCode code);

// Replaces bytes that are not valid UTF-8 with '?', so messages that quote
// client input stay valid JSON text.
[[nodiscard]] std::string sanitize_utf8(std::string_view text);

class Reader {
 public:
  Reader(const Value& object, std::string path, ErrorCode code);

  // Each returns nullopt when the field is absent or null.
  ApiResult<std::optional<std::string>> opt_string(const char* key) const;
  ApiResult<std::optional<int64_t>> opt_int(const char* key, int64_t min, int64_t max) const;
  ApiResult<std::optional<bool>> opt_bool(const char* key) const;
  ApiResult<std::optional<std::vector<std::string>>> opt_string_array(const char* key) const;
  // nullptr when absent or null; an error when present with another type.
  ApiResult<const Value*> opt_object(const char* key) const;
  ApiResult<const Value*> opt_array(const char* key) const;

  // The same, but absence (or null) is an error.
  ApiResult<std::string> req_string(const char* key) const;
  ApiResult<const Value*> req_object(const char* key) const;
  ApiResult<const Value*> req_array(const char* key) const;

  [[nodiscard]] bool has(const char* key) const;  // present and not null
  [[nodiscard]] std::string path(std::string_view key) const;
  [[nodiscard]] ApiError error(std::string_view key, std::string_view what) const;
  [[nodiscard]] ApiError error_here(std::string_view what) const;
  [[nodiscard]] ErrorCode code() const { return code_; }
  [[nodiscard]] const std::string& base() const { return path_; }
  [[nodiscard]] const Value& object() const { return object_; }

 private:
  [[nodiscard]] const Value* find(const char* key) const;

  const Value& object_;
  std::string path_;
  ErrorCode code_;
};

// `value` as compact JSON with every object's members sorted by name and
// null members left out (null means absent here), so two bodies that say the
// same thing in another order or with explicit nulls give the same text: what
// a template's cache hash is taken over. `drop` names members of the
// outermost object to leave out as well.
[[nodiscard]] std::string canonical(const Value& value, const std::vector<std::string_view>& drop = {});

// Reads `value` (an element of an array) as an object with the given path.
[[nodiscard]] ApiResult<Reader> element_reader(const Value& value, std::string path, ErrorCode code);

}  // namespace forkvm::api::json
