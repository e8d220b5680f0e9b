#include "tests/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>

extern char** environ;

namespace kiln::testing {

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto pause = 1ms;
  for (;;) {
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

Child Child::spawn(const Spec& spec) {
  std::vector<char*> argv, envp;
  std::vector<std::string> args = spec.argv, env = spec.env;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) fatal_errno("fork");
  if (pid == 0) {
    // Move every source fd out of the way first, so that a target number that is also a source
    // number is not overwritten before it is copied.
    std::vector<int> moved;
    for (const auto& [target, source] : spec.fds) moved.push_back(::fcntl(source, F_DUPFD, 100));
    for (std::size_t i = 0; i < spec.fds.size(); ++i) ::dup2(moved[i], spec.fds[i].first);
    for (int fd : moved) ::close(fd);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  Child c;
  c.pid_ = pid;
  return c;
}

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    this->~Child();
    pid_ = std::exchange(o.pid_, -1);
    status_ = std::exchange(o.status_, std::nullopt);
  }
  return *this;
}

Child::~Child() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::optional<int> Child::wait(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  int status = 0;
  wait_until(
      [&] {
        if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
        return status_.has_value();
      },
      timeout);
  return status_;
}

int Child::exit_code(std::chrono::milliseconds timeout) {
  const std::optional<int> s = wait(timeout);
  if (!s) return -1000;
  return WIFEXITED(*s) ? WEXITSTATUS(*s) : -WTERMSIG(*s);
}

void Child::kill(int sig) const {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

std::vector<std::string> environment_with(const std::vector<std::string>& extra,
                                          const std::vector<std::string>& drop) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool skip = false;
    for (const auto& d : drop) skip = skip || d == name;
    for (const auto& x : extra) skip = skip || x.substr(0, x.find('=')) == name;
    if (!skip) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

bool FrameChannel::write_bytes(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(write_.get(), bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

FrameChannel::Status FrameChannel::read_body(std::string& body, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!inbox_.has_body()) {
    if (failed_) return Status::kError;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Status::kTimeout;
    pollfd p{read_.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Status::kTimeout;
    Expected<FrameInbox::Read> read = inbox_.read_from(read_.get());
    if (!read && read.error_code() != FrameInbox::kReadFailed) {
      error_ = read.error();
      failed_ = true;  // the bodies before the bad frame are handed out first
    } else if (!read || *read == FrameInbox::Read::kEnd) {
      return Status::kEnd;
    }
  }
  body = inbox_.take();
  return Status::kFrame;
}

std::pair<UniqueFd, UniqueFd> pipe_pair() { return make_pipe(); }

std::string read_all(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

Ran run_to_end(const std::vector<std::string>& argv, const RunSpec& spec) {
  auto [in_read, in_write] = pipe_pair();
  auto [out_read, out_write] = pipe_pair();
  auto [err_read, err_write] = pipe_pair();
  const UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int in = spec.input ? in_read.get() : spec.stdin_fd >= 0 ? spec.stdin_fd : null.get();
  Child c = Child::spawn({argv,
                          environment_with(spec.env, spec.drop),
                          {{0, in}, {1, out_write.get()}, {2, err_write.get()}}});
  in_read.reset();
  out_write.reset();
  err_write.reset();
  if (spec.input) (void)!::write(in_write.get(), spec.input->data(), spec.input->size());
  in_write.reset();
  Ran r;
  r.out = read_all(out_read.get(), spec.timeout);
  r.err = read_all(err_read.get(), 10s);
  r.status = c.exit_code(spec.timeout);
  return r;
}

namespace {

// Fields of /proc/PID/stat after the command name: state is [0], pgrp is [2].
std::vector<std::string> stat_fields(pid_t pid) {
  const std::string line = read_small_file("/proc/" + std::to_string(pid) + "/stat").value_or("");
  const auto close = line.rfind(')');
  std::vector<std::string> fields;
  if (close == std::string::npos) return fields;
  std::istringstream rest(line.substr(close + 2));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

}  // namespace

std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir("/proc"), ::closedir);
  if (!d) return pids;
  while (const dirent* e = ::readdir(d.get())) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid > 0) pids.push_back(pid);
  }
  return pids;
}

std::vector<pid_t> processes_in_group(pid_t pgid) {
  std::vector<pid_t> pids;
  for (pid_t pid : all_pids()) {
    const auto f = stat_fields(pid);
    if (f.size() > 2 && f[0] != "Z" && std::atoi(f[2].c_str()) == pgid) pids.push_back(pid);
  }
  return pids;
}

std::vector<pid_t> processes_with(const std::string& needle) {
  std::vector<pid_t> pids;
  for (pid_t pid : all_pids()) {
    std::string cmd = read_small_file("/proc/" + std::to_string(pid) + "/cmdline").value_or("");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find(needle) != std::string::npos && is_running(pid)) pids.push_back(pid);
  }
  return pids;
}

bool is_running(pid_t pid) {
  const auto f = stat_fields(pid);
  return !f.empty() && f[0] != "Z" && f[0] != "X";
}

bool gone_within(pid_t pid, std::chrono::milliseconds timeout) {
  return wait_until(
      [pid] {
        while (::waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        return !is_running(pid);
      },
      timeout);
}

std::vector<std::pair<int, std::string>> fd_targets(pid_t pid) {
  std::vector<std::pair<int, std::string>> out;
  for (int fd : open_fds(pid)) {
    char target[256] = {};
    const std::string link = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    out.emplace_back(fd, n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "?");
  }
  return out;
}

}  // namespace kiln::testing
