#include "client/daemon_link.h"

#include <dlfcn.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/build_key.h"
#include "common/text.h"

namespace kiln::client {
namespace {

// Anyone who can put a socket at a path we connect to (a shared KILN_SOCKET, a directory someone
// else created or swapped) would get every command, directory and environment we send and could
// answer with forged output. The kernel says who listens: only our own user is trusted, checked on
// the connected socket itself, before a byte is sent.
Expected<void> check_peer_is_this_user(int fd, const std::string& socket_path) {
  ucred peer{};
  socklen_t len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) {
    return fail("cannot tell who serves " + socket_path +
                ": getsockopt(SO_PEERCRED): " + std::strerror(errno));
  }
  if (peer.uid != ::getuid()) {
    return fail(socket_path + " is served by uid " + std::to_string(peer.uid) + " (pid " +
                std::to_string(peer.pid) + "), not by this user (uid " +
                std::to_string(::getuid()) + "): refusing to use it");
  }
  return {};
}

}  // namespace

Expected<std::chrono::milliseconds> connect_timeout() {
  const char* text = std::getenv("KILN_CONNECT_TIMEOUT_MS");
  if (text == nullptr || *text == '\0') return kDefaultConnectTimeout;
  if (std::optional<uint64_t> ms = parse_unsigned(text, 10, 1, 3600000)) {
    return std::chrono::milliseconds(*ms);
  }
  return fail(std::string("KILN_CONNECT_TIMEOUT_MS=") + text +
              " is not a number of milliseconds (1 to 3600000)");
}

namespace {

// A blocking connect() on a Unix socket waits while the listener's backlog is full (a daemon
// that stopped accepting); SO_SNDTIMEO bounds that wait (EAGAIN), and each send after it. 0: none.
void set_send_timeout(int fd, int64_t ms) {
  const timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Expected<void> connect_socket(int fd, const std::string& socket_path,
                              std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  set_send_timeout(fd, timeout.count());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return {};
  const int error = errno;
  const std::string why = "cannot connect to " + socket_path + ": " + std::strerror(error);
  if (error == EAGAIN) {
    return fail(socket_path + " did not accept the connection within " +
                    std::to_string(timeout.count()) + " ms: its daemon is stopped or stalled",
                kStalled);
  }
  // Someone listens there, and the path is not ours to use (another user's socket): starting a
  // daemon of our own could not take it over.
  if (error == EACCES || error == EPERM) return fail(why + ": refusing to use it", kRefused);
  return fail(why, kUnreachable);
}

}  // namespace

Expected<DaemonLink> DaemonLink::connect(const std::string& socket_path,
                                         const std::optional<std::string>& key_id,
                                         std::string_view first_frame,
                                         std::optional<std::chrono::milliseconds> timeout) {
  if (socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return fail("socket path too long: " + socket_path);
  }
  Expected<std::chrono::milliseconds> limit = timeout ? *timeout : connect_timeout();
  if (!limit) return fail(limit.error());
  const auto deadline = std::chrono::steady_clock::now() + *limit;
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail(std::string("socket: ") + std::strerror(errno));
  if (Expected<void> connected = connect_socket(fd.get(), socket_path, *limit); !connected) {
    return fail(connected.error(), connected.error_code());
  }
  if (Expected<void> ours = check_peer_is_this_user(fd.get(), socket_path); !ours) {
    return fail(ours.error(), kRefused);
  }
  DaemonLink link(std::move(fd));
  if (Expected<void> hello = link.read_hello(deadline); !hello) {
    if (!link.timed_out_) return fail(hello.error());
    return fail("the daemon on " + socket_path + " did not say hello within " +
                    std::to_string(limit->count()) + " ms: it is stopped or stalled",
                kStalled);
  }
  if (key_id && link.hello_.key_id != *key_id) {
    return fail("the supervisor on " + socket_path + " serves another build (key_id " +
                    link.hello_.key_id + ", not " + *key_id + " of KILN_KEY): refusing to use it",
                kRefused);
  }
  if (!first_frame.empty()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    set_send_timeout(link.fd(), std::max<int64_t>(left.count(), 1));
    // Cut short by the deadline, the frame stays incomplete: the daemon runs nothing of it.
    if (!link.send(first_frame)) {
      const int error = errno;
      return fail("cannot send to " + socket_path + ": " + std::strerror(error),
                  error == EAGAIN ? kStalled : "");
    }
  }
  set_send_timeout(link.fd(), 0);
  return link;
}

Expected<void> DaemonLink::read_hello(
    std::optional<std::chrono::steady_clock::time_point> deadline) {
  std::optional<std::string> body = next_body(deadline);
  Expected<proto::ClientEvent> event =
      body ? proto::decode_client_event(*body) : fail("the supervisor closed before its hello");
  if (!event) return fail(event.error());
  if (auto* error = std::get_if<proto::Error>(&event.value())) {
    return fail("the supervisor refused: " + error->code + ": " + error->message);
  }
  if (!std::holds_alternative<proto::Hello>(event.value())) {
    return fail("the supervisor did not start with hello");
  }
  hello_ = std::get<proto::Hello>(std::move(event.value()));
  return {};
}

std::optional<std::string> DaemonLink::next_body(
    std::optional<std::chrono::steady_clock::time_point> deadline) {
  while (!inbox_.has_body()) {
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(
          *deadline - std::chrono::steady_clock::now());
      pollfd p{fd_.get(), POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) {
        timed_out_ = true;
        return std::nullopt;
      }
    }
    Expected<FrameInbox::Read> read = inbox_.read_from(fd_.get());
    if (!read || *read == FrameInbox::Read::kEnd) return std::nullopt;
  }
  return inbox_.take();
}

bool DaemonLink::send(std::string_view rest) const {
  while (!rest.empty()) {
    const ssize_t n = ::send(fd_.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

Expected<std::optional<std::string>> key_id_from_env() {
  const char* text = std::getenv("KILN_KEY");
  if (text == nullptr || *text == '\0') return std::optional<std::string>();
  std::optional<std::string> key = base64_decode(text);
  if (!key) return fail("KILN_KEY is not valid base64 (standard, with padding)");
  return std::optional<std::string>(kiln::key_id(*key));
}

namespace {

// The directory of the file this code was loaded from: the shared library when the client is
// one, else the program.
std::string this_code_dir() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&this_code_dir), &info) == 0 || info.dli_fname == nullptr) {
    return beside_self("");
  }
  std::string file = info.dli_fname;
  return file.substr(0, file.rfind('/') + 1);
}

}  // namespace

Expected<std::string> find_supervisor(const std::string& given) {
  if (!given.empty()) {
    if (first_executable({given})) return given;
    return fail("kiln-supervisor not found: " + given + " is not an executable file");
  }
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("KILN_SUPERVISOR"); env != nullptr && *env != '\0') {
    candidates.emplace_back(env);
  }
  candidates.push_back(beside_self("kiln-supervisor"));                 // build tree, bin/
  candidates.push_back(this_code_dir() + "../bin/kiln-supervisor");     // PREFIX/lib/libkiln-client
  candidates.push_back(this_code_dir() + "../../bin/kiln-supervisor");  // PREFIX/lib/<triplet>/
  candidates.emplace_back("kiln-supervisor");                           // $PATH
  if (std::optional<std::string> found = first_executable(candidates)) return *found;
  std::string looked;
  for (const std::string& c : candidates) looked += (looked.empty() ? "" : ", ") + c;
  return fail("kiln-supervisor not found (looked at " + looked + " in $PATH)");
}

}  // namespace kiln::client
