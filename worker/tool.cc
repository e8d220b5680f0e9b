#include "worker/tool.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>

#include "common/exec_strings.h"
#include "common/text.h"
#include "worker/job_group.h"
#include "worker/jobs.h"
#include "worker/spawn.h"

extern char** environ;

namespace kiln::worker {
namespace {

using Clock = std::chrono::steady_clock;

// How much of a tool's last output a crash report carries.
constexpr std::size_t kTailBytes = 8192;

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) return "was killed by " + signal_name(WTERMSIG(status));
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

// The fds of one tool's start. The child's ends are at 10 and above (close-on-exec): its dup2
// onto 0-4 then never overwrites a source it has yet to copy, nor its report pipe.
struct StartFds {
  UniqueFd devnull, out_read, out_write, commands_read, commands_write, events_read, events_write;
  UniqueFd report_read, report_write;  // what a child that cannot exec says (worker/spawn.h)
  UniqueFd output_stop;                // ToolOutput's eventfd
};

// Out of fds (EMFILE) is a failed start with a message, as a tool that cannot be executed is.
Expected<StartFds> open_start_fds() {
  auto failed = [](const char* what) {
    return fail(std::string(what) + ": " + std::strerror(errno));
  };
  StartFds f;
  f.devnull.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!f.devnull) return failed("open /dev/null");
  std::pair<UniqueFd*, UniqueFd*> ends[] = {{&f.out_read, &f.out_write},
                                            {&f.commands_read, &f.commands_write},
                                            {&f.events_read, &f.events_write},
                                            {&f.report_read, &f.report_write}};
  for (auto [read_end, write_end] : ends) {
    std::optional<std::pair<UniqueFd, UniqueFd>> pipe = try_make_pipe();
    if (!pipe) return failed("pipe");
    *read_end = std::move(pipe->first);
    *write_end = std::move(pipe->second);
  }
  for (UniqueFd* childs :
       {&f.devnull, &f.out_write, &f.commands_read, &f.events_write, &f.report_write}) {
    UniqueFd high(::fcntl(childs->get(), F_DUPFD_CLOEXEC, 10));
    if (!high) return failed("fcntl(F_DUPFD_CLOEXEC)");
    *childs = std::move(high);
  }
  f.output_stop.reset(::eventfd(0, EFD_CLOEXEC));
  if (!f.output_stop) return failed("eventfd");
  return f;
}

// The tool's output in a message of the worker's own: `prefix` before each of its lines, as
// ToolOutput copies them, so that none can begin a line of the worker's.
std::string quoted_lines(const std::string& prefix, std::string_view text) {
  std::string out;
  for (std::string_view line : split(text, '\n')) {
    if (!out.empty()) out += '\n';
    out += prefix;
    out += line;
  }
  return out;
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) fatal_errno("fcntl");
}

// Forks the tool's process, which sets itself up (worker/spawn.h) and execs, and waits for that:
// its pid, in a group of its own, or why it could not be started (the child reaped). The worker
// has other threads: the child makes system calls only.
Expected<pid_t> fork_tool(StartFds& f, const std::string& command, char* const argv[],
                          char* const envp[], char* const candidates[]) {
  const FdMove fds[] = {{0, f.devnull.get()},
                        {1, f.out_write.get()},
                        {2, f.out_write.get()},
                        {3, f.commands_read.get()},
                        {4, f.events_write.get()}};
  ChildSetup setup;
  setup.worker = ::getpid();
  setup.fds = fds;
  setup.candidates = candidates;
  setup.argv = argv;
  setup.envp = envp;
  setup.report_fd = f.report_write.get();
  const pid_t pid = ::fork();
  if (pid < 0) return fail(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) exec_child(setup);
  // Set here too, so the group exists before either side goes on (whichever runs first).
  ::setpgid(pid, pid);
  f.report_write.reset();
  const std::optional<ChildFailure> failure = read_child_failure(f.report_read.get(), pid);
  if (!failure) return pid;
  const std::string why = std::strerror(failure->error);
  if (failure->stage == ChildFailure::kExec) {
    return fail("cannot execute the tool's command '" + command + "': " + why);
  }
  return fail("dup2: " + why);
}

}  // namespace

