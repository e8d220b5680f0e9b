// The `exec` job (docs/protocol.md): one command in its own process group, stdin fed while stdout
// and stderr are read, output capped per stream, the job's timeout enforced here (SIGTERM to the
// group, SIGKILL after the grace period), and nothing of the command left behind afterwards.
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <utility>
#include <variant>

#include "common/distcc.h"
#include "common/exec_strings.h"
#include "common/fd.h"
#include "common/rlimits.h"
#include "common/text.h"
#include "worker/job_group.h"
#include "worker/jobs.h"
#include "worker/spawn.h"

extern char** environ;

namespace kiln::worker {
namespace {

using Clock = std::chrono::steady_clock;

// How much of stderr a `timeout` error carries in its detail.
constexpr std::size_t kDetailBytes = 4096;

// The command as the worker runs it: the job's payload (proto::ExecRequest) checked, with its
// defaults filled in and its limits by resource number.
struct Command {
  std::vector<std::string> argv;
  std::string cwd;
  proto::StrMap env;
  bool clear_env = false;
  std::string stdin_data;
  uint64_t max_output = proto::kExecDefaultMaxOutput;
  // The caller's process attributes, when it sent them (kiln exec does): applied in the child.
  std::optional<mode_t> umask;
  std::optional<int> nice;
  std::vector<std::pair<int, rlimit>> rlimits;
};

Failure invalid(std::string_view key, const std::string& what) {
  return fail("exec." + std::string(key) + ": " + what);
}

// `rlimits` by resource number: every name known, no soft limit above its hard one.
Expected<std::vector<std::pair<int, rlimit>>> resource_limits(const proto::LimitMap& limits) {
  std::vector<std::pair<int, rlimit>> out;
  for (const auto& [name, limit] : limits) {
    const std::optional<int> resource = rlimit_resource(name);
    if (!resource) return invalid("rlimits", "unknown limit \"" + printable(name, 32) + "\"");
    if (limit.first > limit.second) {
      return invalid("rlimits", "the soft limit of " + name + " is above its hard limit");
    }
    out.emplace_back(*resource, rlimit{limit.first, limit.second});
  }
  return out;
}

// umask, nice and rlimits: the fields that make the command's process the caller's.
Expected<Command> with_process_attributes(const proto::ExecRequest& m) {
  Command r;
  if (m.umask) {
    if (*m.umask > 0777) return invalid("umask", "must be at most 0777");
    r.umask = static_cast<mode_t>(*m.umask);
  }
  if (m.nice) {
    if (*m.nice < -20 || *m.nice > 19) return invalid("nice", "must be from -20 to 19");
    r.nice = static_cast<int>(*m.nice);
  }
  if (m.rlimits) {
    auto limits = resource_limits(*m.rlimits);
    if (!limits) return fail(limits.error());
    r.rlimits = std::move(*limits);
  }
  return r;
}

// What the kernel would read wrongly: a NUL cuts a string short where the kernel reads it
// ("/tmp\0/etc" would run in /tmp), and an '=' in a variable's name moves where its value starts.
Expected<void> strings_fit_the_kernel(const proto::ExecRequest& m) {
  if (m.argv.empty()) return invalid("argv", "must hold at least the command");
  for (const auto& arg : m.argv) {
    if (arg.find('\0') != std::string::npos) return invalid("argv", "contains a NUL byte");
  }
  if (m.argv[0].empty()) return invalid("argv", "the command is empty");
  if (m.cwd && m.cwd->find('\0') != std::string::npos) {
    return invalid("cwd", "contains a NUL byte");
  }
  static const proto::StrMap kNone;
  for (const auto& [name, value] : m.env ? *m.env : kNone) {
    if (name.empty() || name.find_first_of(std::string_view("=\0", 2)) != std::string::npos) {
      return invalid(
          "env", "the name \"" + printable(name, 64) + "\" is empty or contains '=' or a NUL byte");
    }
    if (value.find('\0') != std::string::npos) {
      return invalid("env", "the value of " + printable(name, 64) + " contains a NUL byte");
    }
  }
  return {};
}

Expected<Command> parse_request(const proto::RawObject& raw) {
  Expected<proto::ExecRequest> decoded = proto::decode_exec_request(raw);
  if (!decoded) return fail(decoded.error());
  proto::ExecRequest& m = *decoded;
  Expected<Command> command = with_process_attributes(m);
  if (!command) return fail(command.error());
  if (Expected<void> fits = strings_fit_the_kernel(m); !fits) return fail(fits.error());
  Command& r = *command;
  r.argv = std::move(m.argv);
  r.cwd = std::move(m.cwd).value_or("");
  r.env = std::move(m.env).value_or(proto::StrMap{});
  r.clear_env = m.clear_env.value_or(false);
  if (m.stdin_data) r.stdin_data = std::move(m.stdin_data->bytes);
  r.max_output = m.max_output_bytes.value_or(proto::kExecDefaultMaxOutput);
  return command;
}

const std::vector<int>& ignored_at_start() {
  static const std::vector<int> ignored = ignored_signals();
  return ignored;
}

// Everything the child needs, prepared before vfork: between vfork and exec the child borrows
// the worker's memory and only makes system calls, so nothing may be allocated there.
struct Prepared {
  ExecStrings envp, argv;
  ExecStrings candidates;  // paths to try execve on, in PATH order
  // What the child must set back to the default: the worker's ignored signals, found at its first
  // job (it sets its dispositions at its start, and none after). Asking each job for all 64 took
  // the child some 40 us, the worker suspended meanwhile (vfork).
  const std::vector<int>& ignored_signals = ignored_at_start();
};

Prepared prepare_env_and_argv(const Command& r) {
  Prepared p;
  std::vector<std::string> env;
  // name -> its entry: the job's variables replace the worker's of the same name in one pass
  // each (comparing every pair was quadratic: 40,000 variables took 12.7 s). An ordered map, not
  // a hash table, so that no choice of names is slow.
  std::map<std::string, std::size_t, std::less<>> index;
  auto put = [&](std::string entry) {
    const std::string name = entry.substr(0, entry.find('='));
    if (const auto it = index.find(name); it != index.end()) {
      env[it->second] = std::move(entry);
    } else {
      index.emplace(name, env.size());
      env.push_back(std::move(entry));
    }
  };
  if (!r.clear_env) {
    for (char** e = environ; *e != nullptr; ++e) put(*e);
  }
  for (const auto& [name, value] : r.env) put(name + "=" + value);
  p.candidates = exec_candidates(r.argv[0], env);
  p.envp = ExecStrings(std::move(env));
  p.argv = ExecStrings(r.argv);
  return p;
}

// In the child (ChildSetup::own_steps, `request` a Command): the caller's umask, nice value
// and limits, as far as the worker may. Lowering the nice value or raising a hard limit needs a
// privilege the worker may not have: then the nice value stays, and a limit gets the worker's own
// hard limit (the soft one no higher).
void apply_process_attributes(const void* request) {
  const auto& r = *static_cast<const Command*>(request);
  if (r.umask) ::umask(*r.umask);
  if (r.nice) (void)::setpriority(PRIO_PROCESS, 0, *r.nice);
  for (const auto& [resource, wanted] : r.rlimits) {
    if (::setrlimit(resource, &wanted) == 0) continue;
    rlimit current{};
    if (::getrlimit(resource, &current) != 0) continue;
    const rlimit fitted{std::min(wanted.rlim_cur, current.rlim_max), current.rlim_max};
    (void)::setrlimit(resource, &fitted);
  }
}

// The command's set-up (worker/spawn.h), run in the vforked child on the worker's memory while
// the worker waits. The worker has no signal handler that could run there meanwhile but the crash
// handler (SIGTERM is blocked for its watchdog's signalfd, SIGINT and SIGPIPE are ignored), and the
// child resets every disposition first thing after its fds.
ChildSetup child_setup(const Command& r, const Prepared& p, std::span<const FdMove> fds,
                       int report_fd) {
  ChildSetup setup;
  setup.worker = ::getpid();
  setup.fds = fds;
  setup.ignored_signals = &p.ignored_signals;
  setup.own_steps = apply_process_attributes;
  setup.context = &r;
  setup.cwd = r.cwd.empty() ? nullptr : r.cwd.c_str();
  setup.candidates = p.candidates.get();
  setup.argv = p.argv.get();
  setup.envp = p.envp.get();
  setup.report_fd = report_fd;
  return setup;
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) fatal_errno("fcntl");
}

// Output of one stream, kept up to the cap; reading goes on past it so the command never blocks.
struct Capture {
  UniqueFd fd;
  std::string data;
  bool truncated = false;

