// The host side of virtio-vsock, Firecracker's "hybrid vsock" protocol:
//   * host -> guest: a program connects to the Unix socket PATH, writes
//     "CONNECT <port>\n"; we send the guest a REQUEST for that port and, on
//     its RESPONSE, write "OK <host port>\n" back; then bytes flow. A refusal
//     (RST) or a timeout closes the host socket.
//   * guest -> host port P: we connect to the Unix socket "PATH_P"; nobody
//     listening there is an RST.
// Every host fd (the listener, sockets still sending their CONNECT line,
// connections, a timerfd for deadlines, an eventfd for kicks) lives in one
// epoll set; its fd is the device's event_fd(), so host readiness reaches
// us through MmioTransport::process_event() under the transport's one lock.
// Interest is level-triggered but managed so nothing ready is left
// registered unconsumed: a readable connection is removed from EPOLLIN
// until a read hits EAGAIN, so a guest that gives no credit or rx buffers
// never makes the event loop spin.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>

#include "devices/virtio/vsock_connection.hpp"
#include "devices/virtio/vsock_packet.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::virtio::vsock {

inline constexpr size_t kMaxConnections = 1024;
inline constexpr size_t kMaxPendingHost = 64;         // host sockets still sending CONNECT
inline constexpr size_t kMaxStrayReplies = 256;       // RSTs owed for packets to no connection
inline constexpr uint32_t kFirstHostPort = 1U << 30;  // host-initiated local ports, as Firecracker
// A guest that does not answer a host connect in this long is stalled, not refusing
// (a refusal is an RST, at once). Firecracker waits 2 s; guests under nested emulation
// stall longer than that while busy, and a healthy guest never makes anyone wait.
inline constexpr auto kConnectTimeout = std::chrono::seconds(10);
inline constexpr auto kCloseLinger = std::chrono::seconds(2);
inline constexpr auto kConnectLineTimeout = std::chrono::seconds(5);

class Muxer {
 public:
  // Listens on `uds_path` (an existing stale socket file is replaced).
  static Result<std::unique_ptr<Muxer>> create(const std::string& uds_path, uint64_t guest_cid);
  ~Muxer();
  Muxer(const Muxer&) = delete;
  Muxer& operator=(const Muxer&) = delete;

  [[nodiscard]] int epoll_fd() const { return epoll_.get(); }
  void set_guest_cid(uint64_t cid) { guest_cid_ = cid; }
  // Inactive (no driver): host CONNECTs are refused and connections closed.
  void set_active(bool active);
  // Drops every connection without telling the guest (transport reset, device reset).
  void close_all();
  // Makes epoll_fd() readable from any thread; process_host_events() reports it.
  void kick();

  // ---- from the guest (tx) ----
  void on_guest_packet(const Header& h, const SgList& sg);
  // Answers an unservable packet with an RST (never an RST to an RST).
  void reply_reset(const Header& to);
  // Too many RSTs owed: the device stops taking tx until the guest drains rx.
  [[nodiscard]] bool backlogged() const { return stray_ >= kMaxStrayReplies; }

  // ---- host readiness ----
  // Handles everything epoll reports; true if kick() was called since last time.
  bool process_host_events();

  // ---- to the guest (rx) ----
  [[nodiscard]] bool has_rx() const { return !control_.empty() || !ready_.empty(); }
  // Writes the next packet into an rx buffer; bytes used, 0 if nothing to send.
  uint32_t fill_rx(SgList& buf);

  [[nodiscard]] size_t connection_count() const { return conns_.size(); }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  struct PendingHost {
    UniqueFd fd;
    std::string line;
    Connection::Clock::time_point deadline;
  };
  using Key = std::pair<uint32_t, uint32_t>;  // (host port, guest port)

  Muxer(std::string path, uint64_t guest_cid) : path_(std::move(path)), guest_cid_(guest_cid) {}

  void accept_host();
  void read_connect_line(uint64_t id);
  void start_host_connection(UniqueFd fd, uint32_t guest_port);
  void guest_connect(const Header& h);
  void on_connection_event(uint64_t id, uint32_t events);
  void expire_deadlines();
  void rearm_timer();

  Connection* add_connection(std::unique_ptr<Connection> c);
  Connection* find(uint64_t id);
  void remove(Connection& c);
  void reset(Connection& c);  // RST to the guest, then remove
  void after_flush(Connection& c);
  [[nodiscard]] bool wants_rx(Connection& c) const;
  void mark_ready(Connection& c);
  void update_interest(Connection& c);
  [[nodiscard]] Header header_for(const Connection& c, Op op) const;
  uint32_t fill_from(Connection& c, SgList& buf);
  void set_deadline(Connection& c, std::optional<Connection::Clock::time_point> when);

  std::string path_;
  uint64_t guest_cid_;
  bool active_ = false;
  UniqueFd epoll_;
  UniqueFd listener_;
  UniqueFd timer_;
  UniqueFd kick_;
  bool timer_dirty_ = false;

  uint64_t next_id_ = 1;
  uint32_t next_host_port_ = kFirstHostPort;
  std::map<uint64_t, PendingHost> pending_;
  std::map<uint64_t, std::unique_ptr<Connection>> conns_;
  std::map<Key, uint64_t> by_ports_;
  std::deque<uint64_t> ready_;  // connections owing the guest a packet, round-robin
  std::unordered_set<uint64_t> queued_;
  struct Control {
    Header hdr;
    bool stray;  // an answer to a packet with no connection (counted in stray_)
  };
  std::deque<Control> control_;  // RSTs, in order
  size_t stray_ = 0;
};

}  // namespace forkvm::virtio::vsock
