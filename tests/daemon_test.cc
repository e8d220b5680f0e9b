// The shared daemon (kiln-supervisor --listen) and the commands that use it, as real processes.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>
#include <tuple>

#include "client/json_msgpack.h"
#include "client/pool.h"
#include "common/build_key.h"
#include "common/exit_codes.h"
#include "common/fd.h"
#include "common/version.h"
#include "tests/process.h"

namespace kiln::client {
namespace {

using kiln::testing::Child;
using kiln::testing::environment_with;
using kiln::testing::pipe_pair;
using kiln::testing::processes_with;
using kiln::testing::Ran;
using kiln::testing::read_all;
using kiln::testing::RunSpec;
using kiln::testing::wait_until;
using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/kiln-daemon-XXXXXX";
    path_ = ::mkdtemp(t);
  }
  ~TempDir() { std::system(("rm -rf " + path_).c_str()); }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

Child start_daemon(const std::string& socket, std::vector<std::string> extra = {},
                   int err_fd = -1) {
  std::vector<std::string> argv = {KILN_SUPERVISOR_PATH, "--listen",   socket, "--workers", "2",
                                   "--enable-selftest",  "--grace-ms", "300"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  std::vector<std::pair<int, int>> fds;
  if (err_fd >= 0) fds.emplace_back(2, err_fd);
  return Child::spawn({argv, environment_with({}, {"SPDLOG_LEVEL", "KILN_KEY"}), fds});
}

TEST(Daemon, SocketIsPrivateAndServesManyClientsAtOnce) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock);
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  struct stat st;
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      Expected<std::unique_ptr<Pool>> pool = Pool::connect(sock);
      if (!pool) return;
      // Every connection has its own id space: all use ids 1..40.
      std::vector<std::future<proto::Result>> f;
      for (int i = 0; i < 40; ++i) f.push_back((*pool)->submit("echo", to_msgpack(c * 100 + i)));
      for (int i = 0; i < 40; ++i) {
        const proto::Result r = f[i].get();
        if (r.ok && to_json(*r.value) == c * 100 + i) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 240);
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
  EXPECT_FALSE(exists(sock)) << "SIGTERM removes the socket file";
}

TEST(Daemon, RefusesPeersOfAnotherUser) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock);
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  // Open the path itself so that only the peer-uid check stands in the way.
  ::chmod((dir / "").c_str(), 0755);
  ::chmod(sock.c_str(), 0666);
  auto [report_read, report_write] = pipe_pair();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, sock.data(), sock.size());
  const pid_t child = ::fork();
  if (child == 0) {
    // A raw connection: Pool::connect would refuse a daemon of another user first.
    if (::setuid(65534) != 0) ::_exit(3);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ::_exit(4);
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
      (void)!::write(report_write.get(), buf, static_cast<std::size_t>(n));
    }
    ::_exit(0);
  }
  report_write.reset();
  const std::string sent = read_all(report_read.get(), 10s);
  ::waitpid(child, nullptr, 0);
  FrameReader reader;
  std::vector<std::string> bodies;
  ASSERT_TRUE(reader.feed(sent, [&](std::string_view b) {
    bodies.emplace_back(b);
    return true;
  }));
  ASSERT_EQ(bodies.size(), 1u) << "one error, then the connection ends";
  Expected<proto::ClientEvent> event = proto::decode_client_event(bodies[0]);
  ASSERT_TRUE(event) << event.error();
  EXPECT_EQ(std::get<proto::Error>(*event),
            (proto::Error{"permission_denied", "this kiln-supervisor serves only uid 0"}));
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

// A forger: a process of another user (an unused uid, which root may take without an account)
// listening on `socket`. It answers every connection with a forged hello and a forged result,
// and counts the bytes its clients send until `stop()`. Needs root.
class ForeignListener {
 public:
  static constexpr uid_t kUid = 54321;

  ForeignListener(const std::string& dir, const std::string& socket) {
    if (::chown(dir.c_str(), kUid, kUid) != 0) return;
    std::string forged;  // encoded before fork: the child only makes system calls
    proto::Hello hello;
    hello.server = "kiln-supervisor 0.1.0";
    hello.workers = 1;
    hello.kinds = {"echo", "exec"};
    hello.key_id = "0000000000000000";
    proto::encode(hello, forged);
    proto::encode(proto::Result{1, true, proto::RawObject::nil(), std::nullopt, 1, 0, 0}, forged);
    auto [ready_read, ready_write] = pipe_pair();
    auto [stop_read, stop_write] = pipe_pair();
    auto [report_read, report_write] = pipe_pair();
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket.data(), socket.size());
    pid_ = ::fork();
    if (pid_ == 0) {
      stop_write.reset();
      if (::setresgid(kUid, kUid, kUid) != 0 || ::setresuid(kUid, kUid, kUid) != 0) ::_exit(3);
      const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
          ::listen(listener, 64) != 0) {
        ::_exit(4);
      }
      (void)!::write(ready_write.get(), "r", 1);
      const uint64_t received = serve(listener, stop_read.get(), forged);
      (void)!::write(report_write.get(), &received, sizeof received);
      ::_exit(0);
    }
    ready_write.reset();
    report_write.reset();
    char c = 0;
    ready_ = ::read(ready_read.get(), &c, 1) == 1;
    stop_ = std::move(stop_write);
    report_ = std::move(report_read);
  }
  ~ForeignListener() { stop(); }

  bool ready() const { return ready_; }
  pid_t pid() const { return pid_; }
  // Ends the forger; the number of bytes its clients sent it, or kLost if it died without
  // saying (so that a dead forger can never pass for one that received nothing).
  static constexpr uint64_t kLost = ~uint64_t{0};
  uint64_t stop() {
    if (pid_ <= 0) return received_;
    stop_.reset();
    if (::read(report_.get(), &received_, sizeof received_) != sizeof received_) received_ = kLost;
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return received_;
  }

 private:
  // Accepts, forges, counts, until the stop pipe closes. Every client is read to its end.
  static uint64_t serve(int listener, int stop, const std::string& forged) {
    uint64_t received = 0;
    std::vector<pollfd> fds = {{stop, POLLIN, 0}, {listener, POLLIN, 0}};
    while (::poll(fds.data(), fds.size(), -1) >= 0 && fds[0].revents == 0) {
      if (fds[1].revents & POLLIN) {
        const int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          // MSG_NOSIGNAL: a client that refused us may have closed already.
          (void)!::send(c, forged.data(), forged.size(), MSG_NOSIGNAL);
          fds.push_back({c, POLLIN, 0});
        }
      }
      for (std::size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        char buf[4096];
        const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n > 0) {
          received += static_cast<uint64_t>(n);
        } else {
          ::close(fds[i].fd);
          fds.erase(fds.begin() + static_cast<std::ptrdiff_t>(i--));
        }
      }
    }
    return received;
  }

  pid_t pid_ = -1;
  bool ready_ = false;
  uint64_t received_ = 0;
  UniqueFd stop_;
  UniqueFd report_;
};

std::string refusal(const std::string& sock, pid_t pid) {
  return sock + " is served by uid 54321 (pid " + std::to_string(pid) +
         "), not by this user (uid 0): refusing to use it";
}

TEST(DaemonTrust, PoolConnectRefusesASocketOfAnotherUserBeforeSendingAnything) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root to listen as another user";
  TempDir dir;
  const std::string sock = dir / "s.sock";
  ForeignListener forger(dir / "", sock);
  ASSERT_TRUE(forger.ready());
  Expected<std::unique_ptr<Pool>> pool = Pool::connect(sock);
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error_code(), Pool::kRefused);
  EXPECT_EQ(pool.error(), refusal(sock, forger.pid()));
  EXPECT_EQ(forger.stop(), 0u) << "not one byte reaches the forger";
}

proto::RawObject bin_payload(std::size_t size) {
  std::string b = "\xc6";
  for (int shift = 24; shift >= 0; shift -= 8) b += static_cast<char>((size >> shift) & 0xff);
  return proto::RawObject{b + std::string(size, 'p')};
}

