// The launcher: one command through the shared daemon (`kiln-supervisor --listen`), started
// when none is there, or here when the daemon cannot serve it. Both `kiln exec` and the small
// `kiln-exec` binary are this code; it needs no thread and nothing of Pool.
#include "client/launcher.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <optional>
#include <thread>

#include "client/daemon_link.h"
#include "client/exec_request.h"
#include "common/exec_strings.h"
#include "common/exit_codes.h"
#include "common/rlimits.h"

extern char** environ;

namespace kiln::client {
namespace {

// A directory only we can use: created 0700 if missing, refused if someone else could write it.
Expected<void> private_directory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail("cannot create " + dir + ": " + std::strerror(errno));
  }
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid() ||
      (st.st_mode & 077) != 0) {
    return fail(dir + " is not a directory private to this user (0700, ours)");
  }
  return {};
}

// In the detached child, before exec: a daemon shared by every later build must carry nothing of
// the build that happened to start it. Its stderr is its log (what it says before it opens the
// log itself, a bad option or a socket it cannot take, is read there). Its pipes (held open, that
// build would never see end of file), its directory, umask, signal mask and ignored signals, its
// nice value (lowered only as far as we may) and its soft limits (raised to their hard limits).
// System calls only: this runs between fork and exec. Each job still runs with its own caller's
// settings.
void become_clean_daemon(int log_fd) {
  const int null = ::open("/dev/null", O_RDWR);
  ::dup2(null, 0);
  ::dup2(null, 1);
  ::dup2(log_fd >= 0 ? log_fd : null, 2);
  ::syscall(SYS_close_range, 3, ~0U, 0);
  if (::chdir("/") != 0) ::_exit(exit_code::kNotFound);
  ::umask(022);
  reset_signals_for_exec();
  ::setpriority(PRIO_PROCESS, 0, 0);
  for (int resource :
       {RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_AS, RLIMIT_NOFILE, RLIMIT_NPROC}) {
    rlimit limit;
    if (::getrlimit(resource, &limit) == 0 && limit.rlim_cur != limit.rlim_max) {
      limit.rlim_cur = limit.rlim_max;
      ::setrlimit(resource, &limit);
    }
  }
}

// The environment of a daemon that `environment` says is to have a minimal one: the fixed PATH of
// the protocol's PATH-less lookup, and of ours only HOME (where compilers and their wrappers keep
// their state: distcc, ccache), the build key it serves and its log level.
std::vector<std::string> daemon_environment(DaemonEnvironment environment) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (environment == DaemonEnvironment::kCallers || entry.starts_with("HOME=") ||
        entry.starts_with("KILN_KEY=") || entry.starts_with("SPDLOG_LEVEL=")) {
      env.emplace_back(entry);
    }
  }
  if (environment == DaemonEnvironment::kMinimal) env.emplace_back(kDaemonPath);
  return env;
}

void spawn_daemon(const std::string& supervisor, const std::string& socket,
                  const std::vector<std::string>& options, DaemonEnvironment environment) {
  // Built before fork: the children only call async-signal-safe functions.
  std::vector<std::string> args = {supervisor, "--listen", socket, "--log-file", socket + ".log"};
  args.insert(args.end(), options.begin(), options.end());
  ExecStrings argv(std::move(args)), envp(daemon_environment(environment));
  Expected<UniqueFd> log = open_log_file(socket + ".log");
  const int log_fd = log ? log->get() : -1;
  const pid_t child = ::fork();
  if (child == 0) {
    // Detached: its own session, and orphaned at once so that nobody has to reap it.
    ::setsid();
    if (::fork() != 0) ::_exit(exit_code::kOk);
    become_clean_daemon(log_fd);
    ::execve(argv.get()[0], argv.get(), envp.get());
    ::_exit(exit_code::kNotFound);
  }
  if (child > 0) ::waitpid(child, nullptr, 0);
}

// The size of a (log) file, 0 when there is none.
off_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

// What was appended to a (log) file past `offset`, its last 4 KiB at most, its lines joined by
// " / "; "" when nothing was.
std::string appended_since(const std::string& path, off_t offset) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  struct stat st;
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return "";
  const off_t from = std::max<off_t>(offset, st.st_size - 4096);
  if (from >= st.st_size) return "";
  std::string text(static_cast<std::size_t>(st.st_size - from), '\0');
  const ssize_t n = ::pread(fd.get(), text.data(), text.size(), from);
  text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  for (std::size_t i = text.find('\n'); i != std::string::npos; i = text.find('\n', i + 3)) {
    text.replace(i, 1, " / ");
  }
  return text;
}

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

