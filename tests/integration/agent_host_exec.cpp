// exec checks: output, exit status, stderr, timeouts, missing binaries,
// stdin, env/cwd, users, caps, signals, concurrency and cancellation.
#include <atomic>
#include <chrono>
#include <thread>

#include "tests/integration/agent_host_checks.hpp"

using namespace forkvm::agent;

namespace agent_test {

void run_exec_checks(Context& c) {
  auto& cl = c.client;
  // bash -l sources the host's profile, which can be slow (seconds on some
  // hosts); time bounds below are relative to this baseline.
  int64_t base_ms = 0;
  {
    auto t0 = std::chrono::steady_clock::now();
    auto r = cl.exec({.command = "true"});
    base_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    check("exec true (baseline)", r.ok() && r->exit_code == 0, r.ok() ? "" : err_or(r.error()));
    std::printf("note: exec baseline %lld ms\n", static_cast<long long>(base_ms));
  }
  {
    auto r = cl.ready();
    check("ready reports version", r.ok() && r->agent_version == "0.1.0" && r->protocol_major == 1,
          r.ok() ? r->agent_version : err_or(r.error()));
  }
  {
    auto r = cl.exec({.command = "uname -a"});
    check("exec uname -a", r.ok() && r->exit_code == 0 && r->stdout_data.find("Linux") == 0,
          r.ok() ? r->stdout_data : err_or(r.error()));
  }
  {
    auto r = cl.exec({.command = "echo out; echo err >&2; exit 7"});
    check("exec stderr and exit 7",
          r.ok() && r->exit_code == 7 && r->stdout_data == "out\n" && r->stderr_data == "err\n" &&
              !r->timed_out,
          r.ok() ? r->stderr_data : err_or(r.error()));
  }
  {
    auto t0 = std::chrono::steady_clock::now();
    auto r = cl.exec({.command = "echo before; sleep 30; echo after", .timeout_ms = 2 * base_ms + 1000});
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    check("exec timeout kills the process group",
          r.ok() && r->timed_out && r->stdout_data == "before\n" && r->exit_code == 137 &&
              ms < 3 * base_ms + 5000,
          r.ok() ? fmt::format("timedOut={} exit={} ms={} out={:?}", r->timed_out, r->exit_code, ms,
                               r->stdout_data)
                 : err_or(r.error()));
  }
  {
    auto r = cl.exec({.command = "definitely-not-a-command-xyz --flag"});
    check("exec missing binary gives 127 with bash's message",
          r.ok() && r->exit_code == 127 && r->stderr_data.find("command not found") != std::string::npos,
          r.ok() ? r->stderr_data : err_or(r.error()));
  }
  {
    std::string input(300000, 'x');
    input += "\nend\n";
    ExecRequest req{.command = "wc -c; echo done"};
    req.stdin_data = input;
    auto r = cl.exec(req);
    check("exec with stdin", r.ok() && r->stdout_data == std::to_string(input.size()) + "\ndone\n",
          r.ok() ? r->stdout_data : err_or(r.error()));
  }
  {
    ExecRequest req{.command = "echo \"$FOO\"; pwd", .cwd = "/tmp"};
    req.env["FOO"] = "bar baz";
    auto r = cl.exec(req);
    check("exec env and cwd", r.ok() && r->stdout_data == "bar baz\n/tmp\n",
          r.ok() ? r->stdout_data : err_or(r.error()));
  }
  {
    // The child fails before exec: its error comes back through the pipe, the agent lives on.
    auto r = cl.exec({.command = "true", .cwd = "/no/such/dir"});
    check("exec in a missing cwd names chdir and the directory",
          !r.ok() && err_or(r.error()).find("chdir /no/such/dir") != std::string::npos,
          r.ok() ? "ok" : err_or(r.error()));
  }
  {
    auto r = cl.exec({.command = "id -un; id -u", .user = "nobody"});
    check("exec as user nobody", r.ok() && r->stdout_data == "nobody\n65534\n",
          r.ok() ? r->stdout_data + r->stderr_data : err_or(r.error()));
    auto bad = cl.exec({.command = "true", .user = "no-such-user-xyz"});
    check("exec as unknown user gives USER_NOT_FOUND",
          !bad.ok() && agent_error_code(bad.error()) == "USER_NOT_FOUND",
          bad.ok() ? "ok" : err_or(bad.error()));
  }
  {
    auto r = cl.exec({.command = "", .timeout_ms = 0});
    check("exec empty command gives EXEC_EMPTY", !r.ok() && agent_error_code(r.error()) == "EXEC_EMPTY",
          r.ok() ? "ok" : err_or(r.error()));
  }
  {
    auto r = cl.exec({.command = "head -c 3000000 /dev/zero; echo tail >&2", .max_output_bytes = 1u << 20});
    check("exec output cap reports truncation",
          r.ok() && r->stdout_truncated && r->stdout_data.size() == (1u << 20) &&
              r->stdout_bytes == (1u << 20) && r->stderr_data == "tail\n" && r->exit_code == 0,
          r.ok() ? fmt::format("size={} trunc={}", r->stdout_data.size(), r->stdout_truncated)
                 : err_or(r.error()));
  }
  {
    auto r = cl.exec({.command = "kill -TERM $$"});
    check("exec killed by a signal gives 128+n", r.ok() && r->exit_code == 143 && r->signal == 15,
          r.ok() ? fmt::format("exit={}", r->exit_code) : err_or(r.error()));
  }
  {
    // Streaming: chunks arrive while the command still runs.
    std::string got;
    auto t0 = std::chrono::steady_clock::now();
    int64_t first_ms = -1;
    auto r = cl.exec_stream({.command = "echo one; sleep 1; echo two"}, [&](Channel, std::string_view b) {
      if (first_ms < 0)
        first_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
                .count();
      got.append(b);
      return true;
    });
    auto total_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    check("exec streaming delivers output as it comes",
          r.ok() && got == "one\ntwo\n" && first_ms >= 0 && first_ms + 700 < total_ms,
          fmt::format("got='{}' first_ms={} total_ms={}", got, first_ms, total_ms));
  }
  {
    // A hung command does not block another request; cancelling it kills it.
    std::atomic<bool> cancel{false};
    forkvm::Result<ExecResult> hung = forkvm::Error{"not run"};
    std::thread t([&] {
      hung = cl.exec_stream(
          {.command = "sleep 60"}, [](Channel, std::string_view) { return true; }, &cancel);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto t0 = std::chrono::steady_clock::now();
    auto quick = cl.exec({.command = "echo quick"});
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    check("a hung command does not block another exec",
          quick.ok() && quick->stdout_data == "quick\n" && ms < 2 * base_ms + 2000, fmt::format("ms={}", ms));
    cancel = true;
    t.join();
    check("cancelling a running exec kills it", hung.ok() && hung->cancelled,
          hung.ok() ? "not cancelled" : err_or(hung.error()));
  }
  {
    // Background children holding the pipes do not hold the request.
    auto t0 = std::chrono::steady_clock::now();
    auto r = cl.exec({.command = "sleep 20 & echo $!"});
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    std::string pid = r.ok() ? r->stdout_data : "";
    while (!pid.empty() && pid.back() == '\n') pid.pop_back();
    bool numeric = !pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos;
    check("exec returns when the shell exits despite a background child",
          r.ok() && numeric && ms < 2 * base_ms + 3000, fmt::format("ms={} out='{}'", ms, pid));
    // Stop the background sleep we started, by its pid.
    if (numeric) {
      auto k = cl.exec({.command = "kill " + pid});
      check("background child stopped by pid", k.ok() && k->exit_code == 0,
            k.ok() ? k->stderr_data : err_or(k.error()));
    }
  }
}

}  // namespace agent_test
