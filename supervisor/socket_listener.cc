#include "supervisor/socket_listener.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

namespace kiln::supervisor {

SocketListener::SocketListener(uv_loop_t* loop, std::string path, std::size_t max_connections,
                               uint64_t grace_ms, Events events)
    : loop_(loop),
      path_(std::move(path)),
      max_connections_(max_connections),
      grace_ms_(grace_ms),
      events_(std::move(events)) {}

Expected<void> SocketListener::lock() {
  // Exactly one daemon per path: the one holding PATH.lock. It decides races between daemons
  // started at once, and lets the holder replace a socket file that nobody serves any more.
  const std::string lock_path = path_ + ".lock";
  // O_NOFOLLOW: a symbolic link planted at PATH.lock is refused, not followed to its target.
  lock_fd_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!lock_fd_) return fail("cannot open " + lock_path + ": " + std::strerror(errno));
  if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    return fail("another kiln-supervisor already serves " + path_,
                std::string(kAlreadyServingCode));
  }
  return {};
}

Expected<void> SocketListener::listen() {
  sockaddr_un addr{};
  // uv_pipe_bind in libuv 1.44 truncates a longer path without a word.
  if (path_.size() >= sizeof addr.sun_path) {
    return fail("--listen " + path_ + " is " + std::to_string(path_.size()) +
                " bytes long; a Unix socket path holds at most " +
                std::to_string(sizeof addr.sun_path - 1));
  }
  if (Expected<void> locked = lock(); !locked) return locked;
  if (::unlink(path_.c_str()) == 0) spdlog::info("replaced the stale socket file {}", path_);
  uv_pipe_init(loop_, &handle_, 0);
  handle_.data = this;
  open_ = true;
  // bind() creates the socket file before listen() makes it accept: a client that saw the file
  // in between would be refused. So it is bound under a name of the same length (the last
  // character changed) and renamed into place once it listens; plainly, if that name is taken.
  std::string temp = path_;
  temp.back() = temp.back() == '~' ? '#' : '~';
  struct stat st;
  const bool via_temp = ::lstat(temp.c_str(), &st) != 0 && errno == ENOENT;
  const std::string& bind_path = via_temp ? temp : path_;
  // Created 0600 from the start: no window in which others could connect.
  const mode_t old_umask = ::umask(0177);
  int rc = uv_pipe_bind(&handle_, bind_path.c_str());
  ::umask(old_umask);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&handle_), 128, [](uv_stream_t* s, int st) {
      auto* self = static_cast<SocketListener*>(s->data);
      if (st == 0) self->on_connection();
      self->events_.after();
    });
  }
  if (rc == 0 && via_temp && ::rename(temp.c_str(), path_.c_str()) != 0) rc = -errno;
  if (rc != 0) {
    if (via_temp) ::unlink(temp.c_str());
    return fail("cannot listen on " + path_ + ": " + uv_strerror(rc));
  }
  return {};
}

void SocketListener::close() {
  if (!open_) return;
  open_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_), nullptr);
  ::unlink(path_.c_str());
}

void SocketListener::refuse(ClientConnection& c, std::string_view code,
                            const std::string& message) {
  c.send(proto::Error{std::string(code), message});
  c.finish(grace_ms_, /*bye=*/false);
}

void SocketListener::on_connection() {
  ClientConnection& c = events_.add_client();
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&handle_), c.accept_target()) != 0) {
    c.close();
    return;
  }
  // Nobody else gets in: the peer must run as our own user.
  int fd = -1;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(c.accept_target()), &fd) != 0 ||
      ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::getuid()) {
    spdlog::warn("refused a connection from uid {} (pid {})", cred.uid, cred.pid);
    refuse(c, proto::code::kPermissionDenied,
           "this kiln-supervisor serves only uid " + std::to_string(::getuid()));
    return;
  }
  // Those still closing count, since they still hold their fd.
  const std::size_t connections = events_.connections();
  if (connections > max_connections_) {
    if (!warned_connections_) {
      spdlog::warn("{} connections: refusing more (--max-connections {})", connections - 1,
                   max_connections_);
    }
    warned_connections_ = true;
    refuse(c, proto::code::kTooManyConnections,
           "this kiln-supervisor already serves " + std::to_string(max_connections_) +
               " connections (--max-connections)");
    return;
  }
  warned_connections_ = false;
  spdlog::debug("client {} connected (pid {})", c.id(), cred.pid);
  events_.admit(c);
}

}  // namespace kiln::supervisor
