// The bridge <-> runner protocol: length-prefixed frames over a UNIX stream
// socketpair; buffer memfds travel as SCM_RIGHTS with BUFFER_ADD. A shared
// control page (Control) lets the bridge watch a running dispatch's progress
// without any message per dispatch.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace mbipc {

enum MsgType : uint32_t {
  HELLO = 1,   // runner -> bridge: {u32 rt_abi}
  LOAD,        // {u32 pipeline, str so_path, str kernel}   -> LOADED | ERROR | FAULT
  LOADED,      // {u32 static_tg, u32 max_threads, u32 n, n x {u16 kind, u16 index, u32 min_bytes, str name}}
  UNLOAD,      // {u32 pipeline}                            (no reply)
  BUFFER_ADD,  // {u32 buffer, u64 length, u64 front, u64 map_len} + memfd (no reply)
  BUFFER_FREE, // {u32 buffer}                              (no reply)
  RUN,         // {u32 batch, u32 steps, steps...}          -> RAN | ERROR | FAULT
  RAN,         // {f64 device_ns}: time executing the batch
  ERROR,       // {i32 status, str message}
  FAULT,       // {str message}: the runner is exiting
};

// Fixed file descriptors in the runner (dup2'd by the bridge at spawn).
constexpr int kSocketFd = 3;
constexpr int kLifeFd = 4;    // read end of a pipe; EOF = the bridge's process died
constexpr int kControlFd = 5; // memfd holding a Control

struct Header {
  uint32_t type;
  uint32_t len; // payload bytes after the header
};

struct Control {
  std::atomic<uint64_t> seq;      // +1 at each dispatch start
  std::atomic<uint64_t> start_ns; // CLOCK_MONOTONIC at that start
  std::atomic<uint32_t> busy;     // 1 while a RUN executes
  std::atomic<uint32_t> step;     // step index of the running dispatch
};

constexpr uint32_t kMaxFrame = 64u << 20;

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

private:
  const uint8_t *p_;
  const uint8_t *end_;
  bool ok_ = true;
};

// Sends one frame (and optionally one fd). False if the peer is gone.
bool send_frame(int sock, uint32_t type, const std::vector<uint8_t> &payload, int pass_fd = -1);
// Receives one frame; *fd gets a passed descriptor or -1. False on EOF/error.
bool recv_frame(int sock, Header *h, std::vector<uint8_t> *payload, int *fd);

} // namespace mbipc
