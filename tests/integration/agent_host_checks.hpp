// The check groups of agent_host_test, one file per family.
#pragma once

#include <string>

#include "api/agent/agent_client.hpp"

namespace agent_test {

struct Context {
  forkvm::agent::AgentClient& client;
  std::string agent_socket;
  std::string dir;  // scratch directory for this run
};

void check(const std::string& name, bool ok, const std::string& why);
void run_exec_checks(Context& c);
void run_file_checks(Context& c);
void run_watch_terminal_checks(Context& c);
void run_protocol_checks(Context& c);
void run_identity_refusal_checks(Context& c);

inline std::string err_or(const forkvm::Error& e) { return e.message; }

}  // namespace agent_test
