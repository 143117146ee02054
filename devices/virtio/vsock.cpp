#include "devices/virtio/vsock.hpp"

#include <cstring>

#include "vmm/log.hpp"

namespace forkvm::virtio {
namespace {
std::atomic<bool> g_logged_chain{false};
std::atomic<bool> g_logged_packet{false};
std::atomic<bool> g_logged_rx{false};
std::atomic<bool> g_logged_event{false};
std::atomic<bool> g_logged_unacknowledged{false};
// A guest's driver handles a transport reset within milliseconds; an old or
// odd one that never re-posts its event buffer must not lock the host out. Long
// enough for a guest stalled under nested emulation: a connection let in before
// the driver handled the reset would be closed by it.
constexpr std::chrono::seconds kResetAckTimeout{10};
// Rounds of tx/rx per notification: bounds how long a busy guest keeps the
// event loop; whatever is left runs on the next notification or host event.
constexpr int kMaxRounds = 16;
}  // namespace

Result<std::shared_ptr<Vsock>> Vsock::create(const VsockConfig& config) {
  if (config.guest_cid < vsock::kMinGuestCid || config.guest_cid > vsock::kMaxGuestCid) {
    return make_error("vsock guest CID {} is reserved or out of range (3..{})", config.guest_cid,
                      vsock::kMaxGuestCid);
  }
  auto muxer = FORKVM_TRY(vsock::Muxer::create(config.uds_path, config.guest_cid));
  return std::shared_ptr<Vsock>(new Vsock(std::move(muxer), config.guest_cid));
}

Vsock::Vsock(std::unique_ptr<vsock::Muxer> muxer, uint64_t guest_cid)
    : Device(3, kQueueMaxSize), muxer_(std::move(muxer)), guest_cid_(guest_cid) {
  set_cid(guest_cid);
}

uint64_t Vsock::device_features() const {
  // No VIRTIO_VSOCK_F_STREAM/SEQPACKET bits: with none negotiated a device is stream-only (5.10.3).
  return feature_bit(kFeatureVersion1) | feature_bit(kFeatureEventIdx) | feature_bit(kFeatureIndirectDesc);
}

void Vsock::set_cid(uint64_t cid) {
  guest_cid_ = cid;
  std::memcpy(config_.data(), &cid, sizeof cid);
  muxer_->set_guest_cid(cid);
}

Status Vsock::do_activate() {
  muxer_->set_active(true);
  return {};
}

void Vsock::do_reset() {
  muxer_->set_active(false);  // the driver is gone: so are its connections
  tx_stalled_ = false;
  reset_event_owed_ = false;
  reset_unacknowledged_ = false;
}

void Vsock::do_save_state(StateWriter& out) const { out.u64(guest_cid_); }

Status Vsock::do_load_state(StateReader& in) {
  const uint64_t saved_cid = FORKVM_TRY(in.u64());
  // The driver caches config space by generation: a new CID is a new generation.
  if (saved_cid != guest_cid_) bump_config_generation();
  previous_cid_ = saved_cid;
  return {};
}

bool Vsock::queue_usable(uint16_t index) { return activated() && !needs_reset() && queue(index).active(); }

void Vsock::process_queue(uint16_t index) {
  if (index == kEventQueue) {
    acknowledge_reset(false);  // a re-posted buffer says the driver handled what we sent
    return deliver_events();
  }
  run_queues();
}

void Vsock::acknowledge_reset(bool timed_out) {
  if (!reset_unacknowledged_) return;
  // A look at the queue is no acknowledgement (after_restore() looks at every
  // queue as if notified): the driver must have published a buffer since.
  const bool reposted = queue_usable(kEventQueue) && queue(kEventQueue).avail_idx() != reset_avail_mark_;
  if (!reposted && !timed_out) return;
  reset_unacknowledged_ = false;
  if (reposted)
    log(LogLevel::info, "virtio-vsock: the driver took the transport reset (CID {}) in {} ms", guest_cid_,
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                              reset_sent_at_)
            .count());
  if (activated() && !needs_reset()) muxer_->set_active(true);
}

void Vsock::process_event() {
  // Always drain the epoll set, even with no driver: it must not stay readable.
  const bool kicked = muxer_->process_host_events();
  if (reset_unacknowledged_ && std::chrono::steady_clock::now() - reset_sent_at_ > kResetAckTimeout) {
    log_once(g_logged_unacknowledged,
             "virtio-vsock: the driver did not acknowledge a transport reset; host "
             "connections are let through anyway");
    acknowledge_reset(true);
  }
  if (kicked && reset_requested_.exchange(false)) {
    const uint64_t cid = requested_cid_.exchange(0);
    send_transport_reset(cid != 0 ? std::optional<uint64_t>(cid) : std::nullopt);
  }
  run_queues();
}

void Vsock::run_queues() {
  for (int round = 0; round < kMaxRounds; ++round) {
    tx_stalled_ = false;
    process_tx();
    pump_rx();
    if (!tx_stalled_ || muxer_->backlogged()) return;
  }
}

