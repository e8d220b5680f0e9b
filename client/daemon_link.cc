#include "client/daemon_link.h"

#include <dlfcn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/build_key.h"

namespace kiln::client {
namespace {

// Anyone who can put a socket at a path we connect to (a shared KILN_SOCKET, a directory someone
// else created or swapped) would get every command, directory and environment we send and could
// answer with forged output. The kernel says who listens: only our own user is trusted, checked on
// the connected socket itself, before a byte is sent.
Expected<bool> check_peer_is_this_user(int fd, const std::string& socket_path) {
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
  return true;
}

}  // namespace

Expected<DaemonLink> DaemonLink::connect(const std::string& socket_path,
                                         const std::optional<std::string>& key_id,
                                         std::string_view first_frame) {
  sockaddr_un addr{};
  if (socket_path.size() >= sizeof addr.sun_path)
    return fail("socket path too long: " + socket_path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail(std::string("socket: ") + std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return fail("cannot connect to " + socket_path + ": " + std::strerror(errno), kUnreachable);
  }
  if (Expected<bool> ours = check_peer_is_this_user(fd.get(), socket_path); !ours) {
    return fail(ours.error(), kRefused);
  }
  DaemonLink link(std::move(fd));
  const auto send_first = [&]() -> Expected<bool> {
    if (first_frame.empty() || link.send(first_frame)) return true;
    return fail("cannot send to " + socket_path + ": " + std::strerror(errno));
  };
  if (!key_id) {
    if (Expected<bool> sent = send_first(); !sent) {
      // A supervisor that refuses us (too_many_connections) may close before our frame is in:
      // what it said first is the reason to give.
      Expected<bool> hello = link.read_hello();
      return fail(hello ? sent.error() : hello.error());
    }
  }
  if (Expected<bool> hello = link.read_hello(); !hello) return fail(hello.error());
  if (key_id && link.hello_.key_id != *key_id) {
    return fail("the supervisor on " + socket_path + " serves another build (key_id " +
                    link.hello_.key_id + ", not " + *key_id + " of KILN_KEY): refusing to use it",
                kRefused);
  }
  if (key_id) {
    if (Expected<bool> sent = send_first(); !sent) return fail(sent.error());
  }
  return link;
}

Expected<bool> DaemonLink::read_hello() {
  std::optional<std::string> body = next_body();
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
  return true;
}

std::optional<std::string> DaemonLink::next_body() {
  while (ready_.empty()) {
    char buf[64 << 10];
    const ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (!reader_.feed(std::string_view(buf, static_cast<std::size_t>(n)), [&](std::string_view b) {
          ready_.emplace_back(b);
          return true;
        })) {
      return std::nullopt;
    }
  }
  std::string body = std::move(ready_.front());
  ready_.pop_front();
  return body;
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
