// `forkvm vm`: everything between the command line and the wire that needs no
// network, so the unit tests can check it: argument parsing into one planned
// request, path encoding, request bodies, and reading the answers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/cli/http_client.hpp"
#include "vmm/result.hpp"

namespace forkvm::cli {

extern const char* const kVmUsage;

enum class VmOp {
  help,
  create,
  list,
  get,
  exec,
  cp_in,
  cp_out,
  fork,
  snapshot,
  suspend,
  start,
  stop,
  del,
  logs
};

// One HTTP request against the API. `path` starts at /v1 (the server URL's
// own path prefix is added when sending); every id and file path in it is a
// single percent-encoded segment, as the SDK sends them.
struct ApiRequest {
  std::string method;
  std::string path;
  std::optional<std::string> body;  // JSON; nullopt sends no body
  uint64_t timeout_ms = 0;          // 0: no limit
};

// What a `forkvm vm ...` command line asks for. `request` is the first (for
// most commands the only) call; logs and cp need the fields below.
struct VmPlan {
  VmOp op = VmOp::help;
  std::optional<std::string> url, key;  // --url / --key, as given
  ApiRequest request;
  std::string vm_id;
  std::string local_path;              // cp: the host side; "-" is stdin/stdout
  std::string guest_path;              // cp: the VM side, decoded
  std::optional<std::string> service;  // logs --service
};

// A usage error (exit 2) when the command line is wrong.
[[nodiscard]] Result<VmPlan> plan_vm_command(const std::vector<std::string>& argv);

// encodeURIComponent: everything but A-Z a-z 0-9 - _ . ! ~ * ' ( ) is escaped.
[[nodiscard]] std::string percent_encode_segment(std::string_view text);

// `exec ID -- ls -l 'a b'`: one word is a shell command line as is ("a | b");
// several words are quoted one by one, so each reaches the program unsplit.
[[nodiscard]] std::string shell_quote(std::string_view word);
[[nodiscard]] std::string exec_command_line(const std::vector<std::string>& words);

// The body of PUT /v1/vms/{id}/files/{path}.
[[nodiscard]] std::string file_put_body(std::string_view bytes);
[[nodiscard]] std::string terminal_logs_path(std::string_view vm_id, std::string_view terminal);

// Server URL and key: the flag, else the environment value, else the default
// URL and the first line of `key_file` (a missing file means no key).
struct ClientConfig {
  ServerUrl url;
  std::string key;
};
[[nodiscard]] Result<ClientConfig> resolve_client_config(const std::optional<std::string>& url_flag,
                                                         const std::optional<std::string>& key_flag,
                                                         const char* env_url, const char* env_key,
                                                         const std::string& key_file);

// --- answers ---

// "CODE: message" from an error body ({error, code, message}); the status
// and raw text when the body is not one.
[[nodiscard]] std::string describe_api_error(unsigned status, std::string_view body);

struct ExecOutput {
  std::string stdout_text, stderr_text;
  std::optional<int64_t> status_code;
};
[[nodiscard]] Result<ExecOutput> parse_exec_output(std::string_view body);
// The decoded bytes of a file read; an error for a directory listing.
[[nodiscard]] Result<std::string> parse_file_content(std::string_view body);
[[nodiscard]] Result<std::vector<std::string>> parse_terminal_names(std::string_view body);
// One line per log entry: terminal `line`s, or "timestamp message" for journal entries.
[[nodiscard]] Result<std::vector<std::string>> parse_log_lines(std::string_view body);
// A table (ID, STATE, NAME) of GET /v1/vms.
[[nodiscard]] Result<std::string> format_vm_table(std::string_view body);
// Indented JSON for people; the text unchanged when it is not JSON.
[[nodiscard]] std::string pretty_json(std::string_view body);

}  // namespace forkvm::cli