  // Reads what is there; false at end of file.
  bool drain(uint64_t cap) {
    char buf[64 << 10];
    for (;;) {
      const ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n > 0) {
        const uint64_t room = cap > data.size() ? cap - data.size() : 0;
        const auto take = static_cast<std::size_t>(std::min<uint64_t>(room, n));
        data.append(buf, take);
        if (take < static_cast<std::size_t>(n)) truncated = true;
        continue;
      }
      if (n == 0) return false;
      if (errno == EINTR) continue;
      return errno == EAGAIN;  // EAGAIN: nothing more for now; other errors end the stream
    }
  }
};

// A command that was started: the worker's ends of its pipes and its exit as a pidfd (a
// grandchild holding stdout would otherwise keep the worker waiting for EOF after the command is
// gone).
struct Started {
  pid_t pid = 0;
  UniqueFd exited, in_write;
  Capture out, err;
};

// What the child reported on `report` if its chdir or exec failed: a spawn_failed result, the
// child reaped. Nothing when it exec'd.
std::optional<proto::WorkerResult> failed_start(int report, pid_t pid, const Command& r) {
  const std::optional<ChildFailure> failure = read_child_failure(report, pid);
  if (!failure) return std::nullopt;
  const std::string why = std::strerror(failure->error);
  if (failure->stage == ChildFailure::kChdir) {
    return job_error(proto::code::kSpawnFailed,
                     "cannot change to directory '" + r.cwd + "' for '" + r.argv[0] + "': " + why);
  }
  if (failure->stage == ChildFailure::kFds) {
    return job_error(proto::code::kSpawnFailed, "cannot start '" + r.argv[0] + "': dup2: " + why);
  }
  // Only here is the command itself at fault: `errno` says how (not found, not executable).
  proto::WorkerResult result =
      job_error(proto::code::kSpawnFailed, "cannot execute '" + r.argv[0] + "': " + why);
  result.error->os_errno = static_cast<uint64_t>(failure->error);
  return result;
}

