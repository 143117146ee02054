// Stream plumbing between a request's handler thread and its connection.
#include "guestinit/stream.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include "guestinit/connection.hpp"
#include "guestinit/json.hpp"

namespace forkvm::agent {

Stream::Stream(std::shared_ptr<Connection> conn, uint32_t id)
    : conn_(std::move(conn)), id_(id), wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

bool Stream::event(std::string_view json) {
  if (json.size() > kMaxPayload) return false;
  return conn_->send(FrameType::Event, id_, 0, json);
}

bool Stream::data(Channel ch, std::string_view bytes) {
  while (!bytes.empty()) {
    auto n = std::min(bytes.size(), kDataChunk);
    if (!conn_->send(FrameType::Data, id_, static_cast<uint16_t>(ch), bytes.substr(0, n))) return false;
    bytes.remove_prefix(n);
  }
  return true;
}

void Stream::end_ok(std::string_view result_json) {
  if (ended_) return;
  JsonWriter w;
  w.begin_object().field("ok", true).key("result").raw(result_json).end_object();
  if (w.bytes() > kMaxPayload) return end_error(code::kInternal, "result too large for one frame");
  ended_ = true;
  conn_->send(FrameType::End, id_, 0, w.view());
}

void Stream::end_error(std::string_view code, std::string_view message) {
  if (ended_) return;
  ended_ = true;
  JsonWriter w;
  w.begin_object().field("ok", false).key("error").begin_object();
  w.field("code", code).field("message", message.substr(0, 4096)).end_object().end_object();
  conn_->send(FrameType::End, id_, 0, w.view());
}

void Stream::signal() {
  uint64_t one = 1;
  // An eventfd write only fails when the counter would overflow: then it is
  // already readable, which is all a poller needs.
  [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
}

void Stream::drain_wake() {
  uint64_t v = 0;
  [[maybe_unused]] auto n = ::read(wake_.get(), &v, sizeof v);
}

void Stream::cancel() {
  cancelled_.store(true);
  {
    std::lock_guard lk(mu_);
    cv_.notify_all();
  }
  signal();
}

void Stream::push_input(std::string bytes, bool eof) {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return queued_ < kMaxQueued || cancelled_.load(); });
  if (cancelled_.load() || input_eof_) return;
  queued_ += bytes.size();
  if (!bytes.empty()) input_.push_back(std::move(bytes));
  if (eof) input_eof_ = true;
  cv_.notify_all();
  lk.unlock();
  signal();
}

std::optional<std::string> Stream::pop_input() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !input_.empty() || input_eof_ || cancelled_.load(); });
  if (cancelled_.load() || input_.empty()) return std::nullopt;
  std::string s = std::move(input_.front());
  input_.pop_front();
  queued_ -= s.size();
  cv_.notify_all();
  return s;
}

std::string Stream::take_input(bool& eof) {
  std::lock_guard lk(mu_);
  std::string out;
  for (auto& s : input_) out += s;
  input_.clear();
  queued_ = 0;
  eof = input_eof_;
  cv_.notify_all();
  return out;
}

}  // namespace forkvm::agent
