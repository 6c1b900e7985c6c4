// The bridge <-> runner protocol: length-prefixed frames over a UNIX stream
// socketpair; buffer memfds travel as SCM_RIGHTS with BUFFER_ADD. A shared
// control page (Control) lets the bridge watch a running dispatch's progress
// without any message per dispatch.
//
// Nothing the runner says decides a time: the bridge times samples with its
// own clocks (wall clock, the runner's CPU clock). Every request that expects
// an answer carries a fresh random nonce that the answer echoes first; any
// other frame means kernel code wrote to the channel, and the bridge stops
// the runner. Kernel code runs only on worker threads that may not write to
// any file descriptor (sandbox.h), so a fault is reported through the
// control page, which the bridge reads once the runner is gone.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace mbipc {

enum MsgType : uint32_t {
  HELLO = 1,   // runner -> bridge: {u64 nonce (from --hello), u32 rt_abi}
  LOAD,        // {u64 nonce, u32 pipeline, str so_path, str kernel} -> LOADED | ERROR
  LOADED,      // {u64 nonce, u32 static_tg, u32 max_threads, u32 n,
               //  n x {u16 kind, u16 index, u32 min_bytes, str name}}
  UNLOAD,      // {u32 pipeline}                            (no reply)
  BUFFER_ADD,  // {u32 buffer, u64 length, u64 front, u64 map_len} + memfd (no reply)
  BUFFER_FREE, // {u32 buffer}                              (no reply)
  RUN,         // {u64 nonce, u32 batch, u32 steps, steps...} -> RAN | ERROR
  RAN,         // {u64 nonce}: the batch is done
  ERROR,       // {u64 nonce, i32 status, str message}
};

// Fixed file descriptors in the runner (dup2'd by the bridge at spawn);
// 0 is /dev/null, 1 and 2 a memfd the bridge reads on failures.
constexpr int kSocketFd = 3;
constexpr int kLifeFd = 4;    // read end of a pipe; EOF = the bridge's process died
constexpr int kControlFd = 5; // memfd holding a Control
constexpr int kFirstFreeFd = 6;

struct Header {
  uint32_t type;
  uint32_t len; // payload bytes after the header
};

constexpr size_t kReportBytes = 2048;

// Kernel code can reach this page (it is mapped in the runner), so the
// bridge uses it only to name the running step, to stop a dispatch early,
// and for a dead runner's last words; never to extend a time limit.
struct Control {
  std::atomic<uint64_t> start_ns; // CLOCK_MONOTONIC at the running dispatch's start
  std::atomic<uint32_t> busy;     // 1 while a RUN executes
  std::atomic<uint32_t> step;     // step index of the running dispatch
  // A fault report, written by the runner's fault handler just before it
  // exits; read by the bridge only once the runner is dead.
  std::atomic<uint32_t> report_len;
  char report[kReportBytes];
};

constexpr uint32_t kMaxFrame = 64u << 20; // bridge -> runner
constexpr uint32_t kMaxReply = 1u << 20;  // runner -> bridge

// A buffer's memfd is [front slack][data][tail slack], map_len bytes (whole
// pages), the data ending at most 15 bytes before the end, so that running
// past it faults at once. The slack holds this word (little-endian, NaN as a
// float) and the runner checks it after every dispatch.
constexpr uint32_t kCanaryWord = 0xFFA5A5A5u;

class Writer {
public:
  template <class T> void put(T v) {
    const auto *p = reinterpret_cast<const uint8_t *>(&v);
    buf_.insert(buf_.end(), p, p + sizeof v);
  }
  void bytes(const void *p, size_t n) {
    const auto *b = static_cast<const uint8_t *>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  void str(const std::string &s) {
    put<uint32_t>(static_cast<uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  // Overwrites a value put earlier at byte offset `at`.
  template <class T> void set(size_t at, T v) {
    if (at + sizeof v <= buf_.size()) std::memcpy(buf_.data() + at, &v, sizeof v);
  }
  const std::vector<uint8_t> &data() const { return buf_; }

private:
  std::vector<uint8_t> buf_;
};

class Reader {
public:
  Reader(const uint8_t *p, size_t n) : p_(p), end_(p + n) {}
  template <class T> T get() {
    T v{};
    if (static_cast<size_t>(end_ - p_) < sizeof v) {
      ok_ = false;
      return v;
    }
    std::memcpy(&v, p_, sizeof v);
    p_ += sizeof v;
    return v;
  }
  const uint8_t *bytes(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) {
      ok_ = false;
      return nullptr;
    }
    const uint8_t *r = p_;
    p_ += n;
    return r;
  }
  std::string str() {
    uint32_t n = get<uint32_t>();
    const uint8_t *b = bytes(n);
    return b ? std::string(reinterpret_cast<const char *>(b), n) : std::string();
  }
  bool ok() const { return ok_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

private:
  const uint8_t *p_;
  const uint8_t *end_;
  bool ok_ = true;
};

// Sends one frame (and optionally one fd). False if the peer is gone.
bool send_frame(int sock, uint32_t type, const std::vector<uint8_t> &payload, int pass_fd = -1);
// Receives one frame; *fd gets a passed descriptor or -1. False on EOF/error.
// Blocking: the runner's side (the bridge is trusted).
bool recv_frame(int sock, Header *h, std::vector<uint8_t> *payload, int *fd);

// The bridge's side: what the runner sent, read without ever blocking, so a
// partial or oversized frame cannot hold the bridge past its deadline.
class Inbox {
public:
  enum Status { AGAIN, DATA, CLOSED, FD_PASSED };
  // One nonblocking read of what is there. FD_PASSED: the runner never sends
  // descriptors; any that came are closed.
  Status pull(int sock);
  // A whole frame, if the inbox starts with one; false while incomplete.
  // *oversized when the header announces more than kMaxReply bytes.
  bool take(Header *h, std::vector<uint8_t> *payload, bool *oversized);
  bool empty() const { return buf_.empty(); }
  void clear() { buf_.clear(); }

private:
  std::vector<uint8_t> buf_;
};

// 8 random bytes from the kernel (getrandom).
uint64_t fresh_nonce();

} // namespace mbipc
