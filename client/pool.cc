#include "client/pool.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.hpp>

#include <cerrno>
#include <cstring>

#include "common/build_key.h"
#include "common/frame.h"

extern char** environ;

namespace kiln::client {
namespace {

proto::Result error_result(uint64_t id, std::string_view code, const std::string& message) {
  proto::Result r;
  r.id = id;
  r.ok = false;
  r.error = proto::JobError{std::string(code), message, std::nullopt, std::nullopt};
  return r;
}

// Reads one frame body from a blocking fd; nullopt at end of input or on error.
std::optional<std::string> read_frame(int fd, FrameReader& reader,
                                      std::vector<std::string>& ready) {
  while (ready.empty()) {
    char buf[64 << 10];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (!reader.feed(std::string_view(buf, static_cast<std::size_t>(n)), [&](std::string_view b) {
          ready.emplace_back(b);
          return true;
        })) {
      return std::nullopt;
    }
  }
  std::string body = std::move(ready.front());
  ready.erase(ready.begin());
  return body;
}

}  // namespace

proto::RawObject exec_payload(const ExecRequest& r) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  const uint32_t fields = 1 + (r.cwd ? 1 : 0) + (r.env.empty() ? 0 : 1) + (r.clear_env ? 1 : 0) +
                          (r.stdin_data ? 1 : 0) + (r.umask ? 1 : 0) + (r.nice ? 1 : 0) +
                          (r.rlimits.empty() ? 0 : 1);
  pk.pack_map(fields);
  pk.pack("argv");
  pk.pack(r.argv);
  if (r.cwd) {
    pk.pack("cwd");
    pk.pack(*r.cwd);
  }
  if (!r.env.empty()) {
    pk.pack("env");
    pk.pack_map(static_cast<uint32_t>(r.env.size()));
    for (const auto& [k, v] : r.env) {
      pk.pack(k);
      pk.pack(v);
    }
  }
  if (r.clear_env) {
    pk.pack("clear_env");
    pk.pack(true);
  }
  if (r.stdin_data) {
    pk.pack("stdin");
    pk.pack_bin(static_cast<uint32_t>(r.stdin_data->size()));
    pk.pack_bin_body(r.stdin_data->data(), static_cast<uint32_t>(r.stdin_data->size()));
  }
  if (r.umask) {
    pk.pack("umask");
    pk.pack_uint32(*r.umask);
  }
  if (r.nice) {
    pk.pack("nice");
    pk.pack_int32(*r.nice);
  }
  if (!r.rlimits.empty()) {
    pk.pack("rlimits");
    pk.pack_map(static_cast<uint32_t>(r.rlimits.size()));
    for (const auto& [name, limit] : r.rlimits) {
      pk.pack(name);
      pk.pack_array(2);
      pk.pack_uint64(limit.first);
      pk.pack_uint64(limit.second);
    }
  }
  return proto::RawObject{std::string(buf.data(), buf.size())};
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

Expected<std::unique_ptr<Pool>> Pool::start(const PoolOptions& options) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return fail(std::string("socketpair: ") + std::strerror(errno));
  }
  UniqueFd ours(sv[0]), theirs(sv[1]);
  Expected<std::string> path = find_supervisor(options.supervisor);
  if (!path) return fail(path.error());
  std::vector<std::string> args = {*path, "--read-fd", "3", "--write-fd", "3"};
  args.insert(args.end(), options.args.begin(), options.args.end());
  for (const std::string& tool : options.tools) args.insert(args.end(), {"--tool", tool});
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.insert(env.end(), options.env.begin(), options.env.end());
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) return fail(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Async-signal-safe only from here: move the link to fd 3 and exec.
    const int fd = ::fcntl(theirs.get(), F_DUPFD, 10);
    ::dup2(fd, 3);
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "kiln: cannot execute kiln-supervisor\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  theirs.reset();
  std::unique_ptr<Pool> pool(new Pool());
  pool->pid_ = pid;
  for (std::size_t i = 0; i + 1 < options.args.size(); ++i) {
    // A bad value is the supervisor's to refuse; here it just leaves the default.
    if (options.args[i] == "--max-frame") {
      const unsigned long v = std::strtoul(options.args[i + 1].c_str(), nullptr, 10);
      if (v > 0 && v <= UINT32_MAX) pool->max_frame_ = static_cast<uint32_t>(v);
    }
  }
  pool->link_ = std::move(ours);
  if (Expected<bool> attached = pool->attach(); !attached) {
    pool->link_.reset();
    ::waitpid(pid, nullptr, 0);
    pool->pid_ = -1;
    return fail(attached.error());
  }
  return pool;
}