// A client that queues large payloads is bounded in bytes, not only in jobs; another client is
// still served; and the memory is given back when the first one leaves. (Once, 120 queued echo
// jobs of 8 MiB took the supervisor to 2 GB, and it stayed there.)
TEST(Daemon, QueuedBytesAreBoundedPerConnectionAndGivenBackWhenItGoes) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock, {"--max-client-queue-mb", "64"});
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  Expected<std::unique_ptr<Pool>> flood = Pool::connect(sock);
  Expected<std::unique_ptr<Pool>> other = Pool::connect(sock);
  ASSERT_TRUE(flood && other);
  for (int worker = 0; worker < 2; ++worker) {  // both workers busy: what follows waits
    (*flood)->submit("selftest", to_msgpack({{"action", "sleep"}, {"ms", 600000}}), std::nullopt,
                     std::nullopt, [](proto::Result) {});
  }
  ASSERT_TRUE(wait_until([&] { return (*other)->stats()->jobs_running == 2; }, 10s));
  [[maybe_unused]] const unsigned long rss_before = rss_kb(daemon.pid());
  std::vector<std::future<proto::Result>> results;
  // Each payload is 8 MiB as sent (5 bytes of bin header included): 8 of them fill 64 MiB.
  for (int i = 0; i < 20; ++i) {
    results.push_back((*flood)->submit("echo", bin_payload((8 << 20) - 5)));
  }
  std::future<proto::Result> served = (*other)->submit("echo", bin_payload(1 << 20));
  ASSERT_TRUE(wait_until([&] { return (*other)->stats()->jobs_submitted == 23; }, 30s));
  [[maybe_unused]] const unsigned long rss_flood = rss_kb(daemon.pid());
  // 8 of 8 MiB fit in 64 MiB; the other 12 are answered at once, with the limit named.
  int overloaded = 0;
  for (int i = 8; i < 20; ++i) {
    ASSERT_EQ(results[i].wait_for(10s), std::future_status::ready) << i;
    const proto::Result r = results[i].get();
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.error->code, "overloaded");
    EXPECT_EQ(r.error->message,
              "this connection already has 64.0 MiB of payloads waiting and this one is 8.0 MiB "
              "(--max-client-queue-mb 64)");
    ++overloaded;
  }
  EXPECT_EQ(overloaded, 12);
  EXPECT_EQ((*other)->stats()->jobs_queued, 9u) << "8 of the flood and the other client's one";
  (*flood)->disconnect();  // its queued jobs and its running one go with it
  ASSERT_EQ(served.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(served.get().ok) << "the other connection is served";
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // (Not under a sanitizer: ASan keeps freed memory in quarantine.)
  EXPECT_LT(rss_flood - rss_before, 200u << 10) << "64 MiB queued, not the 160 MiB sent";
  ASSERT_TRUE(wait_until([&] { return (*other)->stats()->jobs_queued == 0; }, 10s));
  EXPECT_TRUE(wait_until([&] { return rss_kb(daemon.pid()) < rss_before + (24u << 10); }, 10s))
      << rss_before << " KiB before, " << rss_flood << " KiB in the flood, " << rss_kb(daemon.pid())
      << " KiB after the client left";
  std::printf("daemon RSS: %lu KiB before, %lu KiB with 64 MiB queued, %lu KiB after\n", rss_before,
              rss_flood, rss_kb(daemon.pid()));
#endif
  (*other)->disconnect();
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

// In a shared directory, someone else may plant a symbolic link where the daemon writes its
// lock or its log: it must refuse it, never follow it to the file it names.
TEST(Daemon, RefusesASymbolicLinkAtItsLockOrItsLog) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  const std::string victim = dir / "victim";
  std::ofstream(victim) << "precious\n";
  auto run = [&](const std::vector<std::string>& extra) {
    auto [err_read, err_write] = pipe_pair();
    Child d = start_daemon(sock, extra, err_write.get());
    err_write.reset();
    const std::string err = read_all(err_read.get(), 10s);
    return std::make_pair(d.exit_code(), err);
  };
  ASSERT_EQ(::symlink(victim.c_str(), (sock + ".log").c_str()), 0);
  auto [status, err] = run({"--log-file", sock + ".log"});
  EXPECT_EQ(status, exit_code::kUsage);
  EXPECT_EQ(err, "kiln-supervisor: cannot open log file " + sock + ".log: it is a symbolic link\n");
  ::unlink((sock + ".log").c_str());

  ASSERT_EQ(::symlink(victim.c_str(), (sock + ".lock").c_str()), 0);
  std::tie(status, err) = run({});
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find("cannot open " + sock + ".lock: Too many levels of symbolic links"),
            std::string::npos)
      << err;
  std::ifstream in(victim);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "precious\n");
  ::unlink((sock + ".lock").c_str());

  // A log that existed with a wider mode becomes the daemon's alone.
  std::ofstream(sock + ".log") << "";
  ::chmod((sock + ".log").c_str(), 0644);
  Child d = start_daemon(sock, {"--log-file", sock + ".log"});
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  struct stat st;
  ASSERT_EQ(::stat((sock + ".log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  d.kill(SIGTERM);
  EXPECT_EQ(d.exit_code(), 0);
  std::ifstream log(sock + ".log");
  EXPECT_NE(std::string(std::istreambuf_iterator<char>(log), {}).find("kiln-supervisor stopped"),
            std::string::npos)
      << "the log is written";
}

TEST(Daemon, RefusesConnectionsBeyondItsLimitAndStillReplacesWorkers) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock, {"--max-connections", "3"});
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  std::vector<std::unique_ptr<Pool>> held;
  for (int i = 0; i < 3; ++i) {
    Expected<std::unique_ptr<Pool>> p = Pool::connect(sock);
    ASSERT_TRUE(p) << i << ": " << p.error();
    held.push_back(std::move(*p));
  }
  Expected<std::unique_ptr<Pool>> fourth = Pool::connect(sock);
  ASSERT_FALSE(fourth);
  EXPECT_EQ(fourth.error(),
            "the supervisor refused: too_many_connections: this kiln-supervisor already serves 3 "
            "connections (--max-connections)");
  // At the limit, a killed worker is still replaced: the limit keeps fds for the workers.
  const proto::Stats before = *held[0]->stats();
  ASSERT_EQ(before.worker_list.size(), 2u);
  ::kill(static_cast<pid_t>(before.worker_list[0].pid), SIGKILL);
  EXPECT_TRUE(wait_until(
      [&] {
        auto st = held[0]->stats();
        return st && st->worker_starts == before.worker_starts + 1 && st->workers_alive == 2;
      },
      10s));
  EXPECT_TRUE(held[1]->submit("echo", to_msgpack(1)).get().ok);
  // One leaves: another may come.
  held.back()->disconnect();
  held.pop_back();
  EXPECT_TRUE(wait_until([&] { return Pool::connect(sock).ok(); }, 10s));
  for (auto& p : held) p->disconnect();
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

TEST(Daemon, ADisconnectingClientCancelsOnlyItsOwnJobs) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock);
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  Expected<std::unique_ptr<Pool>> a = Pool::connect(sock);
  Expected<std::unique_ptr<Pool>> b = Pool::connect(sock);
  ASSERT_TRUE(a && b);
  ExecRequest sleep;
  sleep.argv = {"sleep", "100"};
  auto doomed = (*a)->exec(sleep);
  ASSERT_TRUE(wait_until([&] { return (*b)->stats()->jobs_running == 1; }, 10s));
  auto survivor = (*b)->submit("selftest", to_msgpack({{"action", "sleep"}, {"ms", 300}}));
  (*a)->disconnect();
  EXPECT_EQ(doomed.get().error->code, "shutdown") << "its own connection ended";
  const proto::Result r = survivor.get();
  EXPECT_TRUE(r.ok);
  // The killed job's worker was replaced; nothing of it is left running.
  ASSERT_TRUE(wait_until([&] { return (*b)->stats()->worker_starts == 3; }, 10s));
  EXPECT_TRUE(wait_until([] { return processes_with("sleep 100").empty(); }, 5s));
  (*b)->shutdown(false);
  EXPECT_EQ(daemon.exit_code(), 0);
}

TEST(Daemon, StaleSocketIsReplacedLiveOneIsNot) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  {  // A socket file nobody listens on any more.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, sock.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  Child daemon = start_daemon(sock);
  ASSERT_TRUE(wait_until([&] { return Pool::connect(sock).ok(); }, 10s));
  auto [err_read, err_write] = pipe_pair();
  Child second = start_daemon(sock, {}, err_write.get());
  err_write.reset();
  EXPECT_EQ(second.exit_code(), exit_code::kAlreadyServing);
  EXPECT_NE(read_all(err_read.get(), 5s).find("another kiln-supervisor already serves " + sock),
            std::string::npos);
  EXPECT_TRUE(Pool::connect(sock).ok()) << "the first one still serves";
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

TEST(Daemon, ExitsWhenIdleAndRefusesPathsTooLong) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock, {"--idle-exit-ms", "200"});
  ASSERT_TRUE(wait_until([&] { return Pool::connect(sock).ok(); }, 10s));  // connects, leaves
  EXPECT_EQ(daemon.exit_code(20s), 0);
  EXPECT_FALSE(exists(sock));

  auto [err_read, err_write] = pipe_pair();
  Child long_path = start_daemon("/tmp/" + std::string(120, 'x'), {}, err_write.get());
  err_write.reset();
  EXPECT_EQ(long_path.exit_code(), exit_code::kUsage);
  EXPECT_NE(read_all(err_read.get(), 5s).find("a Unix socket path holds at most 107"),
            std::string::npos);
}

