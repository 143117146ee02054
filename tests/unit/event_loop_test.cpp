#include <doctest/doctest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>

#include "vmm/event_loop.hpp"

namespace forkvm {
namespace {

TEST_CASE("event loop runs fd callbacks and posted work, then stops") {
  auto loop = EventLoop::create();
  REQUIRE(loop.ok());
  int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  REQUIRE(efd >= 0);
  int fired = 0;
  REQUIRE((*loop)->watch_readable(efd, [&] {
    uint64_t v;
    REQUIRE(::read(efd, &v, sizeof(v)) == sizeof(v));
    fired += static_cast<int>(v);
    if (fired == 3) (*loop)->post([&] { (*loop)->stop(); });
  }).ok());
  std::thread writer([&] {
    for (int i = 0; i < 3; ++i) {
      uint64_t one = 1;
      REQUIRE(::write(efd, &one, sizeof(one)) == sizeof(one));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  REQUIRE((*loop)->run().ok());
  writer.join();
  CHECK(fired == 3);
  ::close(efd);
}

}  // namespace
}  // namespace forkvm
