// Test helpers for real processes: spawn a binary with chosen fds at chosen numbers, wait for it
// with a deadline, and speak frames to it with deadlines. Nothing here sleeps to synchronize.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/fd.h"
#include "common/frame.h"

namespace kiln::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Waits until `done()` is true or `timeout` passes; true if it became true. Polls with a short
// back-off: for conditions no fd or wait can announce (a /proc entry disappearing).
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);

// A child process, killed and reaped on destruction if still running.
class Child {
 public:
  struct Spec {
    std::vector<std::string> argv;
    std::vector<std::string> env;          // the whole environment
    std::vector<std::pair<int, int>> fds;  // {child fd, our fd}: dup2'd in the child
  };
  static Child spawn(const Spec& spec);

  Child() = default;
  Child(Child&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)), status_(std::exchange(o.status_, std::nullopt)) {}
  Child& operator=(Child&& o) noexcept;
  ~Child();

  pid_t pid() const { return pid_; }
  // The wait status once the child has exited within `timeout`, else nullopt.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  void kill(int sig) const;
  // Its exit code once it exited within `timeout`; -N if signal N killed it; -1000 if it is
  // still running.
  int exit_code(std::chrono::milliseconds timeout = 10s);

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// The environment of this process plus/over `extra` ("NAME=value" entries).
std::vector<std::string> environment_with(const std::vector<std::string>& extra,
                                          const std::vector<std::string>& drop = {});

// Our end of a framed link: blocking writes, reads with a deadline.
class FrameChannel {
 public:
  FrameChannel(UniqueFd read_fd, UniqueFd write_fd, uint32_t max_frame = kDefaultMaxFrame)
      : read_(std::move(read_fd)), write_(std::move(write_fd)), inbox_(max_frame) {}

  bool write_bytes(std::string_view bytes);
  template <class M>
  bool send(const M& message);

  enum class Status { kFrame, kEnd, kTimeout, kError };
  // The next whole body within `timeout`.
  Status read_body(std::string& body, std::chrono::milliseconds timeout);
  const std::string& error() const { return error_; }
  void close_write() { write_.reset(); }
  int read_fd() const { return read_.get(); }

 private:
  UniqueFd read_;
  UniqueFd write_;
  FrameInbox inbox_;
  bool failed_ = false;
  std::string error_;  // the framing's error, once failed_
};

// A pipe whose ends are both close-on-exec (the child gets its end through Spec::fds).
std::pair<UniqueFd, UniqueFd> pipe_pair();

// Everything readable from fd until end of file or `timeout`.
std::string read_all(int fd, std::chrono::milliseconds timeout);

// What a process run to its end printed, and its Child::exit_code.
struct Ran {
  int status = -1000;
  std::string out, err;
};
// How run_to_end runs it.
struct RunSpec {
  std::vector<std::string> env;                      // over this process's environment
  std::vector<std::string> drop = {"SPDLOG_LEVEL"};  // left out of it
  std::optional<std::string> input;                  // its stdin; else stdin_fd; else /dev/null
  int stdin_fd = -1;
  std::chrono::milliseconds timeout = 60s;  // for its output to end, and again for it to exit
};
// Runs argv to its end.
Ran run_to_end(const std::vector<std::string>& argv, const RunSpec& spec = {});

// Pids of every process, from /proc (each may be gone by the time it is looked at).
std::vector<pid_t> all_pids();
// Pids of the processes whose process group is `pgid`, from /proc.
std::vector<pid_t> processes_in_group(pid_t pgid);
// Pids of the running processes whose command line (arguments joined by spaces) contains
// `needle`.
std::vector<pid_t> processes_with(const std::string& needle);
// True if `pid` exists and is not a zombie.
bool is_running(pid_t pid);
// Waits up to `timeout` for `pid` to be gone, reaping whatever of our children has exited
// meanwhile (a subreaper's orphans become our zombies); true if it went.
bool gone_within(pid_t pid, std::chrono::milliseconds timeout);
// Open fds of a process with what they point to ("3 -> pipe:[123]").
std::vector<std::pair<int, std::string>> fd_targets(pid_t pid);

}  // namespace kiln::testing

#include "common/protocol.h"

template <class M>
bool kiln::testing::FrameChannel::send(const M& message) {
  std::string frame;
  proto::encode(message, frame);
  return write_bytes(frame);
}