// Found by the Python client's tests under load: bind() creates the file before listen(), and a
// client that connected in between was refused. The daemon now listens under another name and
// renames the socket into place, so the path accepts from the moment it exists.
TEST(Daemon, TheSocketAcceptsFromTheMomentItsPathExists) {
  for (int round = 0; round < 10; ++round) {
    TempDir dir;
    const std::string sock = dir / "s.sock";
    Child daemon = start_daemon(sock);
    ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
    auto pool = Pool::connect(sock);
    ASSERT_TRUE(pool.ok()) << "round " << round << ": " << pool.error();
    (*pool)->shutdown();
    EXPECT_EQ(daemon.exit_code(20s), 0);
    EXPECT_FALSE(exists(sock));
    EXPECT_FALSE(exists(sock.substr(0, sock.size() - 1) + "~"));
  }
}

Ran kiln_exec(const std::string& sock, const std::vector<std::string>& command) {
  std::vector<std::string> argv = {KILN_CLI_PATH, "exec", "--socket", sock, "--"};
  argv.insert(argv.end(), command.begin(), command.end());
  RunSpec spec;
  spec.env = {"KILN_TEST_MARK=relayed"};
  return run_to_end(argv, spec);
}

TEST(DaemonTrust, KilnExecAndStatsRefuseADaemonOfAnotherUser) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root to listen as another user";
  TempDir dir;
  const std::string sock = dir / "s.sock";
  ForeignListener forger(dir / "", sock);
  ASSERT_TRUE(forger.ready());
  const Ran r = kiln_exec(sock, {"sh", "-c", "echo compiled"});
  EXPECT_EQ(r.status, exit_code::kLauncherFailed);
  EXPECT_EQ(r.out, "") << "no forged output is relayed";
  EXPECT_EQ(r.err, "kiln exec: " + refusal(sock, forger.pid()) + "\n");
  auto [err_read, err_write] = pipe_pair();
  Child stats = Child::spawn({{KILN_CLI_PATH, "stats", "--socket", sock},
                              environment_with({}, {"SPDLOG_LEVEL"}),
                              {{2, err_write.get()}}});
  err_write.reset();
  EXPECT_EQ(read_all(err_read.get(), 10s), "kiln stats: " + refusal(sock, forger.pid()) + "\n");
  EXPECT_EQ(stats.exit_code(), 1);
  EXPECT_EQ(forger.stop(), 0u) << "not one byte of the command, cwd or environment was sent";
  EXPECT_TRUE(processes_with("--listen " + sock).empty()) << "no daemon was started beside it";
}

TEST(DaemonTrust, ClientsRefuseADaemonOfAnotherBuildKey) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  const std::string key_a = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=";  // 32 x 'a'
  const std::string key_b = "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=";  // 32 x 'b'
  Child daemon = Child::spawn({{KILN_SUPERVISOR_PATH, "--listen", sock, "--workers", "1"},
                               environment_with({"KILN_KEY=" + key_a}, {"SPDLOG_LEVEL"}),
                               {}});
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  const std::string id_a = key_id(*base64_decode(key_a));
  const std::string id_b = key_id(*base64_decode(key_b));
  Expected<std::unique_ptr<Pool>> same = Pool::connect(sock, id_a);
  ASSERT_TRUE(same) << same.error();
  (*same)->disconnect();
  Expected<std::unique_ptr<Pool>> other = Pool::connect(sock, id_b);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error_code(), Pool::kRefused);
  EXPECT_EQ(other.error(), "the supervisor on " + sock + " serves another build (key_id " + id_a +
                               ", not " + id_b + " of KILN_KEY): refusing to use it");

  auto [out_read, out_write] = pipe_pair();
  auto [err_read, err_write] = pipe_pair();
  Child c = Child::spawn({{KILN_CLI_PATH, "exec", "--socket", sock, "--", "echo", "ran"},
                          environment_with({"KILN_KEY=" + key_b}, {"SPDLOG_LEVEL"}),
                          {{1, out_write.get()}, {2, err_write.get()}}});
  out_write.reset();
  err_write.reset();
  EXPECT_EQ(read_all(out_read.get(), 30s), "");
  EXPECT_EQ(read_all(err_read.get(), 10s), "kiln exec: " + other.error() + "\n");
  EXPECT_EQ(c.exit_code(30s), exit_code::kLauncherFailed);
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

TEST(KilnExec, TheCallersBuildKeyChoosesTheDaemonAndDoesNotReachTheCommand) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  const std::string key = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=";
  auto [out_read, out_write] = pipe_pair();
  Child c = Child::spawn(
      {{KILN_CLI_PATH, "exec", "--socket", sock, "--", "sh", "-c", "echo ${KILN_KEY-unset}"},
       environment_with({"KILN_KEY=" + key}, {"SPDLOG_LEVEL"}),
       {{1, out_write.get()}}});
  out_write.reset();
  EXPECT_EQ(read_all(out_read.get(), 30s), "unset\n");
  EXPECT_EQ(c.exit_code(30s), 0);
  Expected<std::unique_ptr<Pool>> pool = Pool::connect(sock);
  ASSERT_TRUE(pool) << pool.error();
  EXPECT_EQ((*pool)->hello().key_id, key_id(*base64_decode(key))) << "the daemon serves that key";
  (*pool)->shutdown(false);
  EXPECT_TRUE(wait_until([&] { return processes_with("--listen " + sock).empty(); }, 10s));
}

std::string proc_field(pid_t pid, const std::string& file, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  }
  return "";
}

// The daemon outlives the build that happened to start it and serves every later one: it must
// carry nothing of that first caller's process.
TEST(KilnExec, TheAutoStartedDaemonKeepsNothingOfItsFirstCaller) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  auto [held_read, held_write] = pipe_pair();  // a build's pipe, inherited as fd 7
  const std::string script = "cd " + (dir / "") +
                             " && umask 077 && ulimit -S -n 200 && exec nice -n 5 " +
                             std::string(KILN_CLI_PATH) + " exec --socket " + sock + " -- true";
  Child c = Child::spawn({{"/bin/sh", "-c", script},
                          environment_with({"KILN_TEST_SECRET=hunter2", "LD_LIBRARY_PATH=/nowhere"},
                                           {"SPDLOG_LEVEL", "KILN_KEY"}),
                          {{7, held_write.get()}}});
  held_write.reset();
  ASSERT_EQ(c.exit_code(30s), 0);
  const std::vector<pid_t> daemons = processes_with("--listen " + sock);
  ASSERT_EQ(daemons.size(), 1u);
  const pid_t d = daemons[0];
  // Its environment is the documented minimal one (no KILN_KEY was given, nor SPDLOG_LEVEL: HOME,
  // as the caller has it, and the fixed PATH), and its workers have nothing more of the caller's.
  const auto environ_of = [](pid_t pid) {
    std::string env = read_small_file("/proc/" + std::to_string(pid) + "/environ").value_or("?");
    std::replace(env.begin(), env.end(), '\0', '\n');
    return env;
  };
  const char* home = std::getenv("HOME");
  EXPECT_EQ(environ_of(d), (home ? "HOME=" + std::string(home) + "\n" : std::string()) +
                               "PATH=/usr/local/bin:/usr/bin:/bin\n");
  const std::vector<pid_t> workers = processes_with("--parent " + std::to_string(d));
  EXPECT_FALSE(workers.empty());
  for (pid_t w : workers) {
    EXPECT_EQ(environ_of(w).find("KILN_TEST_SECRET"), std::string::npos) << environ_of(w);
    EXPECT_EQ(environ_of(w).find("LD_LIBRARY_PATH"), std::string::npos) << environ_of(w);
  }
  // Its end of the pipe is closed: the build sees end of file as soon as kiln exec is gone.
  pollfd p{held_read.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  char byte;
  EXPECT_EQ(::read(held_read.get(), &byte, 1), 0) << "the daemon holds the caller's pipe";
  char cwd[4096] = {};
  ASSERT_GT(::readlink(("/proc/" + std::to_string(d) + "/cwd").c_str(), cwd, sizeof cwd - 1), 0);
  EXPECT_STREQ(cwd, "/");
  EXPECT_EQ(proc_field(d, "status", "Umask:\t"), "0022");
  std::ifstream stat("/proc/" + std::to_string(d) + "/stat");
  std::string field;
  for (int i = 0; i < 19 && stat >> field;) {
    if (field.back() == ')')
      i = 2;  // the command name may hold spaces; fields count after it
    else
      ++i;
  }
  EXPECT_EQ(field, "0") << "nice value";
  const std::string nofile = proc_field(d, "limits", "Max open files");
  std::istringstream limits(nofile);
  std::string soft, hard;
  limits >> soft >> hard;
  EXPECT_EQ(soft, hard) << nofile;
  EXPECT_NE(soft, "200");
  Expected<std::unique_ptr<Pool>> pool = Pool::connect(sock);
  ASSERT_TRUE(pool) << pool.error();
  (*pool)->shutdown(false);
  EXPECT_TRUE(wait_until([&] { return processes_with("--listen " + sock).empty(); }, 10s));
}

