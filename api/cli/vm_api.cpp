#include "api/cli/vm_api.hpp"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <fstream>
#include <map>
#include <set>

#include "api/cli/args.hpp"
#include "api/models/base64.hpp"
#include "api/models/json_out.hpp"

namespace forkvm::cli {

const char* const kVmUsage = R"(usage: forkvm vm <command> [options]

commands:
  create [--name N] [--snapshot ID] [--mem-gb N] [--vcpus N]
  list
  get ID
  exec ID [--timeout-ms N] -- COMMAND...
                      run COMMAND in the VM; prints its stdout and stderr and exits
                      with its status. One word is a shell line as is ('ls | wc -l');
                      several words are quoted one by one
  cp LOCAL ID:PATH    copy a host file into the VM ('-' reads stdin)
  cp ID:PATH LOCAL    copy a file out of the VM ('-' writes stdout)
  fork ID [--count N]
  snapshot ID [--name N]
  suspend ID | start ID | stop ID | delete ID
  logs ID [--service NAME [--lines N]]
                      the VM's terminal logs, or one systemd service's journal

options for every command:
  --url URL   API server (default $FREESTYLE_API_URL, else http://127.0.0.1:8080)
  --key KEY   API key (default $FREESTYLE_API_KEY, else the first line of ./data/api-key)

Server errors print CODE: message on stderr and exit 1; usage errors exit 2.
)";

namespace {

using api::JsonOut;

constexpr uint64_t kCallTimeoutMs = 10 * 60 * 1000;  // silence, not total time
constexpr uint64_t kExecSlackMs = 30 * 1000;         // the server's own timeout answers first

const std::set<std::string> kCommon = {"url", "key"};

struct SubSpec {
  VmOp op;
  std::set<std::string> options;
};

const std::map<std::string, SubSpec>& subcommands() {
  static const std::map<std::string, SubSpec> kSubs = {
      {"create", {VmOp::create, {"name", "snapshot", "mem-gb", "vcpus"}}},
      {"list", {VmOp::list, {}}},
      {"get", {VmOp::get, {}}},
      {"exec", {VmOp::exec, {"timeout-ms"}}},
      {"cp", {VmOp::cp_in, {}}},
      {"fork", {VmOp::fork, {"count"}}},
      {"snapshot", {VmOp::snapshot, {"name"}}},
      {"suspend", {VmOp::suspend, {}}},
      {"start", {VmOp::start, {}}},
      {"stop", {VmOp::stop, {}}},
      {"delete", {VmOp::del, {}}},
      {"logs", {VmOp::logs, {"service", "lines"}}},
  };
  return kSubs;
}

std::string vm_path(std::string_view id, std::string_view tail = {}) {
  return fmt::format("/v1/vms/{}{}", percent_encode_segment(id), tail);
}

struct RemotePath {
  std::string vm_id, path;
};

// "ID:PATH" names a file in a VM; anything with a '/' before the first ':'
// (./a:b, /tmp/x:y) is a host path, as with scp.
std::optional<RemotePath> remote_path(std::string_view arg) {
  size_t colon = arg.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  if (arg.substr(0, colon).find('/') != std::string_view::npos) return std::nullopt;
  return RemotePath{std::string(arg.substr(0, colon)), std::string(arg.substr(colon + 1))};
}

Result<rapidjson::Document> parse_json(std::string_view body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) return make_error("the server's answer is not a JSON object");
  return doc;
}

std::string string_member(const rapidjson::Value& v, const char* key) {
  auto it = v.FindMember(key);
  if (it == v.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

Result<VmPlan> plan_for(VmOp op, const std::string& sub, const Args& args) {
  const auto& pos = args.positional();
  VmPlan plan;
  plan.op = op;
  plan.url = args.get("url");
  plan.key = args.get("key");
  plan.request.timeout_ms = kCallTimeoutMs;

  if (op == VmOp::list || op == VmOp::create) {
    if (pos.size() != 1) return make_error("vm {} takes no arguments", sub);
  } else if (op == VmOp::exec) {
    if (pos.size() < 3) return make_error("vm exec wants an ID and a COMMAND (after --)");
  } else if (op == VmOp::cp_in) {
    if (pos.size() != 3) return make_error("vm cp wants a source and a destination");
  } else if (pos.size() != 2) {
    return make_error("vm {} wants one VM ID", sub);
  }
  if (pos.size() >= 2) plan.vm_id = pos[1];
  ApiRequest& r = plan.request;

  switch (op) {
    case VmOp::create: {
      // memSizeGb and vcpuCount at top level, as the SDK sends them: the
      // spec has them only inside `template`, which asks for a build.
      uint64_t mem = FORKVM_TRY(args.get_uint("mem-gb", 0, 1, 1 << 20));
      uint64_t vcpus = FORKVM_TRY(args.get_uint("vcpus", 0, 1, 1 << 20));
      JsonOut o;
      o.begin_object();
      if (auto name = args.get("name")) o.field("name", *name);
      if (auto snap = args.get("snapshot")) o.field("snapshotId", *snap);
      if (mem) o.field("memSizeGb", mem);
      if (vcpus) o.field("vcpuCount", vcpus);
      r = {"POST", "/v1/vms", o.end_object().take(), kCallTimeoutMs};
      break;
    }
    case VmOp::list:
      r = {"GET", "/v1/vms", std::nullopt, kCallTimeoutMs};
      break;
    case VmOp::get:
      r = {"GET", vm_path(plan.vm_id), std::nullopt, kCallTimeoutMs};
      break;
    case VmOp::exec: {
      uint64_t timeout = FORKVM_TRY(args.get_uint("timeout-ms", 0, 1, uint64_t{INT32_MAX}));
      std::vector<std::string> words(pos.begin() + 2, pos.end());
      JsonOut o;
      // The SDK's shape: terminal and timeoutMs always present, null when unset.
      o.begin_object().field("command", exec_command_line(words)).key("terminal").null().key("timeoutMs");
      if (timeout)
        o.unum(timeout);
      else
        o.null();
      r = {"POST", vm_path(plan.vm_id, "/exec-await"), o.end_object().take(),
           timeout ? timeout + kExecSlackMs : 0};
      break;
    }
    case VmOp::cp_in: {
      auto from = remote_path(pos[1]);
      auto to = remote_path(pos[2]);
      if (from.has_value() == to.has_value())
        return make_error("vm cp wants exactly one side as ID:PATH, got '{}' and '{}'", pos[1], pos[2]);
      const RemotePath& remote = from ? *from : *to;
      if (remote.path.empty()) return make_error("vm cp: no guest path after '{}:'", remote.vm_id);
      plan.op = from ? VmOp::cp_out : VmOp::cp_in;
      plan.vm_id = remote.vm_id;
      plan.local_path = from ? pos[2] : pos[1];
      plan.guest_path = remote.path;
      if (plan.local_path.empty()) return make_error("vm cp: empty host path");
      // The whole guest path is one segment: /a/b is sent as %2Fa%2Fb.
      r = {from ? "GET" : "PUT", vm_path(remote.vm_id, "/files/" + percent_encode_segment(remote.path)),
           std::nullopt, kCallTimeoutMs};
      break;
    }
    case VmOp::fork: {
      uint64_t count = FORKVM_TRY(args.get_uint("count", 0, 1, uint64_t{INT32_MAX}));
      std::string body = count ? JsonOut().begin_object().field("count", count).end_object().take() : "{}";
      r = {"POST", vm_path(plan.vm_id, "/fork"), body, kCallTimeoutMs};
      break;
    }
    case VmOp::snapshot: {
      JsonOut o;
      o.begin_object();
      if (auto name = args.get("name")) o.field("name", *name);
      r = {"POST", vm_path(plan.vm_id, "/snapshot"), o.end_object().take(), kCallTimeoutMs};
      break;
    }
    case VmOp::suspend:
      r = {"POST", vm_path(plan.vm_id, "/suspend"), std::nullopt, kCallTimeoutMs};
      break;
    case VmOp::start:
      r = {"POST", vm_path(plan.vm_id, "/start"), "{}", kCallTimeoutMs};
      break;
    case VmOp::stop:
      r = {"POST", vm_path(plan.vm_id, "/stop"), std::nullopt, kCallTimeoutMs};
      break;
    case VmOp::del:
      r = {"DELETE", vm_path(plan.vm_id), std::nullopt, kCallTimeoutMs};
      break;
    case VmOp::logs: {
      plan.service = args.get("service");
      uint64_t lines = FORKVM_TRY(args.get_uint("lines", 0, 1, uint64_t{INT32_MAX}));
      if (lines && !plan.service) return make_error("--lines goes with --service");
      if (plan.service) {
        if (plan.service->empty()) return make_error("--service wants a name");
        std::string path =
            vm_path(plan.vm_id, "/systemd/services/" + percent_encode_segment(*plan.service) + "/logs");
        if (lines) path += fmt::format("?lines={}", lines);
        r = {"GET", path, std::nullopt, kCallTimeoutMs};
      } else {
        r = {"GET", vm_path(plan.vm_id, "/terminals"), std::nullopt, kCallTimeoutMs};
      }
      break;
    }
    case VmOp::help:
    case VmOp::cp_out:
      break;
  }
  return plan;
}

}  // namespace

Result<VmPlan> plan_vm_command(const std::vector<std::string>& argv) {
  // First pass with every option, only to find the subcommand wherever the
  // common options sit; the second pass holds it to its own options.
  std::set<std::string> all = kCommon;
  for (const auto& [name, spec] : subcommands()) all.insert(spec.options.begin(), spec.options.end());
  Args loose = FORKVM_TRY(Args::parse(argv, all, {"help"}));
  if (loose.has("help") || loose.positional().empty() || loose.positional()[0] == "help") return VmPlan{};
  const std::string& sub = loose.positional()[0];
  auto it = subcommands().find(sub);
  if (it == subcommands().end()) return make_error("unknown vm command '{}'", sub);
  std::set<std::string> allowed = kCommon;
  allowed.insert(it->second.options.begin(), it->second.options.end());
  Args args = FORKVM_TRY(Args::parse(argv, allowed, {"help"}).context(fmt::format("vm {}", sub)));
  return plan_for(it->second.op, sub, args);
}

std::string percent_encode_segment(std::string_view text) {
  static constexpr std::string_view kUnreserved = "-_.!~*'()";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') ||
        kUnreserved.find(c) != std::string_view::npos) {
      out.push_back(c);
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

std::string shell_quote(std::string_view word) {
  static constexpr std::string_view kPlain =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./=:,+@%";
  if (!word.empty() && word.find_first_not_of(kPlain) == std::string_view::npos) return std::string(word);
  std::string out = "'";
  for (char c : word) {
    if (c == '\'')
      out += "'\\''";
    else
      out.push_back(c);
  }
  return out + "'";
}

std::string exec_command_line(const std::vector<std::string>& words) {
  if (words.size() == 1) return words[0];
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out.push_back(' ');
    out += shell_quote(w);
  }
  return out;
}

std::string file_put_body(std::string_view bytes) {
  return JsonOut()
      .begin_object()
      .field("content", api::base64_encode(bytes))
      .field("encoding", "base64")
      .end_object()
      .take();
}

std::string terminal_logs_path(std::string_view vm_id, std::string_view terminal) {
  return vm_path(vm_id, "/terminals/" + percent_encode_segment(terminal) + "/logs");
}

Result<ClientConfig> resolve_client_config(const std::optional<std::string>& url_flag,
                                           const std::optional<std::string>& key_flag, const char* env_url,
                                           const char* env_key, const std::string& key_file) {
  std::string url = "http://127.0.0.1:8080";
  if (url_flag)
    url = *url_flag;
  else if (env_url != nullptr && *env_url != '\0')
    url = env_url;
  ClientConfig c;
  c.url = FORKVM_TRY(parse_server_url(url));
  if (key_flag) {
    c.key = *key_flag;
  } else if (env_key != nullptr && *env_key != '\0') {
    c.key = env_key;
  } else if (std::ifstream in(key_file); in) {
    std::getline(in, c.key);
    while (!c.key.empty() && (c.key.back() == '\r' || c.key.back() == ' ')) c.key.pop_back();
  }
  return c;
}

std::string describe_api_error(unsigned status, std::string_view body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (!doc.HasParseError() && doc.IsObject()) {
    std::string code = string_member(doc, "code");
    if (code.empty()) code = string_member(doc, "error");
    std::string message = string_member(doc, "message");
    if (!code.empty()) return message.empty() ? code : fmt::format("{}: {}", code, message);
  }
  std::string_view text = body.substr(0, 500);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  return text.empty() ? fmt::format("HTTP {}", status) : fmt::format("HTTP {}: {}", status, text);
}

Result<ExecOutput> parse_exec_output(std::string_view body) {
  rapidjson::Document doc = FORKVM_TRY(parse_json(body));
  ExecOutput out;
  out.stdout_text = string_member(doc, "stdout");
  out.stderr_text = string_member(doc, "stderr");
  if (auto it = doc.FindMember("statusCode"); it != doc.MemberEnd() && it->value.IsInt64())
    out.status_code = it->value.GetInt64();
  return out;
}

Result<std::string> parse_file_content(std::string_view body) {
  rapidjson::Document doc = FORKVM_TRY(parse_json(body));
  if (doc.HasMember("files") && !doc.HasMember("content"))
    return make_error("that guest path is a directory; vm cp copies one file");
  auto it = doc.FindMember("content");
  if (it == doc.MemberEnd() || !it->value.IsString()) return make_error("the answer has no file content");
  std::string_view content(it->value.GetString(), it->value.GetStringLength());
  if (string_member(doc, "encoding") != "base64") return std::string(content);  // as the SDK reads it
  auto bytes = api::base64_decode(content);
  if (!bytes) return make_error("the file content is not valid base64");
  return std::move(*bytes);
}

Result<std::vector<std::string>> parse_terminal_names(std::string_view body) {
  rapidjson::Document doc = FORKVM_TRY(parse_json(body));
  auto it = doc.FindMember("terminals");
  if (it == doc.MemberEnd() || !it->value.IsArray()) return make_error("the answer has no terminals list");
  std::vector<std::string> names;
  for (const auto& t : it->value.GetArray())
    if (t.IsObject()) names.push_back(string_member(t, "name"));
  return names;
}

Result<std::vector<std::string>> parse_log_lines(std::string_view body) {
  rapidjson::Document doc = FORKVM_TRY(parse_json(body));
  auto it = doc.FindMember("logs");
  if (it == doc.MemberEnd() || !it->value.IsArray()) return make_error("the answer has no logs list");
  std::vector<std::string> lines;
  for (const auto& l : it->value.GetArray()) {
    if (!l.IsObject()) continue;
    if (l.HasMember("line")) {
      lines.push_back(string_member(l, "line"));  // a terminal's LogEntry
    } else {
      std::string ts = string_member(l, "timestamp");
      std::string msg = string_member(l, "message");  // a journal entry
      lines.push_back(ts.empty() ? msg : fmt::format("{} {}", ts, msg));
    }
  }
  return lines;
}

Result<std::string> format_vm_table(std::string_view body) {
  rapidjson::Document doc = FORKVM_TRY(parse_json(body));
  auto it = doc.FindMember("vms");
  if (it == doc.MemberEnd() || !it->value.IsArray()) return make_error("the answer has no vms list");
  std::string out = fmt::format("{:<22}{:<12}{}\n", "ID", "STATE", "NAME");
  for (const auto& vm : it->value.GetArray()) {
    if (!vm.IsObject()) continue;
    out += fmt::format("{:<22}{:<12}{}\n", string_member(vm, "id"), string_member(vm, "state"),
                       string_member(vm, "name"));
  }
  return out;
}

std::string pretty_json(std::string_view body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError()) return std::string(body);
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  w.SetIndent(' ', 2);
  doc.Accept(w);
  return std::string(sb.GetString(), sb.GetSize()) + "\n";
}

}  // namespace forkvm::cli
