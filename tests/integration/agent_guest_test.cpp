// The agent inside a real Debian guest booted by forkvm, driven through the
// VMM's vsock multiplexer exactly as the API server drives it. Run by
// tests/integration/agent_guest_test.sh inside tools/rig. Prints one
// "PASS name" / "FAIL name: why" line per check and "N passed, M failed".
//
//   agent-guest-test --mux PATH
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "api/agent/agent_client.hpp"

using namespace forkvm::agent;

namespace {

int passed = 0, failed = 0;

void check(const std::string& name, bool ok, const std::string& why = {}) {
  std::printf(ok ? "PASS %s\n" : "FAIL %s: %s\n", name.c_str(), why.c_str());
  std::fflush(stdout);
  (ok ? passed : failed)++;
}

std::string why(const forkvm::Error& e) { return e.message; }

std::string host_sha256(const std::string& data) {
  char path[] = "/tmp/agent-guest-sha.XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0 || ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) return "?";
  ::close(fd);
  std::string cmd = fmt::format("sha256sum {}", path);
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[80] = {};
  if (p == nullptr || std::fgets(buf, sizeof buf, p) == nullptr) return "?";
  ::pclose(p);
  ::unlink(path);
  return std::string(buf).substr(0, 64);
}

void exec_checks(AgentClient& cl) {
  auto r = cl.exec({.command = "uname -a"});
  check("exec uname -a", r.ok() && r->exit_code == 0 && r->stdout_data.starts_with("Linux "),
        r.ok() ? r->stdout_data : why(r.error()));
  r = cl.exec({.command = "echo to-out; echo to-err >&2; exit 7"});
  check("exec stdout, stderr and exit 7",
        r.ok() && r->exit_code == 7 && r->stdout_data == "to-out\n" && r->stderr_data == "to-err\n",
        r.ok() ? fmt::format("{} '{}' '{}'", r->exit_code, r->stdout_data, r->stderr_data) : why(r.error()));
  r = cl.exec({.command = "no-such-binary-forkvm"});
  check("exec of a missing binary exits 127 with bash's message",
        r.ok() && r->exit_code == 127 && r->stderr_data.find("not found") != std::string::npos,
        r.ok() ? r->stderr_data : why(r.error()));
  auto t0 = std::chrono::steady_clock::now();
  r = cl.exec({.command = "sleep 60", .timeout_ms = 1500});
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  check("exec with a timeout reports a timeout, not an exit",
        r.ok() && r->timed_out && took.count() < 30000,
        r.ok() ? fmt::format("timed_out={} exit={} {} ms", r->timed_out, r->exit_code, took.count())
               : why(r.error()));
  r = cl.exec({.command = "id -un; echo $HOME", .user = "user"});
  check("exec as another Linux user", r.ok() && r->stdout_data == "user\n/home/user\n",
        r.ok() ? r->stdout_data : why(r.error()));
  r = cl.exec({.command = "cat; echo", .stdin_data = std::string("from-stdin")});
  check("exec with stdin", r.ok() && r->stdout_data == "from-stdin\n", r.ok() ? r->stdout_data : why(r.error()));
  // A hung command must not block other requests.
  std::atomic<bool> done{false};
  std::thread hung([&] {
    (void)cl.exec({.command = "sleep 8", .timeout_ms = 10000});
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  r = cl.exec({.command = "echo alongside"});
  check("a long command does not block another exec", r.ok() && r->stdout_data == "alongside\n" && !done,
        r.ok() ? r->stdout_data : why(r.error()));
  hung.join();
}

void file_checks(AgentClient& cl) {
  std::string data(5u << 20, '\0');
  std::mt19937_64 rng(42);
  for (auto& c : data) c = static_cast<char>(rng());
  std::string path = "/root/forkvm test/ünï/blob.bin";
  auto w = cl.write_file({.path = path}, data);
  auto sum = cl.exec({.command = "sha256sum '" + path + "' | cut -c1-64"});
  std::string want = host_sha256(data);
  check("5 MiB binary file: the guest's sha256 agrees",
        w.ok() && sum.ok() && sum->stdout_data == want + "\n",
        w.ok() ? (sum.ok() ? sum->stdout_data + " vs " + want : why(sum.error())) : why(w.error()));
  auto back = cl.read_file_all(path, 16u << 20);
  check("5 MiB binary file reads back byte-exact", back.ok() && *back == data,
        back.ok() ? fmt::format("{} bytes", back->size()) : why(back.error()));
  auto missing = cl.read_file_all("/root/no/such/file", 100);
  check("reading a missing file gives FILE_NOT_FOUND",
        !missing.ok() && agent_error_code(missing.error()) == "FILE_NOT_FOUND",
        missing.ok() ? "read ok" : why(missing.error()));
  auto dir = cl.read_file_all("/etc", 100);
  check("reading a directory as a file is a clear error", !dir.ok(), dir.ok() ? "read ok" : why(dir.error()));
  (void)cl.exec({.command = "mkdir -p /root/listing/sub && touch /root/listing/a.txt"});
  auto list = cl.list_dir("/root/listing");
  bool saw_file = false, saw_dir = false;
  if (list.ok())
    for (const auto& e : *list) {
      saw_file |= e.name == "a.txt" && e.kind == "file";
      saw_dir |= e.name == "sub" && e.kind == "directory";
    }
  check("list a directory with kinds", list.ok() && saw_file && saw_dir,
        list.ok() ? fmt::format("{} entries", list->size()) : why(list.error()));
}

void watch_checks(AgentClient& cl) {
  (void)cl.exec({.command = "mkdir -p /root/watched"});
  std::vector<WatchEvent> events;
  std::atomic<bool> cancel{false};
  std::atomic<bool> ready{false};
  forkvm::Status st;
  std::thread w([&] {
    st = cl.watch(
        "/root/watched",
        [&](const WatchEvent& e) {
          events.push_back(e);
          return true;
        },
        &cancel, [&] { ready = true; });
  });
  for (int i = 0; i < 100 && !ready; i++) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (void)cl.exec({.command = "cd /root/watched && echo a > f1 && mkdir d && echo b > d/f2 && echo c >> f1 && rm f1"});
  std::this_thread::sleep_for(std::chrono::seconds(2));
  cancel = true;
  w.join();
  auto has = [&](const std::string& type, const std::string& name) {
    for (const auto& e : events)
      if (e.event_type == type && e.filename == name) return true;
    return false;
  };
  std::string seen;
  for (const auto& e : events) seen += e.event_type + ":" + e.filename + " ";
  check("watch sees create, modify and delete", ready && has("create", "f1") && has("modify", "f1") &&
                                                    has("delete", "f1"),
        seen);
  check("watch follows a new subdirectory", has("create", "d/f2"), seen);
}

void systemd_checks(AgentClient& cl) {
  std::string spec =
      R"({"name":"ticker","mode":"service","exec":["bash -c 'while true; do date +%s >> /root/ticks; echo tick; sleep 1; done'"]})";
  auto created = cl.systemd_create(spec);
  check("systemd create and start a service", created.ok(), created.ok() ? "" : why(created.error()));
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto st = cl.systemd_status("ticker");
  check("service is active (running)", st.ok() && st->active_state == "active" && st->sub_state == "running",
        st.ok() ? st->active_state + "/" + st->sub_state : why(st.error()));
  auto ticks = cl.exec({.command = "wc -l < /root/ticks"});
  check("service writes its file", ticks.ok() && std::atoi(ticks->stdout_data.c_str()) >= 1,
        ticks.ok() ? ticks->stdout_data : why(ticks.error()));
  auto logs = cl.systemd_logs("ticker", 20);
  bool tick_line = false;
  if (logs.ok())
    for (const auto& l : *logs) tick_line |= l.message == "tick";
  check("service logs from the journal", logs.ok() && tick_line,
        logs.ok() ? fmt::format("{} lines", logs->size()) : why(logs.error()));
  auto restart = cl.systemd_action("restart", "ticker");
  st = cl.systemd_status("ticker");
  check("service restart", restart.ok() && st.ok() && st->active_state == "active",
        restart.ok() ? (st.ok() ? st->active_state : why(st.error())) : why(restart.error()));
  auto stop = cl.systemd_action("stop", "ticker");
  st = cl.systemd_status("ticker");
  check("service stop", stop.ok() && st.ok() && st->active_state == "inactive",
        stop.ok() ? (st.ok() ? st->active_state : why(st.error())) : why(stop.error()));
  auto del = cl.systemd_delete("ticker");
  auto list = cl.systemd_list();
  check("service delete", del.ok() && list.ok() && list->empty(), del.ok() ? "" : why(del.error()));
}

void terminal_checks(AgentClient& cl) {
  auto r = cl.exec({.command = "echo term-hello-$((6*7))", .terminal = "t1"});
  // The command is typed into a login shell that may still be starting.
  forkvm::Result<std::vector<TerminalLine>> logs = std::vector<TerminalLine>{};
  bool seen = false;
  for (int i = 0; i < 100 && !seen; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    logs = cl.terminal_logs("t1");
    if (logs.ok())
      for (const auto& l : *logs) seen |= l.line.find("term-hello-42") != std::string::npos;
  }
  check("terminal output appears in its logs", r.ok() && logs.ok() && seen,
        r.ok() ? (logs.ok() ? fmt::format("{} lines", logs->size()) : why(logs.error())) : why(r.error()));
  auto raw = cl.terminal_output("t1");
  check("terminal raw output keeps ANSI sequences",
        raw.ok() && raw->find("term-hello-42") != std::string::npos && raw->find('\x1b') != std::string::npos,
        raw.ok() ? fmt::format("{} bytes", raw->size()) : why(raw.error()));
  auto list = cl.terminals();
  check("terminal list", list.ok() && !list->empty() && (*list)[0].name == "t1",
        list.ok() ? fmt::format("{}", list->size()) : why(list.error()));
}

}  // namespace

int main(int argc, char** argv) {
  std::string mux;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--mux") mux = argv[i + 1];
  if (mux.empty()) {
    std::fprintf(stderr, "usage: agent-guest-test --mux PATH\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ClientOptions o;
  o.socket_path = mux;
  o.vsock_mux = true;
  o.call_timeout_ms = 60000;  // nested emulation is slow
  AgentClient cl(o);
  auto ready = cl.ready();
  check("agent answers ready over vsock", ready.ok(),
        ready.ok() ? ready->system_state : why(ready.error()));
  if (!ready.ok()) {
    std::printf("%d passed, %d failed\n", passed, failed);
    return 1;
  }
  std::printf("guest: agent %s, systemd %s, uptime %.1f s\n", ready->agent_version.c_str(),
              ready->system_state.c_str(), ready->uptime_seconds);
  exec_checks(cl);
  file_checks(cl);
  watch_checks(cl);
  systemd_checks(cl);
  terminal_checks(cl);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
