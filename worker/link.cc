#include "worker/link.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kiln::worker {

Link::Status Link::receive(proto::WorkerCommand& out) {
  switch (inbox_.fill(read_fd_)) {
    case FrameInbox::Read::kOk:
      break;
    case FrameInbox::Read::kEnd:
      return Status::kEnd;
    case FrameInbox::Read::kAgain:  // the link is blocking: not seen
    case FrameInbox::Read::kError:
      error_ = inbox_.error_text("read from the supervisor");
      return Status::kError;
  }
  Expected<proto::WorkerCommand> decoded = proto::decode_worker_command(inbox_.take());
  if (!decoded) {
    error_ = decoded.error();
    return Status::kError;
  }
  out = std::move(decoded.value());
  return Status::kMessage;
}

bool Link::ready() {
  if (inbox_.has_body()) return true;
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
