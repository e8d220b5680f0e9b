#include "client/tool_zygote.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/exit_codes.h"
#include "common/fd.h"
#include "common/frame.h"
#include "common/protocol.h"

namespace kiln::tool {
namespace {

constexpr int kListenerFd = 3;
constexpr int kForkFds = 5;  // stdin, output, commands, events, a pidfd of the worker
constexpr uint32_t kMaxFrame = 4096;
constexpr int kRequestTimeoutMs = 5000;

// Threads of the runtime that are not the tool's: TSan's background thread (docs/pitfalls.md).
#if defined(__SANITIZE_THREAD__)
constexpr std::size_t kRuntimeThreads = 1;
#else
constexpr std::size_t kRuntimeThreads = 0;
#endif

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

std::size_t thread_count() {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// A worker's `fork` and its fds, or false (then every fd that came is closed).
bool receive_fork(int sock, std::vector<int>& fds) {
  FrameReader reader(kMaxFrame);
  std::optional<std::string> body;
  while (!body) {
    pollfd p{sock, POLLIN, 0};
    if (::poll(&p, 1, kRequestTimeoutMs) <= 0) break;
    char buf[256];
    std::vector<UniqueFd> got;
    const ssize_t n = receive_with_fds(sock, buf, sizeof buf, got);
    for (UniqueFd& fd : got) fds.push_back(fd.release());
    if (n <= 0) break;
    Expected<void> fed =
        reader.feed(std::string_view(buf, static_cast<std::size_t>(n)), [&](std::string_view b) {
          body.emplace(b);
          return false;
        });
    if (!fed && !body) break;
  }
  if (body && fds.size() == kForkFds && proto::decode_zygote_request(*body).ok()) return true;
  for (int fd : fds) ::close(fd);
  return false;
}

struct Child {
  pid_t pid;
  int conn, pidfd;
  bool exited = false, released = false;
};

// The forked tool: its group, its fds, its watch on its worker. Returns to serve().
void become_tool(std::vector<int>& fds, const std::vector<int>& zygote_fds) {
  ::setpgid(0, 0);
  for (int fd : zygote_fds) ::close(fd);
  std::vector<int> high;
  for (int fd : fds) high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 10));
  for (int fd : fds) ::close(fd);
  const int targets[4] = {0, 1, 3, 4};
  for (int i = 0; i < 4; ++i) {
    if (::dup2(high[static_cast<std::size_t>(i)], targets[i]) < 0) ::_exit(exit_code::kInternal);
    ::close(high[static_cast<std::size_t>(i)]);
  }
  ::dup2(1, 2);
  ::unsetenv("KILN_ZYGOTE");
  // Dies with its worker, whatever it runs: its whole group with it.
  std::thread([worker = high[4]] {
    pollfd p{worker, POLLIN, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
    ::kill(0, SIGKILL);
  }).detach();
}

class Zygote {
 public:
  Zygote(int parent_fd, std::string refusal)
      : parent_fd_(parent_fd), refusal_(std::move(refusal)) {}
  // nullopt in a forked tool.
  std::optional<int> run();

 private:
  bool accept_one();  // true in a forked tool
  void maybe_reap(Child& c);

  int parent_fd_;
  std::string refusal_;
  std::map<int, Child> children_;  // by pidfd
};

void Zygote::maybe_reap(Child& c) {
  if (!c.exited || !c.released) return;
  int status = 0;
  while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
  }
  proto::ZygoteExited exited{static_cast<uint64_t>(c.pid), 0, 0};
  if (WIFSIGNALED(status))
    exited.signal = static_cast<uint64_t>(WTERMSIG(status));
  else
    exited.status = static_cast<uint64_t>(WEXITSTATUS(status));
  std::string frame;
  proto::encode(exited, frame);
  (void)send_with_fds(c.conn, frame, {});  // a worker that is gone needs no answer
  ::close(c.conn);
  const int pidfd = c.pidfd;
  children_.erase(pidfd);
  ::close(pidfd);
}

bool Zygote::accept_one() {
  const int conn = ::accept4(kListenerFd, nullptr, nullptr, SOCK_CLOEXEC);
  if (conn < 0) return false;
  ucred cred{};
  socklen_t len = sizeof cred;
  std::vector<int> fds;
  if (::getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::getuid() ||
      !receive_fork(conn, fds)) {
    ::close(conn);
    return false;
  }
  if (!refusal_.empty()) {
    std::string frame;
    proto::encode(proto::ZygoteRefused{refusal_}, frame);
    (void)send_with_fds(conn, frame, {});
    for (int fd : fds) ::close(fd);
    ::close(conn);
    return false;
  }
  std::vector<int> own = {kListenerFd, parent_fd_, conn};
  for (const auto& [pidfd, c] : children_) own.insert(own.end(), {pidfd, c.conn});
  const pid_t pid = ::fork();
  if (pid == 0) {
    become_tool(fds, own);
    return true;
  }
  for (int fd : fds) ::close(fd);
  if (pid < 0) {
    ::close(conn);
    return false;
  }
  ::setpgid(pid, pid);
  const int pidfd = pidfd_open(pid);
  std::string frame;
  proto::encode(proto::ZygoteForked{static_cast<uint64_t>(pid)}, frame);
  (void)send_with_fds(conn, frame, {pidfd});
  children_[pidfd] = Child{pid, conn, pidfd};
  return false;
}

std::optional<int> Zygote::run() {
  for (;;) {
    std::vector<pollfd> fds = {{kListenerFd, POLLIN, 0}, {parent_fd_, POLLIN, 0}};
    for (const auto& [pidfd, c] : children_) {
      if (!c.exited) fds.push_back({pidfd, POLLIN, 0});
      if (!c.released) fds.push_back({c.conn, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return exit_code::kInternal;
    }
    if (fds[1].revents != 0) return exit_code::kOk;  // the tools go on: each watches its worker
    for (std::size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      for (auto it = children_.begin(); it != children_.end(); ++it) {
        Child& c = it->second;
        if (fds[i].fd == c.pidfd) c.exited = true;
        if (fds[i].fd == c.conn) {
          char buf[64];
          if (::read(c.conn, buf, sizeof buf) > 0) break;  // nothing else is expected
          c.released = true;
        }
        if (fds[i].fd == c.pidfd || fds[i].fd == c.conn) {
          maybe_reap(c);
          break;
        }
      }
    }
    if (fds[0].revents != 0 && accept_one()) return std::nullopt;
  }
}

}  // namespace

std::optional<int> run_zygote() {
  const pid_t parent = static_cast<pid_t>(std::atoi(std::getenv("KILN_ZYGOTE")));
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a fork clears it: the tools do not die with the zygote
  const int parent_fd = pidfd_open(parent);
  if (parent_fd < 0 || ::getppid() != parent) return exit_code::kOk;
  std::string refusal;
  if (const std::size_t n = thread_count() - kRuntimeThreads; n > 1) {
    refusal = "the tool started " + std::to_string(n - 1) + " thread(s) before serve()";
    std::fprintf(stderr, "kiln tool zygote: will not fork tools: %s\n", refusal.c_str());
  }
  return Zygote(parent_fd, refusal).run();
}

}  // namespace kiln::tool
