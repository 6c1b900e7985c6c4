// Frame I/O for the bridge <-> runner protocol (see ipc.h).
#include "ipc.h"

#include <cerrno>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mbipc {

namespace {
bool write_all(int sock, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(sock, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}
bool read_all(int sock, uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t k = recv(sock, p, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}
} // namespace

bool send_frame(int sock, uint32_t type, const std::vector<uint8_t> &payload, int pass_fd) {
  Header h{type, static_cast<uint32_t>(payload.size())};
  if (pass_fd < 0) {
    std::vector<uint8_t> frame(sizeof h + payload.size());
    std::memcpy(frame.data(), &h, sizeof h);
    if (!payload.empty()) std::memcpy(frame.data() + sizeof h, payload.data(), payload.size());
    return write_all(sock, frame.data(), frame.size());
  }
  // The fd rides on the header bytes; the receiver reads exactly those first.
  iovec iov{&h, sizeof h};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  ssize_t k;
  do {
    k = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (k < 0 && errno == EINTR);
  if (k != static_cast<ssize_t>(sizeof h)) return false;
  return write_all(sock, payload.data(), payload.size());
}

bool recv_frame(int sock, Header *h, std::vector<uint8_t> *payload, int *fd) {
  *fd = -1;
  iovec iov{h, sizeof *h};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  ssize_t k;
  do {
    k = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (k < 0 && errno == EINTR);
  if (k <= 0) return false;
  for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      std::memcpy(fd, CMSG_DATA(c), sizeof(int));
  if (static_cast<size_t>(k) < sizeof *h &&
      !read_all(sock, reinterpret_cast<uint8_t *>(h) + k, sizeof *h - static_cast<size_t>(k)))
    return false;
  if (h->len > kMaxFrame) return false;
  payload->resize(h->len);
  return read_all(sock, payload->data(), h->len);
}

Inbox::Status Inbox::pull(int sock) {
  uint8_t chunk[16384];
  iovec iov{chunk, sizeof chunk};
  alignas(cmsghdr) char ctl[CMSG_SPACE(16 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  ssize_t k;
  do {
    k = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (k < 0 && errno == EINTR);
  bool passed = false;
  if (k >= 0)
    for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < n; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        close(fd);
      }
      passed = true;
    }
  if (k > 0) buf_.insert(buf_.end(), chunk, chunk + k);
  if (passed || (msg.msg_flags & MSG_CTRUNC)) return FD_PASSED;
  if (k == 0) return CLOSED;
  if (k < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? AGAIN : CLOSED;
  return DATA;
}

bool Inbox::take(Header *h, std::vector<uint8_t> *payload, bool *oversized) {
  *oversized = false;
  if (buf_.size() < sizeof *h) return false;
  std::memcpy(h, buf_.data(), sizeof *h);
  if (h->len > kMaxReply) {
    *oversized = true;
    return false;
  }
  if (buf_.size() < sizeof *h + h->len) return false;
  payload->assign(buf_.begin() + sizeof *h, buf_.begin() + sizeof *h + h->len);
  buf_.erase(buf_.begin(), buf_.begin() + sizeof *h + h->len);
  return true;
}

uint64_t fresh_nonce() {
  uint64_t v = 0;
  size_t got = 0;
  while (got < sizeof v) {
    ssize_t k = getrandom(reinterpret_cast<uint8_t *>(&v) + got, sizeof v - got, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    got += static_cast<size_t>(k);
  }
  return v;
}

} // namespace mbipc
