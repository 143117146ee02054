#include "api/http/stream_sink.hpp"

namespace forkvm::api {

bool StreamSinkImpl::write(std::string_view data) {
  {
    std::unique_lock lock(mu_);
    bool room = cv_.wait_for(lock, write_timeout_,
                             [&] { return closed_ || queued_.size() + in_flight_ < kMaxQueued; });
    if (!room) {
      // The reader has not taken 256 KiB for a whole write timeout.
      closed_ = client_gone_ = true;
    }
    if (closed_) return false;
    queued_.append(data);
  }
  notify_();
  return true;
}

bool StreamSinkImpl::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

void StreamSinkImpl::finish() {
  {
    std::lock_guard lock(mu_);
    finished_ = true;
  }
  notify_();
}

StreamSinkImpl::Batch StreamSinkImpl::take() {
  std::lock_guard lock(mu_);
  Batch b;
  b.data = std::exchange(queued_, {});
  in_flight_ += b.data.size();
  b.finished = finished_ && b.data.empty();
  return b;
}

void StreamSinkImpl::written() {
  std::lock_guard lock(mu_);
  in_flight_ = 0;
  cv_.notify_all();
}

void StreamSinkImpl::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

void StreamSinkImpl::client_gone() {
  std::lock_guard lock(mu_);
  closed_ = client_gone_ = true;
  cv_.notify_all();
}

bool StreamSinkImpl::is_client_gone() const {
  std::lock_guard lock(mu_);
  return client_gone_;
}

}  // namespace forkvm::api
