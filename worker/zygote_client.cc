#include "worker/zygote_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <variant>

#include "common/fd.h"
#include "common/frame.h"
#include "common/protocol.h"

namespace kiln::worker {
namespace {

using Clock = std::chrono::steady_clock;

// The zygote's answers are small; anything larger is not one.
constexpr uint32_t kMaxZygoteFrame = 4096;

Expected<UniqueFd> connect_to(const std::string& address) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const bool abstract = !address.empty() && address[0] == '@';
  if (address.size() >= sizeof addr.sun_path) return fail("the zygote's address is too long");
  std::memcpy(addr.sun_path, address.data(), address.size());
  if (abstract) addr.sun_path[0] = '\0';
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail(std::string("socket: ") + std::strerror(errno));
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  int rc;
  while ((rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len)) != 0 &&
         errno == EINTR) {
  }
  if (rc != 0) return fail(std::string("connect: ") + std::strerror(errno));
  return fd;
}

// Reads the next message (and the fd that may come with it) until the deadline (none: wait).
Expected<proto::ZygoteEvent> receive(int sock, FrameReader& reader, UniqueFd* fd,
                                     std::optional<Clock::time_point> deadline) {
  std::optional<std::string> body;
  for (;;) {
    int timeout = -1;
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      timeout = static_cast<int>(std::max<long long>(0, left.count()));
    }
    pollfd p{sock, POLLIN, 0};
    const int ready = ::poll(&p, 1, timeout);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return fail("no answer in time");
    char buf[512];
    std::vector<UniqueFd> got;
    const ssize_t n = receive_with_fds(sock, buf, sizeof buf, got);
    if (fd != nullptr && !*fd && !got.empty()) *fd = std::move(got[0]);  // any other is closed
    if (n < 0) return fail(std::string("recvmsg: ") + std::strerror(errno));
    if (n == 0) return fail("the zygote closed the connection");
    Expected<void> fed = reader.feed(std::string_view(buf, static_cast<std::size_t>(n)),
                                     [&body](std::string_view b) {
                                       body.emplace(b);
                                       return false;  // one message at a time: nothing follows it
                                     });
    if (body) return proto::decode_zygote_event(*body);
    if (!fed) return fail("a bad frame: " + fed.error());
  }
}

}  // namespace

Expected<ZygoteChild> fork_from_zygote(const std::string& address, const ZygoteFds& fds) {
  Expected<UniqueFd> sock = connect_to(address);
  if (!sock) return fail(sock.error());
  UniqueFd self(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
  if (!self) return fail(std::string("pidfd_open: ") + std::strerror(errno));
  std::string frame;
  proto::encode(proto::ZygoteFork{static_cast<uint64_t>(::getpid())}, frame);
  if (!send_with_fds(sock->get(), frame,
                     {fds.devnull, fds.output, fds.commands, fds.events, self.get()})) {
    return fail(std::string("sendmsg: ") + std::strerror(errno));
  }
  FrameReader reader(kMaxZygoteFrame);
  ZygoteChild child;
  Expected<proto::ZygoteEvent> answer = receive(sock->get(), reader, &child.pidfd, std::nullopt);
  if (!answer) return fail(answer.error());
  if (auto* refused = std::get_if<proto::ZygoteRefused>(&*answer)) {
    return fail("it refused: " + refused->message);
  }
  auto* forked = std::get_if<proto::ZygoteForked>(&*answer);
  if (forked == nullptr || forked->pid == 0 || forked->pid > INT32_MAX || !child.pidfd) {
    return fail("its answer was not a forked tool with a pidfd");
  }
  child.pid = static_cast<pid_t>(forked->pid);
  child.link = std::move(*sock);
  return child;
}

std::string await_zygote_exit(ZygoteChild& child, Clock::time_point deadline) {
  ::shutdown(child.link.get(), SHUT_WR);  // the worker lets go: the zygote may reap it
  FrameReader reader(kMaxZygoteFrame);
  Expected<proto::ZygoteEvent> answer = receive(child.link.get(), reader, nullptr, deadline);
  child.link.reset();
  if (!answer) return "ended (how is unknown: " + answer.error() + ")";
  auto* exited = std::get_if<proto::ZygoteExited>(&*answer);
  if (exited == nullptr) return "ended (how is unknown: the zygote said something else)";
  if (exited->signal != 0) return "was killed by " + signal_name(static_cast<int>(exited->signal));
  return "exited with status " + std::to_string(exited->status);
}

}  // namespace kiln::worker