// Starts the command in its own process group: what was started, or a spawn_failed result.
std::variant<Started, proto::WorkerResult> start_command(const Command& r) {
  Prepared prepared = prepare_env_and_argv(r);
  // Out of fds (EMFILE), the job fails as any spawn that the system refuses: the worker stays.
  std::optional<std::pair<UniqueFd, UniqueFd>> pipes[4];
  for (auto& pipe : pipes) {
    pipe = try_make_pipe();
    if (!pipe) {
      return job_error(proto::code::kSpawnFailed,
                       "cannot start '" + r.argv[0] + "': pipe: " + std::strerror(errno));
    }
  }
  auto& [in_read, in_write] = *pipes[0];
  auto& [out_read, out_write] = *pipes[1];
  auto& [err_read, err_write] = *pipes[2];
  auto& [report_read, report_write] = *pipes[3];
  const FdMove fds[] = {{0, in_read.get()}, {1, out_write.get()}, {2, err_write.get()}};
  const ChildSetup setup = child_setup(r, prepared, fds, report_write.get());
  // vfork, not fork: the command is started without copying the worker's page tables, which is
  // what makes a fork cost more than the exec it precedes (measured in bench/exec_bench: fork
  // made each /bin/true job about 1.7x a posix_spawn). The worker resumes once the child has
  // exec'd or failed.
  const pid_t pid = ::vfork();
  if (pid < 0) {
    return job_error(proto::code::kSpawnFailed,
                     "cannot start '" + r.argv[0] + "': vfork: " + std::strerror(errno));
  }
  if (pid == 0) exec_child(setup);
  // The child set its group before it exec'd, and the worker waited for that.
  report_write.reset();
  if (std::optional<proto::WorkerResult> failed = failed_start(report_read.get(), pid, r)) {
    return std::move(*failed);
  }
  Started c;
  c.pid = pid;
  c.exited = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!c.exited) {  // not EMFILE (report_write's fd was just freed): ENOMEM and the like
    const int error = errno;
    ::kill(-pid, SIGKILL);  // nothing the worker cannot watch is left running
    ::waitpid(pid, nullptr, 0);
    return job_error(proto::code::kSpawnFailed,
                     "cannot watch '" + r.argv[0] + "': pidfd_open: " + std::strerror(error));
  }
  c.out.fd = std::move(out_read);
  c.err.fd = std::move(err_read);
  c.in_write = std::move(in_write);
  set_nonblocking(c.out.fd.get());
  set_nonblocking(c.err.fd.get());
  set_nonblocking(c.in_write.get());
  if (r.stdin_data.empty()) c.in_write.reset();
  return c;
}

// How a command ended.
struct Ended {
  int status = 0;
  rusage usage{};
  bool timed_out = false;
};

// Waits for a started command: feeds its stdin, reads its stdout and stderr (each up to the
// cap), and reaps it; past the deadline SIGTERM to its group, SIGKILL a grace period later. When
// it exits, whatever is left in its group is killed, and pipes something that escaped the group
// still holds are read for one more grace period at most.
class Reaper {
 public:
  Reaper(Started& c, const Command& r, std::optional<Clock::time_point> deadline,
         Clock::duration grace)
      : c_(c), r_(r), deadline_(deadline), grace_(grace) {}

