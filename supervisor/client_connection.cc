#include "supervisor/client_connection.h"

#include <spdlog/spdlog.h>

namespace kiln::supervisor {
namespace {

// Stop reading a client's requests while this much output waits for it; read again below the
// low mark; drop the client past the hard cap (a client that never reads its results).
constexpr std::size_t kHighWater = 4u << 20;
constexpr std::size_t kLowWater = 1u << 20;
constexpr std::size_t kHardCap = 1u << 30;

}  // namespace

ClientConnection::ClientConnection(uv_loop_t* loop, ClientId id, uint32_t max_frame, Events events)
    : id_(id),
      max_frame_(max_frame),
      events_(std::move(events)),
      in_(std::make_unique<Pipe>(loop)),
      reader_(max_frame) {
  uv_timer_init(loop, &finish_timer_);
  finish_timer_.data = this;
  open_handles_ = 2;
}

int ClientConnection::open(int read_fd, int write_fd) {
  if (const int rc = in_->open(read_fd); rc != 0) return rc;
  if (write_fd != read_fd) {
    out_ = std::make_unique<Pipe>(finish_timer_.loop);
    ++open_handles_;
    if (const int rc = out_->open(write_fd); rc != 0) return rc;
  }
  return 0;
}

void ClientConnection::start(const proto::Hello& hello) {
  send(hello);
  out().on_drained([this] { check_backpressure(); });
  in_->start_reading({[this](std::string_view bytes) { on_bytes(bytes); },
                      [this](int status) {
                        if (status != UV_EOF) {
                          spdlog::info("client {}: read error: {}", id_, uv_strerror(status));
                        }
                        end();
                      }});
}

void ClientConnection::on_bytes(std::string_view bytes) {
  if (ended_) return;
  Expected<void> fed = reader_.feed(bytes, [this](std::string_view body) {
    Expected<proto::ClientRequest> request = proto::decode_client_request(body);
    if (!request) {
      protocol_error(proto::code::kProtocolError, request.error());
      return false;
    }
    events_.on_request(*this, std::move(request.value()));
    return !ended_;
  });
  if (!fed && !ended_) protocol_error(proto::code::kProtocolError, fed.error());
}

void ClientConnection::protocol_error(std::string_view code, const std::string& message) {
  if (ended_) return;
  spdlog::warn("client {}: {}: {}; closing the connection", id_, code, message);
  send(proto::Error{std::string(code), message});
  end();
}

void ClientConnection::end() {
  if (ended_) return;
  ended_ = true;
  in_->stop_reading();
  events_.on_end(*this);
}

void ClientConnection::check_backpressure() {
  const std::size_t queued = out().queued();
  if (out().write_failed() && !ended_) {
    spdlog::info("client {}: cannot write to it any more", id_);
    ended_write_ = true;
    end();
    return;
  }
  if (queued > kHardCap && !ended_) {
    spdlog::error("client {}: {} bytes of results wait unread; dropping the connection", id_,
                  queued);
    ended_write_ = true;
    end();
    close();
  } else if (!paused_ && queued > kHighWater && !ended_) {
    paused_ = true;
    in_->stop_reading();
    events_.on_paused(*this, true);
  } else if (paused_ && queued < kLowWater && !ended_) {
    paused_ = false;
    in_->resume_reading();
    events_.on_paused(*this, false);
  }
}

void ClientConnection::finish(uint64_t deadline_ms, bool bye) {
  if (closing_) return;
  if (bye && !ended_write_) send(proto::Bye{});
  ended_write_ = true;
  if (out().queued() == 0 || out().write_failed()) {
    close();
    return;
  }
  out().on_drained([this] { close(); });
  uv_timer_start(
      &finish_timer_, [](uv_timer_t* t) { static_cast<ClientConnection*>(t->data)->close(); },
      deadline_ms, 0);
}

void ClientConnection::close() {
  if (closing_) return;
  closing_ = true;
  ended_ = ended_write_ = true;
  auto closed = [this] { handle_closed(); };
  uv_close(reinterpret_cast<uv_handle_t*>(&finish_timer_),
           [](uv_handle_t* h) { static_cast<ClientConnection*>(h->data)->handle_closed(); });
  in_->close(closed);
  if (out_) out_->close(closed);
}

void ClientConnection::handle_closed() {
  if (--open_handles_ != 0) return;
  // The owner may destroy *this, and with it events_: call a copy, and nothing after it.
  auto on_closed = std::move(events_.on_closed);
  on_closed(*this);
}

}  // namespace kiln::supervisor