// ---- ToolOutput ----

ToolOutput::ToolOutput(UniqueFd fd, UniqueFd stop, std::string prefix)
    : fd_(std::move(fd)),
      stop_(std::move(stop)),
      prefix_(std::move(prefix)),
      thread_(&ToolOutput::pump, this) {}

ToolOutput::~ToolOutput() {
  // Something that left the tool's group may hold the pipe open for ever: stop reading.
  const uint64_t one = 1;
  (void)!::write(stop_.get(), &one, sizeof one);
  thread_.join();
}

namespace {

// A whole write to a pipe of at most PIPE_BUF bytes is never interleaved with another's.
void write_line(const std::string& line) {
  for (;;) {
    const ssize_t w = ::write(STDERR_FILENO, line.data(), line.size());
    // The worker's stderr gone: the tool's output is dropped, and still read, so it never blocks.
    if (w >= 0 || errno != EINTR) return;
  }
}

}  // namespace

void ToolOutput::copy_lines(std::string_view chunk, std::string& line) {
  while (!chunk.empty()) {
    if (line.empty()) line = prefix_;
    const std::size_t room = PIPE_BUF - 1 - line.size();
    const std::size_t nl = chunk.substr(0, room).find('\n');
    const std::size_t take = nl == std::string_view::npos ? std::min(room, chunk.size()) : nl + 1;
    line.append(chunk.substr(0, take));
    chunk.remove_prefix(take);
    if (line.back() != '\n' && line.size() < PIPE_BUF - 1) return;  // the rest of it is to come
    if (line.back() != '\n') line += '\n';
    write_line(line);
    line.clear();
  }
}

void ToolOutput::pump() {
  char buf[16 << 10];
  std::string line;
  for (;;) {
    pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;  // stopped
    const ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    const std::string_view chunk(buf, static_cast<std::size_t>(n));
    copy_lines(chunk, line);
    std::lock_guard lock(mutex_);
    tail_.append(chunk);
    if (tail_.size() > 2 * kTailBytes) tail_.erase(0, tail_.size() - kTailBytes);
  }
  if (!line.empty()) write_line(line + '\n');  // its last line, without its newline
  std::lock_guard lock(mutex_);
  ended_ = true;
  ended_cv_.notify_all();
}

std::string ToolOutput::tail() {
  std::lock_guard lock(mutex_);
  std::string t = tail_.size() > kTailBytes ? tail_.substr(tail_.size() - kTailBytes) : tail_;
  if (t.size() == kTailBytes) {
    if (const auto nl = t.find('\n'); nl != std::string::npos) t.erase(0, nl + 1);
  }
  return to_valid_utf8(t);
}

void ToolOutput::wait_end(Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  ended_cv_.wait_until(lock, deadline, [this] { return ended_; });
}

// ---- Tool ----

void Tool::fork_from_zygote(const ZygoteFds& fds) {
  Expected<ZygoteChild> child = worker::fork_from_zygote(zygote_, fds);
  if (!child) {
    // The zygote is down (being started again) or refused: this tool starts from scratch.
    spdlog::warn("tool {}: not forked from its zygote ({}); starting it from scratch", spec_.name,
                 child.error());
    return;
  }
  pid_ = child->pid;
  exit_fd_ = std::move(child->pidfd);
  zygote_child_ = std::move(*child);
}

Tool::Tool(ToolSpec spec, std::size_t slot, uint32_t max_frame, uint64_t grace_ms)
    : spec_(std::move(spec)),
      slot_(slot),
      max_frame_(max_frame),
      grace_ms_(grace_ms),
      inbox_(max_frame) {}

Tool::~Tool() {
  if (pid_ > 0 && !reaped_) kill_and_reap();
}

std::string Tool::who() const {
  return "tool " + spec_.name + " (pid " + std::to_string(pid_) + ")";
}