void Vsock::process_tx() {
  if (!queue_usable(kTxQueue)) return;
  Queue& q = queue(kTxQueue);
  bool added = false;
  vsock::SgList sg;
  for (;;) {
    if (muxer_->backlogged()) {
      tx_stalled_ = true;  // resumes when the guest has taken the RSTs we owe it
      break;
    }
    auto popped = q.pop();
    if (!popped.ok()) {
      set_needs_reset(popped.error().context("virtio-vsock tx queue"));
      return;
    }
    if (!popped->has_value()) break;
    DescriptorChain& chain = **popped;
    if (auto s = sg.collect(chain, false); !s.ok()) {
      log_once(g_logged_chain, "virtio-vsock: refused a tx chain: {}", s.error().message);
    } else {
      const auto parsed = vsock::parse_tx(sg, guest_cid_);
      switch (parsed.verdict) {
        case vsock::Verdict::accept:
          muxer_->on_guest_packet(parsed.hdr, sg);
          break;
        case vsock::Verdict::reset:
          log_once(g_logged_packet, "virtio-vsock: refused a packet: {}", parsed.why);
          muxer_->reply_reset(parsed.hdr);
          break;
        case vsock::Verdict::drop:
          // Packets the driver queued before a snapshot, or sent before it took the
          // reset, still carry the saved CID: expected, and their connections are gone.
          if (parsed.hdr.src_cid != previous_cid_ || previous_cid_ == guest_cid_)
            log_once(g_logged_packet, "virtio-vsock: dropped a packet: {}", parsed.why);
          break;
      }
    }
    // The device never writes tx buffers: the used length is 0.
    if (auto s = q.add_used(chain.head(), 0); !s.ok()) {
      set_needs_reset(s.error().context("virtio-vsock tx used ring"));
      return;
    }
    added = true;
  }
  if (added && q.needs_notification()) signal_used_queue();
}

void Vsock::pump_rx() {
  if (!queue_usable(kRxQueue)) return;
  Queue& q = queue(kRxQueue);
  bool added = false;
  vsock::SgList sg;
  while (muxer_->has_rx()) {
    auto popped = q.pop();
    if (!popped.ok()) {
      set_needs_reset(popped.error().context("virtio-vsock rx queue"));
      return;
    }
    if (!popped->has_value()) break;  // no buffers: the guest's next rx notify resumes us
    DescriptorChain& chain = **popped;
    uint32_t used = 0;
    bool give_back = false;
    if (auto s = sg.collect(chain, true); !s.ok()) {
      log_once(g_logged_rx, "virtio-vsock: refused an rx chain: {}", s.error().message);
    } else if (sg.size() < vsock::kHeaderSize) {
      log_once(g_logged_rx, "virtio-vsock: rx buffer of {} bytes cannot hold a header", sg.size());
    } else {
      used = muxer_->fill_rx(sg);
      give_back = used == 0;  // nothing to send after all (a read hit EAGAIN)
    }
    if (give_back) {
      q.undo_pop();
      break;
    }
    if (auto s = q.add_used(chain.head(), used); !s.ok()) {
      set_needs_reset(s.error().context("virtio-vsock rx used ring"));
      return;
    }
    added = true;
  }
  if (added && q.needs_notification()) signal_used_queue();
}

void Vsock::send_transport_reset(std::optional<uint64_t> new_cid) {
  if (new_cid && *new_cid >= vsock::kMinGuestCid && *new_cid <= vsock::kMaxGuestCid &&
      *new_cid != guest_cid_) {
    set_cid(*new_cid);
    bump_config_generation();
  }
  muxer_->close_all();
  tx_stalled_ = false;
  if (!activated()) return;  // a driver that starts later reads the new CID at probe
  reset_event_owed_ = true;
  deliver_events();
}

void Vsock::request_transport_reset(std::optional<uint64_t> new_cid) {
  requested_cid_.store(new_cid.value_or(0));
  reset_requested_.store(true);
  muxer_->kick();
}

void Vsock::deliver_events() {
  if (!reset_event_owed_ || !queue_usable(kEventQueue)) return;
  Queue& q = queue(kEventQueue);
  vsock::SgList sg;
  for (;;) {
    auto popped = q.pop();
    if (!popped.ok()) {
      set_needs_reset(popped.error().context("virtio-vsock event queue"));
      return;
    }
    if (!popped->has_value()) return;  // delivered when the driver posts a buffer
    DescriptorChain& chain = **popped;
    uint32_t used = 0;
    const uint32_t id = vsock::kEventTransportReset;  // struct virtio_vsock_event { le32 id; }
    if (sg.collect(chain, true).ok() && sg.size() >= sizeof id) {
      sg.copy_in(0, {reinterpret_cast<const uint8_t*>(&id), sizeof id});
      used = sizeof id;
    } else {
      log_once(g_logged_event, "virtio-vsock: unusable event buffer");
    }
    if (auto s = q.add_used(chain.head(), used); !s.ok()) {
      set_needs_reset(s.error().context("virtio-vsock event used ring"));
      return;
    }
    if (q.needs_notification()) signal_used_queue();
    if (used != 0) {
      reset_event_owed_ = false;
      reset_unacknowledged_ = true;
      reset_sent_at_ = std::chrono::steady_clock::now();
      reset_avail_mark_ = q.avail_idx();
      muxer_->set_active(false);
      q.notify_on_next_avail();  // the driver's re-post is the acknowledgement
      return;
    }
  }
}

}  // namespace forkvm::virtio
