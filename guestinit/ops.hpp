// Request handlers, one per op (see PROTOCOL.md for each op's fields).
// Each runs on the request's own thread and ends the stream exactly once.
#pragma once

#include "guestinit/json.hpp"

namespace forkvm::agent {

class Stream;

void op_exec(Stream& s, const JsonValue& req);
void op_terminal_create(Stream& s, const JsonValue& req);
void op_terminal_list(Stream& s, const JsonValue& req);
void op_terminal_logs(Stream& s, const JsonValue& req);
void op_terminal_output(Stream& s, const JsonValue& req);
void op_terminal_input(Stream& s, const JsonValue& req);
void op_terminal_close(Stream& s, const JsonValue& req);

void op_file_read(Stream& s, const JsonValue& req);
void op_file_write(Stream& s, const JsonValue& req);
void op_file_list(Stream& s, const JsonValue& req);
void op_file_stat(Stream& s, const JsonValue& req);
void op_file_mkdir(Stream& s, const JsonValue& req);
void op_file_remove(Stream& s, const JsonValue& req);
void op_watch(Stream& s, const JsonValue& req);

void op_systemd_create(Stream& s, const JsonValue& req);
void op_systemd_action(Stream& s, const JsonValue& req);  // start/stop/restart/enable/disable
void op_systemd_status(Stream& s, const JsonValue& req);
void op_systemd_logs(Stream& s, const JsonValue& req);
void op_systemd_list(Stream& s, const JsonValue& req);
void op_systemd_delete(Stream& s, const JsonValue& req);

void op_user_create(Stream& s, const JsonValue& req);
void op_group_create(Stream& s, const JsonValue& req);
void op_stats(Stream& s, const JsonValue& req);
void op_ready(Stream& s, const JsonValue& req);
void op_identity(Stream& s, const JsonValue& req);  // after a fork or restore

}  // namespace forkvm::agent