Expected<void> Tool::start(const std::string& encoded_key) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view v(*e);
    if (v.rfind("KILN_KEY=", 0) != 0 && v.rfind("KILN_TOOL=", 0) != 0) env.emplace_back(v);
  }
  env.push_back("KILN_KEY=" + encoded_key);
  env.push_back("KILN_TOOL=" + spec_.name);
  const ExecStrings candidates = exec_candidates(spec_.argv[0], env);
  ExecStrings argv(spec_.argv), envp(std::move(env));

  Expected<StartFds> opened = open_start_fds();
  if (!opened) return fail("cannot start tool " + spec_.name + ": " + opened.error());
  StartFds& f = *opened;

  if (!zygote_.empty()) {
    fork_from_zygote(
        {f.devnull.get(), f.out_write.get(), f.commands_read.get(), f.events_write.get()});
  }
  if (!zygote_child_) {
    Expected<pid_t> forked = fork_tool(f, spec_.argv[0], argv.get(), envp.get(), candidates.get());
    if (!forked) return fail("cannot start tool " + spec_.name + ": " + forked.error());
    pid_ = *forked;
  }
  // The child's ends are the child's alone: the output pipe ends when the tool's side does.
  f.devnull.reset();
  f.out_write.reset();
  f.commands_read.reset();
  f.events_write.reset();
  g_tool_groups[slot_].store(pid_);
  if (!exit_fd_) exit_fd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  if (!exit_fd_) {
    const int error = errno;
    kill_and_reap();
    return fail("cannot start tool " + spec_.name + ": pidfd_open: " + std::strerror(error));
  }
  output_.emplace(std::move(f.out_read), std::move(f.output_stop), "tool " + spec_.name + ": ");
  to_tool_ = std::move(f.commands_write);
  from_tool_ = std::move(f.events_read);
  set_nonblocking(to_tool_.get());
  set_nonblocking(from_tool_.get());
  return await_ready();
}

Expected<void> Tool::await_ready() {
  proto::ToolEvent event;
  switch (next(std::nullopt, event)) {
    case Event::kMessage:
      if (std::holds_alternative<proto::ToolReady>(event)) {
        const auto& ready = std::get<proto::ToolReady>(event);
        if (ready.protocol == proto::kProtocolVersion) return {};
        broken_ = "protocol " + std::to_string(ready.protocol) + " in its ready, expected 1";
      } else {
        broken_ = std::string("a ") + std::string(proto::type_name(event)) + " before its ready";
      }
      [[fallthrough]];
    case Event::kBroken:
      kill_and_reap();
      return fail(who() + " broke the tool link before it was ready: " + broken_);
    case Event::kGone:
    case Event::kDeadline:
      break;
  }
  kill_and_reap();
  return fail(who() + " " + status_ + " before it was ready");
}

bool Tool::write_some() {
  const ssize_t w =
      ::write(to_tool_.get(), outgoing_.data() + outgoing_sent_, outgoing_.size() - outgoing_sent_);
  if (w > 0) outgoing_sent_ += static_cast<std::size_t>(w);
  return w >= 0 || errno == EAGAIN || errno == EINTR;  // EPIPE: the tool is gone
}

bool Tool::read_some() {
  for (;;) {
    Expected<FrameInbox::Read> read = inbox_.read_from(from_tool_.get());
    if (!read && read.error_code() != FrameInbox::kReadFailed) {
      broken_ = read.error();
      return false;
    }
    if (!read || *read == FrameInbox::Read::kEnd) {  // a failed pipe is as good as ended
      link_ended_ = true;
      return true;
    }
    if (*read == FrameInbox::Read::kAgain) return true;
  }
}