Expected<DaemonLink> connect_link(const std::string& socket, std::string_view submit,
                                  std::optional<std::chrono::milliseconds> timeout = {}) {
  Expected<std::optional<std::string>> key_id = key_id_from_env();
  if (!key_id) return fail(key_id.error());
  return DaemonLink::connect(socket, *key_id, submit, timeout);
}

}  // namespace

Expected<std::string> default_socket_path() {
  if (const char* s = std::getenv("KILN_SOCKET"); s != nullptr && *s != '\0') return std::string(s);
  std::string dir;
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg != '\0') {
    dir = std::string(xdg) + "/kiln";
  } else {
    dir = "/tmp/kiln-" + std::to_string(::getuid());
  }
  if (Expected<void> ok = private_directory(dir); !ok) return fail(ok.error());
  return dir + "/supervisor.sock";
}

namespace {

// $KILN_WORKERS: the pool size of a daemon kiln exec starts (a build at -j8 on a 2-CPU machine
// wants 8, not the CPU count). nullopt when unset; an error when it is not a number of workers.
Expected<std::optional<unsigned>> workers_from_env() {
  const char* text = std::getenv("KILN_WORKERS");
  if (text == nullptr || *text == '\0') return std::optional<unsigned>();
  char* end = nullptr;
  errno = 0;
  const unsigned long n = std::strtoul(text, &end, 10);
  if (errno != 0 || *end != '\0' || n < 1 || n > 4096 || text[0] == '-') {
    return fail(std::string("KILN_WORKERS=") + text + " is not a number of workers (1 to 4096)");
  }
  return std::optional<unsigned>(static_cast<unsigned>(n));
}

}  // namespace

Expected<DaemonLink> start_daemon(const std::string& socket, const std::string& supervisor,
                                  const std::vector<std::string>& options,
                                  std::chrono::milliseconds wait, DaemonEnvironment environment,
                                  std::string_view first_frame) {
  const off_t logged = file_size(socket + ".log");
  spawn_daemon(supervisor, socket, options, environment);
  // Several launchers may start daemons at once: one wins the socket's lock, the others exit,
  // and everybody connects to the winner.
  const auto deadline = std::chrono::steady_clock::now() + wait;
  auto pause = std::chrono::milliseconds(2);
  Expected<DaemonLink> link = fail("not started");
  for (auto now = std::chrono::steady_clock::now(); now < deadline;
       now = std::chrono::steady_clock::now()) {
    // The one that came up answers at once; its hello, too, is only waited for until `wait` ends.
    link = connect_link(socket, first_frame,
                        std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
    if (link || link.error_code() != kUnreachable) return link;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
  const std::string said = appended_since(socket + ".log", logged);
  return fail("no kiln-supervisor came up on " + socket + " within " +
              std::to_string(wait.count()) + " ms (" + link.error() + "); its log " + socket +
              ".log " + (said.empty() ? "has nothing new" : "says: " + said));
}

namespace {

// The caller's environment as it is, but for its build key: that selects the daemon, and is no
// compiler's business.
std::vector<std::string> command_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!std::string_view(*e).starts_with("KILN_KEY=")) env.emplace_back(*e);
  }
  return env;
}

// The daemon to serve the job, `submit` sent to it: the one running, else one started now. The
// supervisor binary is looked for only then.
Expected<DaemonLink> reach_daemon(const ExecCommandOptions& options, std::string_view submit) {
  Expected<std::string> socket =
      options.socket.empty() ? default_socket_path() : Expected<std::string>(options.socket);
  if (!socket) return fail(socket.error());
  Expected<DaemonLink> running = connect_link(*socket, submit);
  // Only when nobody listens is a daemon started: one that is there but refuses us (another
  // user's, another build's, one serving all the connections it may, a socket we may not
  // connect to) or does not answer in time (stopped, stalled) holds the path, and starting
  // another cannot take it over; the command then runs here at once.
  if (running || running.error_code() != kUnreachable) return running;
  Expected<std::string> supervisor = find_supervisor(options.supervisor);
  if (!supervisor) return fail(supervisor.error());
  Expected<std::optional<unsigned>> workers = workers_from_env();
  if (!workers) return fail(workers.error());
  std::vector<std::string> daemon_options = {"--idle-exit-ms", "300000"};
  if (*workers)
    daemon_options.insert(daemon_options.end(), {"--workers", std::to_string(**workers)});
  // $KILN_DISTCC_HOSTS: the distcc hosts of the daemon it starts (kiln-supervisor --distcc).
  if (const char* hosts = std::getenv("KILN_DISTCC_HOSTS"); hosts != nullptr && *hosts != '\0') {
    daemon_options.insert(daemon_options.end(), {"--distcc", hosts});
  }
  // Short: with nothing coming up, the launcher runs the command itself instead of waiting.
  return start_daemon(*socket, *supervisor, daemon_options, std::chrono::seconds(3),
                      DaemonEnvironment::kMinimal, submit);
}