  Ended run() {
    while (!reaped_ || c_.out.fd || c_.err.fd) {
      pollfd fds[4];
      nfds_t n = 0;
      auto watch = [&](const UniqueFd& fd, short events) {
        if (fd) fds[n++] = pollfd{fd.get(), events, 0};
      };
      watch(c_.out.fd, POLLIN);
      watch(c_.err.fd, POLLIN);
      watch(c_.in_write, POLLOUT);
      if (!reaped_) watch(c_.exited, POLLIN);
      if (::poll(fds, n, poll_timeout()) < 0 && errno != EINTR) fatal_errno("poll");
      for (nfds_t i = 0; i < n; ++i) {
        if (fds[i].revents != 0) on_ready(fds[i].fd);
      }
      on_clock(Clock::now());
    }
    return ended_;
  }

 private:
  int poll_timeout() const {
    std::optional<Clock::time_point> next;
    if (reaped_) {
      next = drain_until_;
    } else if (ended_.timed_out && !killed_) {
      next = kill_at_;
    } else if (!ended_.timed_out && deadline_) {
      next = deadline_;
    }
    if (!next) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
    return static_cast<int>(std::max<long long>(0, left));
  }

  void on_ready(int fd) {
    if (fd == c_.out.fd.get() && !c_.out.drain(r_.max_output)) c_.out.fd.reset();
    if (fd == c_.err.fd.get() && !c_.err.drain(r_.max_output)) c_.err.fd.reset();
    if (fd == c_.in_write.get()) {
      const ssize_t w =
          ::write(fd, r_.stdin_data.data() + stdin_off_, r_.stdin_data.size() - stdin_off_);
      if (w > 0) stdin_off_ += static_cast<std::size_t>(w);
      // EPIPE: the command stopped reading its input, which is its business.
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || stdin_off_ == r_.stdin_data.size()) {
        c_.in_write.reset();
      }
    }
    if (fd == c_.exited.get() &&
        ::wait4(c_.pid, &ended_.status, WNOHANG, &ended_.usage) == c_.pid) {
      reaped_ = true;
      // Whatever the command left in its group goes with it: a job leaves nothing running.
      ::kill(-c_.pid, SIGKILL);
      g_job_group.store(0);
      c_.in_write.reset();
      drain_until_ = Clock::now() + grace_;
    }
  }

  void on_clock(Clock::time_point now) {
    if (!reaped_ && !ended_.timed_out && deadline_ && now >= *deadline_) {
      ended_.timed_out = true;
      ::kill(-c_.pid, SIGTERM);
      kill_at_ = now + grace_;
    } else if (!reaped_ && ended_.timed_out && !killed_ && now >= kill_at_) {
      killed_ = true;
      ::kill(-c_.pid, SIGKILL);
    } else if (reaped_ && now >= drain_until_) {
      // Something that escaped the group still holds the pipes: stop waiting for it.
      c_.out.fd.reset();
      c_.err.fd.reset();
    }
  }

  Started& c_;
  const Command& r_;
  const std::optional<Clock::time_point> deadline_;
  const Clock::duration grace_;
  Ended ended_;
  bool killed_ = false, reaped_ = false;
  std::size_t stdin_off_ = 0;
  Clock::time_point kill_at_{}, drain_until_{};
};

uint64_t micros(const timeval& tv) {
  return static_cast<uint64_t>(tv.tv_sec) * 1000000u + static_cast<uint64_t>(tv.tv_usec);
}

// The job's value (docs/protocol.md, `exec`).
proto::RawObject exec_value(const Ended& e, Started& c, std::chrono::microseconds wall) {
  proto::ExecValue v;
  v.exit_code = WIFEXITED(e.status) ? WEXITSTATUS(e.status) : -1;
  v.signal = WIFSIGNALED(e.status) ? WTERMSIG(e.status) : 0;
  v.stdout_data.bytes = std::move(c.out.data);
  v.stderr_data.bytes = std::move(c.err.data);
  v.stdout_truncated = c.out.truncated;
  v.stderr_truncated = c.err.truncated;
  v.wall_us = static_cast<uint64_t>(wall.count());
  v.user_us = micros(e.usage.ru_utime);
  v.sys_us = micros(e.usage.ru_stime);
  v.max_rss_kb = static_cast<uint64_t>(e.usage.ru_maxrss);
  return proto::encode_exec_value(v);
}

