// A thread that runs a virtio-blk backend's synchronous I/O (the layered
// copy-on-write disk's reads, writes and fdatasync) off the device's event
// thread. Done inline, one large request or a flush on a slow filesystem
// held the transport lock for its whole duration: every vsock, net and
// console event of the VM waited behind it, and so did any vCPU touching
// the device's registers (its interrupt handler reads InterruptStatus),
// which then stopped taking its own timer ticks.
//
// Jobs run one at a time in submission order, so a flush still follows the
// writes submitted before it. Finished jobs are handed back through
// take_done() on the event thread, which the worker wakes by writing the
// device's eventfd when the first result of a batch is ready. The worker
// touches nothing but the backend and its own queues; the device owns the
// guest buffers a job names until it is done, and waits for every job
// (wait()) before anything else uses the backend.
#pragma once

#include <sys/uio.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "devices/virtio/blk_backend.hpp"

namespace forkvm::virtio {

class BlkWorker {
 public:
  enum class Op : uint8_t { read, write, flush };
  struct Job {
    uint32_t slot = 0;  // the device's request slot, returned as is
    Op op = Op::read;
    uint64_t offset = 0;
    std::span<const iovec> iov;  // guest buffers, stable until the job is done
  };
  struct Done {
    uint32_t slot = 0;
    Status status;
  };

  // Starts the thread. `event_fd` is written once per finished job.
  BlkWorker(BlkBackend& backend, int event_fd);
  ~BlkWorker();  // finishes the queued jobs, then joins
  BlkWorker(const BlkWorker&) = delete;
  BlkWorker& operator=(const BlkWorker&) = delete;

  void submit(const Job& job);
  // Appends the jobs finished since the last call to `out`.
  void take_done(std::vector<Done>& out);
  // Blocks until a job has finished that take_done() has not yet returned,
  // or returns at once when none is queued or running.
  void wait();

 private:
  void loop();

  BlkBackend& backend_;
  int event_fd_;
  std::mutex mu_;
  std::condition_variable work_cv_;  // the thread waits for jobs
  std::condition_variable done_cv_;  // wait() waits for results
  std::deque<Job> queue_;
  std::vector<Done> done_;
  size_t running_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace forkvm::virtio
