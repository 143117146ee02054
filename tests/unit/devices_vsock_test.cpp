#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "devices/virtio/vsock.hpp"
#include "tests/unit/virtio_test_queue.hpp"

namespace forkvm::virtio {
namespace {

using testing::CountingInterrupt;
using testing::TestQueue;
using vsock::Header;
using vsock::Op;

constexpr uint64_t kCid = 3;

Header guest_hdr(Op op, uint32_t guest_port, uint32_t host_port, uint32_t len = 0) {
  Header h;
  h.src_cid = kCid;
  h.dst_cid = vsock::kHostCid;
  h.src_port = guest_port;
  h.dst_port = host_port;
  h.len = len;
  h.op = static_cast<uint16_t>(op);
  h.buf_alloc = 256 * 1024;
  return h;
}

std::string temp_dir() {
  char dir[] = "/tmp/forkvm-vsock-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  return dir;
}

UniqueFd unix_connect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

UniqueFd unix_listen(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd.get(), 4) == 0);
  return fd;
}

std::string read_some(int fd, size_t max = 65536) {
  std::string s(max, '\0');
  const ssize_t n = ::recv(fd, s.data(), max, MSG_DONTWAIT);
  s.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return s;
}

struct RxPacket {
  Header hdr;
  std::string payload;
};

// A vsock device with a fake driver on its three queues.
struct Rig {
  std::string dir = temp_dir();
  std::string path = dir + "/v.sock";
  GuestMemory mem = std::move(GuestMemory::create_anonymous(8 << 20).value());
  CountingInterrupt irq;
  std::shared_ptr<Vsock> dev;
  TestQueue rxq{mem, 0x10000, 64};
  TestQueue txq{mem, 0x200000, 64};
  TestQueue evq{mem, 0x400000, 4};
  std::map<uint16_t, uint64_t> rx_bufs;  // head -> gpa
  uint16_t rx_seen = 0;
  uint16_t ev_seen = 0;
  static constexpr uint32_t kRxBuf = 4096 + 44;

  explicit Rig(bool activate = true) {
    auto d = Vsock::create({kCid, path});
    REQUIRE(d.ok());
    dev = *d;
    rxq.configure(dev->queue(Vsock::kRxQueue));
    txq.configure(dev->queue(Vsock::kTxQueue));
    evq.configure(dev->queue(Vsock::kEventQueue));
    dev->set_acked_features(dev->device_features());
    if (activate) REQUIRE(dev->activate(mem, irq).ok());
  }
  ~Rig() {
    dev.reset();
    ::system(("rm -rf " + dir).c_str());
  }

