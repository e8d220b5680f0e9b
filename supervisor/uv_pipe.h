// One libuv pipe handle carrying bytes. Reads go to a callback; writes are batched: bytes queued
// while a write is in flight go out together in the next uv_write (libuv 1.44 completes one
// write request per loop wakeup, libuv #3668). Closed exactly once; the owner keeps the object
// alive until the close callback has run (libuv may touch the handle until then).
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace kiln::supervisor {

class Pipe {
 public:
  struct Handlers {
    std::function<void(std::string_view bytes)> on_data;
    // End of input (UV_EOF) or a read error (a libuv error code).
    std::function<void(int status)> on_end;
  };

  explicit Pipe(uv_loop_t* loop);
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  uv_pipe_t* handle() { return &pipe_; }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&pipe_); }
  // Adopts an open fd (uv_pipe_open); a libuv error code, or 0.
  int open(int fd);

  int start_reading(Handlers handlers);
  void stop_reading();
  void resume_reading();

  // Queues bytes and starts a write if none is in flight. After a write error, or once closing,
  // bytes are dropped (the reading side or the process's exit tells the owner what happened).
  void write(std::string_view bytes);
  // The buffer that the next write sends: append frames to it directly, then flush().
  std::string& outbox() { return pending_; }
  void flush();
  // Bytes queued or in flight.
  std::size_t queued() const { return pending_.size() + in_flight_.size(); }
  // Memory the two write buffers hold (their capacity); once drained, at most 64 KiB each.
  std::size_t held_bytes() const { return pending_.capacity() + in_flight_.capacity(); }
  bool write_failed() const { return write_failed_; }
  // Called whenever a write completes and nothing is left to send.
  void on_drained(std::function<void()> callback) { on_drained_ = std::move(callback); }

  // Closes the handle; `on_closed` runs from the close callback, as its last act, so it may
  // destroy this object.
  void close(std::function<void()> on_closed);
  bool closing() const { return closing_; }

 private:
  static void alloc_cb(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf);
  static void read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
  static void write_cb(uv_write_t* req, int status);
  static void close_cb(uv_handle_t* h);

  uv_pipe_t pipe_;
  uv_write_t write_req_;
  Handlers handlers_;
  bool reading_ = false;
  bool writing_ = false;
  bool write_failed_ = false;
  bool closing_ = false;
  std::string pending_;
  std::string in_flight_;
  std::function<void()> on_drained_;
  std::function<void()> on_closed_;
};

}  // namespace kiln::supervisor
