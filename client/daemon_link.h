// kiln::client::DaemonLink: the client link's blocking side, for one thread at a time (reading) and
// any thread (sending): framed bodies in and out of one socket, and the start of a link (the
// supervisor's hello, and for a daemon's socket the checks of who serves it). Pool runs its reader
// thread on one; the launcher (kiln exec, kiln-exec) uses one alone, without a thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/fd.h"
#include "common/frame.h"
#include "common/protocol.h"
#include "common/result.h"

namespace kiln::client {

// error_code()s of DaemonLink::connect (and Pool::connect).
inline constexpr const char* kUnreachable = "unreachable";  // nobody listens on the path
inline constexpr const char* kRefused = "refused";  // another user's daemon, another build's
// A daemon that did not accept the connection or say hello within the deadline (stopped, stalled).
inline constexpr const char* kStalled = "stalled";

// How long a client waits for a daemon to accept its connection and say hello:
// $KILN_CONNECT_TIMEOUT_MS (1 to 3600000), else kDefaultConnectTimeout; an error when it is set to
// anything else. A daemon sends hello as it accepts, within microseconds; ten seconds is far past
// what a loaded build machine makes of that, and short enough that a stopped daemon costs a
// build a wait, not the build.
inline constexpr std::chrono::milliseconds kDefaultConnectTimeout{10000};
Expected<std::chrono::milliseconds> connect_timeout();

class DaemonLink {
 public:
  DaemonLink() = default;
  explicit DaemonLink(UniqueFd fd) : fd_(std::move(fd)) {}

  // Connects to a supervisor serving a Unix socket (--listen) and reads its hello, within
  // `timeout` (default: connect_timeout()) for both, else fails with kStalled. Refuses, before
  // sending anything, a socket served by another user (SO_PEERCRED) or one we may not connect to
  // (EACCES, EPERM), and after hello a supervisor whose key_id is not `key_id` (error_code()
  // kRefused); kUnreachable when nobody listens. `first_frame`, when given, is sent after hello:
  // a daemon that never said it never gets a job it could run after we have given up on it (a
  // launcher then runs the command itself).
  static Expected<DaemonLink> connect(
      const std::string& socket_path, const std::optional<std::string>& key_id,
      std::string_view first_frame = {},
      std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Reads the supervisor's first message, its hello (then hello() has it), else says why there is
  // none (an `error` it sent, the link's end, a broken frame, nothing by `deadline`).
  Expected<void> read_hello(std::optional<std::chrono::steady_clock::time_point> deadline = {});
  const proto::Hello& hello() const { return hello_; }
  // The next frame body; nullopt at the link's end, on a broken frame, or at `deadline` (then
  // timed_out() is true).
  std::optional<std::string> next_body(
      std::optional<std::chrono::steady_clock::time_point> deadline = {});
  bool timed_out() const { return timed_out_; }
  // Writes the whole frame; false when the link is gone.
  bool send(std::string_view frame) const;

  int fd() const { return fd_.get(); }
  explicit operator bool() const { return static_cast<bool>(fd_); }
  void reset() { fd_.reset(); }

 private:
  UniqueFd fd_;
  proto::Hello hello_;
  FrameInbox inbox_;
  bool timed_out_ = false;
};

// The key_id of the build key in $KILN_KEY (base64), which a daemon we use must serve; nullopt
// when KILN_KEY is unset or empty, an error when it is not valid base64.
Expected<std::optional<std::string>> key_id_from_env();

// The kiln-supervisor to start: `given` if not empty, else the first executable of
// $KILN_SUPERVISOR, beside this program, in the bin/ of the prefix this library is installed in,
// and $PATH; an error naming every place looked at when none is.
Expected<std::string> find_supervisor(const std::string& given);

}  // namespace kiln::client
