#include "devices/virtio/blk_worker.hpp"

#include <pthread.h>
#include <unistd.h>

#include <csignal>

namespace forkvm::virtio {

BlkWorker::BlkWorker(BlkBackend& backend, int event_fd) : backend_(backend), event_fd_(event_fd) {
  // Signals meant for the VMM's other threads (the vCPU kick, SIGTERM) must
  // not interrupt a backend call here: the mask is set before the thread
  // exists, so it inherits it, and restored afterwards.
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  thread_ = std::thread([this] { loop(); });
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::pthread_setname_np(thread_.native_handle(), "fvm-blk-io");
}

BlkWorker::~BlkWorker() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

void BlkWorker::submit(const Job& job) {
  {
    std::lock_guard lk(mu_);
    queue_.push_back(job);
  }
  work_cv_.notify_one();
}

void BlkWorker::take_done(std::vector<Done>& out) {
  std::lock_guard lk(mu_);
  for (Done& d : done_) out.push_back(std::move(d));
  done_.clear();
}

void BlkWorker::wait() {
  std::unique_lock lk(mu_);
  done_cv_.wait(lk, [this] { return !done_.empty() || (queue_.empty() && running_ == 0); });
}

void BlkWorker::loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    work_cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to do
    const Job job = queue_.front();
    queue_.pop_front();
    ++running_;
    lk.unlock();
    Status s;
    switch (job.op) {
      case Op::read:
        s = backend_.read(job.offset, job.iov);
        break;
      case Op::write:
        s = backend_.write(job.offset, job.iov);
        break;
      case Op::flush:
        s = backend_.flush();
        break;
    }
    lk.lock();
    --running_;
    done_.push_back({job.slot, std::move(s)});
    done_cv_.notify_all();
    // One wake-up per batch: results already waiting have had theirs, and the
    // event thread takes them all at once (take_done() empties the list).
    if (done_.size() == 1) {
      const uint64_t one = 1;
      (void)!::write(event_fd_, &one, sizeof one);  // an eventfd write of 1 cannot block for long
    }
  }
}

}  // namespace forkvm::virtio
