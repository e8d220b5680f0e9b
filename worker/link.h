// The worker's end of its link: blocking framed reads and writes on two inherited fds.
#pragma once

#include <string>

#include "common/frame.h"
#include "common/protocol.h"
#include "common/result.h"

namespace kiln::worker {

class Link {
 public:
  Link(int read_fd, int write_fd, uint32_t max_frame)
      : read_fd_(read_fd), write_fd_(write_fd), inbox_(max_frame) {}

  enum class Received { kMessage, kEnd };

  // Blocks until a whole command arrives (kMessage), the supervisor closes the link (kEnd), or
  // the link breaks the protocol or fails (a failure that says why).
  Expected<Received> receive(proto::WorkerCommand& out);

  // Writes whole frames; fails if the link is gone (EPIPE and the like), saying so.
  Expected<void> send_frames(const std::string& frames);
  template <class M>
  Expected<void> send(const M& message) {
    std::string frame;
    proto::encode(message, frame);
    return send_frames(frame);
  }

  // Raw bytes, for the selftest that breaks the protocol on purpose.
  Expected<void> send_raw(std::string_view bytes);

  int read_fd() const { return read_fd_; }
  // A whole command has been read already: receive() will not block.
  bool has_buffered() const { return inbox_.has_body(); }
  // receive() will not block: a command is buffered, or bytes or the end have arrived.
  bool ready();

 private:
  int read_fd_;
  int write_fd_;
  FrameInbox inbox_;  // whole bodies read but not yet handed out
};

}  // namespace kiln::worker
