// `forkvm guest ...`: talk to the agent inside a running VM directly through
// its VMM's vsock socket (no API server), for debugging and tests.
//
//   forkvm guest exec --vsock PATH [--user U] [--timeout-ms N] -- COMMAND...
//   forkvm guest ready --vsock PATH
#include <cstdio>
#include <unistd.h>

#include "api/agent/agent_client.hpp"
#include "api/cli/args.hpp"
#include "api/cli/commands.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kGuestUsage = R"(usage: forkvm guest exec --vsock PATH [--user U] [--timeout-ms N] -- COMMAND...
       forkvm guest ready --vsock PATH

Talks to the forkvm-agent inside a running VM through the Unix socket its VMM
serves (forkvm run --vsock PATH). exec runs COMMAND with /bin/bash -lc, prints
its stdout and stderr, and exits with its status (124 on timeout).
)";

int fail(const std::string& why) {
  std::fprintf(stderr, "forkvm guest: %s\n", why.c_str());
  return 1;
}

}  // namespace

int guest_command(const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "-h") {
    std::fputs(kGuestUsage, argv.empty() ? stderr : stdout);
    return argv.empty() ? kUsageError : 0;
  }
  std::vector<std::string> opts(argv.begin() + 1, argv.end()), command;
  for (size_t i = 0; i < opts.size(); i++) {
    if (opts[i] == "--") {
      command.assign(opts.begin() + static_cast<std::ptrdiff_t>(i) + 1, opts.end());
      opts.resize(i);
      break;
    }
  }
  auto args = Args::parse(opts, {"vsock", "user", "timeout-ms"}, {});
  if (!args.ok()) return std::fprintf(stderr, "forkvm guest: %s\n", args.error().message.c_str()), kUsageError;
  auto vsock = args->get("vsock");
  if (!vsock) return std::fprintf(stderr, "forkvm guest: --vsock is required\n"), kUsageError;
  agent::ClientOptions o;
  o.socket_path = *vsock;
  o.vsock_mux = true;
  agent::AgentClient client(o);
  if (argv[0] == "ready") {
    auto r = client.ready();
    if (!r.ok()) return fail(r.error().message);
    std::printf("agent %s, protocol %d.%d, systemd %s, uptime %.1f s\n", r->agent_version.c_str(),
                r->protocol_major, r->protocol_minor, r->system_state.c_str(), r->uptime_seconds);
    return 0;
  }
  if (argv[0] != "exec" || command.empty()) {
    std::fputs(kGuestUsage, stderr);
    return kUsageError;
  }
  std::string line;
  for (const auto& c : command) line += (line.empty() ? "" : " ") + c;
  auto timeout = args->get_uint("timeout-ms", 0, 0, 86400000);
  if (!timeout.ok()) return fail(timeout.error().message);
  agent::ExecRequest req{.command = line, .user = args->get("user").value_or(""),
                         .timeout_ms = static_cast<int64_t>(*timeout)};
  auto r = client.exec(req);
  if (!r.ok()) return fail(r.error().message);
  std::fwrite(r->stdout_data.data(), 1, r->stdout_data.size(), stdout);
  std::fwrite(r->stderr_data.data(), 1, r->stderr_data.size(), stderr);
  if (r->timed_out) return 124;
  return r->signal != 0 ? 128 + r->signal : r->exit_code;
}

}  // namespace forkvm::cli
