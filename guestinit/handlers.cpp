// Request dispatch by "op".
#include "guestinit/handlers.hpp"

#include <string_view>

#include "guestinit/ops.hpp"
#include "guestinit/stream.hpp"

namespace forkvm::agent {
namespace {

struct OpEntry {
  std::string_view name;
  void (*fn)(Stream&, const JsonValue&);
};

constexpr OpEntry kOps[] = {
    {"exec", op_exec},
    {"terminal.create", op_terminal_create},
    {"terminal.list", op_terminal_list},
    {"terminal.logs", op_terminal_logs},
    {"terminal.output", op_terminal_output},
    {"terminal.input", op_terminal_input},
    {"terminal.close", op_terminal_close},
    {"file.read", op_file_read},
    {"file.write", op_file_write},
    {"file.list", op_file_list},
    {"file.stat", op_file_stat},
    {"file.mkdir", op_file_mkdir},
    {"file.remove", op_file_remove},
    {"watch", op_watch},
    {"systemd.create", op_systemd_create},
    {"systemd.start", op_systemd_action},
    {"systemd.stop", op_systemd_action},
    {"systemd.restart", op_systemd_action},
    {"systemd.enable", op_systemd_action},
    {"systemd.disable", op_systemd_action},
    {"systemd.status", op_systemd_status},
    {"systemd.logs", op_systemd_logs},
    {"systemd.list", op_systemd_list},
    {"systemd.delete", op_systemd_delete},
    {"user.create", op_user_create},
    {"group.create", op_group_create},
    {"stats", op_stats},
    {"ready", op_ready},
    {"identity", op_identity},
};

}  // namespace

void dispatch(Stream& s, const JsonValue& req) {
  std::string op = str_or(req, "op");
  for (const auto& e : kOps) {
    if (e.name == op) return e.fn(s, req);
  }
  s.end_error(code::kUnknownOp, fmt::format("unknown op '{}'", op.substr(0, 64)));
}

}  // namespace forkvm::agent