Expected<std::optional<std::string>> key_id_from_env() {
  const char* text = std::getenv("KILN_KEY");
  if (text == nullptr || *text == '\0') return std::optional<std::string>();
  std::optional<std::string> key = base64_decode(text);
  if (!key) return fail("KILN_KEY is not valid base64 (standard, with padding)");
  return std::optional<std::string>(kiln::key_id(*key));
}

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

Expected<std::unique_ptr<Pool>> Pool::connect(const std::string& socket_path,
                                              const std::optional<std::string>& key_id) {
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
  std::unique_ptr<Pool> pool(new Pool());
  pool->link_ = std::move(fd);
  if (Expected<bool> attached = pool->attach(); !attached) return fail(attached.error());
  if (key_id && pool->hello_.key_id != *key_id) {
    const std::string theirs = pool->hello_.key_id;
    pool->disconnect();
    return fail("the supervisor on " + socket_path + " serves another build (key_id " + theirs +
                    ", not " + *key_id + " of KILN_KEY): refusing to use it",
                kRefused);
  }
  return pool;
}

Expected<std::unique_ptr<Pool>> Pool::open(const PoolOptions& options) {
  return options.socket.empty() ? start(options) : connect(options.socket, options.key_id);
}

void Pool::close() {
  if (pid_ > 0) {
    shutdown(false);
  } else {
    disconnect();
  }
}

Expected<bool> Pool::attach() {
  FrameReader reader;
  std::vector<std::string> ready;
  std::optional<std::string> body = read_frame(link_.get(), reader, ready);
  Expected<proto::ClientEvent> event =
      body ? proto::decode_client_event(*body) : fail("the supervisor closed before its hello");
  if (!event) return fail(event.error());
  if (auto* error = std::get_if<proto::Error>(&event.value())) {
    return fail("the supervisor refused: " + error->code + ": " + error->message);
  }
  if (!std::holds_alternative<proto::Hello>(event.value())) {
    return fail("the supervisor did not start with hello");
  }
  hello_ = std::get<proto::Hello>(event.value());
  reader_ = std::thread(&Pool::read_loop, this);
  return true;
}

Pool::~Pool() { close(); }

void Pool::disconnect() {
  if (link_) ::shutdown(link_.get(), SHUT_RDWR);  // the reader sees the end
  if (reader_.joinable()) reader_.join();
  link_.reset();
}

bool Pool::send_frame(const std::string& frame) {
  std::lock_guard lock(write_mu_);
  return write_all(frame);
}