TEST(KilnExec, TheCommandHasTheCallersUmaskNiceValueAndLimits) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  const std::string kiln = std::string(KILN_CLI_PATH) + " exec --socket " + sock + " -- ";
  const std::string show = "sh -c 'umask; nice; ulimit -S -n; ulimit -S -c; ulimit -H -c'";
  // The first caller starts the daemon with the defaults; the second has its own attributes,
  // and KILN_FALLBACK=0 makes sure the answer came through the daemon, not a local run.
  auto run = [&](const std::string& script) {
    auto [out_read, out_write] = pipe_pair();
    Child c = Child::spawn({{"/bin/sh", "-c", script},
                            environment_with({"KILN_FALLBACK=0"}, {"SPDLOG_LEVEL", "KILN_KEY"}),
                            {{1, out_write.get()}}});
    out_write.reset();
    std::string out = read_all(out_read.get(), 30s);
    EXPECT_EQ(c.exit_code(30s), 0) << script;
    return out;
  };
  ASSERT_EQ(run(kiln + "true"), "");
  ASSERT_EQ(processes_with("--listen " + sock).size(), 1u);
  EXPECT_EQ(run("umask 027 && ulimit -S -n 200 && ulimit -S -c 0 && exec nice -n 5 " + kiln + show),
            "0027\n5\n200\n0\n" + run("ulimit -H -c"));
  Expected<std::unique_ptr<Pool>> pool = Pool::connect(sock);
  ASSERT_TRUE(pool) << pool.error();
  (*pool)->shutdown(false);
  EXPECT_TRUE(wait_until([&] { return processes_with("--listen " + sock).empty(); }, 10s));
}

TEST(KilnExec, KilnWorkersSizesTheDaemonItStarts) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  auto run = [&](const std::string& workers) {
    auto [err_read, err_write] = pipe_pair();
    Child c = Child::spawn({{KILN_CLI_PATH, "exec", "--socket", sock, "--", "true"},
                            environment_with({"KILN_WORKERS=" + workers}, {"SPDLOG_LEVEL"}),
                            {{2, err_write.get()}}});
    err_write.reset();
    const std::string err = read_all(err_read.get(), 30s);
    return std::make_pair(c.exit_code(30s), err);
  };
  auto [status, err] = run("many");
  EXPECT_EQ(status, 0) << "the command runs here, and the line says why";
  EXPECT_EQ(err,
            "kiln exec: running the command here: KILN_WORKERS=many is not a number of workers "
            "(1 to 4096)\n");
  std::tie(status, err) = run("5");
  EXPECT_EQ(status, 0) << err;
  Expected<std::unique_ptr<Pool>> pool = Pool::connect(sock);
  ASSERT_TRUE(pool) << pool.error();
  EXPECT_EQ((*pool)->hello().workers, 5u);
  (*pool)->shutdown(false);
  EXPECT_TRUE(wait_until([&] { return processes_with("--listen " + sock).empty(); }, 10s));
}

// kiln exec with the given environment: exit status, stdout, stderr.
// Runs `argv` to its end, without this process's KILN_FALLBACK.
Ran run_to_end(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               int stdin_fd = -1) {
  RunSpec spec;
  spec.env = env;
  spec.drop = {"SPDLOG_LEVEL", "KILN_FALLBACK"};
  spec.stdin_fd = stdin_fd;
  return kiln::testing::run_to_end(argv, spec);
}

// `kiln ARGS...`
Ran kiln_cli(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv = {KILN_CLI_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_to_end(argv, env);
}

// `kiln exec ARGS...`
Ran launch(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv = {"exec"};
  argv.insert(argv.end(), args.begin(), args.end());
  return kiln_cli(argv, env);
}

const std::vector<std::string> kCommand = {"sh", "-c", "echo out; echo err >&2; exit 3"};

// `kiln exec OPTIONS... -- kCommand`.
Ran launch_command(std::vector<std::string> options, const std::vector<std::string>& env = {}) {
  options.push_back("--");
  options.insert(options.end(), kCommand.begin(), kCommand.end());
  return launch(options, env);
}

// kCommand ran here, after the one line that says why.
void expect_ran_here(const Ran& l, const std::string& why) {
  EXPECT_EQ(l.status, 3);
  EXPECT_EQ(l.out, "out\n");
  EXPECT_EQ(l.err, "kiln exec: running the command here: " + why + "\nerr\n");
}

TEST(KilnExecFallback, WithoutASupervisorTheCommandRunsHere) {
  TempDir dir;
  const std::vector<std::string> options = {"--socket", dir / "s.sock", "--supervisor",
                                            "/nonexistent/sup"};
  expect_ran_here(launch_command(options),
                  "kiln-supervisor not found: /nonexistent/sup is not an executable file");
  const Ran off = launch_command(options, {"KILN_FALLBACK=0"});
  EXPECT_EQ(off.status, exit_code::kLauncherFailed) << "KILN_FALLBACK=0: the failure, as asked";
  EXPECT_EQ(off.out, "");
}

TEST(KilnExecFallback, ASupervisorThatNeverComesUpHasTheCommandRunHereAfterAShortWait) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  // A "supervisor" that says something and exits: nothing ever listens on the socket.
  const std::string fake = dir / "fake-supervisor";
  std::ofstream(fake) << "#!/bin/sh\necho 'fake: cannot serve' >&2\nexit 3\n";
  ::chmod(fake.c_str(), 0755);
  expect_ran_here(launch_command({"--socket", sock, "--supervisor", fake}),
                  "no kiln-supervisor came up on " + sock + " within 3000 ms (cannot connect to " +
                      sock + ": No such file or directory); its log " + sock +
                      ".log says: fake: cannot serve");
}

TEST(KilnExecFallback, ADaemonServingAllTheConnectionsItMayHasTheCommandRunHereAtOnce) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock, {"--max-connections", "1"});
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  Expected<std::unique_ptr<Pool>> held = Pool::connect(sock);
  ASSERT_TRUE(held) << held.error();
  expect_ran_here(launch_command({"--socket", sock}),
                  "the supervisor refused: too_many_connections: this kiln-supervisor already "
                  "serves 1 connections (--max-connections)");
  EXPECT_EQ(processes_with("--listen " + sock).size(), 1u) << "no second daemon was started";
  (*held)->disconnect();
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

// The command ran: running it again would do its side effects twice, and cut output with its
// status would pass for all of it. The build is told instead.
TEST(KilnExec, OutputPastTheCapIsNeverCutAndTheCommandNeverRunsTwice) {
  TempDir dir;
  const std::string runs = dir / "runs";
  const Ran l = launch({"--socket", dir / "s.sock", "--", "sh", "-c",
                        "echo run >>" + runs + "; head -c 20000000 /dev/zero; exit 4"});
  EXPECT_EQ(l.status, exit_code::kLauncherFailed);
  EXPECT_EQ(l.out, "") << "nothing of the cut output";
  EXPECT_EQ(l.err,
            "kiln exec: the command ran, but its output passed the 16777216 bytes per stream a "
            "job may return: it is not run again (run it without kiln exec to see all of its "
            "output)\n");
  EXPECT_EQ(read_small_file(runs).value_or(""), "run\n");
  Expected<std::unique_ptr<Pool>> pool = Pool::connect(dir / "s.sock");
  ASSERT_TRUE(pool) << pool.error();
  (*pool)->shutdown(false);
}

TEST(KilnExecFallback, ACommandGivenInputGetsItsRealStdin) {
  TempDir dir;
  auto [in_read, in_write] = pipe_pair();
  auto [out_read, out_write] = pipe_pair();
  auto [err_read, err_write] = pipe_pair();
  Child c =
      Child::spawn({{KILN_CLI_PATH, "exec", "--socket", dir / "s.sock", "--", "wc", "-c", "-"},
                    environment_with({}, {"SPDLOG_LEVEL", "KILN_FALLBACK"}),
                    {{0, in_read.get()}, {1, out_write.get()}, {2, err_write.get()}}});
  in_read.reset();
  out_write.reset();
  err_write.reset();
  const std::string input(100000, 'i');
  ASSERT_EQ(::write(in_write.get(), input.data(), input.size()), 100000);
  in_write.reset();
  EXPECT_EQ(read_all(out_read.get(), 30s), "100000 -\n") << "wc read all of it";
  EXPECT_EQ(read_all(err_read.get(), 10s),
            "kiln exec: running the command here: its standard input is a pipe, which a job "
            "cannot read\n");
  EXPECT_EQ(c.exit_code(30s), 0);
  EXPECT_TRUE(processes_with("--listen " + (dir / "s.sock")).empty()) << "no daemon was needed";
}

