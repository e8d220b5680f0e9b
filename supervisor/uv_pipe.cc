#include "supervisor/uv_pipe.h"

#include "common/fd.h"

namespace kiln::supervisor {

namespace {

constexpr std::size_t kReadBufferSize = 64 << 10;

// One read buffer for every pipe of a thread's loop. libuv calls alloc_cb and then read_cb for
// one read before it starts the next, and on_data consumes or copies its bytes before it returns,
// so no two reads ever hold the buffer at once. A buffer per pipe cost the supervisor 128 KiB per
// worker (its link and its stderr), all of it copied into every worker it forks afterwards
// (uv_spawn forks): a pool of 64 started 2.5x slower than 65 plain spawns. Left uninitialised,
// its pages become memory only once a read fills them.
char* shared_read_buffer() {
  thread_local const std::unique_ptr<char[]> buffer(new char[kReadBufferSize]);
  return buffer.get();
}

}  // namespace

Pipe::Pipe(uv_loop_t* loop) {
  if (uv_pipe_init(loop, &pipe_, 0) != 0) fatal_errno("uv_pipe_init");
  pipe_.data = this;
  write_req_.data = this;
}

int Pipe::open(int fd) { return uv_pipe_open(&pipe_, fd); }

int Pipe::start_reading(Handlers handlers) {
  handlers_ = std::move(handlers);
  const int rc = uv_read_start(stream(), alloc_cb, read_cb);
  reading_ = rc == 0;
  return rc;
}

void Pipe::stop_reading() {
  if (reading_ && !closing_) uv_read_stop(stream());
  reading_ = false;
}

void Pipe::resume_reading() {
  if (!reading_ && !closing_ && handlers_.on_data) {
    reading_ = uv_read_start(stream(), alloc_cb, read_cb) == 0;
  }
}

void Pipe::alloc_cb(uv_handle_t*, std::size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(shared_read_buffer(), kReadBufferSize);
}

void Pipe::read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* self = static_cast<Pipe*>(s->data);
  if (n > 0) {
    self->handlers_.on_data(std::string_view(buf->base, static_cast<std::size_t>(n)));
  } else if (n < 0) {
    self->stop_reading();
    self->handlers_.on_end(static_cast<int>(n));
  }
}

void Pipe::write(std::string_view bytes) {
  pending_.append(bytes);
  flush();
}

void Pipe::flush() {
  if (writing_ || closing_ || pending_.empty()) return;
  if (write_failed_) {
    pending_.clear();
    return;
  }
  in_flight_.swap(pending_);
  pending_.clear();
  uv_buf_t buf = uv_buf_init(in_flight_.data(), static_cast<unsigned>(in_flight_.size()));
  if (uv_write(&write_req_, stream(), &buf, 1, write_cb) != 0) {
    write_failed_ = true;
    in_flight_.clear();
    return;
  }
  writing_ = true;
}

void Pipe::write_cb(uv_write_t* req, int status) {
  auto* self = static_cast<Pipe*>(req->data);
  self->writing_ = false;
  self->in_flight_.clear();
  if (status != 0) {
    self->write_failed_ = true;  // UV_EPIPE: the peer is gone; UV_ECANCELED: we are closing
    self->pending_.clear();
    // Nothing is left to write, ever: that is drained too. Whoever waits for the drain (the
    // last `bye` to a client whose tooling was SIGKILLed) goes on now, not at its deadline.
    if (self->on_drained_ && !self->closing_) self->on_drained_();
    return;
  }
  self->flush();
  if (self->writing_) return;
  // Drained: an idle link keeps no burst-sized buffer (a daemon may hold many idle clients).
  constexpr std::size_t kKeep = 64u << 10;
  if (self->in_flight_.capacity() > kKeep) std::string().swap(self->in_flight_);
  if (self->pending_.empty() && self->pending_.capacity() > kKeep)
    std::string().swap(self->pending_);
  if (self->on_drained_) self->on_drained_();
}

void Pipe::close(std::function<void()> on_closed) {
  if (closing_) return;
  closing_ = true;
  reading_ = false;
  on_closed_ = std::move(on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), close_cb);
}

void Pipe::close_cb(uv_handle_t* h) {
  auto* self = static_cast<Pipe*>(h->data);
  auto on_closed = std::move(self->on_closed_);
  if (on_closed) on_closed();  // may destroy *self: nothing after this
}

}  // namespace kiln::supervisor
