// The VMM's event thread: one io_uring that waits on every file descriptor a
// device cares about (ioeventfds, TAP, sockets, io_uring completion
// eventfds) and runs its callback on this thread. Callbacks must not block.
#pragma once

#include <liburing.h>

#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm {

class EventLoop {
 public:
  using Callback = std::function<void()>;

  static Result<std::unique_ptr<EventLoop>> create();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  ~EventLoop();

  // Calls on_readable on the loop thread every time fd is readable, until
  // unwatch(fd). The callback must consume the readiness (read the eventfd).
  // Call from the loop thread, or before run().
  Status watch_readable(int fd, Callback on_readable);
  void unwatch(int fd);

  // Runs fn on the loop thread. Safe from any thread.
  void post(Callback fn);

  // Runs until stop(). Returns an error only if the ring itself fails.
  Status run();
  // Safe from any thread; run() returns after the current callback.
  void stop();

 private:
  EventLoop() = default;
  struct Watch {
    int fd;
    Callback callback;
    bool active = true;
  };
  io_uring_sqe* next_sqe();
  void arm(Watch* w);
  void drain_posted();

  io_uring ring_{};
  bool ring_ready_ = false;
  UniqueFd wake_fd_;  // eventfd that post() and stop() write
  std::unordered_map<int, std::unique_ptr<Watch>> watches_;
  // Unwatched entries stay allocated for the loop's life: the kernel may still
  // post a completion that points at them. There are a handful per VM.
  std::vector<std::unique_ptr<Watch>> retired_;
  std::mutex posted_mu_;                          // guards posted_ and stopping_
  std::vector<Callback> posted_;
  bool stopping_ = false;
};

}  // namespace forkvm
