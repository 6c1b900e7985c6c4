// Frame I/O for the bridge <-> runner protocol (see ipc.h).
#include "ipc.h"

#include <cerrno>
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

} // namespace mbipc