Tool::Event Tool::next(std::optional<Clock::time_point> deadline, proto::ToolEvent& message) {
  for (;;) {
    if (inbox_.has_body()) {
      Expected<proto::ToolEvent> decoded = proto::decode_tool_event(inbox_.take());
      if (!decoded) {
        broken_ = decoded.error();
        return Event::kBroken;
      }
      message = std::move(*decoded);
      return Event::kMessage;
    }
    if (link_ended_) return Event::kGone;
    // Most jobs fit the pipe: written at once, without a poll first.
    if (outgoing_sent_ == 0 && !outgoing_.empty() && !write_some()) return Event::kGone;
    pollfd fds[3] = {{from_tool_.get(), POLLIN, 0}, {exit_fd_.get(), POLLIN, 0}, {-1, 0, 0}};
    if (outgoing_sent_ < outgoing_.size()) fds[2] = {to_tool_.get(), POLLOUT, 0};
    int timeout = -1;
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      timeout = static_cast<int>(std::max<long long>(0, left.count()));
    }
    const int n = ::poll(fds, 3, timeout);
    if (n < 0 && errno != EINTR) fatal_errno("poll");
    if (n == 0 && deadline && Clock::now() >= *deadline) return Event::kDeadline;
    if (fds[2].revents != 0 && !write_some()) return Event::kGone;
    if (fds[0].revents != 0 && !read_some()) return Event::kBroken;
    // Its exit, once what it wrote before exiting has been read.
    if (fds[1].revents != 0 && fds[0].revents == 0 && !inbox_.has_body()) return Event::kGone;
  }
}

void Tool::reap() {
  if (zygote_child_) {
    // Only its zygote can reap it: it says how the tool ended.
    status_ =
        await_zygote_exit(*zygote_child_, Clock::now() + std::chrono::milliseconds(grace_ms_));
  } else {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    status_ = describe_status(status);
  }
  reaped_ = true;
  g_tool_groups[slot_].store(0);
  // Its output ends when the last process holding the pipe does: a grandchild that left the
  // group may keep it open, so the wait is bounded.
  if (output_) output_->wait_end(Clock::now() + std::chrono::milliseconds(grace_ms_));
}

void Tool::kill_and_reap() {
  // The tool is not reaped yet, so its pid (the group's id) cannot have been reused.
  ::kill(-pid_, SIGKILL);
  reap();
}

Tool::Outcome Tool::end_job(std::string_view code, std::string message) {
  return Outcome{job_error(code, std::move(message), output_ ? output_->tail() : std::string()),
                 true};
}

bool Tool::about_last_job(const proto::ToolEvent& event) const {
  if (!last_job_) return false;
  if (const auto* result = std::get_if<proto::ToolResult>(&event)) return result->id == *last_job_;
  if (const auto* phase = std::get_if<proto::Phase>(&event)) return phase->id == *last_job_;
  return false;
}

// The tool's answer to `job`: its result, or that it broke the link (then broken_ says how).
std::optional<proto::WorkerResult> Tool::take_result(const proto::Job& job,
                                                     proto::ToolEvent& event) {
  auto* result = std::get_if<proto::ToolResult>(&event);
  if (result == nullptr || result->id != job.id) {
    broken_ = result != nullptr
                  ? "a result for job " + std::to_string(result->id) + ", which it was not running"
                  : std::string("a ") + std::string(proto::type_name(event)) + " during job " +
                        std::to_string(job.id);
    return std::nullopt;
  }
  proto::WorkerResult r;
  r.ok = result->ok;
  r.value = std::move(result->value);
  r.error = std::move(result->error);
  if (r.error) {
    // A tool speaks only for its job: every other code is the pool's to give.
    if (r.error->code != proto::code::kJobFailed && r.error->code != proto::code::kBadPayload) {
      r.error->code = std::string(proto::code::kJobFailed);
    }
    // Bounded text: a client prints or logs it; the bytes a client needs whole go in `data`.
    r.error->message = shortened(r.error->message, proto::kMaxMessageBytes);
    if (r.error->detail) r.error->detail = shortened(*r.error->detail, proto::kMaxDetailBytes);
  }
  return r;
}

