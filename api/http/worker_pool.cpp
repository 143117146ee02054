#include "api/http/worker_pool.hpp"

#include <thread>

namespace forkvm::api {

namespace {
// An idle thread lingers this long so bursts do not pay thread creation.
constexpr std::chrono::seconds kIdleExit{30};
}  // namespace

WorkerPool::WorkerPool(size_t max_threads) : max_threads_(max_threads == 0 ? 1 : max_threads) {}

WorkerPool::~WorkerPool() {
  std::unique_lock lock(mu_);
  stopping_ = true;
  work_cv_.notify_all();
  exit_cv_.wait(lock, [&] { return threads_ == 0; });
}

void WorkerPool::submit(std::function<void()> job) {
  std::lock_guard lock(mu_);
  queue_.push_back(std::move(job));
  if (idle_ == 0 && threads_ < max_threads_) {
    threads_++;
    // Detached: the pool tracks its threads by count, so the destructor can
    // wait for them and drain() can give up on a stuck one.
    std::thread([this] { worker(); }).detach();
  } else {
    work_cv_.notify_one();
  }
}

bool WorkerPool::drain(std::chrono::milliseconds grace) {
  std::unique_lock lock(mu_);
  stopping_ = true;
  work_cv_.notify_all();
  return exit_cv_.wait_for(lock, grace, [&] { return threads_ == 0; });
}

void WorkerPool::worker() {
  std::unique_lock lock(mu_);
  while (true) {
    if (queue_.empty()) {
      if (stopping_) break;
      idle_++;
      bool woke = work_cv_.wait_for(lock, kIdleExit, [&] { return !queue_.empty() || stopping_; });
      idle_--;
      if (!woke) break;
      continue;
    }
    auto job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    job();
    job = nullptr;  // release captures (connections) before taking the lock
    lock.lock();
  }
  threads_--;
  exit_cv_.notify_all();
}

}  // namespace forkvm::api
