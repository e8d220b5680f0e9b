#include "worker/link.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kiln::worker {

Link::Status Link::receive(proto::WorkerCommand& out) {
  while (bodies_.empty()) {
    char buf[64 << 10];
    const ssize_t n = ::read(read_fd_, buf, sizeof buf);
    if (n == 0) return Status::kEnd;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) return Status::kEnd;
      error_ = std::string("read from the supervisor: ") + std::strerror(errno);
      return Status::kError;
    }
    if (!reader_.feed(std::string_view(buf, static_cast<std::size_t>(n)),
                      [this](std::string_view b) {
                        bodies_.emplace_back(b);
                        return true;
                      })) {
      error_ = reader_.error();
      return Status::kError;
    }
  }
  Expected<proto::WorkerCommand> decoded = proto::decode_worker_command(bodies_.front());
  bodies_.pop_front();
  if (!decoded) {
    error_ = decoded.error();
    return Status::kError;
  }
  out = std::move(decoded.value());
  return Status::kMessage;
}

bool Link::ready() {
  if (!bodies_.empty()) return true;
  pollfd fd{read_fd_, POLLIN, 0};
  while (::poll(&fd, 1, 0) < 0) {
    if (errno != EINTR) return true;  // receive() reports the error
  }
  return fd.revents != 0;
}

bool Link::send_raw(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(write_fd_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      error_ = std::string("write to the supervisor: ") + std::strerror(errno);
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool Link::send_frames(const std::string& frames) { return send_raw(frames); }

}  // namespace kiln::worker
