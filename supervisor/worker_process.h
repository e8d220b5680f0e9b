// One kiln-worker process: its uv_process_t, the pipe pair of its link (child fds 3 and 4) and
// its stderr (child fd 2). It turns link bytes into WorkerEvents, logs each stderr line under the
// worker's pid and keeps the last ones for crash reports (and says when a report begins: the pool
// gives it a deadline to end), and says the worker is gone only once the exit callback has run
// and both of its output pipes have ended (they come in either order), so that a crash report is
// complete when the pool hears of the crash.
//
// Contract: construct, spawn() once, then close() once (after on_gone, or at once if spawn
// failed); on_closed runs when every handle is closed, as the last thing this object does, so
// its owner may destroy it there. kill() never signals a pid that has been reaped.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/exec_strings.h"
#include "common/frame.h"
#include "common/protocol.h"
#include "supervisor/pool.h"
#include "supervisor/uv_pipe.h"

namespace kiln::supervisor {

class WorkerProcess {
 public:
  struct Events {
    std::function<void(proto::WorkerEvent event)> on_event;
    std::function<void(const std::string& why)> on_protocol_error;
    std::function<void()> on_crash_reported;  // the first line of its crash report came
    std::function<void(const ExitInfo& exit)> on_gone;
    std::function<void(WorkerProcess* self)> on_closed;
  };

  WorkerProcess(uv_loop_t* loop, uint32_t max_frame, uint64_t grace_ms, Events events);
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  // Starts the process (argv[0] is its path) with `devnull`, an open /dev/null, as its fds 0 and 1
  // (-1: libuv opens /dev/null in the child, twice per spawn); 0, or a libuv error code.
  int spawn(ExecStrings& argv, ExecStrings& envp, int devnull);
  pid_t pid() const { return pid_; }

  // Appends one frame to the link's outgoing batch and sends it.
  template <class M>
  void send(const M& message) {
    proto::encode(message, to_worker_.outbox());
    to_worker_.flush();
  }
  void kill(int sig);
  void close();

 private:
  static void exit_cb(uv_process_t* process, int64_t exit_status, int term_signal);
  static void drain_timeout_cb(uv_timer_t* timer);
  void on_link_bytes(std::string_view bytes);
  void on_stderr_bytes(std::string_view bytes);
  void stderr_line(std::string_view line);
  void maybe_gone();
  void handle_closed();

  uv_loop_t* loop_;
  uint64_t grace_ms_;
  Events events_;
  uv_process_t process_;
  uv_timer_t drain_timer_;  // after the exit: how long the pipes may stay open
  Pipe to_worker_;
  Pipe from_worker_;
  Pipe stderr_;
  FrameReader reader_;
  pid_t pid_ = 0;
  bool spawned_ = false;
  bool exited_ = false;
  bool link_ended_ = false;
  bool stderr_ended_ = false;
  bool gone_ = false;
  bool link_broken_ = false;
  std::string crash_line_;  // how its crash report's first line begins
  bool closing_ = false;
  int open_handles_ = 0;
  ExitInfo exit_;
  std::string partial_line_;
  std::deque<std::string> tail_;
  std::size_t tail_bytes_ = 0;
};

}  // namespace kiln::supervisor
