// Host-level test of forkvm-agent: starts the agent on a Unix socket on
// this host and drives every op family through the host client. Prints one
// "PASS name" / "FAIL name: why" line per check and "N passed, M failed".
//
//   agent-host-test [--agent PATH]   (default: forkvm-agent beside the build root)
//
// Needs root for the run-as-another-user checks (uses "nobody").
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "api/agent/agent_client.hpp"
#include "tests/integration/agent_host_checks.hpp"

using namespace forkvm::agent;

namespace agent_test {

int passed = 0, failed = 0;

void check(const std::string& name, bool ok, const std::string& why) {
  if (ok) {
    ++passed;
    std::printf("PASS %s\n", name.c_str());
  } else {
    ++failed;
    std::printf("FAIL %s: %s\n", name.c_str(), why.c_str());
  }
  std::fflush(stdout);
}

}  // namespace agent_test

namespace {

pid_t start_agent(const std::string& agent, const std::string& sock, const std::string& unit_dir) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::setenv("FORKVM_AGENT_UNIT_DIR", unit_dir.c_str(), 1);
    std::string listen = "unix:" + sock;
    ::execl(agent.c_str(), agent.c_str(), "--listen", listen.c_str(), "--no-console", nullptr);
    ::_exit(127);
  }
  ::close(p[1]);
  // Ready when the marker line appears (what the VMM watches for too).
  std::string out;
  pollfd pf{p[0], POLLIN, 0};
  while (out.find("FORKVM-AGENT-READY\n") == std::string::npos && ::poll(&pf, 1, 10000) == 1) {
    char buf[256];
    ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(p[0]);
  return out.find("FORKVM-AGENT-READY") != std::string::npos ? pid : -1;
}

// A stand-in for the VMM's vsock multiplexer: accepts, expects
// "CONNECT 1024\n", answers "OK 1024\n", then relays bytes both ways.
void run_mux(int listener, const std::string& agent_sock, std::atomic<bool>& stop) {
  while (!stop) {
    pollfd pl{listener, POLLIN, 0};
    if (::poll(&pl, 1, 100) != 1) continue;
    int c = ::accept(listener, nullptr, nullptr);
    if (c < 0) continue;
    std::string line;
    char ch;
    while (line.size() < 64 && ::read(c, &ch, 1) == 1 && ch != '\n') line.push_back(ch);
    if (line != "CONNECT 1024") {
      ::close(c);
      continue;
    }
    int a = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", agent_sock.c_str());
    if (::connect(a, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(c);
      ::close(a);
      continue;
    }
    if (::write(c, "OK 1024\n", 8) != 8) continue;
    std::thread([c, a] {
      pollfd p[2] = {{c, POLLIN, 0}, {a, POLLIN, 0}};
      char buf[65536];
      for (;;) {
        if (::poll(p, 2, -1) < 0) break;
        bool done = false;
        for (int i = 0; i < 2; ++i) {
          if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
          ssize_t n = ::read(p[i].fd, buf, sizeof buf);
          if (n <= 0 || ::send(p[1 - i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) done = true;
        }
        if (done) break;
      }
      ::close(c);
      ::close(a);
    }).detach();
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string self = argv[0];
  std::string agent = self.substr(0, self.find_last_of('/') + 1) + "../forkvm-agent";
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--agent") agent = argv[i + 1];
  ::signal(SIGPIPE, SIG_IGN);
  char tmpl[] = "/tmp/forkvm-agent-test.XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string sock = dir + "/agent.sock";
  std::string unit_dir = dir + "/units";
  ::mkdir(unit_dir.c_str(), 0755);
  pid_t pid = start_agent(agent, sock, unit_dir);
  agent_test::check("agent starts and prints FORKVM-AGENT-READY", pid > 0, "no marker from " + agent);
  if (pid <= 0) return 1;

  ClientOptions o;
  o.socket_path = sock;
  AgentClient client(o);
  agent_test::Context ctx{client, sock, dir};
  agent_test::run_exec_checks(ctx);
  agent_test::run_file_checks(ctx);
  agent_test::run_watch_terminal_checks(ctx);
  agent_test::run_protocol_checks(ctx);
  agent_test::run_identity_refusal_checks(ctx);

  // Through a vsock-mux stand-in, with the CONNECT handshake.
  std::string mux_sock = dir + "/mux.sock";
  int ml = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", mux_sock.c_str());
  ::bind(ml, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(ml, 8);
  std::atomic<bool> stop{false};
  std::thread mux([&] { run_mux(ml, sock, stop); });
  ClientOptions mo = o;
  mo.socket_path = mux_sock;
  mo.vsock_mux = true;
  auto r = AgentClient(mo).exec({.command = "echo via-mux"});
  agent_test::check("client through the vsock mux handshake", r.ok() && r->stdout_data == "via-mux\n",
                    r.ok() ? r->stdout_data : r.error().message);
  stop = true;
  mux.join();
  ::close(ml);

  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  std::string rm = "rm -rf '" + dir + "'";
  if (std::system(rm.c_str()) != 0) std::printf("note: could not remove %s\n", dir.c_str());
  std::printf("%d passed, %d failed\n", agent_test::passed, agent_test::failed);
  return agent_test::failed == 0 ? 0 : 1;
}
