#include "client/pool.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.hpp>

#include <cerrno>
#include <cstring>

#include "common/exec_strings.h"
#include "common/exit_codes.h"
#include "common/frame.h"

extern char** environ;

namespace kiln::client {
namespace {

proto::Result error_result(uint64_t id, std::string_view code, const std::string& message) {
  proto::Result r;
  r.id = id;
  r.ok = false;
  r.error = proto::JobError{std::string(code), message, std::nullopt, std::nullopt, std::nullopt};
  return r;
}

}  // namespace

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
  if (!options.distcc_hosts.empty()) args.insert(args.end(), {"--distcc", options.distcc_hosts});
  for (const std::string& tool : options.tools) args.insert(args.end(), {"--tool", tool});
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.insert(env.end(), options.env.begin(), options.env.end());
  ExecStrings argv(std::move(args)), envp(std::move(env));

  const pid_t pid = ::fork();
  if (pid < 0) return fail(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Async-signal-safe only from here: move the link to fd 3 and exec.
    const int fd = ::fcntl(theirs.get(), F_DUPFD, 10);
    ::dup2(fd, 3);
    ::execve(argv.get()[0], argv.get(), envp.get());
    const char msg[] = "kiln: cannot execute kiln-supervisor\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(exit_code::kNotFound);
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
  pool->link_ = DaemonLink(std::move(ours));
  if (Expected<void> hello = pool->link_.read_hello(); !hello) {
    pool->link_.reset();
    ::waitpid(pid, nullptr, 0);
    pool->pid_ = -1;
    return fail(hello.error());
  }
  pool->attach();
  return pool;
}

Expected<std::unique_ptr<Pool>> Pool::connect(const std::string& socket_path,
                                              const std::optional<std::string>& key_id) {
  Expected<DaemonLink> link = DaemonLink::connect(socket_path, key_id);
  if (!link) return fail(link.error(), link.error_code());
  std::unique_ptr<Pool> pool(new Pool());
  pool->link_ = std::move(*link);
  pool->attach();
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

void Pool::attach() { reader_ = std::thread(&Pool::read_loop, this); }

Pool::~Pool() { close(); }

void Pool::disconnect() {
  if (link_) ::shutdown(link_.fd(), SHUT_RDWR);  // the reader sees the end
  if (reader_.joinable()) reader_.join();
  link_.reset();
}

bool Pool::send_frame(const std::string& frame) {
  std::lock_guard lock(write_mu_);
  return link_.send(frame);
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
                      Callback on_result, StatusCallback on_status) {
  uint64_t id;
  std::string gone_why;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    if (gone_) {
      gone_why = gone_why_;
    } else {
      open_.emplace(id, Open{std::move(on_result), std::move(on_status)});
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
      done = std::move(open_.at(id).on_result);
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

Expected<void> Pool::ask(const std::string& frame, uint64_t& asked, const uint64_t& answered,
                         std::chrono::milliseconds timeout, std::unique_lock<std::mutex>& lock) {
  uint64_t mine;
  {
    std::lock_guard write_lock(write_mu_);  // numbered in the order the requests go out
    {
      std::lock_guard counting(mu_);
      mine = ++asked;
    }
    link_.send(frame);  // a failed send shows as the link's end in the reader
  }
  lock = std::unique_lock(mu_);
  stats_cv_.wait_for(lock, timeout, [&] { return answered >= mine || gone_; });
  if (answered >= mine) return {};
  if (gone_) return fail("the supervisor is gone: " + gone_why_);
  return fail("the supervisor did not answer within " + std::to_string(timeout.count()) + " ms");
}

Expected<proto::Stats> Pool::stats(std::chrono::milliseconds timeout) {
  std::string frame;
  proto::encode(proto::StatsRequest{}, frame);
  std::unique_lock<std::mutex> lock;
  Expected<void> answered = ask(frame, stats_asked_, stats_answered_, timeout, lock);
  if (!answered) return fail(answered.error());
  return *latest_stats_;
}

Expected<proto::Traced> Pool::trace(const std::optional<std::string>& file,
                                    std::chrono::milliseconds timeout) {
  std::string frame;
  proto::encode(proto::TraceRequest{file}, frame);
  std::unique_lock<std::mutex> lock;
  Expected<void> answered = ask(frame, traces_asked_, traces_answered_, timeout, lock);
  if (!answered) return fail(answered.error());
  return *latest_traced_;
}

void Pool::read_loop() {
  std::string why = "the supervisor closed the link";
  bool said_why = false;  // an `error` named the reason
  while (std::optional<std::string> body = link_.next_body()) {
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
          done = std::move(it->second.on_result);
          open_.erase(it);
        }
      }
      if (done) done(std::move(*r));
    } else if (auto* status = std::get_if<proto::Status>(&event.value())) {
      StatusCallback said;
      {
        std::lock_guard lock(mu_);
        if (const auto it = open_.find(status->id); it != open_.end()) said = it->second.on_status;
      }
      if (said) said(*status);
    } else if (auto* st = std::get_if<proto::Stats>(&event.value())) {
      std::lock_guard lock(mu_);
      latest_stats_ = std::move(*st);
      ++stats_answered_;
      stats_cv_.notify_all();
    } else if (auto* traced = std::get_if<proto::Traced>(&event.value())) {
      std::lock_guard lock(mu_);
      latest_traced_ = std::move(*traced);
      ++traces_answered_;
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
  std::map<uint64_t, Open> open;
  {
    std::lock_guard lock(mu_);
    gone_ = true;
    gone_why_ = why;
    open.swap(open_);
    stats_cv_.notify_all();
  }
  for (auto& [id, job] : open) job.on_result(error_result(id, proto::code::kShutdown, why));
}

int Pool::shutdown(bool drain) {
  if (!link_) return exit_status_.value_or(exit_code::kOk);
  std::string frame;
  proto::encode(proto::Shutdown{drain}, frame);
  send_frame(frame);
  if (reader_.joinable()) reader_.join();  // until bye and the link's end
  link_.reset();
  if (pid_ <= 0) return exit_code::kOk;  // a daemon: not ours to wait for
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  exit_status_ =
      WIFEXITED(status) ? WEXITSTATUS(status) : exit_code::kSignalBase + WTERMSIG(status);
  return *exit_status_;
}

}  // namespace kiln::client
