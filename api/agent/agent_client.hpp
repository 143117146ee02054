// Typed, blocking calls to a guest's forkvm-agent, for the API server.
// Each call opens its own connection (hello included), runs one request
// stream and closes: simple, and a hung call never blocks another. Errors
// are forkvm::Error with a "CODE: message" text (see agent_error_code()).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/agent/agent_connection.hpp"

namespace forkvm::agent {

struct ExecRequest {
  std::string command{};  // run as /bin/bash -lc <command>
  std::map<std::string, std::string> env{};
  std::string cwd{};                        // empty: the user's home
  std::string user{};                       // empty: root
  std::optional<std::string> stdin_data{};  // sent then closed; nullopt: /dev/null
  int64_t timeout_ms = 0;                   // 0: none (the client still bounds the call)
  uint64_t max_output_bytes = 10u << 20;    // per stream; 0: unlimited (streaming only)
  std::string terminal{};                   // non-empty: type the command into this PTY session
};

struct ExecResult {
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  bool cancelled = false;
  std::string stdout_data, stderr_data;  // filled by exec(), empty for exec_stream()
  bool stdout_truncated = false, stderr_truncated = false;
  uint64_t stdout_bytes = 0, stderr_bytes = 0;
  int64_t duration_ms = 0;
};

struct FileStat {
  uint64_t size = 0;
  std::string kind;  // file | directory | symlink | other
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0;
  std::string user, group;
  int64_t mtime_ms = 0;
  std::string mtime;  // ISO 8601
  std::string link_target;
};

struct DirEntry {
  std::string name;
  std::string kind;
};

struct WriteFileRequest {
  std::string path{};
  std::string user{};              // do the write as this user
  std::optional<uint32_t> mode{};  // default: keep the existing file's, else 0644
  std::string owner{}, group{};    // default: keep the existing file's
  bool mkdirs = true;
};

struct WatchEvent {
  std::string event_type;    // create | modify | delete | move
  std::string filename;      // relative to the watched path
  std::string old_filename;  // for move
};

struct TerminalInfo {
  std::string name, status, created;
};
struct TerminalLine {
  std::string line, timestamp;
};

struct ServiceStatus {
  std::string name, active_state, sub_state, load_state, description;
};
struct JournalLine {
  std::string message, timestamp, unit;
  std::optional<int> priority;
};

struct StatsSample {
  int64_t timestamp_ms = 0;
  std::optional<double> cpu_percent;
  uint64_t mem_total_bytes = 0, mem_used_bytes = 0, mem_available_bytes = 0;
  double load1 = 0, load5 = 0, load15 = 0;
  double uptime_seconds = 0;
};

struct ReadyInfo {
  std::string agent_version;
  int protocol_major = 0, protocol_minor = 0;
  std::string system_state;  // systemctl is-system-running, or "unavailable"
  double uptime_seconds = 0;
};

// The identity op, right after a live fork or a restore (PROTOCOL.md).
struct IdentityRequest {
  std::string seed{};                     // raw bytes, 16..512; empty: 64 from this host's getrandom()
  std::optional<int64_t> unix_time_ns{};  // nullopt: this host's CLOCK_REALTIME, read just before sending
  std::string hostname{};                 // empty: keep the guest's
  bool regenerate_machine_id = false;
};

struct IdentityResult {
  bool reseeded = false;
  int64_t clock_offset_ns = 0;  // host - guest before the step
  int64_t clock_step_ns = 0;    // the step the guest made (0: within 1 ms, none)
  std::string machine_id;       // the new one, when regenerated
  std::string hostname;         // the new one, when set
};

// Output sinks return false to cancel.
using OutputSink = std::function<bool(Channel ch, std::string_view bytes)>;
using ByteSink = std::function<bool(std::string_view bytes)>;
using ByteSource = std::function<std::optional<std::string>()>;  // nullopt: end

class AgentClient {
 public:
  explicit AgentClient(ClientOptions o) : o_(std::move(o)) {}

  Result<HelloInfo> hello();
  Result<ReadyInfo> ready();

  Result<ExecResult> exec(const ExecRequest& r);
  Result<ExecResult> exec_stream(const ExecRequest& r, const OutputSink& out,
                                 const std::atomic<bool>* cancel = nullptr);

  // Streams content to sink; returns the byte count.
  Result<uint64_t> read_file(const std::string& path, const ByteSink& sink, const std::string& user = {});
  Result<std::string> read_file_all(const std::string& path, uint64_t max_bytes,
                                    const std::string& user = {});
  Result<uint64_t> write_file(const WriteFileRequest& r, const ByteSource& source);
  Result<uint64_t> write_file(const WriteFileRequest& r, std::string_view content);
  Result<std::vector<DirEntry>> list_dir(const std::string& path, const std::string& user = {});
  Result<FileStat> stat(const std::string& path, const std::string& user = {});
  Status mkdir(const std::string& path, bool parents = true, const std::string& user = {});
  Status remove(const std::string& path, bool recursive = false, const std::string& user = {});
  // Blocks, calling on_event per event, until on_event returns false or
  // *cancel is set. on_ready runs once the watches are in place.
  Status watch(const std::string& path, const std::function<bool(const WatchEvent&)>& on_event,
               const std::atomic<bool>* cancel = nullptr, const std::function<void()>& on_ready = {});

  Status terminal_create(const std::string& name, const std::string& user = {});
  Result<std::vector<TerminalInfo>> terminals();
  Result<std::vector<TerminalLine>> terminal_logs(const std::string& name);
  Result<std::string> terminal_output(const std::string& name);
  Status terminal_input(const std::string& name, std::string_view data);
  Status terminal_close(const std::string& name);

  // spec_json: a SystemdUnitSpec as the API received it.
  Result<std::string> systemd_create(std::string_view spec_json, bool start = true);
  Status systemd_action(std::string_view action,
                        const std::string& name);  // start|stop|restart|enable|disable
  Result<ServiceStatus> systemd_status(const std::string& name);
  Result<std::vector<JournalLine>> systemd_logs(const std::string& name, int lines = 100,
                                                const std::string& since = {});
  Result<std::vector<std::string>> systemd_list();
  Status systemd_delete(const std::string& name);

  Status user_create(const std::string& name, const std::vector<std::string>& groups = {});
  Status group_create(const std::string& name);

  // Reseeds the guest's RNG, steps its clock and, as asked, gives it a new
  // machine-id and hostname. IDENTITY_FAILED names the step that failed.
  Result<IdentityResult> identity(const IdentityRequest& r = {});

  // Samples every interval_ms until on_sample returns false or *cancel is set.
  Status stats(int64_t interval_ms, const std::function<bool(const StatsSample&)>& on_sample,
               const std::atomic<bool>* cancel = nullptr);

  // Any op: the request JSON, handlers, returns the End result JSON.
  Result<std::string> call(std::string_view request_json, StreamHandlers& h);

 private:
  Result<std::string> simple(std::string_view request_json);
  // Collects the "items" of every event (list-like ops), bounded in count.
  Result<std::string> collect_items(std::string_view request_json,
                                    const std::function<void(const JsonValue& item)>& on_item);
  ClientOptions o_;
};

}  // namespace forkvm::agent
