// The control socket of a running VMM: a Unix stream socket served on the
// machine's event loop. One JSON object per line in each direction; every
// request gets exactly one response line, in order.
//
//   {"op":"status"}   -> {"ok":true,"state":"running"|"paused","cpus":N,"mem_mib":M,
//                         "restored":bool[,"vsock_cid":C]}
//   {"op":"pause"}    -> {"ok":true,"state":"paused"}
//   {"op":"resume"}   -> {"ok":true,"state":"running"}
//   {"op":"snapshot","dir":"/path"[,"stop":true]}
//                     -> {"ok":true,"dir":"/path","pause_ms":F,"state_bytes":N,
//                         "memory_file_bytes":N,"memory_data_bytes":N,"stopped":bool}
//                        pauses the vCPUs, writes DIR/state and DIR/memory, then
//                        resumes (unless the VM was paused by "pause", or "stop":true,
//                        in which case the VMM exits after the response)
//   {"op":"fork","count":N,"prefix":"/tmp/p"}
//                     -> {"ok":true,"pause_ms":F,"children":[{"pid":P,"control":"/tmp/p-1.ctl",
//                         "console":"/tmp/p-1.console"},...]}
//                        live fork: N child VMMs continue from this instant, sharing
//                        guest RAM copy-on-write (Machine::fork; read-only disks only)
//   {"op":"stop"}     -> {"ok":true}, then the VMM exits (`forkvm run` status 130)
//   anything else     -> {"ok":false,"error":"..."}
//
// Requests run on the event loop thread, one at a time; a snapshot blocks
// the loop while it writes, which is fine because the guest is paused then.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vmm/event_loop.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm {

struct ControlStatus {
  bool paused = false;
  uint32_t cpus = 0;
  uint64_t mem_mib = 0;
  bool restored = false;
  std::optional<uint64_t> vsock_cid;
};

struct SnapshotStats {
  std::string dir;
  double pause_ms = 0;  // vCPUs paused until resumed (or until saved, with stop)
  uint64_t state_bytes = 0;
  uint64_t memory_file_bytes = 0;  // the file's length (= guest RAM)
  uint64_t memory_data_bytes = 0;  // non-zero pages actually written
  bool stopped = false;
};

struct ForkChild {
  int pid = 0;
  std::string control;  // its control socket
  std::string console;
};

struct ForkStats {
  double pause_ms = 0;  // the parent's vCPUs paused: save + every fork()
  std::vector<ForkChild> children;
};

// What the control socket drives; Machine implements it.
class ControlTarget {
 public:
  virtual ~ControlTarget() = default;
  virtual ControlStatus control_status() = 0;
  virtual Status control_pause() = 0;
  virtual Status control_resume() = 0;
  // Leaves the VM paused when `stop`; the server then calls control_stop()
  // after the response is out.
  virtual Result<SnapshotStats> control_snapshot(const std::string& dir, bool stop) = 0;
  virtual void control_stop() = 0;
  virtual Result<ForkStats> control_fork(uint32_t count, const std::string& prefix) = 0;
};

class ControlServer {
 public:
  // Binds `path` (an existing socket file there is replaced) and watches it
  // on `loop`. The loop and target must outlive the server.
  static Result<std::unique_ptr<ControlServer>> create(EventLoop& loop, const std::string& path,
                                                       ControlTarget& target);
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  ~ControlServer();  // unlinks the socket path

  // The response line (without newline) for one request line; public for tests.
  // `stop_after` is set when the VMM must stop once the response is sent.
  std::string handle(std::string_view request, bool& stop_after);

 private:
  ControlServer(EventLoop& loop, std::string path, UniqueFd listener, ControlTarget& target);
  void on_accept();
  void on_readable(int fd);
  void close_connection(int fd);

  struct Connection {
    UniqueFd fd;
    std::string buffer;
  };
  EventLoop& loop_;
  std::string path_;
  UniqueFd listener_;
  ControlTarget& target_;
  std::unordered_map<int, Connection> connections_;
};

// Client side: sends one request line to the control socket at `path` and
// returns the response line. For the CLI and for programs driving a VMM.
Result<std::string> control_request(const std::string& path, std::string_view request_json,
                                    int timeout_ms = 120000);

}  // namespace forkvm