TEST(KilnExecFallback, AnOverloadedDaemonsJobRunsHere) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock, {"--max-queue", "0"});
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  Expected<std::unique_ptr<Pool>> busy = Pool::connect(sock);
  ASSERT_TRUE(busy);
  // With no queue at all, a job runs only on an idle worker: both must be up first.
  ASSERT_TRUE(wait_until(
      [&] {
        auto st = (*busy)->stats();
        return st && st->worker_list.size() == 2 &&
               std::all_of(st->worker_list.begin(), st->worker_list.end(),
                           [](const auto& w) { return w.state == "idle"; });
      },
      10s));
  for (int i = 0; i < 2; ++i) {
    (*busy)->submit("selftest", to_msgpack({{"action", "sleep"}, {"ms", 600000}}), std::nullopt,
                    std::nullopt, [](proto::Result) {});
  }
  ASSERT_TRUE(wait_until([&] { return (*busy)->stats()->jobs_running == 2; }, 10s));
  expect_ran_here(launch_command({"--socket", sock}),
                  "overloaded: the queue already holds 0 jobs (--max-queue)");
  (*busy)->disconnect();
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

TEST(KilnExecFallback, AnUnavailablePoolsJobRunsHere) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock, {"--worker", "/bin/false"});
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  const Ran l = launch_command({"--socket", sock});
  EXPECT_EQ(l.status, 3);
  EXPECT_EQ(l.out, "out\n");
  EXPECT_EQ(l.err.rfind("kiln exec: running the command here: pool_unavailable: workers keep "
                        "failing to start: ",
                        0),
            0u)
      << l.err;
  EXPECT_TRUE(l.err.ends_with("\nerr\n")) << l.err;
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

TEST(KilnExecFallback, ShutdownDrainFinishesTheBuildsJobsAndNewOnesRunHere) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  const std::string log = dir / "daemon.log";
  UniqueFd log_fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(log_fd);
  Child daemon = start_daemon(sock, {"--log-level", "info"}, log_fd.get());
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  // A compile of the build, still running when the drain begins.
  auto [out_read, out_write] = pipe_pair();
  Child running = Child::spawn(
      {{KILN_CLI_PATH, "exec", "--socket", sock, "--", "sh", "-c", "sleep 2; echo compiled"},
       environment_with({"KILN_FALLBACK=0"}, {"SPDLOG_LEVEL"}),
       {{1, out_write.get()}}});
  out_write.reset();
  Expected<std::unique_ptr<Pool>> watch = Pool::connect(sock);
  ASSERT_TRUE(watch);
  ASSERT_TRUE(wait_until([&] { return (*watch)->stats()->jobs_running == 1; }, 10s));
  (*watch)->disconnect();
  Child drain = Child::spawn({{KILN_CLI_PATH, "shutdown", "--drain", "--socket", sock},
                              environment_with({}, {"SPDLOG_LEVEL"}),
                              {}});
  ASSERT_TRUE(wait_until(
      [&] {
        return read_small_file(log).value_or("").find("shutting down after the queue") !=
               std::string::npos;
      },
      10s));
  // A job that comes while the daemon drains is refused, and runs here.
  expect_ran_here(launch_command({"--socket", sock}), "shutdown: the supervisor is shutting down");
  EXPECT_EQ(read_all(out_read.get(), 30s), "compiled\n") << "the running job finished";
  EXPECT_EQ(running.exit_code(30s), 0);
  EXPECT_EQ(drain.exit_code(30s), 0);
  EXPECT_EQ(daemon.exit_code(30s), 0);
}

TEST(KilnExecFallback, ADaemonThatDiesMidJobHasTheCommandRunAgainHere) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  const std::string marker = dir / "runs";
  Child daemon = start_daemon(sock);
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  auto [out_read, out_write] = pipe_pair();
  auto [err_read, err_write] = pipe_pair();
  Child c = Child::spawn(
      {{KILN_CLI_PATH, "exec", "--socket", sock, "--", "sh", "-c",
        "echo run >>" + marker + "; [ $(wc -l <" + marker + ") -gt 1 ] || sleep 100; echo done"},
       environment_with({}, {"SPDLOG_LEVEL", "KILN_FALLBACK"}),
       {{1, out_write.get()}, {2, err_write.get()}}});
  out_write.reset();
  err_write.reset();
  // Its line written, not only the file there: the shell creates the file before it writes, and
  // a daemon killed in between would leave the second run to find it empty and sleep.
  ASSERT_TRUE(wait_until([&] { return read_small_file(marker).value_or("") == "run\n"; }, 10s))
      << "the first run started";
  daemon.kill(SIGKILL);
  EXPECT_EQ(read_all(out_read.get(), 30s), "done\n");
  EXPECT_EQ(
      read_all(err_read.get(), 10s),
      "kiln exec: running the command here: the daemon closed the connection before the job's "
      "result\n");
  EXPECT_EQ(c.exit_code(30s), 0);
  std::ifstream runs(marker);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(runs), {}), "run\nrun\n");
}

TEST(KilnExec, AutoStartRaceOfEightLeavesExactlyOneDaemon) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  std::vector<std::thread> launchers;
  std::vector<Ran> ran(8);
  for (int i = 0; i < 8; ++i) {
    launchers.emplace_back([&, i] {
      ran[i] = kiln_exec(sock, {"sh", "-c", "echo $KILN_TEST_MARK"});
    });
  }
  for (auto& t : launchers) t.join();
  for (const Ran& r : ran) {
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "relayed\n") << "the caller's environment reaches the command";
  }
  EXPECT_EQ(processes_with("--listen " + sock).size(), 1u);
  Expected<std::unique_ptr<Pool>> pool = Pool::connect(sock);
  ASSERT_TRUE(pool);
  (*pool)->shutdown(false);
  EXPECT_TRUE(wait_until([&] { return processes_with("--listen " + sock).empty(); }, 10s));
}

TEST(KilnExec, RelaysOutputAndExitCodes) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock);
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  Ran r = kiln_exec(sock, {"sh", "-c", "printf 'o\\0ut'; printf err >&2; exit 7"});
  EXPECT_EQ(r.status, 7);
  EXPECT_EQ(r.out, std::string("o\0ut", 4));
  EXPECT_EQ(r.err, "err");
  EXPECT_EQ(kiln_exec(sock, {"sh", "-c", "kill -TERM $$"}).status, 128 + SIGTERM);
  r = kiln_exec(sock, {"/no/such/compiler"});
  EXPECT_EQ(r.status, exit_code::kNotFound);
  EXPECT_EQ(r.err,
            "kiln exec: spawn_failed: cannot execute '/no/such/compiler': No such file or "
            "directory\n");
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
  EXPECT_EQ(kiln_exec(sock, {"pwd"}).out, std::string(cwd) + "\n");
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

// kiln-exec, the launcher binary: `kiln exec` with no options of its own (the socket from
// $KILN_SOCKET), everything after it the command.
Ran kiln_exec_binary(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<std::string> argv = {KILN_EXEC_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_to_end(argv, env);
}

TEST(KilnExecBinary, StartsTheDaemonAndRunsEveryCommandOnIt) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  const std::vector<std::string> env = {"KILN_SOCKET=" + sock, "KILN_WORKERS=3"};
  Ran l = kiln_exec_binary({"sh", "-c", "printf 'o\\0ut'; printf err >&2; exit 7"}, env);
  EXPECT_EQ(l.status, 7);
  EXPECT_EQ(l.out, std::string("o\0ut", 4));
  EXPECT_EQ(l.err, "err");
  l = kiln_exec_binary({"--", "sh", "-c", "kill -TERM $$"}, env);
  EXPECT_EQ(l.status, 128 + SIGTERM) << "after --, the same";
  l = kiln_exec_binary({"/no/such/compiler", "-c", "a.c"}, env);
  EXPECT_EQ(l.status, exit_code::kNotFound);
  EXPECT_EQ(l.err,
            "kiln exec: spawn_failed: cannot execute '/no/such/compiler': No such file or "
            "directory\n");
  EXPECT_EQ(processes_with("--listen " + sock).size(), 1u);
  Expected<std::unique_ptr<Pool>> daemon = Pool::connect(sock);
  ASSERT_TRUE(daemon) << daemon.error();
  EXPECT_EQ((*daemon)->hello().workers, 3u) << "KILN_WORKERS sized the daemon it started";
  EXPECT_EQ((*daemon)->stats()->jobs_submitted, 3u) << "every command went through the daemon";
  (*daemon)->shutdown();
}