// On a distcc host's slot, a compile distcc can distribute runs as `distcc ARGV` with that host
// alone (common/distcc.h): returns its object file (absolute, or relative to the worker's
// directory), or nullopt when the command runs here as it is.
std::optional<std::string> place_on_host(Command& r, const Options& options) {
  if (options.distcc_host.empty()) return std::nullopt;
  std::optional<std::string> object = distcc::distributable_output(r.argv);
  if (!object) return std::nullopt;
  r.argv.insert(r.argv.begin(), options.distcc_client);
  for (auto& [name, value] : distcc::client_env(options.distcc_host)) {
    r.env.emplace_back(std::move(name), std::move(value));
  }
  if ((*object)[0] != '/' && !r.cwd.empty()) *object = r.cwd + "/" + *object;
  if (object->size() >= sizeof g_job_object) return std::nullopt;  // not ours to clean up then
  std::memcpy(g_job_object, object->c_str(), object->size() + 1);
  g_job_object_set.store(true);
  return object;
}

// A distcc client's own failure (exit 100 to 127): the job goes back to the supervisor to run
// elsewhere, its object removed. nullopt: the compiler's answer.
std::optional<proto::WorkerResult> host_failure(const Ended& ended, const Started& c,
                                                const std::string& object, const Options& options) {
  if (!WIFEXITED(ended.status)) return std::nullopt;
  const int status = WEXITSTATUS(ended.status);
  const distcc::Outcome outcome = distcc::outcome_of(status);
  if (outcome == distcc::Outcome::kCompiler) return std::nullopt;
  ::unlink(object.c_str());
  // What distcc said: its first ERROR line (the cause: "connect to ... failed: Connection
  // refused"), else its last line.
  std::string said = c.err.data;
  if (const std::size_t e = said.find("ERROR: "); e != std::string::npos) {
    said = said.substr(e + 7, said.find('\n', e) - e - 7);
  }
  while (!said.empty() && said.back() == '\n') said.pop_back();
  if (const std::size_t nl = said.rfind('\n'); nl != std::string::npos) said.erase(0, nl + 1);
  return job_error(
      outcome == distcc::Outcome::kHostFailed ? proto::code::kHostFailed : proto::code::kLocalOnly,
      "distcc exit " + std::to_string(status) + " (" + std::string(distcc::exit_meaning(status)) +
          ") on " + options.distcc_host + (said.empty() ? "" : ": " + to_valid_utf8(said)));
}

}  // namespace

proto::WorkerResult run_exec(const proto::Job& job, JobContext& context) {
  Expected<Command> request = parse_request(job.payload);
  if (!request) return job_error(proto::code::kBadPayload, request.error());
  Command& r = *request;
  // Both streams must fit one result frame: more than half of it each is never sendable, and
  // keeping it (2^64-1 was accepted) only costs the worker memory before the job fails anyway.
  r.max_output = std::min<uint64_t>(r.max_output, context.options.max_frame / 2);

  const std::optional<std::string> object = place_on_host(r, context.options);
  struct Unset {
    ~Unset() { g_job_object_set.store(false); }
  } unset;

  const Clock::time_point start = Clock::now();
  std::variant<Started, proto::WorkerResult> started = start_command(r);
  if (auto* failed = std::get_if<proto::WorkerResult>(&started)) return std::move(*failed);
  Started& c = std::get<Started>(started);
  g_job_group.store(c.pid);
  // A phase is news, not an answer: a link gone by now shows when the result is sent.
  (void)context.link.send(proto::Phase{job.id, "spawned", static_cast<uint64_t>(c.pid)});

  std::optional<Clock::time_point> deadline;
  if (job.timeout_ms > 0) deadline = start + std::chrono::milliseconds(job.timeout_ms);
  const Ended ended =
      Reaper(c, r, deadline, std::chrono::milliseconds(context.options.grace_ms)).run();
  // Whatever is still a child of the worker is a leftover of the job: commands that left their
  // group (setsid) and were handed to the worker as subreaper when their parent died. The worker
  // has no children of its own between jobs but its tools.
  kill_children_except(context.tool_pids);
  const auto wall = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  if (ended.timed_out) {
    if (object) ::unlink(object->c_str());  // distcc writes it in place: no partial object
    const std::string& e = c.err.data;
    return job_error(
        proto::code::kTimeout,
        "'" + r.argv[0] + "' ran past its timeout of " + std::to_string(job.timeout_ms) + " ms",
        to_valid_utf8(e.size() > kDetailBytes ? e.substr(e.size() - kDetailBytes) : e));
  }
  if (object) {
    if (std::optional<proto::WorkerResult> failed =
            host_failure(ended, c, *object, context.options)) {
      return std::move(*failed);
    }
  }
  return job_ok(exec_value(ended, c, wall));
}

}  // namespace kiln::worker