// What our standard input is when the command may read something from it: a pipe, a socket, a
// non-empty file, a device other than /dev/null; nothing for a terminal, /dev/null, an empty file
// or none at all. A command may read its stdin without saying so (`cc -x c -c /dev/stdin`, `cat`,
// `sh -s`), and a job gets no stream of input (reading it all first could wait forever on a pipe
// that stays open), so such a command runs here with its real stdin. Build systems give their
// compilers /dev/null (ninja) or their terminal, which go to the daemon.
std::optional<std::string> stdin_with_input() {
  struct stat st;
  if (::fstat(STDIN_FILENO, &st) != 0) return std::nullopt;
  if (S_ISFIFO(st.st_mode)) return "a pipe";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  if (S_ISREG(st.st_mode))
    return st.st_size > 0 ? std::optional<std::string>("a file") : std::nullopt;
  struct stat null;
  if (S_ISCHR(st.st_mode) && (::isatty(STDIN_FILENO) != 0 ||
                              (::stat("/dev/null", &null) == 0 && null.st_rdev == st.st_rdev))) {
    return std::nullopt;
  }
  return S_ISCHR(st.st_mode) ? "a device" : "neither a terminal nor /dev/null";
}

// This process's umask, nice value and resource limits, for the command to have them too: the
// daemon's workers have their own (it may have been started by another shell, with others).
void add_process_attributes(ExecRequest& r) {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  r.umask = static_cast<uint32_t>(mask);
  errno = 0;
  const int nice = ::getpriority(PRIO_PROCESS, 0);
  if (errno == 0) r.nice = nice;
  for (const RlimitName& limit : kRlimits) {
    rlimit value{};
    if (::getrlimit(limit.resource, &value) == 0) {
      r.rlimits.emplace_back(std::string(limit.name), std::pair(value.rlim_cur, value.rlim_max));
    }
  }
}

// This directory, the environment and the process attributes, for the command to have them.
// An error when the directory cannot be given to a job: the command runs here, never elsewhere.
Expected<ExecRequest> request_for(const std::vector<std::string>& argv) {
  ExecRequest r;
  r.argv = argv;
  Expected<std::string> cwd = current_directory();
  if (!cwd) return fail("its directory cannot be given to a job: " + cwd.error());
  // A worker's chdir() takes no longer path.
  if (cwd->size() >= PATH_MAX) {
    return fail("its directory is " + std::to_string(cwd->size()) + " bytes long, more than the " +
                std::to_string(PATH_MAX - 1) + " a job's may be");
  }
  r.cwd = std::move(*cwd);
  for (const std::string& entry : command_environment()) {
    const auto eq = entry.find('=');
    if (eq != std::string::npos) r.env.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
  }
  r.clear_env = true;
  add_process_attributes(r);
  return r;
}

// The exec job `argv`, encoded: this connection's only job.
Expected<std::string> submit_frame(const std::vector<std::string>& argv) {
  Expected<ExecRequest> request = request_for(argv);
  if (!request) return fail(request.error());
  std::string frame;
  proto::encode(proto::Submit{1, "exec", exec_payload(*request), std::nullopt, std::nullopt},
                frame);
  if (frame.size() - kFrameHeaderSize > kDefaultMaxFrame) {
    return fail("the job is " + std::to_string(frame.size() - kFrameHeaderSize) +
                " bytes encoded, more than a frame may hold");
  }
  return frame;
}

// The job's result, or why none will come.
Expected<proto::Result> wait_for_result(DaemonLink& link) {
  while (std::optional<std::string> body = link.next_body()) {
    Expected<proto::ClientEvent> event = proto::decode_client_event(*body);
    if (!event) return fail("the daemon broke the protocol: " + event.error());
    if (auto* r = std::get_if<proto::Result>(&event.value()); r != nullptr && r->id == 1) {
      return std::move(*r);
    }
    if (auto* e = std::get_if<proto::Error>(&event.value())) {
      return fail("the daemon ended the connection: " + e->code + ": " + e->message);
    }
    if (std::holds_alternative<proto::Bye>(event.value())) return fail("the daemon shut down");
  }
  return fail("the daemon closed the connection before the job's result");
}

// An error_code() of exec_through_daemon: the command ran (and is not to run again), but the
// daemon cannot give back what it did.
constexpr const char* kRanUnseen = "ran-unseen";

// The exit status of a command that could not be executed, as a shell gives it: 127 when it is
// not there, 126 when it is but cannot be executed (no permission, a directory, not a program).
int cannot_execute_status(int error) {
  return error == ENOENT || error == ENOTDIR ? exit_code::kNotFound : exit_code::kCannotExecute;
}

