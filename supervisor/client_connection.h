// One client link: the supervisor's own --read-fd/--write-fd pair (or stdin/stdout), or one
// accepted socket connection. It sends `hello` first, turns frames into ClientRequests, answers a
// protocol error with `error` and ends the connection, and bounds what a client that does not
// read can make the supervisor hold: above a high-water mark it stops reading the client's
// requests (so it submits nothing more) until its results drain; past a hard cap the connection
// is dropped.
//
// Contract: open, start(), then close() once; on_closed runs when every handle is closed, as the
// last thing this object does, so its owner may destroy it there.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "common/frame.h"
#include "common/protocol.h"
#include "supervisor/pool.h"
#include "supervisor/uv_pipe.h"

namespace kiln::supervisor {

class ClientConnection {
 public:
  struct Events {
    std::function<void(ClientConnection& client, proto::ClientRequest request)> on_request;
    // The connection has ended: end of input, a read or write error, or a protocol error (which
    // has been answered with `error`). Its jobs are the owner's to cancel.
    std::function<void(ClientConnection& client)> on_end;
    std::function<void(ClientConnection& client)> on_closed;
    // It stopped reading its answers (more than 4 MiB unread: we stop reading its requests too),
    // or reads them again: the owner holds back its queued jobs meanwhile.
    std::function<void(ClientConnection& client, bool paused)> on_paused;
  };

  ClientConnection(uv_loop_t* loop, ClientId id, uint32_t max_frame, Events events);
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  // The link over inherited fds (one fd for both directions when they are equal). 0, or a
  // libuv error code.
  int open(int read_fd, int write_fd);
  // The socket connection's handle, for uv_accept before start().
  uv_stream_t* accept_target() { return in_->stream(); }
  void start(const proto::Hello& hello);

  ClientId id() const { return id_; }
  bool ended() const { return ended_; }

  template <class M>
  void send(const M& message) {
    if (ended_write_) return;
    proto::encode(message, out().outbox());
    out().flush();
    check_backpressure();
  }
  // Sends `error`, stops reading, and reports the end.
  void protocol_error(std::string_view code, const std::string& message);
  // Closes once everything queued is written, or after `deadline_ms`; first sends `bye` if
  // `bye` (the supervisor is shutting down).
  void finish(uint64_t deadline_ms, bool bye = true);
  void close();

 private:
  Pipe& out() { return out_ ? *out_ : *in_; }
  void on_bytes(std::string_view bytes);
  void end();
  void check_backpressure();
  void handle_closed();

  ClientId id_;
  uint32_t max_frame_;
  Events events_;
  std::unique_ptr<Pipe> in_;
  std::unique_ptr<Pipe> out_;  // null when one handle does both directions
  uv_timer_t finish_timer_;
  FrameReader reader_;
  bool ended_ = false;        // no more requests will be read
  bool ended_write_ = false;  // nothing more will be sent
  bool paused_ = false;
  bool closing_ = false;
  int open_handles_ = 0;
};

}  // namespace kiln::supervisor