  void post_rx(int n, uint32_t size = kRxBuf) {
    for (int i = 0; i < n; ++i) {
      const uint64_t gpa = rxq.alloc(size);
      rx_bufs[rxq.add_chain({{gpa, size, true}})] = gpa;
    }
    dev->process_queue(Vsock::kRxQueue);
  }
  // Header and payload in separate descriptors, as Linux sends them.
  void send(Header h, std::string_view payload = {}) {
    h.len = static_cast<uint32_t>(payload.size());
    const auto raw = vsock::encode(h);
    const uint64_t hg = txq.alloc_bytes(raw);
    if (payload.empty()) {
      txq.add_chain({{hg, 44, false}});
    } else {
      const uint64_t pg = txq.alloc_bytes({reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
      txq.add_chain({{hg, 44, false}, {pg, static_cast<uint32_t>(payload.size()), false}});
    }
    dev->process_queue(Vsock::kTxQueue);
  }
  std::vector<RxPacket> take_rx() {
    std::vector<RxPacket> out;
    for (; rx_seen != rxq.used_idx(); ++rx_seen) {
      const auto u = rxq.used(rx_seen);
      const uint64_t gpa = rx_bufs.at(static_cast<uint16_t>(u.id));
      REQUIRE(u.len >= 44);
      std::array<uint8_t, 44> raw{};
      REQUIRE(mem.read(gpa, raw));
      RxPacket p{vsock::decode(raw), std::string(u.len - 44, '\0')};
      REQUIRE(p.hdr.len == u.len - 44);
      REQUIRE(mem.read(gpa + 44, {reinterpret_cast<uint8_t*>(p.payload.data()), p.payload.size()}));
      out.push_back(std::move(p));
    }
    return out;
  }
  void pump() {
    for (int i = 0; i < 3; ++i) dev->process_event();
  }
  // A host client's connect to guest port 52, handled: the socket stays open.
  UniqueFd connect_52() {
    UniqueFd host = unix_connect(path);
    REQUIRE(::send(host.get(), "CONNECT 52\n", 11, 0) == 11);
    pump();
    return host;
  }
};

// ---- packets ------------------------------------------------------------------

TEST_CASE("vsock packet: encode/decode round trip, 44 bytes little endian") {
  Header h = guest_hdr(Op::rw, 1000, 2000, 5);
  h.flags = 3;
  h.fwd_cnt = 0x01020304;
  const auto raw = vsock::encode(h);
  CHECK(raw[0] == kCid);
  CHECK(raw[40] == 0x04);
  const Header back = vsock::decode(raw);
  CHECK(back.src_port == 1000);
  CHECK(back.dst_port == 2000);
  CHECK(back.len == 5);
  CHECK(back.flags == 3);
  CHECK(back.fwd_cnt == 0x01020304);
  CHECK(back.operation() == Op::rw);
}

TEST_CASE("vsock packet: tx validation refuses hostile headers") {
  std::vector<uint8_t> bytes(44 + 100);
  auto verdict = [&](Header h, size_t chain_len, std::vector<size_t> split = {}) {
    const auto raw = vsock::encode(h);
    std::memcpy(bytes.data(), raw.data(), 44);
    std::vector<Descriptor> d;
    size_t at = 0;
    for (size_t s : split) {
      d.push_back({{bytes.data() + at, s}, false});
      at += s;
    }
    d.push_back({{bytes.data() + at, chain_len - at}, false});
    vsock::SgList sg;
    sg.assign(d);
    return vsock::parse_tx(sg, kCid).verdict;
  };
  using vsock::Verdict;
  CHECK(verdict(guest_hdr(Op::rw, 1, 2, 100), 144) == Verdict::accept);
  CHECK(verdict(guest_hdr(Op::rw, 1, 2, 100), 144, {10, 30, 20}) == Verdict::accept);  // header split anyhow
  CHECK(verdict(guest_hdr(Op::rw, 1, 2, 101), 144) == Verdict::drop);                  // len past the chain
  CHECK(verdict(guest_hdr(Op::rw, 1, 2, 0xFFFFFFFF), 144) == Verdict::drop);
  CHECK(verdict(guest_hdr(Op::rw, 1, 2, 0), 43) == Verdict::drop);  // no room for the header
  Header spoof = guest_hdr(Op::request, 1, 2);
  spoof.src_cid = 7;
  CHECK(verdict(spoof, 44) == Verdict::drop);
  Header other_vm = guest_hdr(Op::request, 1, 2);
  other_vm.dst_cid = 4;
  CHECK(verdict(other_vm, 44) == Verdict::reset);
  Header seqpacket = guest_hdr(Op::request, 1, 2);
  seqpacket.type = 2;
  CHECK(verdict(seqpacket, 44) == Verdict::reset);
  seqpacket.op = static_cast<uint16_t>(Op::rst);
  CHECK(verdict(seqpacket, 44) == Verdict::drop);  // never RST an RST
  Header bad_op = guest_hdr(Op::rw, 1, 2);
  bad_op.op = 99;
  CHECK(verdict(bad_op, 44) == Verdict::reset);
  CHECK(verdict(guest_hdr(Op::credit_update, 1, 2, 10), 144) == Verdict::drop);  // payload on control
}

// ---- credit accounting ----------------------------------------------------------

struct Pair {
  UniqueFd ours, theirs;
  Pair() {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    ours.reset(sv[0]);
    theirs.reset(sv[1]);
  }
  // Fills the kernel buffer from our side so the next write hits EAGAIN.
  size_t fill() {
    std::vector<char> junk(65536);
    size_t total = 0;
    for (ssize_t n; (n = ::send(ours.get(), junk.data(), junk.size(), MSG_DONTWAIT)) > 0;)
      total += static_cast<size_t>(n);
    return total;
  }
  size_t drain() {
    std::vector<char> sink(65536);
    size_t total = 0;
    for (ssize_t n; (n = ::recv(theirs.get(), sink.data(), sink.size(), MSG_DONTWAIT)) > 0;)
      total += static_cast<size_t>(n);
    return total;
  }
};

TEST_CASE("vsock credit: never send past the guest's buf_alloc") {
  Pair p;
  vsock::Connection c(std::move(p.ours), 1, 2, vsock::Connection::State::established);
  std::vector<char> big(8192, 'x');
  REQUIRE(::send(p.theirs.get(), big.data(), big.size(), 0) == 8192);
  std::vector<uint8_t> dst(8192);
  const iovec iov{dst.data(), dst.size()};
  CHECK(c.peer_credit() == 0);  // nothing advertised yet
  CHECK(c.read_host({&iov, 1}, 8192).io == vsock::Connection::Io::would_block);
  c.update_peer(1000, 0);
  auto r = c.read_host({&iov, 1}, 8192);
  CHECK(r.io == vsock::Connection::Io::ok);
  CHECK(r.bytes == 1000);
  CHECK(c.peer_credit() == 0);
  c.update_peer(1000, 600);  // the guest consumed 600
  CHECK(c.peer_credit() == 600);
  CHECK(c.read_host({&iov, 1}, 8192).bytes == 600);
  // A guest claiming to have consumed more than was sent gets no credit, not 4 GiB.
  c.update_peer(1000, 5000);
  CHECK(c.peer_credit() == 0);
}

TEST_CASE("vsock credit: guest overrun resets, buffer bounded, CREDIT_UPDATE when space frees") {
  Pair p;
  p.fill();
  vsock::Connection c(std::move(p.ours), 1, 2, vsock::Connection::State::established);
  std::vector<uint8_t> chunk(64 * 1024, 'g');
  const iovec iov{chunk.data(), chunk.size()};
  for (int i = 0; i < 3; ++i) CHECK(c.push_guest({&iov, 1}, 64 * 1024) == vsock::Connection::Io::ok);
  CHECK(c.buffered() == 3 * 64 * 1024);
  CHECK_FALSE(c.credit_update_due());  // nothing forwarded yet
  const iovec half{chunk.data(), 32 * 1024};
  CHECK(c.push_guest({&half, 1}, 32 * 1024) == vsock::Connection::Io::ok);
  CHECK(c.push_guest({&half, 1}, 32 * 1024) == vsock::Connection::Io::ok);  // exactly buf_alloc
  CHECK(c.push_guest({&iov, 1}, 1) == vsock::Connection::Io::overrun);
  CHECK(c.buffered() == vsock::kConnBufAlloc);
  // The host reads; everything flushes; the guest must hear about it.
  for (int i = 0; i < 100 && c.buffered() > 0; ++i) {
    p.drain();
    (void)c.flush();
  }
  CHECK(c.buffered() == 0);
  CHECK(c.credit_update_due());
  Header h;
  c.stamp(h);
  CHECK(h.buf_alloc == vsock::kConnBufAlloc);
  CHECK(h.fwd_cnt == c.fwd_cnt());
  CHECK_FALSE(c.credit_update_due());
  c.request_credit_update();  // CREDIT_REQUEST
  CHECK(c.credit_update_due());
}

// ---- the device, end to end -------------------------------------------------------

TEST_CASE("vsock device: host CONNECT, RESPONSE, data both ways, clean shutdown") {
  Rig r;
  r.post_rx(8);
  UniqueFd host = unix_connect(r.path);
  const std::string hello = "CONNECT 1234\nearly";
  REQUIRE(::send(host.get(), hello.data(), hello.size(), 0) == static_cast<ssize_t>(hello.size()));
  r.pump();
  auto pk = r.take_rx();
  REQUIRE(pk.size() == 1);
  CHECK(pk[0].hdr.operation() == Op::request);
  CHECK(pk[0].hdr.dst_port == 1234);
  CHECK(pk[0].hdr.dst_cid == kCid);
  CHECK(pk[0].hdr.src_cid == vsock::kHostCid);
  const uint32_t host_port = pk[0].hdr.src_port;
  CHECK(host_port == vsock::kFirstHostPort);
  CHECK(pk[0].hdr.buf_alloc == vsock::kConnBufAlloc);

  r.send(guest_hdr(Op::response, 1234, host_port));
  CHECK(read_some(host.get()) == "OK 1073741824\n");
  r.pump();  // the bytes after the CONNECT line were stream data
  pk = r.take_rx();
  REQUIRE(pk.size() == 1);
  CHECK(pk[0].hdr.operation() == Op::rw);
  CHECK(pk[0].payload == "early");

  REQUIRE(::send(host.get(), "ping", 4, 0) == 4);
  r.pump();
  pk = r.take_rx();
  REQUIRE(pk.size() == 1);
  CHECK(pk[0].payload == "ping");
  r.send(guest_hdr(Op::rw, 1234, host_port), "pong");
  CHECK(read_some(host.get()) == "pong");

  Header bye = guest_hdr(Op::shutdown, 1234, host_port);
  bye.flags = vsock::kShutdownRcv | vsock::kShutdownSend;
  r.send(bye);
  pk = r.take_rx();
  REQUIRE(pk.size() == 1);
  CHECK(pk[0].hdr.operation() == Op::rst);
  CHECK(r.dev->muxer().connection_count() == 0);
  char b;
  CHECK(::recv(host.get(), &b, 1, 0) == 0);  // the host program sees EOF
  CHECK(r.irq.count > 0);
}

TEST_CASE("vsock device: guest connects to PATH_port; refused ports get RST") {
  Rig r;
  r.post_rx(8);
  UniqueFd listener = unix_listen(r.path + "_5000");
  r.send(guest_hdr(Op::request, 40000, 5000));
  auto pk = r.take_rx();
  REQUIRE(pk.size() == 1);
  CHECK(pk[0].hdr.operation() == Op::response);
  CHECK(pk[0].hdr.src_port == 5000);
  CHECK(pk[0].hdr.dst_port == 40000);
  UniqueFd server(::accept(listener.get(), nullptr, nullptr));
  REQUIRE(server.valid());
  r.send(guest_hdr(Op::rw, 40000, 5000), "to host");
  CHECK(read_some(server.get()) == "to host");
  // The host program closes: the guest hears SHUTDOWN(SEND), then its close gets our RST.
  server.reset();
  r.pump();
  pk = r.take_rx();
  REQUIRE(pk.size() == 1);
  CHECK(pk[0].hdr.operation() == Op::shutdown);
  CHECK(pk[0].hdr.flags == vsock::kShutdownSend);
  Header bye = guest_hdr(Op::shutdown, 40000, 5000);
  bye.flags = 3;
  r.send(bye);
  pk = r.take_rx();
  REQUIRE(pk.size() == 1);
  CHECK(pk[0].hdr.operation() == Op::rst);

  r.send(guest_hdr(Op::request, 40001, 5001));  // nobody listens on PATH_5001
  pk = r.take_rx();
  REQUIRE(pk.size() == 1);
  CHECK(pk[0].hdr.operation() == Op::rst);
  CHECK(pk[0].hdr.dst_port == 40001);
  r.send(guest_hdr(Op::rw, 40002, 5000), "stray");  // data for no connection
  CHECK(r.take_rx().at(0).hdr.operation() == Op::rst);
  r.send(guest_hdr(Op::rst, 40002, 5000));  // never answered
  CHECK(r.take_rx().empty());
}

TEST_CASE("vsock device: host data is held back by the guest's credit") {
  Rig r;
  r.post_rx(32);
  UniqueFd listener = unix_listen(r.path + "_6000");
  Header req = guest_hdr(Op::request, 1, 6000);
  req.buf_alloc = 5000;
  r.send(req);
  REQUIRE(r.take_rx().size() == 1);
  UniqueFd server(::accept(listener.get(), nullptr, nullptr));
  std::string blob(20000, 'd');
  REQUIRE(::send(server.get(), blob.data(), blob.size(), 0) == 20000);
  r.pump();
  size_t got = 0;
  for (auto& p : r.take_rx()) got += p.payload.size();
  CHECK(got == 5000);
  r.pump();
  CHECK(r.take_rx().empty());  // no credit, no packets, no spin
  Header upd = guest_hdr(Op::credit_update, 1, 6000);
  upd.buf_alloc = 5000;
  upd.fwd_cnt = 5000;
  r.send(upd);
  got = 0;
  for (auto& p : r.take_rx()) got += p.payload.size();
  CHECK(got == 5000);
  Header creq = guest_hdr(Op::credit_request, 1, 6000);
  creq.buf_alloc = 5000;
  creq.fwd_cnt = 5000;  // no new credit: the answer is a bare CREDIT_UPDATE
  r.send(creq);
  auto pk = r.take_rx();
  REQUIRE_FALSE(pk.empty());
  CHECK(pk[0].hdr.operation() == Op::credit_update);
  CHECK(pk[0].hdr.buf_alloc == vsock::kConnBufAlloc);
}

TEST_CASE("vsock device: RSTs owed with no rx buffers stall tx instead of growing") {
  Rig r;
  for (int i = 0; i < 300; ++i) {
    const auto raw = vsock::encode(guest_hdr(Op::rw, static_cast<uint32_t>(i), 9));
    r.txq.add_chain({{r.txq.alloc_bytes(raw), 44, false}});
    if (i % 60 == 59) r.dev->process_queue(Vsock::kTxQueue);
  }
  r.dev->process_queue(Vsock::kTxQueue);
  CHECK(r.txq.used_idx() == vsock::kMaxStrayReplies);
  r.post_rx(60);  // the guest takes RSTs: tx resumes
  CHECK(r.take_rx().size() == 60);
  r.post_rx(60);
  r.post_rx(60);
  r.post_rx(60);
  r.post_rx(60);
  CHECK(r.take_rx().size() == 240);
  CHECK(r.txq.used_idx() == 300);
}

TEST_CASE("vsock device: transport reset closes connections, sends the event, changes the CID") {
  Rig r;
  r.post_rx(8);
  const uint64_t ev = r.evq.alloc(4);
  r.evq.add_chain({{ev, 4, true}});
  UniqueFd listener = unix_listen(r.path + "_7000");
  r.send(guest_hdr(Op::request, 1, 7000));
  REQUIRE(r.take_rx().size() == 1);
  UniqueFd server(::accept(listener.get(), nullptr, nullptr));
  CHECK(r.dev->muxer().connection_count() == 1);
  const uint32_t gen = r.dev->config_generation();

  std::thread other([&] { r.dev->request_transport_reset(42); });  // from e.g. a snapshot thread
  other.join();
  r.pump();
  CHECK(r.dev->muxer().connection_count() == 0);
  CHECK(r.evq.used_idx() == 1);
  CHECK(r.evq.used(0).len == 4);
  CHECK(r.mem.read_obj<uint32_t>(ev).value() == vsock::kEventTransportReset);
  char b;
  CHECK(::recv(server.get(), &b, 1, 0) == 0);
  std::array<uint8_t, 8> cfg{};
  r.dev->read_config(0, cfg);
  uint64_t cid;
  std::memcpy(&cid, cfg.data(), 8);
  CHECK(cid == 42);
  CHECK(r.dev->config_generation() != gen);
  // Old-CID packets are now spoofed: dropped without an answer.
  r.send(guest_hdr(Op::request, 1, 7000));
  CHECK(r.take_rx().empty());
  // A second reset with no event buffer is delivered when one is posted.
  r.dev->send_transport_reset();
  CHECK(r.evq.used_idx() == 1);
  r.evq.add_chain({{r.evq.alloc(4), 4, true}});
  r.dev->process_queue(Vsock::kEventQueue);
  CHECK(r.evq.used_idx() == 2);
}

TEST_CASE("vsock device: host connections wait until the driver handled a transport reset") {
  Rig r;
  r.post_rx(8);
  r.evq.add_chain({{r.evq.alloc(4), 4, true}});
  r.dev->send_transport_reset();
  REQUIRE(r.evq.used_idx() == 1);
  // Not handled yet: a connection now would meet the guest mid-reset.
  UniqueFd early = r.connect_52();
  char b;
  CHECK(::recv(early.get(), &b, 1, 0) == 0);
  CHECK(r.take_rx().empty());
  // A look at the event queue with no new buffer (as after a restore, which
  // looks at every queue) is no acknowledgement.
  r.dev->process_queue(Vsock::kEventQueue);
  UniqueFd still_early = r.connect_52();
  CHECK(::recv(still_early.get(), &b, 1, 0) == 0);
  CHECK(r.take_rx().empty());
  // The driver handled it and re-posted its buffer: connections go through.
  r.evq.add_chain({{r.evq.alloc(4), 4, true}});
  r.dev->process_queue(Vsock::kEventQueue);
  CHECK(r.evq.used_idx() == 1);  // nothing more to deliver
  UniqueFd later = r.connect_52();
  auto rx = r.take_rx();
  REQUIRE(rx.size() == 1);
  CHECK(rx[0].hdr.op == static_cast<uint16_t>(Op::request));
  CHECK(rx[0].hdr.dst_port == 52);
}

TEST_CASE("vsock device: host ports are not reused across a transport reset") {
  // The guest keeps a socket the reset closed until its owner closes it, and
  // answers a connect to the same address pair with RST.
  Rig r;
  r.post_rx(8);
  auto connect_port = [&] {
    UniqueFd host = r.connect_52();
    auto rx = r.take_rx();
    REQUIRE(rx.size() == 1);
    CHECK(rx[0].hdr.op == static_cast<uint16_t>(Op::request));
    return rx[0].hdr.src_port;
  };
  auto reset_and_ack = [&] {
    r.evq.add_chain({{r.evq.alloc(4), 4, true}});
    r.dev->send_transport_reset();
    r.evq.add_chain({{r.evq.alloc(4), 4, true}});
    r.dev->process_queue(Vsock::kEventQueue);
  };
  // A restored VMM is a new process: it must not start where the snapshot's
  // VMM started (the ports of the connections open in the snapshot).
  reset_and_ack();
  const uint32_t first = connect_port();
  CHECK(first != vsock::kFirstHostPort);
  CHECK(first >= vsock::kFirstHostPort);
  CHECK(connect_port() == first + 1);
  reset_and_ack();
  const uint32_t again = connect_port();
  CHECK(again != first + 2);
  CHECK(again >= vsock::kFirstHostPort);
}

TEST_CASE("vsock device: CONNECT refused while no driver, malformed lines closed") {
  Rig r(false);
  UniqueFd host = unix_connect(r.path);
  REQUIRE(::send(host.get(), "CONNECT 1\n", 10, 0) == 10);
  r.pump();
  char b;
  CHECK(::recv(host.get(), &b, 1, 0) == 0);
  UniqueFd junk = unix_connect(r.path);
  const std::string line(64, 'x');
  REQUIRE(::send(junk.get(), line.data(), line.size(), 0) == 64);
  r.pump();
  CHECK(::recv(junk.get(), &b, 1, 0) <= 0);  // EOF, or ECONNRESET for the unread bytes
}

}  // namespace
}  // namespace forkvm::virtio
