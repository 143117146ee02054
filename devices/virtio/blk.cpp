#include "devices/virtio/blk.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "vmm/le_bytes.hpp"
#include "vmm/log.hpp"

namespace forkvm::virtio {
namespace {
std::atomic<bool> g_logged_chain{false};
std::atomic<bool> g_logged_request{false};
std::atomic<bool> g_logged_io{false};
std::atomic<bool> g_logged_submit{false};

}  // namespace

Result<std::shared_ptr<Blk>> Blk::create(const BlkConfig& config) {
  auto backend = FORKVM_TRY(RawFileBackend::open(config.path, config.read_only));
  return create(std::move(backend), config.id);
}

Result<std::shared_ptr<Blk>> Blk::create(std::unique_ptr<BlkBackend> backend, const std::string& id) {
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!efd.valid()) return errno_error("eventfd for virtio-blk completions");
  const std::string name = backend->name();
  std::shared_ptr<Blk> blk(new Blk(std::move(backend), std::move(efd), id));
  if (blk->disk_fd_ < 0) {
    blk->worker_ = std::make_unique<BlkWorker>(*blk->backend_, blk->event_fd_.get());
    return blk;
  }
  // Ring depth = queue size: each in-flight request holds one slot, so the
  // submission queue never fills and completions (2x entries) never overflow.
  if (int r = io_uring_queue_init(kQueueMaxSize, &blk->ring_, 0); r < 0) {
    return errno_error(fmt::format("io_uring for disk {}", name), -r);
  }
  blk->ring_ready_ = true;
  if (int r = io_uring_register_eventfd(&blk->ring_, blk->event_fd_.get()); r < 0) {
    return errno_error(fmt::format("register completion eventfd for disk {}", name), -r);
  }
  return blk;
}

Blk::Blk(std::unique_ptr<BlkBackend> backend, UniqueFd event_fd, const std::string& id_in)
    : Device(1, kQueueMaxSize),
      backend_(std::move(backend)),
      disk_fd_(backend_->direct_fd()),
      event_fd_(std::move(event_fd)),
      slots_(kQueueMaxSize) {
  // A trailing partial sector is not addressable through virtio-blk.
  const uint64_t capacity_sectors = backend_->size_bytes() / blk::kSectorSize;
  limits_ = {capacity_sectors, backend_->read_only(), kSegMax, kSizeMax};
  const std::string id = id_in.empty() ? backend_->name() : id_in;
  std::memcpy(id_.data(), id.data(), std::min(id.size(), id_.size()));
  put_le<uint64_t>(config_, 0, capacity_sectors);  // capacity
  put_le<uint32_t>(config_, 8, kSizeMax);          // size_max
  put_le<uint32_t>(config_, 12, kSegMax);          // seg_max
  for (uint32_t i = kQueueMaxSize; i > 0; --i) free_slots_.push_back(i - 1);
  // A slot's iov grows when the slot is taken, never while its I/O is in flight;
  // reserving kSegMax for every slot up front cost each VMM 1 MiB of heap.
  chain_.reserve(kQueueMaxSize);
}

void Blk::capacity_changed() {
  limits_.capacity_sectors = backend_->size_bytes() / blk::kSectorSize;
  put_le<uint64_t>(config_, 0, limits_.capacity_sectors);
  bump_config_generation();
  signal_config_change();
}

Blk::~Blk() {
  drain(false);  // the kernel, or the worker, may still be writing into guest memory
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

uint64_t Blk::device_features() const {
  uint64_t f = feature_bit(kFeatureVersion1) | feature_bit(kFeatureEventIdx) |
               feature_bit(kFeatureIndirectDesc) | feature_bit(kBlkFeatureSizeMax) |
               feature_bit(kBlkFeatureSegMax) | feature_bit(kBlkFeatureFlush);
  if (limits_.read_only) f |= feature_bit(kBlkFeatureRo);
  return f;
}

void Blk::process_queue(uint16_t index) {
  if (index != 0) return;
  Queue& q = queue(0);
  for (;;) {
    auto popped = q.pop();
    if (!popped.ok()) {
      set_needs_reset(popped.error().context("virtio-blk request queue"));
      break;
    }
    if (!popped->has_value()) break;
    if (!handle_chain(**popped)) {
      // Every slot is busy (a guest may keep more chains in flight than the
      // queue size); process_event() resumes after completions free some.
      q.undo_pop();
      deferred_ = true;
      break;
    }
  }
  finish_batch();
}

bool Blk::handle_chain(DescriptorChain& chain) {
  const uint16_t head = chain.head();
  if (auto s = chain.collect(chain_); !s.ok()) {
    log_once(g_logged_chain, "virtio-blk: refused a descriptor chain: {}", s.error().message);
    complete(head, 0);
    return true;
  }
  auto req = blk::parse_request(chain_, limits_);
  if (!req.ok()) {
    log_once(g_logged_chain, "virtio-blk: refused a request: {}", req.error().message);
    complete(head, 0);
    return true;
  }
  if (req->early_status != blk::kStatusOk) {
    log_once(g_logged_request, "virtio-blk: request type {} sector {} ({} bytes) refused with status {}",
             req->type, req->sector, req->data_len, req->early_status);
    *req->status = req->early_status;
    complete(head, 1);
    return true;
  }
  if (req->type == blk::kTypeGetId) {
    const size_t n = blk::write_id(*req, id_);
    *req->status = blk::kStatusOk;
    complete(head, static_cast<uint32_t>(n + 1));
    return true;
  }
  return submit(*req, head);
}

bool Blk::submit(const blk::Request& req, uint16_t head) {
  if (free_slots_.empty()) return false;
  io_uring_sqe* sqe = nullptr;
  if (!worker_) {
    sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      (void)io_uring_submit(&ring_);  // flush what is queued, then retry once
      unsubmitted_ = 0;
      sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) return false;
    }
  }
  const uint32_t index = free_slots_.back();
  free_slots_.pop_back();
  Slot& s = slots_[index];
  s.busy = true;
  s.head = head;
  s.status = req.status;
  s.iov.clear();
  const uint64_t offset = req.sector << blk::kSectorShift;  // parse_request bounded sector by capacity
  BlkWorker::Op op = BlkWorker::Op::flush;
  if (req.type == blk::kTypeFlush) {
    s.expected = 0;
    s.used_len = 1;
  } else {
    s.iov.reserve(req.data.size());
    for (const Descriptor& d : req.data) s.iov.push_back({d.data.data(), d.data.size()});
    op = req.type == blk::kTypeIn ? BlkWorker::Op::read : BlkWorker::Op::write;
    s.used_len = op == BlkWorker::Op::read ? static_cast<uint32_t>(req.data_len + 1) : 1;
    s.expected = req.data_len;
  }
  ++in_flight_;
  if (worker_) {
    worker_->submit({index, op, offset, s.iov});
    return true;
  }
  const auto n = static_cast<unsigned>(s.iov.size());
  if (op == BlkWorker::Op::flush) {
    io_uring_prep_fsync(sqe, disk_fd_, 0);
  } else if (op == BlkWorker::Op::read) {
    io_uring_prep_readv(sqe, disk_fd_, s.iov.data(), n, offset);
  } else {
    io_uring_prep_writev(sqe, disk_fd_, s.iov.data(), n, offset);
  }
  io_uring_sqe_set_data64(sqe, index);
  ++unsubmitted_;
  return true;
}

