// In-guest helper for tests/integration/net_vsock_test.sh, linked statically
// into a test initramfs (busybox has no vsock tool):
//   vsock_echo listen PORT        accept connections on vsock PORT, echo each until EOF
//   vsock_echo connect PORT MSG   connect to the host (CID 2) PORT, send MSG, half-close,
//                                 print what comes back; exit 0 if anything did
#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

sockaddr_vm address(unsigned cid, unsigned port) {
  sockaddr_vm a{};
  a.svm_family = AF_VSOCK;
  a.svm_cid = cid;
  a.svm_port = port;
  return a;
}

int listen_mode(unsigned port) {
  const int s = ::socket(AF_VSOCK, SOCK_STREAM, 0);
  sockaddr_vm a = address(VMADDR_CID_ANY, port);
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 8) != 0) {
    std::perror("vsock_echo: listen");
    return 1;
  }
  for (;;) {
    const int c = ::accept(s, nullptr, nullptr);
    if (c < 0) continue;
    char buf[16384];
    for (ssize_t n; (n = ::read(c, buf, sizeof buf)) > 0;) {
      for (ssize_t off = 0; off < n;) {
        const ssize_t w = ::write(c, buf + off, static_cast<size_t>(n - off));
        if (w <= 0) break;
        off += w;
      }
    }
    ::close(c);
  }
}

int connect_mode(unsigned port, const std::string& msg) {
  const int s = ::socket(AF_VSOCK, SOCK_STREAM, 0);
  sockaddr_vm a = address(VMADDR_CID_HOST, port);
  if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("vsock_echo: connect");
    return 1;
  }
  if (::write(s, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) return 1;
  ::shutdown(s, SHUT_WR);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::read(s, buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
  ::close(s);
  std::printf("%s\n", got.c_str());
  return got.empty() ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "listen") == 0)
    return listen_mode(static_cast<unsigned>(std::atoi(argv[2])));
  if (argc >= 4 && std::strcmp(argv[1], "connect") == 0) {
    return connect_mode(static_cast<unsigned>(std::atoi(argv[2])), argv[3]);
  }
  std::fprintf(stderr, "usage: vsock_echo listen PORT | connect PORT MSG\n");
  return 2;
}
