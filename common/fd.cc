#include "common/fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

#include "common/exit_codes.h"
#include "common/text.h"

namespace kiln {

void fatal_errno(const char* what) {
  std::fprintf(stderr, "kiln: %s: %s\n", what, std::strerror(errno));
  std::exit(exit_code::kInternal);
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

bool set_cloexec(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) return false;
  int wanted = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  return wanted == flags || ::fcntl(fd, F_SETFD, wanted) == 0;
}

std::vector<int> open_fds(pid_t pid) {
  std::vector<int> fds;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return fds;
  int own = ::dirfd(d);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    // The directory stream's own fd is an artefact of looking, not an fd of the process.
    if (pid == ::getpid() && fd == own) continue;
    fds.push_back(fd);
  }
  ::closedir(d);
  return fds;
}

void cloexec_from(int first_fd) {
  if (::syscall(SYS_close_range, first_fd, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  for (int fd : open_fds(::getpid())) {
    if (fd >= first_fd) set_cloexec(fd);
  }
}

void close_fds_except(const std::vector<int>& keep) {
  // close_range over the gaps between the kept fds (kernel >= 5.9): a /proc/self/fd walk costs
  // a worker's start some 30 us of inodes made for the look. A -1 (never opened) keeps nothing.
  std::vector<int> kept(keep.begin(), keep.end());
  std::sort(kept.begin(), kept.end());
  unsigned first = 3;
  bool closed = true;
  for (int k : kept) {
    if (k < static_cast<int>(first)) continue;  // 0-2, a -1, a duplicate
    if (k > static_cast<int>(first)) {
      closed = closed && ::syscall(SYS_close_range, first, k - 1, 0) == 0;
    }
    first = static_cast<unsigned>(k) + 1;
  }
  if (closed && ::syscall(SYS_close_range, first, ~0U, 0) == 0) return;
  for (int fd : open_fds(::getpid())) {  // no close_range: the walk
    if (fd > 2 && std::find(keep.begin(), keep.end(), fd) == keep.end()) ::close(fd);
  }
}

std::optional<std::pair<UniqueFd, UniqueFd>> try_make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::nullopt;
  return std::pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::pair<UniqueFd, UniqueFd> make_pipe() {
  auto pipe = try_make_pipe();
  if (!pipe) fatal_errno("pipe2");
  return std::move(*pipe);
}

std::optional<std::string> read_small_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n == 0) return out;
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

unsigned long proc_kb(pid_t pid, const char* file, std::string_view key) {
  const auto text = read_small_file("/proc/" + std::to_string(pid) + "/" + file);
  if (!text) return 0;
  for (std::string_view line : split(*text, '\n')) {
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ':') {
      return std::strtoul(std::string(line.substr(key.size() + 1)).c_str(), nullptr, 10);
    }
  }
  return 0;
}

unsigned long rss_kb(pid_t pid) {
  // statm's second field, resident pages, is status's VmRSS; status is some 50 lines the kernel
  // formats to give that one (and the supervisor's stats asks it for every worker).
  const auto text = read_small_file("/proc/" + std::to_string(pid) + "/statm");
  unsigned long size = 0, resident = 0;
  if (!text || std::sscanf(text->c_str(), "%lu %lu", &size, &resident) != 2) return 0;
  return resident * (static_cast<unsigned long>(::sysconf(_SC_PAGESIZE)) / 1024);
}

std::vector<pid_t> child_pids(pid_t pid) {
  const std::string tid = std::to_string(pid);
  const std::string text =
      read_small_file("/proc/" + tid + "/task/" + tid + "/children").value_or("");
  std::vector<pid_t> pids;
  for (std::string_view field : split(text, ' ')) {  // "12 34 " and no newline
    pid_t p = 0;
    if (std::from_chars(field.data(), field.data() + field.size(), p).ec == std::errc()) {
      pids.push_back(p);
    }
  }
  return pids;
}

std::size_t kill_children_except(const std::vector<pid_t>& spare) {
  std::size_t killed = 0;
  for (int round = 0; round < 64; ++round) {
    std::vector<pid_t> doomed;
    for (pid_t pid : child_pids(::getpid())) {
      if (std::find(spare.begin(), spare.end(), pid) == spare.end()) doomed.push_back(pid);
    }
    if (doomed.empty()) break;
    for (pid_t pid : doomed) {
      // Its group too, if it leads one (a command does); a pid that leads no group names no
      // group, so this cannot hit anyone else.
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
    for (pid_t pid : doomed) ::waitpid(pid, nullptr, 0);
    killed += doomed.size();
  }
  return killed;
}

std::string beside_self(std::string_view name) {
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  const std::string self(path, n > 0 ? static_cast<std::size_t>(n) : 0);
  return self.substr(0, self.rfind('/') + 1) + std::string(name);
}

namespace {

bool is_executable_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::vector<std::string> path_candidates(std::string_view file,
                                         std::optional<std::string_view> path) {
  if (file.find('/') != std::string_view::npos) return {std::string(file)};
  std::string_view dirs = path.value_or("/usr/local/bin:/usr/bin:/bin");
  std::vector<std::string> candidates;
  for (;;) {
    const std::size_t colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    candidates.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" +
                         std::string(file));
    if (colon == std::string_view::npos) return candidates;
    dirs.remove_prefix(colon + 1);
  }
}

std::optional<std::string> first_executable(const std::vector<std::string>& candidates) {
  const char* env_path = std::getenv("PATH");
  const auto path = env_path ? std::optional<std::string_view>(env_path) : std::nullopt;
  for (const std::string& c : candidates) {
    for (std::string& full : path_candidates(c, path)) {
      if (is_executable_file(full)) return std::move(full);
    }
  }
  return std::nullopt;
}

void reset_signals_for_exec() {
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

std::vector<int> ignored_signals() {
  std::vector<int> ignored;
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction now = {};
    if (::sigaction(sig, nullptr, &now) == 0 && now.sa_handler == SIG_IGN) ignored.push_back(sig);
  }
  return ignored;
}

void reset_signals_for_exec(const std::vector<int>& ignored) {
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : ignored) ::sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  if (abbrev == nullptr) return "signal " + std::to_string(sig);
  return std::string("SIG") + abbrev;
}

Expected<UniqueFd> open_log_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(),
                     O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
  if (!fd) {
    const int e = errno;
    return fail("cannot open log file " + path + ": " +
                (e == ELOOP ? std::string("it is a symbolic link") : std::strerror(e)));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return fail("cannot open log file " + path + ": not a regular file");
  }
  if ((st.st_mode & 077) != 0) ::fchmod(fd.get(), 0600);
  ::fcntl(fd.get(), F_SETFL, O_WRONLY | O_APPEND);
  return fd;
}

bool send_with_fds(int sock, std::string_view bytes, const std::vector<int>& given) {
  std::array<int, kMaxPassedFds> kept;  // what was given, but the fds that are none (below 0)
  std::size_t count = 0;
  for (int fd : given) {
    if (fd < 0) continue;
    if (count == kMaxPassedFds) {
      errno = EINVAL;
      return false;
    }
    kept[count++] = fd;
  }
  const std::span<const int> fds(kept.data(), count);
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxPassedFds * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  ssize_t n;
  while ((n = ::sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  return n == static_cast<ssize_t>(bytes.size());
}

ssize_t receive_with_fds(int sock, char* buf, std::size_t size, std::vector<UniqueFd>& fds) {
  iovec iov{buf, size};
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxPassedFds * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  // Fds that came are ours to close even when the bytes are cut (MSG_CTRUNC drops the rest).
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n >= 0 && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    for (std::size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  return n;
}

}  // namespace kiln
