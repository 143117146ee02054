// The standby socket's protocol (vmm/standby.hpp), both ends in one process:
// no KVM.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "vmm/standby.hpp"
#include "vmm/unix_socket.hpp"

namespace forkvm {
namespace {

using namespace std::chrono_literals;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/fkstandby.XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// Waits for the standby's socket to appear: it does once it accepts.
void wait_for(const std::string& path) {
  for (int i = 0; i < 2000 && ::access(path.c_str(), F_OK) != 0; ++i) std::this_thread::sleep_for(1ms);
  REQUIRE(::access(path.c_str(), F_OK) == 0);
}

// A standby awaiting a claim within `limit`, and a raw client connected to it.
struct RawClaimer {
  std::future<Result<standby::Claim>> standby;
  UniqueFd fd;
  RawClaimer(const std::string& sock, std::chrono::milliseconds limit)
      : standby(std::async(std::launch::async, [sock, limit] { return standby::await_claim(sock, limit); })) {
    wait_for(sock);
    auto c = connect_unix(sock, "test");
    REQUIRE(c.ok());
    fd = std::move(*c);
  }
};

TEST_CASE("standby: a claim carries the log path and the restore's options; the answer its time") {
  TempDir dir;
  const std::string sock = dir.path + "/s.sock";
  auto standby = std::async(std::launch::async, [&] {
    auto claim = standby::await_claim(sock, 5s);
    REQUIRE(claim.ok());
    CHECK(claim->log_path == "/var/log/vm.log");
    CHECK(claim->restore_args ==
          std::vector<std::string>{"--snapshot", "/snap dir", "--disk", "", "--vsock", "v"});
    CHECK(::access(sock.c_str(), F_OK) != 0);  // one claim only: gone once accepted
    standby::answer(std::move(claim->connection), {}, 12.5);
  });
  wait_for(sock);
  auto ms =
      standby::claim(sock, "/var/log/vm.log", {"--snapshot", "/snap dir", "--disk", "", "--vsock", "v"}, 5s);
  standby.get();
  REQUIRE(ms.ok());
  CHECK(*ms == doctest::Approx(12.5));
}

TEST_CASE("standby: a failed restore reaches the claimer as an error with the standby's message") {
  TempDir dir;
  const std::string sock = dir.path + "/s.sock";
  auto standby = std::async(std::launch::async, [&] {
    auto claim = standby::await_claim(sock, 5s);
    REQUIRE(claim.ok());
    standby::answer(std::move(claim->connection), make_error("snapshot /x: bad checksum\nin state"), 0);
  });
  wait_for(sock);
  auto ms = standby::claim(sock, "", {"--snapshot", "/x"}, 5s);
  standby.get();
  REQUIRE_FALSE(ms.ok());
  CHECK(ms.error().message.find("could not restore: snapshot /x: bad checksum in state") !=
        std::string::npos);
}

TEST_CASE("standby: a standby that ends without answering is an error, not a hang") {
  TempDir dir;
  const std::string sock = dir.path + "/s.sock";
  auto standby = std::async(std::launch::async, [&] {
    auto claim = standby::await_claim(sock, 5s);
    REQUIRE(claim.ok());
    claim->connection.reset();  // as if it crashed
  });
  wait_for(sock);
  auto ms = standby::claim(sock, "log", {"--snapshot", "/x"}, 5s);
  standby.get();
  REQUIRE_FALSE(ms.ok());
  CHECK(ms.error().message.find("without an answer") != std::string::npos);
}

TEST_CASE("standby: malformed and silent claims are refused") {
  TempDir dir;
  const std::string sock = dir.path + "/s.sock";
  SUBCASE("no final NUL") {
    RawClaimer c(sock, 5s);
    REQUIRE(::send(c.fd.get(), "log\0--snapshot", 14, MSG_NOSIGNAL) == 14);
    ::shutdown(c.fd.get(), SHUT_WR);
    auto claim = c.standby.get();
    REQUIRE_FALSE(claim.ok());
    CHECK(claim.error().message.find("must end with a NUL") != std::string::npos);
  }
  SUBCASE("nothing at all within the limit") {
    RawClaimer c(sock, 200ms);
    auto claim = c.standby.get();
    REQUIRE_FALSE(claim.ok());
    CHECK(claim.error().message.find("nothing complete within 200 ms") != std::string::npos);
  }
  SUBCASE("more than the limit") {
    RawClaimer c(sock, 5s);
    const std::string big(70 * 1024, 'a');
    (void)::send(c.fd.get(), big.data(), big.size(), MSG_NOSIGNAL);
    auto claim = c.standby.get();
    REQUIRE_FALSE(claim.ok());
    CHECK(claim.error().message.find("more than") != std::string::npos);
  }
}

TEST_CASE("standby: claiming a standby that is not there is a clear error") {
  auto ms = standby::claim("/tmp/no-such-dir-fk/s.sock", "", {"--snapshot", "/x"}, 1s);
  REQUIRE_FALSE(ms.ok());
  CHECK(ms.error().message.find("standby socket") != std::string::npos);
  auto long_path = standby::claim(std::string(200, 'a'), "", {}, 1s);
  REQUIRE_FALSE(long_path.ok());
  CHECK(long_path.error().message.find("longer than") != std::string::npos);
}

}  // namespace
}  // namespace forkvm