Tool::Outcome Tool::run(const proto::Job& job, Link& link) {
  outgoing_.clear();
  outgoing_sent_ = 0;
  proto::encode(proto::ToolJob{job.id, job.payload, job.timeout_ms}, outgoing_);
  std::optional<Clock::time_point> deadline;
  if (job.timeout_ms > 0) deadline = Clock::now() + std::chrono::milliseconds(job.timeout_ms);
  bool terminated = false;
  bool out_of_turn = false;
  // Whether it went on SIGTERM or needed SIGKILL, the job timed out and the tool was stopped.
  auto timed_out = [&] {
    return end_job(proto::code::kTimeout, "the job ran past its timeout of " +
                                              std::to_string(job.timeout_ms) + " ms; " + who() +
                                              " was stopped");
  };
  auto broke = [&] {
    kill_and_reap();
    return end_job(proto::code::kWorkerProtocolError,
                   who() + " broke the tool link: " + broken_ + "; it was killed");
  };
  for (;;) {
    proto::ToolEvent event;
    switch (next(deadline, event)) {
      case Event::kMessage:
        break;
      case Event::kDeadline:
        if (!terminated) {
          // SIGTERM first, as for an exec command; SIGKILL when the grace period is over.
          ::kill(-pid_, SIGTERM);
          terminated = true;
          deadline = Clock::now() + std::chrono::milliseconds(grace_ms_);
          continue;
        }
        kill_and_reap();
        return timed_out();
      case Event::kGone:
        kill_and_reap();
        if (terminated) return timed_out();
        return end_job(proto::code::kWorkerCrashed, who() + " " + status_ + " during the job");
      case Event::kBroken:
        return broke();
    }
    if (auto* phase = std::get_if<proto::Phase>(&event); phase && phase->id == job.id) {
      (void)link.send(
          proto::Phase{job.id, shortened(phase->phase, proto::kMaxPhaseBytes), std::nullopt});
      continue;
    }
    if (about_last_job(event)) {  // read only now: this job goes on, then the tool is retired
      out_of_turn = true;
      continue;
    }
    std::optional<proto::WorkerResult> result = take_result(job, event);
    if (!result) return broke();
    return answered(job, std::move(*result), out_of_turn);
  }
}

Tool::Outcome Tool::answered(const proto::Job& job, proto::WorkerResult result, bool out_of_turn) {
  last_job_ = job.id;
  if (!out_of_turn && !inbox_.has_body()) return Outcome{std::move(result), false};
  // More than one answer: the job keeps its own; the tool is not given another.
  spdlog::warn("{} sent a message out of turn; killing it after job {}", who(), job.id);
  kill_and_reap();
  return Outcome{std::move(result), true};
}

void Tool::stop() {
  if (pid_ <= 0 || reaped_) return;
  std::string frame;
  proto::encode(proto::WorkerShutdown{}, frame);
  (void)!::write(to_tool_.get(), frame.data(), frame.size());  // small: fits any pipe
  to_tool_.reset();  // end of input too, for a tool that only watches for that
  pollfd exit_event{exit_fd_.get(), POLLIN, 0};
  const auto deadline = Clock::now() + std::chrono::milliseconds(grace_ms_);
  int n;
  do {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    n = ::poll(&exit_event, 1, static_cast<int>(std::max<long long>(0, left.count())));
  } while (n < 0 && errno == EINTR);
  if (exit_event.revents == 0) {
    spdlog::warn("{} did not exit within {} ms of shutdown; SIGKILL", who(), grace_ms_);
  }
  kill_and_reap();
}

Expected<void> Tool::check_idle() {
  pollfd fds[2] = {{from_tool_.get(), POLLIN, 0}, {exit_fd_.get(), POLLIN, 0}};
  int n;
  while ((n = ::poll(fds, 2, 0)) < 0 && errno == EINTR) {
  }
  if (n < 0) fatal_errno("poll");
  if (n == 0 && !inbox_.has_body() && !link_ended_) return {};
  const bool exited = fds[1].revents != 0;
  const bool broke = fds[0].revents != 0 && !read_some();
  kill_and_reap();
  std::string what = who();
  if (inbox_.has_body()) {
    Expected<proto::ToolEvent> said = proto::decode_tool_event(inbox_.take());
    what +=
        " sent " +
        (said ? "a " + std::string(proto::type_name(*said)) : "a bad message: " + said.error()) +
        " between jobs; it was killed";
  } else if (broke) {
    what += " broke the tool link between jobs: " + broken_ + "; it was killed";
  } else if (exited) {
    what += " " + status_ + " between jobs";
  } else {
    what += " closed the tool link between jobs; it was killed";
  }
  if (std::string t = output_ ? output_->tail() : ""; !t.empty()) {
    what += "; its last output:\n" + quoted_lines("tool " + spec_.name + ": ", t);
  }
  return fail(std::move(what));
}

}  // namespace kiln::worker
