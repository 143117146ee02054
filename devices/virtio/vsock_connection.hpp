// One vsock stream between a guest port and a host Unix socket: its state,
// the credit accounting of virtio 1.2 5.10.6.3 in both directions, and the
// bounded buffer for guest data the host socket has not taken yet. No
// virtqueues here: the muxer asks a connection for the next packet it owes
// the guest and hands it what the guest sent, so this is testable with a
// socketpair.
//
// Credit, host -> guest: we may have at most peer_buf_alloc bytes in flight,
// i.e. tx_cnt - peer_fwd_cnt <= peer_buf_alloc (u32 arithmetic, wrapping).
// Credit, guest -> host: we advertise buf_alloc and fwd_cnt (bytes handed
// to the host socket); guest bytes not yet written sit in the buffer, which
// the guest's credit bounds to buf_alloc. A guest that overruns it is broken
// or hostile, and the connection is reset rather than the buffer grown.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "devices/virtio/vsock_packet.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::virtio::vsock {

// What we advertise as buf_alloc: the most guest data held per connection.
inline constexpr uint32_t kConnBufAlloc = 256 * 1024;
// Tell the guest about freed space once its view of our free space falls
// below this (Linux uses the same rule, with its max packet size).
inline constexpr uint32_t kCreditUpdateThreshold = 64 * 1024;

class Connection {
 public:
  enum class State {
    connecting,   // host-initiated: REQUEST owed or sent, RESPONSE not yet seen
    established,  // data flows
  };
  enum class Io { ok, would_block, eof, overrun, error };
  struct ReadResult {
    Io io = Io::ok;
    uint32_t bytes = 0;
  };
  using Clock = std::chrono::steady_clock;

  Connection(UniqueFd fd, uint32_t host_port, uint32_t guest_port, State state,
             uint32_t buf_alloc = kConnBufAlloc);

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] uint32_t host_port() const { return host_port_; }
  [[nodiscard]] uint32_t guest_port() const { return guest_port_; }
  [[nodiscard]] State state() const { return state_; }
  void set_state(State s) { state_ = s; }

  // ---- host -> guest ------------------------------------------------------
  // Every guest packet carries its buffer space and forward count.
  void update_peer(uint32_t buf_alloc, uint32_t fwd_cnt);
  // Bytes we may still send: 0 when the guest claims more in flight than it has room for.
  [[nodiscard]] uint32_t peer_credit() const;
  // Reads at most min(max, peer_credit()) bytes from the host socket into iov.
  [[nodiscard]] ReadResult read_host(std::span<const iovec> iov, uint32_t max);
  [[nodiscard]] uint32_t tx_cnt() const { return tx_cnt_; }

  // ---- guest -> host ------------------------------------------------------
  // An RW payload: written to the host socket now, the rest buffered.
  // overrun: the guest sent beyond the credit we gave it.
  [[nodiscard]] Io push_guest(std::span<const iovec> payload, uint32_t len);
  // Writes buffered bytes (when the host socket becomes writable).
  [[nodiscard]] Io flush();
  [[nodiscard]] size_t buffered() const { return buf_.size() - buf_head_; }
  // A short line to the host program ("OK 1073741824\n"), all or nothing.
  [[nodiscard]] bool write_line(std::string_view line);

  // Whether the guest should hear about freed space now (a CREDIT_UPDATE),
  // or was asked to (CREDIT_REQUEST).
  [[nodiscard]] bool credit_update_due() const;
  void request_credit_update() { credit_requested_ = true; }
  // Fills buf_alloc/fwd_cnt of a header we send; the guest then knows them.
  void stamp(Header& h);
  [[nodiscard]] uint32_t fwd_cnt() const { return fwd_cnt_; }
  [[nodiscard]] uint32_t rx_cnt() const { return rx_cnt_; }

  // ---- lifecycle ------------------------------------------------------------
  uint64_t id = 0;                            // the muxer's handle (epoll token)
  uint32_t guest_shutdown = 0;                // kShutdown* bits the guest sent (cumulative)
  bool host_eof = false;                      // the host program shut its write side
  bool shutdown_owed = false;                 // we owe the guest SHUTDOWN(SEND) after host EOF
  bool host_write_shut = false;               // we did shutdown(SHUT_WR) on the host socket
  bool request_owed = false;                  // host-initiated: REQUEST not yet in the rx queue
  bool response_owed = false;                 // guest-initiated: RESPONSE not yet in the rx queue
  bool host_readable = false;                 // epoll said readable and we have not hit EAGAIN since
  std::optional<Clock::time_point> deadline;  // connect timeout or close linger
  uint32_t epoll_mask = 0;                    // what the fd is registered for (0: not registered)

  // Host data may flow to the guest now.
  [[nodiscard]] bool may_read_host() const {
    return state_ == State::established && !host_eof && (guest_shutdown & kShutdownRcv) == 0;
  }

 private:
  UniqueFd fd_;
  uint32_t host_port_;
  uint32_t guest_port_;
  State state_;
  uint32_t buf_alloc_;

  uint32_t peer_buf_alloc_ = 0;
  uint32_t peer_fwd_cnt_ = 0;
  uint32_t tx_cnt_ = 0;  // bytes sent to the guest

  uint32_t rx_cnt_ = 0;             // bytes received from the guest
  uint32_t fwd_cnt_ = 0;            // of those, bytes written to the host socket
  uint32_t last_sent_fwd_cnt_ = 0;  // the fwd_cnt the guest has seen
  bool credit_requested_ = false;

  std::vector<uint8_t> buf_;  // guest bytes for the host, from buf_head_ on
  size_t buf_head_ = 0;
};

}  // namespace forkvm::virtio::vsock
