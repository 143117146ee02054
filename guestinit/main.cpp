// forkvm-agent: the in-guest half of exec, files, watch, terminals,
// systemd, stats and the ready signal. Started early by systemd; listens on
// vsock port 1024 (or a Unix socket for host-side tests).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <string_view>

#include "guestinit/protocol.hpp"
#include "guestinit/server.hpp"

namespace {

void usage() {
  std::fputs(
      "usage: forkvm-agent [--listen vsock:PORT|unix:PATH] [--console PATH|--no-console] [--version]\n"
      "  default: --listen vsock:1024, marker also written to /dev/console\n",
      stderr);
}

void write_marker(const std::string& console) {
  std::string line = fmt::format("{}\n", forkvm::agent::kReadyMarker);
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
  if (console.empty()) return;
  // The VMM and benchmarks watch the serial console for this line.
  int fd = ::open(console.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return;
  if (::write(fd, line.data(), line.size()) < 0) std::perror("forkvm-agent: console marker");
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = fmt::format("vsock:{}", forkvm::agent::kVsockPort);
  std::string console;
  bool console_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--version") {
      std::printf("forkvm-agent %s (protocol %u.%u)\n", std::string(forkvm::agent::kAgentVersion).c_str(),
                  forkvm::agent::kProtocolMajor, forkvm::agent::kProtocolMinor);
      return 0;
    } else if (a == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else if (a == "--console" && i + 1 < argc) {
      console = argv[++i];
      console_set = true;
    } else if (a == "--no-console") {
      console.clear();
      console_set = true;
    } else {
      usage();
      return 2;
    }
  }
  if (!console_set && listen.rfind("vsock:", 0) == 0) console = "/dev/console";
  // A host that hangs up mid-write must not kill the agent; sends use
  // MSG_NOSIGNAL, this covers pipes to children too.
  ::signal(SIGPIPE, SIG_IGN);
  auto fd = forkvm::agent::listen_on(listen);
  if (!fd.ok()) {
    std::fprintf(stderr, "forkvm-agent: %s\n", fd.error().message.c_str());
    return 1;
  }
  write_marker(console);
  auto st = forkvm::agent::serve(std::move(*fd));
  std::fprintf(stderr, "forkvm-agent: %s\n", st.error().message.c_str());
  return 1;
}
