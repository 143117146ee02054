// systemd unit files from the API's SystemdUnitSpec, and parsers for what
// systemctl/journalctl print. All pure, so they are unit-tested on hosts
// without systemd; the calls to systemctl live in ops_systemd.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "guestinit/json.hpp"

namespace forkvm::agent {

struct CodedError {
  std::string_view code;
  std::string message;
};

// Marks unit files the agent wrote, so list/delete touch only those.
inline constexpr std::string_view kManagedMarker = "# Managed by forkvm-agent";
inline constexpr size_t kMaxServiceName = 128;

// Drops a trailing ".service"; the API's names are slugs without it.
std::string normalize_service_name(std::string_view name);
// SERVICE_NAME_EMPTY / _TOO_LONG / _INVALID_CHARS / _INVALID_PREFIX.
std::optional<CodedError> validate_service_name(std::string_view name);

struct RestartPolicy {
  std::string policy;  // no | on-failure | always | on-abnormal
  std::optional<int64_t> restart_sec, start_limit_burst, start_limit_interval_sec;
};

struct UnitSpec {
  std::string name;  // normalised, without ".service"
  bool oneshot = false;
  std::vector<std::string> exec;
  std::map<std::string, std::string> env;
  std::string user, group, workdir;
  std::vector<std::string> after, requires_units, on_failure, wanted_by;
  bool enable = true;
  std::optional<int64_t> timeout_sec, watchdog_sec;
  bool delete_after_success = false;
  bool remain_after_exit = true;
  bool ready_signal = false;
  std::optional<RestartPolicy> restart;
};

std::variant<UnitSpec, CodedError> parse_unit_spec(const JsonValue& spec);
std::string render_unit(const UnitSpec& spec, std::string_view unit_dir = "/etc/systemd/system");

// A command line as one systemd ExecStart argument list: /bin/bash -c "<cmd>",
// escaped so systemd hands bash the exact original string.
std::string exec_line(std::string_view command);

struct JournalEntry {
  std::string message;
  std::string timestamp;  // ISO 8601 UTC
  std::optional<int> priority;
  std::string unit;
};
// One line of `journalctl -o json`; nullopt for lines that are not entries.
std::optional<JournalEntry> parse_journal_line(std::string_view line);

// `systemctl show -p A -p B` output: "Key=value" per line.
std::map<std::string, std::string> parse_show_output(std::string_view text);

}  // namespace forkvm::agent
