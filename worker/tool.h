// A warm tool beside the worker (docs/protocol.md "Tool link"): a long-lived process, started
// before the worker says `ready` and kept for as long as the worker lives, that runs the jobs of
// its kind one at a time. The worker owns everything around it: the tool's process group (ended
// with the worker by the watchdog and the crash handler, through g_tool_groups), its output
// (copied to the worker's stderr, the last of it kept for crash reports), its job's timeout, and
// what happens when it dies or breaks the link: that costs the job it was running and then the
// worker, never another job.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/fd.h"
#include "common/frame.h"
#include "common/protocol.h"
#include "common/result.h"
#include "common/tool_spec.h"
#include "worker/link.h"
#include "worker/zygote_client.h"

namespace kiln::worker {

// The tool's stdout and stderr (one pipe): a thread copies them to the worker's stderr as they
// come, so a chatty tool never blocks, and keeps the last lines. Each line goes out as one write
// of at most PIPE_BUF bytes (a longer line in pieces), `prefix` ("tool NAME: ") first: no tool
// line can begin a line of the worker's own, nor be cut by one, so none can pass for the
// worker's crash report (docs/design.md, step 6).
class ToolOutput {
 public:
  // Reads `fd` on a thread of its own until its end, or until `stop` (an eventfd) is written.
  ToolOutput(UniqueFd fd, UniqueFd stop, std::string prefix);
  ~ToolOutput();
  ToolOutput(const ToolOutput&) = delete;
  ToolOutput& operator=(const ToolOutput&) = delete;

  // The last lines (at most a few KiB), whole lines where possible.
  std::string tail();
  // Waits until every writer of the pipe is gone (all of it has been read), or the deadline.
  void wait_end(std::chrono::steady_clock::time_point deadline);

 private:
  void pump();
  // Copies `chunk` to the worker's stderr line by line; `line` holds what is not yet written.
  void copy_lines(std::string_view chunk, std::string& line);

  UniqueFd fd_;
  UniqueFd stop_;  // eventfd: the destructor's word to stop
  std::string prefix_;
  std::mutex mutex_;
  std::condition_variable ended_cv_;
  std::string tail_;
  bool ended_ = false;
  std::thread thread_;
};

class Tool {
 public:
  // `slot` is this tool's entry in g_tool_groups.
  Tool(ToolSpec spec, std::size_t slot, uint32_t max_frame, uint64_t grace_ms);
  ~Tool();  // kills what is left of the tool's group and reaps it
  Tool(const Tool&) = delete;
  Tool& operator=(const Tool&) = delete;

  // Starts the process and waits for its `ready` (the supervisor's start timeout bounds the
  // wait: it stops the worker, and the watchdog the tool). The error says what went wrong and
  // what the tool printed.
  Expected<void> start(const std::string& encoded_key);

  // Forks the tool from the zygote at `address` (docs/protocol.md "Zygote link") rather than
  // starting it from scratch, whenever the zygote answers.
  void use_zygote(std::string address) { zygote_ = std::move(address); }

  const std::string& name() const { return spec_.name; }
  pid_t pid() const { return pid_; }
  // Readable once the tool has exited, and its link once it says anything: between jobs it has
  // nothing to say, and the worker watches both.
  int exit_fd() const { return exit_fd_.get(); }
  int link_fd() const { return from_tool_.get(); }

  struct Outcome {
    proto::WorkerResult result;
    bool retire = false;  // the tool is gone or not to be trusted: the worker must end
  };
  // Runs one job, relaying the tool's `phase`s on `link`.
  Outcome run(const proto::Job& job, Link& link);

  // `shutdown`, then up to the grace period for the tool to exit, then SIGKILL.
  void stop();
  // Between jobs: success while the tool is fit for the next job. One that has exited, said
  // anything (a second result, a result of its own accord), or closed or broken its link is not:
  // it is killed and reaped, and the failure says what happened, with its last output.
  Expected<void> check_idle();

 private:
  Expected<void> await_ready();
  // Sets pid_, exit_fd_ and zygote_child_ if the zygote forked the tool.
  void fork_from_zygote(const ZygoteFds& fds);
  enum class Event { kMessage, kGone, kDeadline, kBroken };
  // Writes `outgoing_` as the tool takes it and reads until a whole message (kMessage, in
  // `message`), the tool's end (kGone), the deadline, or a protocol error (kBroken, in `broken_`).
  Event next(std::optional<std::chrono::steady_clock::time_point> deadline,
             proto::ToolEvent& message);
  bool read_some();
  bool write_some();  // false once the tool is gone (EPIPE)
  // SIGKILL to the group, then waits for the tool and its output; sets status_.
  void kill_and_reap();
  void reap();
  std::string who() const;
  Outcome end_job(std::string_view code, std::string message);
  std::optional<proto::WorkerResult> take_result(const proto::Job& job, proto::ToolEvent& event);
  // A result or phase for the job the tool answered last: said out of turn.
  bool about_last_job(const proto::ToolEvent& event) const;
  // The job's own result; with `retire` when the tool said more than its one answer.
  Outcome answered(const proto::Job& job, proto::WorkerResult result, bool out_of_turn);

  ToolSpec spec_;
  std::size_t slot_;
  uint32_t max_frame_;
  uint64_t grace_ms_;
  pid_t pid_ = 0;
  bool reaped_ = false;
  std::string status_;  // "exited with status 1", "was killed by SIGSEGV"
  UniqueFd exit_fd_;    // pidfd
  UniqueFd to_tool_;    // the tool's fd 3
  UniqueFd from_tool_;  // the tool's fd 4
  FrameInbox inbox_;    // what the tool said, not yet handed out
  bool link_ended_ = false;
  std::string outgoing_;
  std::size_t outgoing_sent_ = 0;
  std::string broken_;
  std::optional<uint64_t> last_job_;  // the id of the job it answered last
  std::optional<ToolOutput> output_;
  std::string zygote_;                       // its address, if the tool is forked from one
  std::optional<ZygoteChild> zygote_child_;  // forked by the zygote, which reaps it
};

}  // namespace kiln::worker