TEST(KilnExecBinary, HelpVersionAndUsageErrors) {
  const Ran help = kiln_exec_binary({"--help"}, {});
  EXPECT_EQ(help.status, 0);
  EXPECT_TRUE(help.out.starts_with("Usage: kiln-exec [--] COMMAND [ARG...]\n")) << help.out;
  const Ran version = kiln_exec_binary({"--version"}, {});
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out, "kiln-exec " + std::string(kVersion) + "\n");
  const Ran none = kiln_exec_binary({}, {});
  EXPECT_EQ(none.status, exit_code::kUsage);
  EXPECT_EQ(none.err, "kiln-exec: no command given (kiln-exec [--] COMMAND [ARG...])\n");
  EXPECT_EQ(kiln_exec_binary({"--"}, {}).status, exit_code::kUsage);
  const Ran option = kiln_exec_binary({"-v", "cc"}, {});
  EXPECT_EQ(option.status, exit_code::kUsage);
  EXPECT_EQ(option.err,
            "kiln-exec: unknown option '-v': the command comes first (kiln-exec [--] COMMAND "
            "[ARG...]; --help says more)\n");
}

TEST(KilnDaemon, StartTakesTheSupervisorsOptionsAndStatusShowsThePool) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Ran l = kiln_cli({"daemon", "start", "--socket", sock, "--workers", "3", "--idle-exit-ms", "0",
                    "--job-timeout-ms", "60000"});
  ASSERT_EQ(l.status, 0) << l.err;
  const std::vector<pid_t> daemons = processes_with("--listen " + sock);
  ASSERT_EQ(daemons.size(), 1u);
  const std::string pid = std::to_string(daemons[0]);
  EXPECT_EQ(l.out, "kiln daemon: serving " + sock + " (pid " + pid + ", 3 workers; log " + sock +
                       ".log)\n");
  EXPECT_EQ(processes_with("--idle-exit-ms 0 --workers 3 --job-timeout-ms 60000").size(), 1u)
      << "every option not kiln's reaches kiln-supervisor";

  l = kiln_cli({"daemon", "start", "--socket", sock, "--workers", "5"});
  EXPECT_EQ(l.status, 1);
  EXPECT_EQ(l.err, "kiln daemon start: a daemon already serves " + sock + " (pid " + pid +
                       "): stop it first with `kiln shutdown`\n");

  EXPECT_EQ(launch({"--socket", sock, "--", "true"}).status, 0);
  l = kiln_cli({"daemon", "status", "--socket", sock});
  EXPECT_EQ(l.status, 0) << l.err;
  EXPECT_TRUE(l.out.starts_with("socket:  " + sock + "\npid:     " + pid +
                                "\nserver:  kiln-supervisor " + std::string(kVersion) +
                                "\nuptime:  "))
      << l.out;
  EXPECT_NE(l.out.find("\npool:    3 workers (3 alive, 0 busy), 3 started, 0 crashed\n"
                       "jobs:    1 submitted, 1 succeeded, 0 failed, 0 queued, 0 running\n"
                       "kinds:   "),
            std::string::npos)
      << l.out;
  EXPECT_TRUE(l.out.ends_with("\nlog:     " + sock + ".log\n")) << l.out;

  EXPECT_EQ(kiln_cli({"shutdown", "--socket", sock}).status, 0);
  ASSERT_TRUE(wait_until([&] { return processes_with("--listen " + sock).empty(); }, 10s));
  l = kiln_cli({"daemon", "status", "--socket", sock});
  EXPECT_EQ(l.status, 1);
  EXPECT_TRUE(l.err.starts_with("kiln daemon status: cannot connect to " + sock)) << l.err;
}

TEST(KilnDaemon, StartWithAnOptionTheSupervisorRefusesSaysWhatItSaid) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  const Ran l = kiln_cli({"daemon", "start", "--socket", sock, "--workers", "0"});
  EXPECT_EQ(l.status, 1);
  EXPECT_TRUE(l.err.starts_with("kiln daemon start: no kiln-supervisor came up on " + sock +
                                " within 5000 ms ("))
      << l.err;
  EXPECT_NE(l.err.find("); its log " + sock +
                       ".log says: --workers: Value 0 not in range 1 to 4096 / Run with --help"),
            std::string::npos)
      << l.err;
  EXPECT_TRUE(processes_with("--listen " + sock).empty());
}

// A daemon on a fresh socket, a client connected to it, and a job of that client's that runs
// until the client goes (`sleep 60`, named after the source file `src/NAME`).
class DaemonWithASlowJob {
 public:
  ::testing::AssertionResult start(const std::string& name) {
    daemon_ = start_daemon(sock);
    if (!wait_until([&] { return exists(sock); }, 10s)) {
      return ::testing::AssertionFailure() << "no socket";
    }
    Expected<std::unique_ptr<Pool>> connected = Pool::connect(sock);
    if (!connected) return ::testing::AssertionFailure() << connected.error();
    client = std::move(*connected);
    ExecRequest r;
    r.argv = {"sh", "-c", "sleep 60", "sh", "-c", "src/" + name};
    slow_ = client->exec(r);
    return ::testing::AssertionSuccess();
  }
  // The client goes, which cancels its job; the daemon ends cleanly on SIGTERM.
  void end() {
    client->disconnect();
    EXPECT_EQ(slow_.get().error->code, proto::code::kShutdown);
    daemon_.kill(SIGTERM);
    EXPECT_EQ(daemon_.exit_code(), 0);
  }
  pid_t daemon_pid() const { return daemon_.pid(); }

  TempDir dir;
  const std::string sock = dir / "s.sock";
  std::unique_ptr<Pool> client;

 private:
  Child daemon_;
  std::future<proto::Result> slow_;
};

TEST(KilnDaemon, TopShowsEachWorkerAndTheFileOfTheJobItRuns) {
  DaemonWithASlowJob d;
  ASSERT_TRUE(d.start("slow.c"));
  const std::string& sock = d.sock;
  const std::unique_ptr<Pool>& client = d.client;
  std::optional<proto::WorkerInfo> busy;
  ASSERT_TRUE(wait_until(
      [&] {
        const std::vector<proto::WorkerInfo> list = client->stats()->worker_list;
        for (const proto::WorkerInfo& w : list) {
          if (w.job && w.job->phase) busy = w;
        }
        return busy.has_value();
      },
      10s));
  EXPECT_EQ(busy->job->name, "slow.c");
  EXPECT_EQ(busy->job->kind, "exec");

  const Ran top = kiln_cli({"top", "--socket", sock});  // not a terminal: once
  EXPECT_EQ(top.status, 0) << top.err;
  EXPECT_TRUE(top.out.starts_with("kiln top: " + sock + ", pid " + std::to_string(d.daemon_pid()) +
                                  ", up "))
      << top.out;
  EXPECT_NE(top.out.find("\n2 workers (2 alive, 1 busy), 2 started, 0 crashed; jobs: 0 queued, "
                         "1 running, 0 done, 0 failed\n"),
            std::string::npos)
      << top.out;
  const std::string row = "\n  " + std::to_string(busy->pid) +
                          std::string(8 - std::to_string(busy->pid).size(), ' ') + " busy ";
  const std::size_t at = top.out.find(row);
  ASSERT_NE(at, std::string::npos) << top.out;
  EXPECT_NE(top.out.find("  slow.c (exec, spawned)\n", at), std::string::npos) << top.out;
  d.end();
}

