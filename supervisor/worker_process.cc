#include "supervisor/worker_process.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <tuple>

#include "common/crash_report.h"
#include "common/fd.h"
#include "common/text.h"

namespace kiln::supervisor {
namespace {

// What a crash report keeps of the worker's stderr.
constexpr std::size_t kTailLines = 200;
constexpr std::size_t kTailBytes = 32 << 10;
// A line longer than this is logged in pieces.
constexpr std::size_t kMaxLine = 8 << 10;

}  // namespace

WorkerProcess::WorkerProcess(uv_loop_t* loop, uint32_t max_frame, uint64_t grace_ms, Events events)
    : loop_(loop),
      grace_ms_(grace_ms),
      events_(std::move(events)),
      to_worker_(loop),
      from_worker_(loop),
      stderr_(loop),
      reader_(max_frame) {
  process_.data = this;
  uv_timer_init(loop_, &drain_timer_);
  drain_timer_.data = this;
  open_handles_ = 4;  // the timer and three pipes; the process handle once spawned
}

namespace {

// The three pipes of a worker: {the worker's end, ours} each, all close-on-exec (libuv dup2s the
// worker's ends onto its fds 2-4, which clears the flag there). Pipes, not the socketpairs
// UV_CREATE_PIPE makes: a pipe's write wakes its reader faster (bench/NOTES.md).
struct WorkerPipes {
  UniqueFd err_theirs, err_ours, in_theirs, in_ours, out_theirs, out_ours;
};

int make_worker_pipes(WorkerPipes& p) {
  auto err = try_make_pipe(), in = try_make_pipe(), out = try_make_pipe();
  if (!err || !in || !out) return -errno;  // libuv's error codes are -errno
  std::tie(p.err_ours, p.err_theirs) = std::move(*err);
  std::tie(p.in_theirs, p.in_ours) = std::move(*in);  // the worker reads this one
  std::tie(p.out_ours, p.out_theirs) = std::move(*out);
  return 0;
}

}  // namespace

int WorkerProcess::spawn(ExecStrings& argv, ExecStrings& envp, int devnull) {
  WorkerPipes p;
  int rc = make_worker_pipes(p);
  for (auto [pipe, fd] : {std::pair{&stderr_, &p.err_ours}, std::pair{&to_worker_, &p.in_ours},
                          std::pair{&from_worker_, &p.out_ours}}) {
    if (rc == 0) rc = pipe->open(fd->get());
    if (rc == 0) fd->release();  // the handle owns it now
  }
  if (rc != 0) return rc;  // the process handle was never initialised: nothing to close
  // Child fds: 0 and 1 are /dev/null, 2 its stderr, 3 what it reads, 4 what it writes.
  uv_stdio_container_t stdio[5];
  for (int i : {0, 1}) {
    stdio[i].flags = devnull >= 0 ? UV_INHERIT_FD : UV_IGNORE;
    stdio[i].data.fd = devnull;
  }
  for (auto [i, fd] :
       {std::pair{2, &p.err_theirs}, std::pair{3, &p.in_theirs}, std::pair{4, &p.out_theirs}}) {
    stdio[i].flags = UV_INHERIT_FD;
    stdio[i].data.fd = fd->get();
  }
  uv_process_options_t options{};
  options.exit_cb = exit_cb;
  options.file = argv.get()[0];
  options.args = argv.get();
  options.env = envp.get();
  options.stdio = stdio;
  options.stdio_count = 5;
  rc = uv_spawn(loop_, &process_, &options);
  // Even when spawning fails, the handle must be closed (PITFALLS: "Failed spawn").
  spawned_ = true;
  ++open_handles_;
  if (rc != 0) return rc;  // the worker's ends close as `p` goes, ours with their handles
  pid_ = process_.pid;
  crash_line_ = crash_report::first_line_prefix(pid_);

  from_worker_.start_reading({[this](std::string_view bytes) { on_link_bytes(bytes); },
                              [this](int) {
                                link_ended_ = true;
                                maybe_gone();
                              }});
  stderr_.start_reading({[this](std::string_view bytes) { on_stderr_bytes(bytes); },
                         [this](int) {
                           if (!partial_line_.empty()) stderr_line(partial_line_);
                           partial_line_.clear();
                           stderr_ended_ = true;
                           maybe_gone();
                         }});
  return 0;
}

void WorkerProcess::kill(int sig) {
  // libuv keeps the pid after reaping: never signal a pid that may have been reused.
  if (pid_ > 0 && !exited_) uv_process_kill(&process_, sig);
}

void WorkerProcess::on_link_bytes(std::string_view bytes) {
  if (link_broken_) return;
  Expected<void> fed = reader_.feed(bytes, [this](std::string_view body) {
    Expected<proto::WorkerEvent> event = proto::decode_worker_event(body);
    if (!event) {
      link_broken_ = true;
      events_.on_protocol_error(event.error());
      return false;
    }
    events_.on_event(std::move(event.value()));
    return true;
  });
  if (!fed && !link_broken_) {
    link_broken_ = true;
    events_.on_protocol_error(fed.error());
  }
}

void WorkerProcess::on_stderr_bytes(std::string_view bytes) {
  while (!bytes.empty()) {
    const auto nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      partial_line_.append(bytes);
      if (partial_line_.size() >= kMaxLine) {
        stderr_line(partial_line_);
        partial_line_.clear();
      }
      return;
    }
    partial_line_.append(bytes.substr(0, nl));
    stderr_line(partial_line_);
    partial_line_.clear();
    bytes.remove_prefix(nl + 1);
  }
}