bool Pool::write_all(std::string_view rest) {
  while (!rest.empty()) {
    const ssize_t n = ::send(link_.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::future<proto::Result> Pool::submit(const std::string& kind, proto::RawObject payload,
                                        std::optional<uint64_t> timeout_ms,
                                        std::optional<int64_t> priority) {
  auto promise = std::make_shared<std::promise<proto::Result>>();
  std::future<proto::Result> future = promise->get_future();
  submit(kind, std::move(payload), timeout_ms, priority,
         [promise](proto::Result r) { promise->set_value(std::move(r)); });
  return future;
}

uint64_t Pool::submit(const std::string& kind, proto::RawObject payload,
                      std::optional<uint64_t> timeout_ms, std::optional<int64_t> priority,
                      Callback on_result) {
  uint64_t id;
  std::string gone_why;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    if (gone_) {
      gone_why = gone_why_;
    } else {
      open_.emplace(id, std::move(on_result));
    }
  }
  if (on_result) {  // still ours: the supervisor is gone
    on_result(error_result(id, proto::code::kShutdown, gone_why));
    return id;
  }
  std::string frame;
  proto::encode(proto::Submit{id, kind, std::move(payload), timeout_ms, priority}, frame);
  if (frame.size() - kFrameHeaderSize > max_frame_) {
    // The supervisor would have to end the whole connection for it (a protocol error), and
    // every other job with it: this one job is refused here instead.
    Callback done;
    {
      std::lock_guard lock(mu_);
      done = std::move(open_.at(id));
      open_.erase(id);
    }
    done(error_result(id, proto::code::kBadPayload,
                      "the job is " + std::to_string(frame.size() - kFrameHeaderSize) +
                          " bytes encoded, more than the maximum frame of " +
                          std::to_string(max_frame_) + " bytes (--max-frame)"));
    return id;
  }
  send_frame(frame);  // a failed send shows as the link's end in the reader
  return id;
}

std::future<proto::Result> Pool::exec(const ExecRequest& request) {
  return submit("exec", exec_payload(request), request.timeout_ms);
}

void Pool::cancel(uint64_t id) {
  std::string frame;
  proto::encode(proto::Cancel{id}, frame);
  send_frame(frame);
}

void Pool::quiesce() {
  std::string frame;
  proto::encode(proto::Quiesce{}, frame);
  send_frame(frame);
}

void Pool::wakeup() {
  std::string frame;
  proto::encode(proto::Wakeup{}, frame);
  send_frame(frame);
}

Expected<proto::Stats> Pool::stats(std::chrono::milliseconds timeout) {
  std::string frame;
  proto::encode(proto::StatsRequest{}, frame);
  uint64_t mine;
  {
    std::lock_guard write_lock(write_mu_);  // numbered in the order the requests go out
    {
      std::lock_guard lock(mu_);
      mine = ++stats_asked_;
    }
    write_all(frame);  // a failed send shows as the link's end in the reader
  }
  std::unique_lock lock(mu_);
  stats_cv_.wait_for(lock, timeout, [&] { return stats_answered_ >= mine || gone_; });
  if (stats_answered_ >= mine) return *latest_stats_;
  if (gone_) return fail("the supervisor is gone: " + gone_why_);
  return fail("the supervisor did not answer stats within " + std::to_string(timeout.count()) +
              " ms");
}

void Pool::read_loop() {
  FrameReader reader;
  std::vector<std::string> ready;
  std::string why = "the supervisor closed the link";
  bool said_why = false;  // an `error` named the reason
  while (std::optional<std::string> body = read_frame(link_.get(), reader, ready)) {
    Expected<proto::ClientEvent> event = proto::decode_client_event(*body);
    if (!event) {
      why = "the supervisor broke the protocol: " + event.error();
      break;
    }
    if (auto* r = std::get_if<proto::Result>(&event.value())) {
      Callback done;
      {
        std::lock_guard lock(mu_);
        const auto it = open_.find(r->id);
        if (it != open_.end()) {
          done = std::move(it->second);
          open_.erase(it);
        }
      }
      if (done) done(std::move(*r));
    } else if (auto* st = std::get_if<proto::Stats>(&event.value())) {
      std::lock_guard lock(mu_);
      latest_stats_ = std::move(*st);
      ++stats_answered_;
      stats_cv_.notify_all();
    } else if (auto* err = std::get_if<proto::Error>(&event.value())) {
      why = "the supervisor ended the connection: " + err->code + ": " + err->message;
      said_why = true;
    } else if (std::holds_alternative<proto::Bye>(event.value()) && !said_why) {
      // After an `error`, the bye that may follow must not hide why the connection ended.
      why = "the supervisor shut down";
    }
  }
  fail_open(why);
}

void Pool::fail_open(const std::string& why) {
  std::map<uint64_t, Callback> open;
  {
    std::lock_guard lock(mu_);
    gone_ = true;
    gone_why_ = why;
    open.swap(open_);
    stats_cv_.notify_all();
  }
  for (auto& [id, done] : open) done(error_result(id, proto::code::kShutdown, why));
}

int Pool::shutdown(bool drain) {
  if (!link_) return exit_status_.value_or(0);
  std::string frame;
  proto::encode(proto::Shutdown{drain}, frame);
  send_frame(frame);
  if (reader_.joinable()) reader_.join();  // until bye and the link's end
  link_.reset();
  if (pid_ <= 0) return 0;  // a daemon: not ours to wait for
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return *exit_status_;
}

}  // namespace kiln::client
