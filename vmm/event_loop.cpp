#include "vmm/event_loop.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdlib>

#include "vmm/log.hpp"

namespace forkvm {

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  std::unique_ptr<EventLoop> loop(new EventLoop());
  int rc = io_uring_queue_init(64, &loop->ring_, 0);
  if (rc < 0) return errno_error("io_uring_queue_init for the event loop", -rc);
  loop->ring_ready_ = true;
  int wfd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wfd < 0) return errno_error("eventfd for the event loop");
  loop->wake_fd_.reset(wfd);
  FORKVM_CHECK(loop->watch_readable(wfd, [l = loop.get()] {
    uint64_t v;
    (void)!::read(l->wake_fd_.get(), &v, sizeof(v));
    l->drain_posted();
  }));
  return loop;
}

EventLoop::~EventLoop() {
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

io_uring_sqe* EventLoop::next_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    // The submission queue is full: flush it, which always frees every slot.
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  if (sqe == nullptr) {
    log(LogLevel::error, "event loop: io_uring submission queue stuck full");
    std::abort();
  }
  return sqe;
}

void EventLoop::arm(Watch* w) {
  io_uring_sqe* sqe = next_sqe();
  // Multishot poll: one submission keeps reporting readiness until cancelled
  // or until the kernel ends it (then CQE lacks IORING_CQE_F_MORE and we rearm).
  io_uring_prep_poll_multishot(sqe, w->fd, POLLIN);
  io_uring_sqe_set_data(sqe, w);
}

Status EventLoop::watch_readable(int fd, Callback on_readable) {
  if (watches_.contains(fd)) return make_error("fd {} is already watched", fd);
  auto w = std::make_unique<Watch>(Watch{fd, std::move(on_readable)});
  arm(w.get());
  watches_.emplace(fd, std::move(w));
  io_uring_submit(&ring_);
  return {};
}

void EventLoop::unwatch(int fd) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) return;
  Watch* w = it->second.get();
  w->active = false;
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_poll_remove(sqe, reinterpret_cast<uint64_t>(w));
  io_uring_sqe_set_data(sqe, nullptr);
  io_uring_submit(&ring_);
  // The kernel may still post a final completion carrying w; keep it alive.
  retired_.push_back(std::move(it->second));
  watches_.erase(it);
}

void EventLoop::post(Callback fn) {
  {
    std::lock_guard lock(posted_mu_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof(one));
}

void EventLoop::drain_posted() {
  std::vector<Callback> batch;
  {
    std::lock_guard lock(posted_mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void EventLoop::stop() {
  {
    std::lock_guard lock(posted_mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof(one));
}

Status EventLoop::run() {
  for (;;) {
    {
      std::lock_guard lock(posted_mu_);
      if (stopping_) return {};
    }
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc < 0 && rc != -EINTR) return errno_error("io_uring_submit_and_wait", -rc);
    unsigned head;
    unsigned seen = 0;
    std::vector<Watch*> ready;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      auto* w = static_cast<Watch*>(io_uring_cqe_get_data(cqe));
      if (w == nullptr) continue;
      if (w->active && cqe->res >= 0) ready.push_back(w);
      if (w->active && (cqe->flags & IORING_CQE_F_MORE) == 0) arm(w);
    }
    io_uring_cq_advance(&ring_, seen);
    for (Watch* w : ready) {
      if (w->active) w->callback();
    }
  }
}

}  // namespace forkvm
