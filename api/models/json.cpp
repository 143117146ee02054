#include "api/models/json.hpp"

#include <fmt/format.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>

namespace forkvm::api::json {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one.
size_t utf8_sequence(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  if (n == 0 || (c >= 0xF0 && n != 4) || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; k++)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  // Overlongs and surrogates: the second byte's range depends on the first.
  if (c == 0xE0 && b(i + 1) < 0xA0) return 0;
  if (c == 0xED && b(i + 1) > 0x9F) return 0;
  if (c == 0xF0 && b(i + 1) < 0x90) return 0;
  if (c == 0xF4 && b(i + 1) > 0x8F) return 0;
  return n;
}

const char* type_name(const Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsBool()) return "a boolean";
  if (v.IsNumber()) return "a number";
  if (v.IsString()) return "a string";
  if (v.IsArray()) return "an array";
  return "an object";
}

}  // namespace

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t n = utf8_sequence(text, i);
    if (n == 0) {
      out.push_back('?');
      i++;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

ApiResult<rapidjson::Document> parse_object(std::string_view body, ErrorCode code) {
  rapidjson::Document doc;
  bool blank = body.find_first_not_of(" \t\r\n") == std::string_view::npos;
  if (blank) {
    doc.SetObject();
    return doc;
  }
  // Iterative parsing: a deeply nested body must not exhaust the stack of the
  // handler thread. Encoding validation: every string we keep is valid UTF-8.
  constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
  doc.Parse<kFlags>(body.data(), body.size());
  if (doc.HasParseError()) {
    return api_error(code, fmt::format("malformed JSON at offset {}: {}", doc.GetErrorOffset(),
                                       rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (!doc.IsObject())
    return api_error(code, fmt::format("the request body must be a JSON object, not {}", type_name(doc)));
  return doc;
}

Reader::Reader(const Value& object, std::string path, ErrorCode code)
    : object_(object), path_(std::move(path)), code_(code) {}

const Value* Reader::find(const char* key) const {
  auto it = object_.FindMember(key);
  if (it == object_.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

bool Reader::has(const char* key) const { return find(key) != nullptr; }

std::string Reader::path(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

ApiError Reader::error(std::string_view key, std::string_view what) const {
  return api_error(code_, fmt::format("{}: {}", path(key), what));
}

ApiError Reader::error_here(std::string_view what) const {
  return api_error(code_, path_.empty() ? std::string(what) : fmt::format("{}: {}", path_, what));
}

ApiResult<std::optional<std::string>> Reader::opt_string(const char* key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::optional<std::string>{};
  if (!v->IsString()) return error(key, fmt::format("expected a string, got {}", type_name(*v)));
  return std::optional<std::string>{std::string(v->GetString(), v->GetStringLength())};
}

ApiResult<std::string> Reader::req_string(const char* key) const {
  const Value* v = find(key);
  if (v == nullptr) return error(key, "is required (a string)");
  if (!v->IsString()) return error(key, fmt::format("expected a string, got {}", type_name(*v)));
  return std::string(v->GetString(), v->GetStringLength());
}

ApiResult<std::optional<int64_t>> Reader::opt_int(const char* key, int64_t min, int64_t max) const {
  const Value* v = find(key);
  if (v == nullptr) return std::optional<int64_t>{};
  if (!v->IsNumber() || v->IsDouble()) {
    return error(key, fmt::format("expected an integer, got {}",
                                  v->IsDouble() ? "a fractional number" : type_name(*v)));
  }
  if (!v->IsInt64()) return error(key, fmt::format("must be between {} and {}", min, max));
  int64_t x = v->GetInt64();
  if (x < min || x > max) return error(key, fmt::format("must be between {} and {}, got {}", min, max, x));
  return std::optional<int64_t>{x};
}

ApiResult<std::optional<bool>> Reader::opt_bool(const char* key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::optional<bool>{};
  if (!v->IsBool()) return error(key, fmt::format("expected a boolean, got {}", type_name(*v)));
  return std::optional<bool>{v->GetBool()};
}

ApiResult<std::optional<std::vector<std::string>>> Reader::opt_string_array(const char* key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::optional<std::vector<std::string>>{};
  if (!v->IsArray()) return error(key, fmt::format("expected an array of strings, got {}", type_name(*v)));
  std::vector<std::string> out;
  out.reserve(v->Size());
  for (rapidjson::SizeType i = 0; i < v->Size(); i++) {
    const Value& e = (*v)[i];
    if (!e.IsString())
      return error(fmt::format("{}[{}]", key, i), fmt::format("expected a string, got {}", type_name(e)));
    out.emplace_back(e.GetString(), e.GetStringLength());
  }
  return std::optional<std::vector<std::string>>{std::move(out)};
}

ApiResult<const Value*> Reader::opt_object(const char* key) const {
  const Value* v = find(key);
  if (v != nullptr && !v->IsObject())
    return error(key, fmt::format("expected an object, got {}", type_name(*v)));
  return v;
}

ApiResult<const Value*> Reader::opt_array(const char* key) const {
  const Value* v = find(key);
  if (v != nullptr && !v->IsArray())
    return error(key, fmt::format("expected an array, got {}", type_name(*v)));
  return v;
}

ApiResult<const Value*> Reader::req_object(const char* key) const {
  const Value* v = find(key);
  if (v == nullptr) return error(key, "is required (an object)");
  if (!v->IsObject()) return error(key, fmt::format("expected an object, got {}", type_name(*v)));
  return v;
}

ApiResult<const Value*> Reader::req_array(const char* key) const {
  const Value* v = find(key);
  if (v == nullptr) return error(key, "is required (an array)");
  if (!v->IsArray()) return error(key, fmt::format("expected an array, got {}", type_name(*v)));
  return v;
}

namespace {

void write_canonical(const Value& v, rapidjson::Writer<rapidjson::StringBuffer>& w,
                     const std::vector<std::string_view>& drop) {
  if (v.IsObject()) {
    std::vector<const Value::Member*> members;
    for (const auto& m : v.GetObject()) {
      std::string_view name(m.name.GetString(), m.name.GetStringLength());
      if (m.value.IsNull() || std::find(drop.begin(), drop.end(), name) != drop.end()) continue;
      members.push_back(&m);
    }
    std::sort(members.begin(), members.end(), [](const Value::Member* a, const Value::Member* b) {
      return std::string_view(a->name.GetString(), a->name.GetStringLength()) <
             std::string_view(b->name.GetString(), b->name.GetStringLength());
    });
    w.StartObject();
    for (const Value::Member* m : members) {
      w.Key(m->name.GetString(), m->name.GetStringLength());
      write_canonical(m->value, w, {});
    }
    w.EndObject();
  } else if (v.IsArray()) {
    w.StartArray();
    for (const auto& e : v.GetArray()) write_canonical(e, w, {});
    w.EndArray();
  } else {
    v.Accept(w);
  }
}

}  // namespace

std::string canonical(const Value& value, const std::vector<std::string_view>& drop) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  write_canonical(value, w, drop);
  return {sb.GetString(), sb.GetSize()};
}

ApiResult<Reader> element_reader(const Value& value, std::string path, ErrorCode code) {
  if (!value.IsObject())
    return api_error(code, fmt::format("{}: expected an object, got {}", path, type_name(value)));
  return Reader(value, std::move(path), code);
}

}  // namespace forkvm::api::json
