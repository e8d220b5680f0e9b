#include "worker/link.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kiln::worker {

Expected<Link::Received> Link::receive(proto::WorkerCommand& out) {
  Expected<FrameInbox::Read> read = inbox_.fill(read_fd_);
  if (!read) return fail(FrameInbox::error_text(read, "read from the supervisor"));
  if (*read == FrameInbox::Read::kEnd) return Received::kEnd;
  // Only if something made the inherited fd non-blocking: no command can be waited for.
  if (*read == FrameInbox::Read::kAgain)
    return fail("read from the supervisor: the fd is non-blocking");
  Expected<proto::WorkerCommand> decoded = proto::decode_worker_command(inbox_.take());
  if (!decoded) return fail(decoded.error());
  out = std::move(decoded.value());
  return Received::kMessage;
}

bool Link::ready() {
  if (inbox_.has_body()) return true;
  pollfd fd{read_fd_, POLLIN, 0};
  while (::poll(&fd, 1, 0) < 0) {
    if (errno != EINTR) return true;  // receive() reports the error
  }
  return fd.revents != 0;
}

Expected<void> Link::send_raw(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(write_fd_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(std::string("write to the supervisor: ") + std::strerror(errno));
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Expected<void> Link::send_frames(const std::string& frames) { return send_raw(frames); }

}  // namespace kiln::worker