void WorkerProcess::stderr_line(std::string_view line) {
  // Only the first such line matters; the pool's table ignores the event once the slot is
  // crashing.
  if (!exited_ && line.rfind(crash_line_, 0) == 0) events_.on_crash_reported();
  std::string text = to_valid_utf8(line);
  // At debug: a tool's flood of output must not flood the daemon's log. What matters is kept in
  // the tail, which a crash (its last words) and a failed start bring to the log and the client.
  spdlog::debug("worker {}: {}", pid_, text);
  tail_bytes_ += text.size() + 1;
  tail_.push_back(std::move(text));
  while (tail_.size() > kTailLines || tail_bytes_ > kTailBytes) {
    tail_bytes_ -= tail_.front().size() + 1;
    tail_.pop_front();
  }
}

void WorkerProcess::exit_cb(uv_process_t* process, int64_t exit_status, int term_signal) {
  auto* self = static_cast<WorkerProcess*>(process->data);
  self->exited_ = true;
  self->exit_.exit_status = exit_status;
  self->exit_.term_signal = term_signal;
  // Its pipes normally end at once; something else holding them must not hold up the pool.
  uv_timer_start(&self->drain_timer_, drain_timeout_cb, self->grace_ms_, 0);
  self->maybe_gone();
}

void WorkerProcess::drain_timeout_cb(uv_timer_t* timer) {
  auto* self = static_cast<WorkerProcess*>(timer->data);
  spdlog::warn("worker {}'s pipes stayed open after it exited; not waiting for them", self->pid_);
  self->link_ended_ = self->stderr_ended_ = true;
  self->maybe_gone();
}

void WorkerProcess::maybe_gone() {
  if (gone_ || !exited_ || !link_ended_ || !stderr_ended_) return;
  gone_ = true;
  uv_timer_stop(&drain_timer_);
  for (const std::string& line : tail_) exit_.stderr_tail += line + "\n";
  events_.on_gone(exit_);
}

void WorkerProcess::close() {
  if (closing_) return;
  closing_ = true;
  auto closed = [this] { handle_closed(); };
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_),
           [](uv_handle_t* h) { static_cast<WorkerProcess*>(h->data)->handle_closed(); });
  if (spawned_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&process_),
             [](uv_handle_t* h) { static_cast<WorkerProcess*>(h->data)->handle_closed(); });
  }
  to_worker_.close(closed);
  from_worker_.close(closed);
  stderr_.close(closed);
}

void WorkerProcess::handle_closed() {
  if (--open_handles_ != 0) return;
  // The owner may destroy *this, and with it events_: call a copy, and nothing after it.
  auto on_closed = std::move(events_.on_closed);
  on_closed(this);
}

}  // namespace kiln::supervisor
