// Threads for request handlers, which may block for seconds (VM boot, exec,
// await) or hours (an NDJSON watch stream). A fixed pool would let a few
// streams starve every other request, so the pool grows on demand up to a
// cap and idle threads exit. Jobs beyond the cap wait in FIFO order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

namespace forkvm::api {

class WorkerPool {
 public:
  explicit WorkerPool(size_t max_threads);
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  // Waits for every thread to finish; call drain() first to bound the wait.
  ~WorkerPool();

  void submit(std::function<void()> job);
  // Runs the queue dry and waits up to `grace` for running jobs.
  // false when some job is still running (the caller should exit the process).
  bool drain(std::chrono::milliseconds grace);

 private:
  void worker();

  std::mutex mu_;
  std::condition_variable work_cv_;  // a job arrived, or stopping
  std::condition_variable exit_cv_;  // a thread exited
  std::deque<std::function<void()>> queue_;
  size_t max_threads_;
  size_t threads_ = 0;
  size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace forkvm::api
