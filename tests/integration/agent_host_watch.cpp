// watch, terminal, stats and systemd (unit files only: no systemd here) checks.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/integration/agent_host_checks.hpp"

using namespace forkvm::agent;

namespace agent_test {
namespace {

bool wait_for(const std::function<bool()>& cond, int ms) {
  for (int i = 0; i < ms / 50; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cond();
}

}  // namespace

void run_watch_terminal_checks(Context& c) {
  auto& cl = c.client;
  {
    std::string d = c.dir + "/watched";
    ::mkdir(d.c_str(), 0755);
    std::mutex mu;
    std::vector<WatchEvent> events;
    std::atomic<bool> ready{false}, cancel{false};
    forkvm::Status st;
    std::thread t([&] {
      st = cl.watch(
          d,
          [&](const WatchEvent& e) {
            std::lock_guard lk(mu);
            events.push_back(e);
            return true;
          },
          &cancel, [&] { ready = true; });
    });
    bool was_ready = wait_for([&] { return ready.load(); }, 5000);
    auto has = [&](std::string_view type, std::string_view name) {
      std::lock_guard lk(mu);
      for (const auto& e : events)
        if (e.event_type == type && e.filename == name) return true;
      return false;
    };
    std::ofstream(d + "/new.txt") << "x";
    bool created = wait_for([&] { return has("create", "new.txt"); }, 3000);
    std::ofstream(d + "/new.txt", std::ios::app) << "more";
    bool modified = wait_for([&] { return has("modify", "new.txt"); }, 3000);
    ::mkdir((d + "/sub").c_str(), 0755);
    wait_for([&] { return has("create", "sub"); }, 3000);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ofstream(d + "/sub/inner.txt") << "y";
    bool nested = wait_for([&] { return has("create", "sub/inner.txt"); }, 3000);
    ::rename((d + "/new.txt").c_str(), (d + "/renamed.txt").c_str());
    bool moved = wait_for([&] { return has("move", "renamed.txt"); }, 3000);
    ::unlink((d + "/renamed.txt").c_str());
    bool deleted = wait_for([&] { return has("delete", "renamed.txt"); }, 3000);
    cancel = true;
    t.join();
    check("watch: ready", was_ready, "no ready event");
    check("watch: create", created, "no create event");
    check("watch: modify", modified, "no modify event");
    check("watch: new subdirectory is watched", nested, "no event from sub/");
    check("watch: move", moved, "no move event");
    check("watch: delete", deleted, "no delete event");
    check("watch: cancel ends the stream cleanly", st.ok(), st.ok() ? "" : err_or(st.error()));
    auto missing = cl.watch(c.dir + "/no-such-dir", [](const WatchEvent&) { return true; });
    check("watch a missing path gives FILE_NOT_FOUND",
          !missing.ok() && agent_error_code(missing.error()) == "FILE_NOT_FOUND",
          missing.ok() ? "ok" : err_or(missing.error()));
  }
  {
    auto r = cl.exec({.command = "printf '\\033[1;31mhello-from-terminal\\033[0m\\n'", .terminal = "t1"});
    check("exec in a named terminal", r.ok(), r.ok() ? "" : err_or(r.error()));
    bool seen = wait_for(
        [&] {
          auto logs = cl.terminal_logs("t1");
          if (!logs.ok()) return false;
          for (const auto& l : *logs)
            if (l.line == "hello-from-terminal" && !l.timestamp.empty()) return true;
          return false;
        },
        8000);
    check("terminal output appears in its logs, ANSI stripped", seen, "line not found");
    auto raw = cl.terminal_output("t1");
    check("terminal raw output keeps ANSI sequences",
          raw.ok() && raw->find("\x1b[1;31mhello-from-terminal") != std::string::npos,
          raw.ok() ? "" : err_or(raw.error()));
    auto in = cl.terminal_input("t1", "echo typed-$((6*7))\n");
    bool typed = wait_for(
        [&] {
          auto logs = cl.terminal_logs("t1");
          if (!logs.ok()) return false;
          for (const auto& l : *logs)
            if (l.line == "typed-42") return true;
          return false;
        },
        8000);
    check("terminal input is typed into the session", in.ok() && typed, in.ok() ? "" : err_or(in.error()));
    auto list = cl.terminals();
    check("terminal list",
          list.ok() && list->size() == 1 && (*list)[0].name == "t1" && (*list)[0].status == "running",
          list.ok() ? std::to_string(list->size()) : err_or(list.error()));
    auto nf = cl.terminal_logs("nope");
    check("unknown terminal gives TERMINAL_NOT_FOUND",
          !nf.ok() && agent_error_code(nf.error()) == "TERMINAL_NOT_FOUND",
          nf.ok() ? "ok" : err_or(nf.error()));
    auto cl1 = cl.terminal_close("t1");
    check("terminal close", cl1.ok(), cl1.ok() ? "" : err_or(cl1.error()));
  }
  {
    std::vector<StatsSample> samples;
    auto st = cl.stats(100, [&](const StatsSample& s) {
      samples.push_back(s);
      return samples.size() < 3;
    });
    bool ok = st.ok() && samples.size() == 3 && samples[0].mem_total_bytes > 0 &&
              samples[1].cpu_percent.has_value() && samples[2].uptime_seconds > 0;
    check("stats stream samples and stops on cancel", ok,
          st.ok() ? std::to_string(samples.size()) : err_or(st.error()));
  }
  {
    // No systemd on this host: dryRun writes the unit file only.
    StreamHandlers h;
    std::string spec =
        R"({"name":"web-app","mode":"service","exec":["npm start"],"env":{"PORT":"3000"},"user":"nobody",)"
        R"("restartPolicy":{"policy":"always","restartSec":2}})";
    auto r = cl.call(R"({"op":"systemd.create","dryRun":true,"spec":)" + spec + "}", h);
    std::string unit;
    if (auto t = cl.read_file_all(c.dir + "/units/web-app.service", 1u << 20); t.ok()) unit = *t;
    check("systemd create writes the unit file",
          r.ok() && unit.find("ExecStart=/bin/bash -c \"npm start\"") != std::string::npos &&
              unit.find("Restart=always") != std::string::npos &&
              unit.find("User=nobody") != std::string::npos,
          r.ok() ? unit : err_or(r.error()));
    auto again = cl.call(R"({"op":"systemd.create","dryRun":true,"spec":)" + spec + "}", h);
    check("systemd create twice gives SERVICE_ALREADY_EXISTS",
          !again.ok() && agent_error_code(again.error()) == "SERVICE_ALREADY_EXISTS",
          again.ok() ? "ok" : err_or(again.error()));
    auto list = cl.systemd_list();
    check("systemd list shows managed units", list.ok() && list->size() == 1 && (*list)[0] == "web-app",
          list.ok() ? std::to_string(list->size()) : err_or(list.error()));
    auto bad = cl.systemd_create(R"({"name":"bad name!","mode":"service","exec":["x"]})");
    check("systemd bad name gives SERVICE_NAME_INVALID_CHARS",
          !bad.ok() && agent_error_code(bad.error()) == "SERVICE_NAME_INVALID_CHARS",
          bad.ok() ? "ok" : err_or(bad.error()));
    auto status = cl.systemd_status("web-app");
    check("systemd status without systemd gives SYSTEMD_UNAVAILABLE",
          !status.ok() && agent_error_code(status.error()) == "SYSTEMD_UNAVAILABLE",
          status.ok() ? "ok" : err_or(status.error()));
    auto del = cl.call(R"({"op":"systemd.delete","dryRun":true,"name":"web-app"})", h);
    auto after = cl.systemd_list();
    check("systemd delete removes the unit", del.ok() && after.ok() && after->empty(),
          del.ok() ? "" : err_or(del.error()));
  }
}

}  // namespace agent_test