// A source file named with escape sequences (a terminal title, a screen clear, a colour, a C1
// CSI) reaches the terminal of `kiln top`, `kiln daemon status` and `kiln stats` as text, never
// obeyed.
TEST(KilnDaemon, TopEscapesTheControlCharactersOfAJobsName) {
  const std::string evil =
      "\x1b]0;owned\x07\x1b[2J\x1b[31m\xc2\x9b"
      "1mx.c";
  DaemonWithASlowJob d;
  ASSERT_TRUE(d.start(evil));
  const std::string& sock = d.sock;
  const std::string shown = "\\x1b]0;owned\\x07\\x1b[2J\\x1b[31m\\u009b1mx.c (exec, spawned)";
  Ran top;
  ASSERT_TRUE(wait_until(
      [&] {
        top = kiln_cli({"top", "--socket", sock});  // not a terminal: once
        return top.out.find("(exec, spawned)") != std::string::npos;
      },
      10s))
      << top.out << top.err;
  EXPECT_EQ(top.status, 0) << top.err;
  EXPECT_NE(top.out.find(shown), std::string::npos) << top.out;
  const Ran status = kiln_cli({"daemon", "status", "--socket", sock});
  EXPECT_EQ(status.status, 0) << status.err;
  const Ran stats = kiln_cli({"stats", "--socket", sock});
  EXPECT_EQ(stats.status, 0) << stats.err;
  EXPECT_NE(stats.out.find(R"("name": "\u001b]0;owned\u0007\u001b[2J\u001b[31m\u009b1mx.c")"),
            std::string::npos)
      << stats.out;
  for (const std::string& out : {top.out, status.out, stats.out, top.err, status.err}) {
    EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
    EXPECT_EQ(out.find('\x07'), std::string::npos) << out;
    EXPECT_EQ(out.find("\xc2\x9b"), std::string::npos) << out;
  }
  d.end();
}

TEST(KilnDaemon, TraceStartAndStopWriteARunningDaemonsTimeline) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  const std::string file = dir / "build.trace.json";
  Child daemon = start_daemon(sock);
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  EXPECT_EQ(launch({"--socket", sock, "--", "true"}).status, 0) << "before: not in the timeline";

  Ran l = kiln_cli({"trace", "start", file, "--socket", sock});
  EXPECT_EQ(l.status, 0) << l.err;
  EXPECT_EQ(l.out, "kiln trace: the daemon writes its timeline to " + file +
                       " (kiln trace stop to end it)\n");
  EXPECT_EQ(launch({"--socket", sock, "--", "sh", "-c", "exit 0", "cc", "src/traced.c"}).status, 0);
  l = kiln_cli({"trace", "start", "/nonexistent/dir/t.json", "--socket", sock});
  EXPECT_EQ(l.status, 1);
  EXPECT_EQ(l.err,
            "kiln trace: cannot write the trace /nonexistent/dir/t.json: No such file or "
            "directory\n");
  l = kiln_cli({"trace", "stop", "--socket", sock});
  EXPECT_EQ(l.status, 0) << l.err;
  EXPECT_EQ(l.out, "kiln trace: no timeline is being written\n");
  EXPECT_EQ(launch({"--socket", sock, "--", "true"}).status, 0) << "after: not in it either";

  std::ifstream in(file);
  const nlohmann::json events = nlohmann::json::parse(in);  // complete: the array is closed
  std::vector<std::string> spans, marks;
  for (const auto& e : events) {
    if (e["ph"] == "X") spans.push_back(e["name"]);
    if (e["ph"] == "i") marks.push_back(e["name"]);
  }
  EXPECT_EQ(spans, std::vector<std::string>{"traced.c"}) << "the one job while it was on";
  EXPECT_EQ(marks, (std::vector<std::string>{"worker running", "worker running"}))
      << "the lanes of the workers that were running when it began";
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

TEST(KilnRun, UsesASharedDaemonAndLeavesItServing) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock);
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  auto [in_read, in_write] = pipe_pair();
  auto [out_read, out_write] = pipe_pair();
  Child run = Child::spawn({{KILN_CLI_PATH, "run", "--socket", sock, "-"},
                            environment_with({}),
                            {{0, in_read.get()}, {1, out_write.get()}}});
  in_read.reset();
  out_write.reset();
  const std::string jobs = "{\"kind\": \"echo\", \"payload\": 5}\n";
  (void)!::write(in_write.get(), jobs.data(), jobs.size());
  in_write.reset();
  const std::string out = read_all(out_read.get(), 30s);
  EXPECT_EQ(run.exit_code(30s), 0);
  EXPECT_NE(out.find("\"value\":5"), std::string::npos) << out;
  EXPECT_TRUE(Pool::connect(sock).ok()) << "the daemon still serves";
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

// Output of `kiln run --socket SOCK -` given `input`, and its exit code.
std::pair<std::string, int> kiln_run(const std::string& sock, const std::string& input) {
  auto [in_read, in_write] = pipe_pair();
  auto [out_read, out_write] = pipe_pair();
  Child run = Child::spawn({{KILN_CLI_PATH, "run", "--socket", sock, "--ordered", "-"},
                            environment_with({}),
                            {{0, in_read.get()}, {1, out_write.get()}}});
  in_read.reset();
  out_write.reset();
  std::thread writer([&, w = std::move(in_write)]() mutable {
    (void)!::write(w.get(), input.data(), input.size());
    w.reset();
  });
  // A deadline, not a time limit: a 70 MiB line takes kiln run some 40 s under TSan.
  std::string out = read_all(out_read.get(), 300s);
  writer.join();
  return {out, run.exit_code(60s)};
}

// More jobs than the daemon lets one connection queue: kiln run waits for room, it does not fail
// them `overloaded`.
TEST(KilnRun, MoreJobsThanTheQueueHoldsAllRun) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock, {"--max-queue", "8"});  // 2 per connection
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  std::string input;
  for (int i = 0; i < 200; ++i)
    input += "{\"kind\": \"echo\", \"payload\": " + std::to_string(i) + "}\n";
  auto [out, status] = kiln_run(sock, input);
  EXPECT_EQ(status, 0) << out;
  int ok = 0;
  for (std::size_t at = 0; (at = out.find("\"ok\":true", at)) != std::string::npos; ++at) ++ok;
  EXPECT_EQ(ok, 200);
  EXPECT_EQ(out.find("overloaded"), std::string::npos);
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

// A job too big for a frame fails alone, with its own reason: it once ended the connection, and
// every other job failed "the supervisor shut down".
TEST(KilnRun, AnOversizedJobFailsAloneWithItsOwnReason) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock);
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  const std::string input =
      "{\"kind\": \"echo\", \"payload\": 1}\n{\"kind\": \"echo\", \"payload\": \"" +
      std::string(70u << 20, 'x') + "\"}\n{\"kind\": \"echo\", \"payload\": 3}\n";
  auto [out, status] = kiln_run(sock, input);
  EXPECT_EQ(status, 1);
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 3u) << out.substr(0, 2000);
  EXPECT_NE(lines[0].find("\"ok\":true"), std::string::npos) << lines[0];
  EXPECT_NE(
      lines[1].find("\"code\":\"bad_payload\",\"message\":\"the job is 73400360 bytes encoded, "
                    "more than the maximum frame of 67108864 bytes (--max-frame)\""),
      std::string::npos)
      << lines[1];
  EXPECT_NE(lines[2].find("\"ok\":true"), std::string::npos) << lines[2];
  EXPECT_TRUE(Pool::connect(sock).ok()) << "the daemon still serves";
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

// A daemon that stopped (SIGSTOP, a debugger, a machine deep in swap) accepts connections into
// its backlog and never answers: every client gives up on it after KILN_CONNECT_TIMEOUT_MS.
TEST(KilnExecFallback, AStoppedDaemonHasTheCommandRunHereAndNeverGetsTheJob) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock);
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  daemon.kill(SIGSTOP);
  const std::string stalled =
      "the daemon on " + sock + " did not say hello within 300 ms: it is stopped or stalled";
  expect_ran_here(
      kiln_exec_binary(kCommand, {"KILN_SOCKET=" + sock, "KILN_CONNECT_TIMEOUT_MS=300"}), stalled);
  for (const char* command : {"stats", "shutdown"}) {
    const Ran l = kiln_cli({command, "--socket", sock}, {"KILN_CONNECT_TIMEOUT_MS=300"});
    EXPECT_EQ(l.status, 1) << command;
    EXPECT_EQ(l.err, "kiln " + std::string(command) + ": " + stalled + "\n");
  }
  const Ran status =
      kiln_cli({"daemon", "status", "--socket", sock}, {"KILN_CONNECT_TIMEOUT_MS=300"});
  EXPECT_EQ(status.status, 1);
  EXPECT_EQ(status.err, "kiln daemon status: " + stalled + "\n");
  EXPECT_EQ(processes_with("--listen " + sock).size(), 1u) << "no second daemon was started";
  // Resumed, it finds no job in what the launcher left: the command ran once, here.
  daemon.kill(SIGCONT);
  Expected<std::unique_ptr<Pool>> pool = Pool::connect(sock);
  ASSERT_TRUE(pool) << pool.error();
  EXPECT_EQ(to_json((*pool)->submit("echo", to_msgpack(1)).get().value.value()), 1);
  EXPECT_EQ((*pool)->stats()->jobs_submitted, 1u) << "only the echo";
  (*pool)->disconnect();
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

