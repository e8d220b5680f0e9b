// A daemon's Unix socket (--listen PATH): the one owner of PATH.lock (one daemon per path), of
// binding the socket so that no client ever sees it refuse, of its 0600 mode, and of admitting a
// connection: only from our own user, and no more than --max-connections at once. A connection
// it refuses is answered with `error` and finished; one it admits is handed to its owner.
//
// Contract: listen() once, then close() once before the loop ends (it removes the socket file).
#pragma once

#include <uv.h>

#include <cassert>
#include <functional>
#include <string>

#include "common/fd.h"
#include "common/result.h"
#include "supervisor/client_connection.h"

namespace kiln::supervisor {

// The error code of listen() when another daemon holds PATH.lock.
inline constexpr std::string_view kAlreadyServingCode = "already_serving";

class SocketListener {
 public:
  struct Events {
    // A new connection, registered by the owner, for the listener to accept into.
    std::function<ClientConnection&()> add_client;
    // The connections the owner holds, the new one and those still closing included.
    std::function<std::size_t()> connections;
    // An admitted connection, for the owner to start.
    std::function<void(ClientConnection& client)> admit;
    // After each connection, admitted or not.
    std::function<void()> after;
  };

  SocketListener(uv_loop_t* loop, std::string path, std::size_t max_connections, uint64_t grace_ms,
                 Events events);
  ~SocketListener() { assert(!open_ && "close() before the loop ends"); }
  SocketListener(const SocketListener&) = delete;
  SocketListener& operator=(const SocketListener&) = delete;

  // Takes PATH.lock and serves PATH. Fails with kAlreadyServingCode when another daemon holds
  // the lock; with a message alone for any other failure.
  Expected<void> listen();
  // Stops accepting and removes the socket file; the lock is held until this object goes.
  void close();

 private:
  Expected<void> lock();
  void on_connection();
  // Refuses c with `error` (`code`, `message`) and finishes it.
  void refuse(ClientConnection& c, std::string_view code, const std::string& message);

  uv_loop_t* loop_;
  std::string path_;
  std::size_t max_connections_;
  uint64_t grace_ms_;
  Events events_;
  uv_pipe_t handle_;
  bool open_ = false;                // handle_ initialised, not yet closed
  bool warned_connections_ = false;  // said once per crowd, not once per refused connection
  UniqueFd lock_fd_;                 // PATH.lock, held for the daemon's life
};

}  // namespace kiln::supervisor