void Blk::complete(uint16_t head, uint32_t len) {
  if (auto s = queue(0).add_used(head, len); !s.ok()) {
    set_needs_reset(s.error().context("virtio-blk used ring"));
    return;
  }
  used_added_ = true;
}

void Blk::finish_batch() {
  if (unsubmitted_ > 0 && ring_ready_) {
    if (int r = io_uring_submit(&ring_); r < 0) {
      // The SQEs stay queued and go with the next submit.
      log_once(g_logged_submit, "virtio-blk: io_uring submit: {}", std::strerror(-r));
    } else {
      unsubmitted_ = 0;
    }
  }
  if (used_added_ && queue(0).active()) {
    used_added_ = false;
    if (queue(0).needs_notification()) signal_used_queue();
  }
}

void Blk::reap(bool publish) {
  if (worker_) {
    done_.clear();
    worker_->take_done(done_);
    for (const BlkWorker::Done& d : done_) {
      if (!d.status.ok() && d.slot < slots_.size())
        log_once(g_logged_io, "virtio-blk: request {}: {}", slots_[d.slot].head, d.status.error().message);
      finish_slot(d.slot, d.status.ok(), publish);
    }
    return;
  }
  io_uring_cqe* cqe = nullptr;
  while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
    const uint64_t index = io_uring_cqe_get_data64(cqe);
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    if (index >= slots_.size() || !slots_[index].busy) continue;  // not ours: cannot happen
    // A short transfer cannot be reported to the driver except as an error.
    const bool ok = res >= 0 && static_cast<uint64_t>(res) == slots_[index].expected;
    if (!ok && publish) {
      log_once(g_logged_io, "virtio-blk: I/O for head {} returned {} of {} bytes", slots_[index].head, res,
               slots_[index].expected);
    }
    finish_slot(static_cast<uint32_t>(index), ok, publish);
  }
}

void Blk::finish_slot(uint32_t index, bool ok, bool publish) {
  if (index >= slots_.size() || !slots_[index].busy) return;  // not ours: cannot happen
  Slot& s = slots_[index];
  if (publish) {
    *s.status = ok ? blk::kStatusOk : blk::kStatusIoErr;
    complete(s.head, ok ? s.used_len : 1);
  }
  s.busy = false;
  free_slots_.push_back(index);
  --in_flight_;
}

// Blocks until some in-flight request has finished (or failed to wait).
Status Blk::wait_some() {
  if (worker_) {
    worker_->wait();
    return {};
  }
  int r = io_uring_submit_and_wait(&ring_, 1);
  if (r < 0 && r != -EINTR) return errno_error("wait for virtio-blk completions", -r);
  unsubmitted_ = 0;
  return {};
}

void Blk::process_event() {
  uint64_t count;
  (void)!::read(event_fd_.get(), &count, sizeof count);  // consume readiness; EAGAIN is fine
  reap(activated());
  if (deferred_ && activated()) {
    deferred_ = false;
    process_queue(0);  // ends with finish_batch()
    return;
  }
  finish_batch();
}

Status Blk::wait_idle() {
  while (in_flight_ > 0 || deferred_) {
    if (in_flight_ > 0) FORKVM_CHECK(wait_some());
    process_event();
  }
  return {};
}

void Blk::drain(bool publish) {
  while (in_flight_ > 0) {
    if (auto s = wait_some(); !s.ok()) {
      log_once(g_logged_io, "virtio-blk: draining I/O: {}", s.error().message);
      return;
    }
    reap(publish);
  }
}

void Blk::do_reset() {
  // In-flight I/O targets guest buffers: wait for it, but publish nothing
  // into rings the driver is tearing down.
  drain(false);
  deferred_ = false;
  used_added_ = false;
}

Status Blk::prepare_save() {
  drain(activated());
  if (in_flight_ > 0) return make_error("virtio-blk: {} requests still in flight after draining", in_flight_);
  finish_batch();  // the interrupt for what drain() published
  return {};
}

}  // namespace forkvm::virtio