// A socket that accepts and never speaks, and one whose backlog is full (nobody accepts).
TEST(KilnExecFallback, AListenerThatNeverAnswersHasTheCommandRunHere) {
  TempDir dir;
  const auto listen_on = [](const std::string& path, int backlog) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd.get(), backlog), 0);
    return fd;
  };
  const std::string mute = dir / "mute.sock";
  const UniqueFd mute_listener = listen_on(mute, 8);
  UniqueFd accepted;
  std::thread acceptor(
      [&] { accepted = UniqueFd(::accept4(mute_listener.get(), nullptr, nullptr, SOCK_CLOEXEC)); });
  const std::vector<std::string> timeout = {"KILN_CONNECT_TIMEOUT_MS=300"};
  expect_ran_here(
      kiln_exec_binary(kCommand, {"KILN_SOCKET=" + mute, timeout[0]}),
      "the daemon on " + mute + " did not say hello within 300 ms: it is stopped or stalled");
  acceptor.join();
  EXPECT_TRUE(accepted);
  const Ran stats = kiln_cli({"stats", "--socket", mute}, timeout);
  EXPECT_EQ(stats.status, 1);

  // A backlog of 0 holds one connection; the next waits in connect().
  const std::string full = dir / "full.sock";
  const UniqueFd full_listener = listen_on(full, 0);
  UniqueFd waiting(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, full.data(), full.size());
  ASSERT_EQ(::connect(waiting.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string not_accepted =
      full + " did not accept the connection within 300 ms: its daemon is stopped or stalled";
  expect_ran_here(kiln_exec_binary(kCommand, {"KILN_SOCKET=" + full, timeout[0]}), not_accepted);
  const Ran status = kiln_cli({"daemon", "status", "--socket", full}, timeout);
  EXPECT_EQ(status.status, 1);
  EXPECT_EQ(status.err, "kiln daemon status: " + not_accepted + "\n");
  EXPECT_TRUE(processes_with("--listen " + full).empty()) << "no daemon was started";
  // A deadline that is not one is said, and the command still runs.
  expect_ran_here(kiln_exec_binary(kCommand, {"KILN_SOCKET=" + full, "KILN_CONNECT_TIMEOUT_MS=x"}),
                  "KILN_CONNECT_TIMEOUT_MS=x is not a number of milliseconds (1 to 3600000)");
}

// Through the daemon, the worker's chdir() would fail on a path this long (and the command used
// to run in the worker's "/" instead): it runs here, where the build ran it.
TEST(KilnExecFallback, ADirectoryLongerThanAJobsRunsTheCommandHereNeverElsewhere) {
  TempDir dir;
  const std::string name(200, 'd');
  const int depth = 22;
  const std::string script = "cd " + (dir / "") + " && i=0; while [ $i -lt " +
                             std::to_string(depth) + " ]; do mkdir " + name + " && cd -P " + name +
                             " || exit 90; i=$((i+1)); done; : >marker; exec " + KILN_EXEC_PATH +
                             " sh -c 'test -e marker && echo found here'";
  const Ran l = run_to_end({"/bin/sh", "-c", script}, {"KILN_SOCKET=" + (dir / "s.sock")});
  const std::size_t length = (dir / "").size() - 1 + depth * (name.size() + 1);
  EXPECT_EQ(l.status, 0) << l.err;
  EXPECT_EQ(l.out, "found here\n");
  EXPECT_EQ(l.err, "kiln exec: running the command here: its directory is " +
                       std::to_string(length) + " bytes long, more than the 4095 a job's may be\n");
}

// A command may read its stdin without a "-" (cat, sh -s, cc ... /dev/stdin): when stdin may
// carry input, the command runs here with it; /dev/null (ninja's) still goes to the daemon.
TEST(KilnExecFallback, ACommandWhoseStdinMayCarryInputReadsItHere) {
  TempDir dir;
  const std::vector<std::string> env = {"KILN_SOCKET=" + (dir / "s.sock")};
  auto [in_read, in_write] = pipe_pair();
  ASSERT_EQ(::write(in_write.get(), "piped\n", 6), 6);
  in_write.reset();
  Ran l = run_to_end({KILN_EXEC_PATH, "cat"}, env, in_read.get());
  EXPECT_EQ(l.status, 0);
  EXPECT_EQ(l.out, "piped\n");
  EXPECT_EQ(l.err,
            "kiln exec: running the command here: its standard input is a pipe, which a job "
            "cannot read\n");
  const std::string script = dir / "script";
  std::ofstream(script) << "echo from the script; exit 6\n";
  const UniqueFd file(::open(script.c_str(), O_RDONLY | O_CLOEXEC));
  l = run_to_end({KILN_EXEC_PATH, "sh", "-s"}, env, file.get());
  EXPECT_EQ(l.status, 6);
  EXPECT_EQ(l.out, "from the script\n");
  EXPECT_EQ(l.err,
            "kiln exec: running the command here: its standard input is a file, which a job "
            "cannot read\n");
  std::vector<std::string> through = env;
  through.push_back("KILN_FALLBACK=0");
  l = run_to_end({KILN_EXEC_PATH, "sh", "-c", "cat; echo through the daemon"}, through);
  EXPECT_EQ(l.status, 0) << l.err;
  EXPECT_EQ(l.out, "through the daemon\n");
  EXPECT_EQ(l.err, "");
  Expected<std::unique_ptr<Pool>> pool = Pool::connect(dir / "s.sock");
  ASSERT_TRUE(pool) << pool.error();
  EXPECT_EQ((*pool)->stats()->jobs_submitted, 1u) << "only the one with /dev/null";
  (*pool)->shutdown(false);
}

// As a shell: 127 for a command that is not there, 126 for one that is but cannot be executed
// (no execute permission, a directory), through the daemon and here alike.
TEST(KilnExec, AnUnrunnableCommandExitsAsFromAShellThroughTheDaemonAndHere) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  Child daemon = start_daemon(sock);
  ASSERT_TRUE(wait_until([&] { return exists(sock); }, 10s));
  const std::string plain = dir / "plain-file";
  std::ofstream(plain) << "echo never\n";
  ::chmod(plain.c_str(), 0644);
  const std::string directory = dir / "";
  for (const auto& [command, status, why] :
       {std::tuple<std::string, int, std::string>{"/no/such/compiler", exit_code::kNotFound,
                                                  "No such file or directory"},
        {plain, exit_code::kCannotExecute, "Permission denied"},
        {directory, exit_code::kCannotExecute, "Permission denied"}}) {
    const Ran served =
        kiln_exec_binary({command, "-c", "a.c"}, {"KILN_SOCKET=" + sock, "KILN_FALLBACK=0"});
    EXPECT_EQ(served.status, status) << command;
    EXPECT_EQ(served.err,
              "kiln exec: spawn_failed: cannot execute '" + command + "': " + why + "\n");
    const Ran here =
        launch({"--socket", dir / "none.sock", "--supervisor", "/nonexistent/sup", "--", command});
    EXPECT_EQ(here.status, status) << command;
    EXPECT_TRUE(here.err.ends_with("kiln exec: cannot execute '" + command + "': " + why + "\n"))
        << here.err;
  }
  daemon.kill(SIGTERM);
  EXPECT_EQ(daemon.exit_code(), 0);
}

// A socket we may not connect to (EACCES: another user's) is someone's daemon: refused at once,
// as one served by another user is, never taken for nobody there (a wait, a daemon started).
TEST(DaemonTrust, ASocketWeMayNotConnectToIsRefusedAtOnceAndNoDaemonIsStarted) {
  TempDir dir;
  const std::string sock = dir / "s.sock";
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, sock.data(), sock.size());
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 8), 0);
  std::vector<std::string> argv = {KILN_EXEC_PATH, "sh", "-c", "echo compiled"};
  if (::getuid() == 0) {
    // Root may connect anywhere: the launcher runs as another user, the socket root's (0600).
    ASSERT_EQ(::chmod((dir / "").c_str(), 0755), 0);
    ASSERT_EQ(::chmod(sock.c_str(), 0600), 0);
    argv.insert(argv.begin(),
                {"/usr/bin/setpriv", "--reuid=54321", "--regid=54321", "--clear-groups"});
  } else {
    ASSERT_EQ(::chmod(sock.c_str(), 0), 0);
  }
  const Ran l = run_to_end(argv, {"KILN_SOCKET=" + sock});
  EXPECT_EQ(l.status, exit_code::kLauncherFailed);
  EXPECT_EQ(l.out, "");
  EXPECT_EQ(l.err,
            "kiln exec: cannot connect to " + sock + ": Permission denied: refusing to use it\n");
  EXPECT_FALSE(exists(sock + ".log")) << "no daemon was started";
  EXPECT_TRUE(processes_with("--listen " + sock).empty());
}

}  // namespace
}  // namespace kiln::client