// A job that ended without a value: the command's status when the command itself is why (it
// cannot be executed, it timed out, it was cancelled), else why the daemon could not serve it.
Expected<int> failed_job_status(const proto::JobError& error) {
  const std::string why = error.code + ": " + error.message;
  if (error.code == proto::code::kJobFailed) {
    // An exec job fails only when its result would not fit a frame: after the command ran.
    return fail(why, kRanUnseen);
  }
  // A spawn_failed without errno is the worker's own trouble (its directory, its fds): the
  // command was never tried, and is tried here.
  const bool not_executable = error.code == proto::code::kSpawnFailed && error.os_errno;
  if (!not_executable && error.code != proto::code::kTimeout &&
      error.code != proto::code::kCancelled) {
    return fail(why);
  }
  std::fprintf(stderr, "kiln exec: %s\n", why.c_str());
  if (error.detail) std::fprintf(stderr, "%s\n", error.detail->c_str());
  return not_executable ? cannot_execute_status(static_cast<int>(*error.os_errno))
                        : exit_code::kLauncherFailed;
}

// The command through the daemon: its exit status, or why the daemon could not serve it.
Expected<int> exec_through_daemon(const ExecCommandOptions& options) {
  if (std::optional<std::string> input = stdin_with_input()) {
    return fail("its standard input is " + *input + ", which a job cannot read");
  }
  Expected<std::string> submit = submit_frame(options.argv);
  if (!submit) return fail(submit.error());
  Expected<DaemonLink> link = reach_daemon(options, *submit);
  if (!link) return fail(link.error(), link.error_code());
  Expected<proto::Result> served = wait_for_result(*link);
  if (!served) return fail(served.error());
  const proto::Result& result = *served;
  if (!result.ok) return failed_job_status(*result.error);
  Expected<proto::ExecValue> value = proto::decode_exec_value(*result.value);
  if (!value) return fail(value.error(), kRanUnseen);
  const proto::ExecValue& v = *value;
  if (v.stdout_truncated || v.stderr_truncated) {
    // Never a cut output with the command's status, and never a second run of a command that
    // ran (its side effects would happen twice): the build is told, and nothing is written.
    return fail("its output passed the " + std::to_string(proto::kExecDefaultMaxOutput) +
                    " bytes per stream a job may return",
                kRanUnseen);
  }
  write_all(STDOUT_FILENO, v.stdout_data.bytes);
  write_all(STDERR_FILENO, v.stderr_data.bytes);
  return v.signal != 0 ? exit_code::kSignalBase + static_cast<int>(v.signal)
                       : static_cast<int>(v.exit_code);
}

// The command run by kiln exec itself, as the build would have run it: here, with our stdio.
int run_here(const std::vector<std::string>& command) {
  ExecStrings argv(command), envp(command_environment());
  pid_t pid = -1;
  if (const int e = ::posix_spawnp(&pid, argv.get()[0], nullptr, nullptr, argv.get(), envp.get());
      e != 0) {
    std::fprintf(stderr, "kiln exec: cannot execute '%s': %s\n", command[0].c_str(),
                 std::strerror(e));
    return cannot_execute_status(e);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) return exit_code::kSignalBase + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : exit_code::kLauncherFailed;
}

}  // namespace

Expected<std::string> current_directory() {
  std::string dir(1024, '\0');
  while (::getcwd(dir.data(), dir.size()) == nullptr) {
    if (errno != ERANGE || dir.size() >= (std::size_t{1} << 20)) {
      return fail(std::string("getcwd: ") + std::strerror(errno));
    }
    dir.resize(dir.size() * 2);
  }
  dir.resize(std::strlen(dir.c_str()));
  return dir;
}

int exec_command(const ExecCommandOptions& options) {
  Expected<int> served = exec_through_daemon(options);
  if (served) return *served;
  if (served.error_code() == kRanUnseen) {
    std::fprintf(stderr,
                 "kiln exec: the command ran, but %s: it is not run again (run it without kiln "
                 "exec to see all of its output)\n",
                 served.error().c_str());
    return exit_code::kLauncherFailed;
  }
  // A build never fails because of Kiln where it would have passed without it: unless told not
  // to, a job the daemon cannot serve runs here, and one line says why.
  const char* fallback = std::getenv("KILN_FALLBACK");
  if ((fallback != nullptr && std::string_view(fallback) == "0") ||
      served.error_code() == kRefused) {
    std::fprintf(stderr, "kiln exec: %s\n", served.error().c_str());
    return exit_code::kLauncherFailed;
  }
  std::fprintf(stderr, "kiln exec: running the command here: %s\n", served.error().c_str());
  return run_here(options.argv);
}

}  // namespace kiln::client
