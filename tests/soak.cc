// The soak: one kiln-supervisor, several concurrent clients, a long randomized mix of jobs and
// faults, and the guarantees of docs/design.md checked on every answer and at the end.
//
//   kiln_soak [--mode pipe|socket] [--jobs N] [--clients N] [--workers N] [--seed S]
//             [--supervisor PATH]
//
// Jobs: echo, exec of real commands (sh with random exit codes and output sizes, commands that
// leave background children, cc -c), selftest crashes, aborts, exits, hangs, garbage,
// allocations and failures, timeouts, cancels of queued and running jobs. Faults: SIGKILL and
// SIGSTOP of random workers, quiesce and wakeup, and in socket mode clients that disconnect
// mid-job and a client that stops reading for a while. Checked: every job answered exactly once
// with a code its fate allows; no zombie that lasts; no worker, command or background child left
// after shutdown; the supervisor's fd count back to its warm value and its RSS within a bound.
// The seed is printed; the same seed replays the same choices (the timing differs).
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <msgpack.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/pool.h"
#include "common/cli.h"
#include "common/fd.h"
#include "common/frame.h"
#include "common/protocol.h"
#include "tests/process.h"
#include "tests/supervisor_harness.h"

namespace kiln::soak {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::Child;
using testing::wait_until;

struct Config {
  std::string mode = "socket";
  uint64_t jobs = 20000;
  int clients = 4;
  int workers = 3;
  uint64_t seed = 0;
  std::string supervisor = KILN_SUPERVISOR_PATH;
};

// ---- what went wrong, counted and shown at the end ----
std::mutex g_report_mu;
std::vector<std::string> g_violations;
void violation(const std::string& what) {
  std::lock_guard lock(g_report_mu);
  if (g_violations.size() < 50)
    g_violations.push_back(what);
  else if (g_violations.size() == 50)
    g_violations.push_back("(more violations not shown)");
}

// Worker pids that the chaos thread killed: a worker_crashed answer naming one of them is the
// fate of whatever job that worker ran.
std::mutex g_killed_mu;
std::set<uint64_t> g_killed;
bool was_killed(uint64_t pid) {
  std::lock_guard lock(g_killed_mu);
  return g_killed.count(pid) != 0;
}

// ---- jobs and their fates ----
enum class Kind {
  kEcho,
  kExec,
  kExecBackground,
  kCompile,
  kCrash,
  kAbort,
  kExit,
  kFail,
  kHang,
  kSleepTimeout,
  kGarbage,
  kAlloc,
  kCancelQueued,
  kCancelRunning
};

struct Expect {
  Kind kind;
  std::string payload;  // msgpack, for echo's value check
  int exit_code = 0;
  uint64_t stdout_size = 0;
  std::string message;
};

template <class... Fields>
std::string payload(Fields&&... fields) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(sizeof...(fields) / 2);
  (pk.pack(fields), ...);
  return std::string(buf.data(), buf.size());
}

std::string exec_payload(std::vector<std::string> argv,
                         std::optional<std::string> stdin_data = {}) {
  client::ExecRequest r;
  r.argv = std::move(argv);
  r.stdin_data = std::move(stdin_data);
  return client::exec_payload(r).bytes;
}

Expect echo_of(const std::string& payload) {
  Expect e;
  e.kind = Kind::kEcho;
  e.payload = payload;
  return e;
}

struct Planned {
  proto::Submit submit;
  Expect expect;
};

// One job drawn from the mix. `token` marks every command this soak runs, so that anything left
// running afterwards can be found.
Planned plan(std::mt19937_64& rng, uint64_t id, const std::string& token) {
  Planned p;
  p.submit.id = id;
  const int r = static_cast<int>(rng() % 1000);
  auto& e = p.expect;
  auto selftest = [&](std::string body) {
    p.submit.kind = "selftest";
    p.submit.payload.bytes = std::move(body);
  };
  if (r < 700) {
    e.kind = Kind::kEcho;
    std::string bytes(rng() % 4096, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_bin(static_cast<uint32_t>(bytes.size()));
    pk.pack_bin_body(bytes.data(), static_cast<uint32_t>(bytes.size()));
    e.payload.assign(buf.data(), buf.size());
    p.submit.kind = "echo";
    p.submit.payload.bytes = e.payload;
  } else if (r < 820) {
    e.kind = Kind::kExec;
    e.exit_code = static_cast<int>(rng() % 4);
    e.stdout_size = rng() % 3 == 0 ? rng() % 200000 : rng() % 100;
    p.submit.kind = "exec";
    p.submit.payload.bytes = exec_payload({"sh", "-c",
                                           "head -c " + std::to_string(e.stdout_size) +
                                               " /dev/zero; exit " + std::to_string(e.exit_code),
                                           token});
  } else if (r < 840) {
    // A background child that would outlive the command: the job must take it along. The
    // trailing `:` keeps sh from exec'ing sleep, so the token stays in the process's argv.
    e.kind = Kind::kExecBackground;
    e.stdout_size = 3;
    p.submit.kind = "exec";
    p.submit.payload.bytes =
        exec_payload({"sh", "-c", "sh -c 'sleep 60; :' " + token + " & echo bg", token});
  } else if (r < 848) {
    e.kind = Kind::kCompile;
    p.submit.kind = "exec";
    p.submit.payload.bytes =
        exec_payload({"cc", "-c", "-x", "c", "-", "-o", "/dev/null"},
                     "int f" + std::to_string(id) + "(int x) { return x * 3; }\n");
  } else if (r < 856) {
    e.kind = Kind::kCrash;
    selftest(payload("action", "crash"));
  } else if (r < 860) {
    e.kind = Kind::kAbort;
    selftest(payload("action", "abort"));
  } else if (r < 864) {
    e.kind = Kind::kExit;
    selftest(payload("action", "exit", "code", static_cast<int>(1 + rng() % 100)));
  } else if (r < 900) {
    e.kind = Kind::kFail;
    e.message = "soak failure " + std::to_string(id);
    selftest(payload("action", "fail", "message", e.message));
  } else if (r < 904) {
    e.kind = Kind::kHang;
    selftest(payload("action", "hang"));
    p.submit.timeout_ms = 100 + rng() % 200;
  } else if (r < 912) {
    e.kind = Kind::kSleepTimeout;
    selftest(payload("action", "sleep", "ms", 30000));
    p.submit.timeout_ms = 50 + rng() % 200;
  } else if (r < 916) {
    e.kind = Kind::kGarbage;
    selftest(payload("action", "garbage"));
  } else if (r < 940) {
    e.kind = Kind::kAlloc;
    selftest(payload("action", "alloc", "mb", static_cast<int>(1 + rng() % 16)));
  } else if (r < 975) {
    e.kind = Kind::kCancelQueued;  // cancelled right after submit: usually still queued
    selftest(payload("action", "sleep", "ms", 30000));
  } else {
    e.kind = Kind::kCancelRunning;  // cancelled once it runs
    selftest(payload("action", "sleep", "ms", 30000));
  }
  return p;
}

// Empty if the result is what the job's fate allows, else what is wrong.
std::string judge(const Expect& e, const proto::Result& r) {
  const std::string code = r.error ? r.error->code : "";
  if (!r.ok && code == "worker_crashed" && r.worker_pid && was_killed(*r.worker_pid)) return "";
  auto want = [&](const char* wanted) {
    return code == wanted ? "" : std::string("wanted ") + wanted + ", got " + (r.ok ? "ok" : code);
  };
  switch (e.kind) {
    case Kind::kEcho:
      if (!r.ok) return "echo failed: " + code;
      return r.value && r.value->bytes == e.payload ? "" : "echo value differs";
    case Kind::kExec:
    case Kind::kExecBackground:
    case Kind::kCompile: {
      if (!r.ok || !r.value)
        return "exec failed: " + code + (r.error ? " " + r.error->message : "");
      const Expected<proto::ExecValue> v = proto::decode_exec_value(*r.value);
      if (!v) return "exec value malformed: " + v.error();
      if (v->exit_code != e.exit_code)
        return "exit code " + std::to_string(v->exit_code) + ", wanted " +
               std::to_string(e.exit_code);
      const std::size_t out = v->stdout_data.bytes.size();
      if (e.kind != Kind::kCompile && out != e.stdout_size)
        return "stdout of " + std::to_string(out) + " bytes, wanted " +
               std::to_string(e.stdout_size);
      return "";
    }
    case Kind::kCrash:
    case Kind::kAbort:
    case Kind::kExit:
      return want("worker_crashed");
    case Kind::kFail:
      if (code != "job_failed") return want("job_failed");
      return r.error->message == e.message ? "" : "job_failed with message " + r.error->message;
    case Kind::kHang:
    case Kind::kSleepTimeout:
      return want("timeout");
    case Kind::kGarbage:
      return want("worker_protocol_error");
    case Kind::kAlloc:
      return r.ok ? "" : "alloc failed: " + code;
    case Kind::kCancelQueued:
    case Kind::kCancelRunning:
      return want("cancelled");
  }
  return "unknown kind";
}

// ---- one client link: frames out under a lock, a reader thread for what comes back ----
class Link {
 public:
  // A paused link reads nothing until resume(): a client that stops reading.
  Link(UniqueFd read_fd, UniqueFd write_fd, bool paused = false)
      : read_(std::move(read_fd)), write_(std::move(write_fd)) {
    if (!paused) resume();
  }
  void resume() {
    reader_ = std::thread([this] { read_loop(); });
  }
  ~Link() { close(); }

  bool send(const std::string& frame) {
    std::lock_guard lock(write_mu_);
    std::string_view rest = frame;
    while (!rest.empty()) {
      const ssize_t n = ::write(write_.get(), rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  template <class M>
  bool send_message(const M& m) {
    std::string frame;
    proto::encode(m, frame);
    return send(frame);
  }

  // Registers a job before its submit is sent.
  void expect(uint64_t id, Expect e) {
    std::lock_guard lock(mu_);
    open_[id] = std::move(e);
  }
  std::size_t open_jobs() {
    std::lock_guard lock(mu_);
    return open_.size();
  }
  // Waits until at most `n` jobs are open, or `deadline`.
  bool wait_open_at_most(std::size_t n, Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_until(lock, deadline, [&] { return open_.size() <= n || ended_; }) &&
           open_.size() <= n;
  }
  std::optional<proto::Stats> stats(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    const std::size_t before = stats_seen_;
    lock.unlock();
    if (!send_message(proto::StatsRequest{})) return std::nullopt;
    lock.lock();
    if (!cv_.wait_for(lock, timeout, [&] { return stats_seen_ > before || ended_; }) || ended_)
      return std::nullopt;
    return last_stats_;
  }
  // Ends the connection from our side; the jobs still open are abandoned, not judged.
  std::size_t abandon() {
    ::shutdown(write_.get(), SHUT_RDWR);
    close();
    std::lock_guard lock(mu_);
    const std::size_t n = open_.size();
    open_.clear();
    return n;
  }
  void close() {
    if (reader_.joinable()) {
      ::shutdown(read_.get(), SHUT_RDWR);  // a socket's reader sees its end; a pipe's has already
      reader_.join();
    }
  }
  void close_write() { write_.reset(); }
  uint64_t answered() const { return answered_.load(); }
  std::map<std::string, uint64_t> codes() {
    std::lock_guard lock(mu_);
    return codes_;
  }

 private:
  void read_loop() {
    FrameInbox inbox(kDefaultMaxFrame);
    bool reading = true;
    while (reading) {
      Expected<FrameInbox::Read> read = inbox.fill(read_.get());
      while (reading && inbox.has_body()) reading = on_body(inbox.take());
      if (reading && !read && read.error_code() != FrameInbox::kReadFailed) {
        violation("bad frame from the supervisor: " + read.error());
      }
      reading = reading && read && *read == FrameInbox::Read::kOk;
    }
    std::lock_guard lock(mu_);
    ended_ = true;
    cv_.notify_all();
  }

  bool on_body(std::string_view body) {
    auto event = proto::decode_client_event(body);
    if (!event) {
      violation("bad message from the supervisor: " + event.error());
      return false;
    }
    std::lock_guard lock(mu_);
    if (auto* r = std::get_if<proto::Result>(&*event)) {
      ++answered_;
      ++codes_[r->ok ? "ok" : r->error ? r->error->code : "?"];
      auto it = open_.find(r->id);
      if (it == open_.end()) {
        violation("a second or unasked answer for job " + std::to_string(r->id));
        return true;
      }
      const std::string wrong = judge(it->second, *r);
      if (!wrong.empty()) violation("job " + std::to_string(r->id) + ": " + wrong);
      open_.erase(it);
      cv_.notify_all();
    } else if (auto* s = std::get_if<proto::Stats>(&*event)) {
      last_stats_ = *s;
      ++stats_seen_;
      cv_.notify_all();
    } else if (auto* err = std::get_if<proto::Error>(&*event)) {
      violation("protocol error from the supervisor: " + err->code + ": " + err->message);
    }
    return true;
  }

  UniqueFd read_, write_;
  std::mutex write_mu_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Expect> open_;
  std::map<std::string, uint64_t> codes_;
  std::atomic<uint64_t> answered_{0};
  proto::Stats last_stats_;
  std::size_t stats_seen_ = 0;
  bool ended_ = false;
};

// A new client of the daemon; nullptr, with the reason recorded as a violation, when it cannot
// connect (the daemon must accept every client for as long as the run lasts).
std::unique_ptr<Link> connect_socket(const std::string& path, bool paused = false) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    violation("cannot connect to " + path + ": " + std::strerror(errno));
    return nullptr;
  }
  UniqueFd second(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
  return std::make_unique<Link>(std::move(fd), std::move(second), paused);
}

int run(const Config& c) {
  const std::string token =
      "kiln-soak-" + std::to_string(::getpid()) + "-" + std::to_string(c.seed);
  std::printf("soak: mode %s, %llu jobs, %d clients, %d workers, seed %llu\n", c.mode.c_str(),
              static_cast<unsigned long long>(c.jobs), c.clients, c.workers,
              static_cast<unsigned long long>(c.seed));
  char dir_template[] = "/tmp/kiln-soak.XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  const std::string sock = dir + "/s.sock";
  const std::string log = dir + "/supervisor.log";
  std::vector<std::string> argv = {c.supervisor,
                                   "--workers",
                                   std::to_string(c.workers),
                                   "--enable-selftest",
                                   "--grace-ms",
                                   "200",
                                   "--job-timeout-ms",
                                   "60000",
                                   "--log-file",
                                   log,
                                   "--log-level",
                                   "warn"};
  Child sup;
  std::unique_ptr<Link> control;  // stats, quiesce, shutdown; in pipe mode every client's too
  if (c.mode == "pipe") {
    auto [to_r, to_w] = testing::pipe_pair();
    auto [from_r, from_w] = testing::pipe_pair();
    argv.insert(argv.end(), {"--read-fd", "3", "--write-fd", "4"});
    sup = Child::spawn({argv, testing::environment_with({}), {{3, to_r.get()}, {4, from_w.get()}}});
    control = std::make_unique<Link>(std::move(from_r), std::move(to_w));
  } else {
    // --parent: the daemon shuts down with this driver, even when a signal ends it.
    argv.insert(argv.end(), {"--listen", sock, "--parent", std::to_string(::getpid())});
    sup = Child::spawn({argv, testing::environment_with({}), {}});
    if (!wait_until([&] { return ::access(sock.c_str(), F_OK) == 0; }, 10s)) {
      std::fprintf(stderr, "soak: the supervisor did not listen\n");
      return 1;
    }
    control = connect_socket(sock);
    if (!control) {
      std::fprintf(stderr, "soak: %s\n", g_violations.back().c_str());
      return 1;
    }
  }
  const pid_t sup_pid = sup.pid();

  // Warm-up: the pool full and idle, some jobs through it; then the baseline.
  std::mt19937_64 warm_rng(c.seed);
  for (uint64_t i = 0; i < 200; ++i) {
    proto::Submit s;
    s.id = 1'000'000'000 + i;
    s.kind = "echo";
    s.payload.bytes = std::string(1, '\x07');
    control->expect(s.id, echo_of(s.payload.bytes));
    control->send_message(s);
  }
  control->wait_open_at_most(0, Clock::now() + 30s);
  auto pool_settled = [&] {
    auto st = control->stats(10s);
    return st && st->workers_alive == static_cast<uint64_t>(c.workers) && st->workers_busy == 0 &&
           st->jobs_queued == 0 && st->jobs_running == 0;
  };
  wait_until(pool_settled, 30s);
  const std::size_t fds_warm = open_fds(sup_pid).size();

  std::atomic<uint64_t> kills{0}, stops{0}, quiesces{0}, submitted{0}, abandoned{0};
  std::atomic<unsigned long> rss_peak{0};  // the supervisor's, over the current phase
  uint64_t zombie_samples = 0, answered = 0;
  std::map<std::string, uint64_t> codes;
  // One phase of the run: `jobs` jobs from every client at once, under chaos. Its job ids start
  // at `first_id` for each client. Returns its length in seconds.
  auto phase = [&](uint64_t jobs, uint64_t first_id) {
    // Chaos: SIGKILL or SIGSTOP/SIGCONT a random worker now and then; sample zombies.
    std::atomic<bool> stop{false};
    std::thread chaos([&] {
      std::mt19937_64 rng(c.seed ^ 0x5eed);
      std::map<pid_t, Clock::time_point> zombie_since;
      while (!stop) {
        const unsigned long rss = rss_kb(sup_pid);
        if (rss > rss_peak) rss_peak = rss;
        // Victims are workers that are up (idle or busy): killing one that is still starting, five
        // times running, is a crash loop, which the supervisor rightly answers pool_unavailable.
        std::vector<pid_t> up;
        if (auto st = control->stats(5s)) {
          for (const auto& w : st->worker_list)
            if (w.state == "idle" || w.state == "busy") up.push_back(static_cast<pid_t>(w.pid));
        }
        const auto zombies = testing::children_of(sup_pid, /*zombies=*/true);
        std::erase_if(zombie_since, [&](const auto& z) {
          return std::find(zombies.begin(), zombies.end(), z.first) == zombies.end();
        });
        for (pid_t k : zombies) {
          ++zombie_samples;
          auto [it, fresh] = zombie_since.emplace(k, Clock::now());
          if (!fresh && Clock::now() - it->second > 1s)
            violation("worker " + std::to_string(k) + " has been a zombie for over a second");
        }
        if (!up.empty() && rng() % 3 != 0) {
          const pid_t victim = up[rng() % up.size()];
          if (testing::is_running(victim)) {
            if (rng() % 5 < 3) {
              {
                std::lock_guard lock(g_killed_mu);
                g_killed.insert(static_cast<uint64_t>(victim));
              }
              ::kill(victim, SIGKILL);
              ++kills;
            } else {
              ::kill(victim, SIGSTOP);
              std::this_thread::sleep_for(std::chrono::milliseconds(10 + rng() % 60));
              ::kill(victim, SIGCONT);
              ++stops;
            }
          }
        }
        if (rng() % 40 == 0) {  // now and then the whole pool stops and starts again
          control->send_message(proto::Quiesce{});
          std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 30));
          control->send_message(proto::Wakeup{});
          ++quiesces;
        }
        // Fault injection runs on its own clock; nothing waits on it.
        std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 60));
      }
    });

    // Clients.
    const auto start = Clock::now();
    std::mutex links_mu;
    std::vector<std::unique_ptr<Link>> finished_links;
    std::vector<std::thread> clients;
    for (int k = 0; k < c.clients; ++k) {
      clients.emplace_back([&, k] {
        std::mt19937_64 rng(c.seed * 1000003 + static_cast<uint64_t>(k));
        const uint64_t quota = jobs / c.clients + (k == 0 ? jobs % c.clients : 0);
        const bool socket = c.mode == "socket";
        const bool disconnects = socket && k == 1;  // this one leaves mid-job now and then
        const bool slow_reader = socket && k == 2;  // this one stops reading for a while
        std::unique_ptr<Link> own = socket ? connect_socket(sock) : nullptr;
        Link* link = socket ? own.get() : control.get();
        if (!link) return;
        const uint64_t id_base = (static_cast<uint64_t>(k) << 40) + first_id;
        uint64_t n = 0;
        while (n < quota) {
          const std::size_t window = 24;
          if (!link->wait_open_at_most(window - 1, Clock::now() + 120s)) {
            violation("client " + std::to_string(k) + ": no answers for 120 s");
            break;
          }
          Planned p = plan(rng, id_base + n, token);
          ++n;
          ++submitted;
          const bool cancel =
              p.expect.kind == Kind::kCancelQueued || p.expect.kind == Kind::kCancelRunning;
          const bool running = p.expect.kind == Kind::kCancelRunning;
          link->expect(p.submit.id, p.expect);
          link->send_message(p.submit);
          if (cancel) {
            if (running) std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 5));
            link->send_message(proto::Cancel{p.submit.id});
          }
          if (disconnects && n % 300 == 150) {
            abandoned += link->abandon();
            {
              std::lock_guard lock(links_mu);
              finished_links.push_back(std::move(own));  // its answers still count
            }
            own = connect_socket(sock);
            link = own.get();
            if (!link) return;
          }
          if (slow_reader && n % 500 == 250) {
            // A burst of large echoes to a client that reads nothing for a while: the supervisor
            // must hold their results back (and go on serving everyone else) until it reads.
            auto slow = connect_socket(sock, /*paused=*/true);
            if (!slow) return;
            std::string big(128 << 10, 'x');
            msgpack::sbuffer buf;
            msgpack::packer<msgpack::sbuffer> pk(buf);
            pk.pack_bin(static_cast<uint32_t>(big.size()));
            pk.pack_bin_body(big.data(), static_cast<uint32_t>(big.size()));
            const std::string payload(buf.data(), buf.size());
            for (uint64_t j = 0; j < 20; ++j) {
              proto::Submit s;
              s.id = j + 1;
              s.kind = "echo";
              s.payload.bytes = payload;
              slow->expect(s.id, echo_of(payload));
              slow->send_message(s);
              submitted++;
            }
            std::this_thread::sleep_for(
                std::chrono::milliseconds(100 + rng() % 300));  // not reading
            slow->resume();
            if (!slow->wait_open_at_most(0, Clock::now() + 60s))
              violation("the slow reader's jobs were not all answered");
            // Done with it: closed now, not held open to the end of the phase (hundreds of idle
            // connections in a long run made the RSS check measure them, not leaks).
            slow->abandon();
            std::lock_guard lock(links_mu);
            finished_links.push_back(std::move(slow));
          }
        }
        if (!link->wait_open_at_most(0, Clock::now() + 120s))
          violation("client " + std::to_string(k) + ": " + std::to_string(link->open_jobs()) +
                    " jobs never answered");
        if (own) {
          std::lock_guard lock(links_mu);
          finished_links.push_back(std::move(own));
        }
      });
    }
    for (auto& t : clients) t.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    stop = true;
    chaos.join();
    for (pid_t w : child_pids(sup_pid)) ::kill(w, SIGCONT);
    for (auto& l : finished_links) {
      l->abandon();
      answered += l->answered();
      for (const auto& [code, count] : l->codes()) codes[code] += count;
    }
    finished_links.clear();
    return seconds;
  };

  // A first phase under the same load warms everything up. The RSS baseline is the peak of that
  // phase: freed memory that the allocator keeps (a slow reader's held-back results, the largest
  // outputs in flight at once) stays resident, so RSS after a burst says how large the burst
  // was. Memory that churn leaks grows past every earlier peak; that is what the bound checks.
  const uint64_t warm_jobs = c.jobs / 5;
  phase(warm_jobs, 0);
  if (!wait_until(pool_settled, 30s)) violation("the pool did not settle after the warm-up");
  const unsigned long rss_warm = std::max(rss_peak.load(), rss_kb(sup_pid));
  const double seconds = phase(c.jobs - warm_jobs, uint64_t{1} << 32);
  for (const auto& [code, count] : control->codes()) codes[code] += count;
  // The first echoes went through the control link too, and count as neither.
  answered += control->answered() - 200;
  codes["ok"] -= 200;
  if (answered + abandoned != submitted)
    violation(std::to_string(submitted) + " jobs submitted but " + std::to_string(answered) +
              " answered and " + std::to_string(abandoned) + " abandoned");

  // Back to rest: the same fds as after warm-up (one client link), RSS near its warm value.
  if (!wait_until(pool_settled, 30s)) violation("the pool did not settle after the run");
  // Closed connections go once the supervisor has read their end: wait for that, with a deadline.
  const bool fds_back = wait_until([&] { return open_fds(sup_pid).size() == fds_warm; }, 10s);
  const std::size_t fds_end = open_fds(sup_pid).size();
  if (!fds_back)
    violation("supervisor fds: " + std::to_string(fds_warm) + " after warm-up, " +
              std::to_string(fds_end) + " at the end");
  const unsigned long rss_end = rss_kb(sup_pid);
  constexpr unsigned long kRssBoundKb = 6 * 1024;
  if (rss_end > rss_warm + kRssBoundKb)
    violation("supervisor RSS grew from " + std::to_string(rss_warm) + " KiB to " +
              std::to_string(rss_end) + " KiB");

  // Shutdown, then nothing of ours may be left.
  const std::vector<pid_t> last_workers = child_pids(sup_pid);
  if (c.mode == "pipe")
    control->close_write();  // end of input: shutdown
  else
    control->send_message(proto::Shutdown{});
  const int status = sup.exit_code(30s);
  if (status != 0) violation("the supervisor exited with " + std::to_string(status));
  control->close();
  std::vector<pid_t> left;
  wait_until(
      [&] {
        left = testing::processes_with(token);
        for (pid_t w : last_workers)
          if (testing::is_running(w)) left.push_back(w);
        return left.empty();
      },
      10s);
  for (pid_t p : left) {
    violation("still running after shutdown: pid " + std::to_string(p));
    ::kill(p, SIGKILL);
  }

  std::printf("soak: %llu jobs submitted, %llu answered, %llu abandoned with their connection\n",
              static_cast<unsigned long long>(submitted.load()),
              static_cast<unsigned long long>(answered),
              static_cast<unsigned long long>(abandoned.load()));
  std::printf("soak: answers:");
  for (const auto& [code, count] : codes)
    std::printf(" %s %llu", code.c_str(), static_cast<unsigned long long>(count));
  std::printf("\nsoak: faults: %llu workers SIGKILLed, %llu SIGSTOPped, %llu quiesce/wakeup\n",
              static_cast<unsigned long long>(kills.load()),
              static_cast<unsigned long long>(stops.load()),
              static_cast<unsigned long long>(quiesces.load()));
  std::printf(
      "soak: %.0f jobs/s under faults (%.1f s after the warm-up); supervisor fds %zu -> %zu, RSS "
      "%lu -> %lu "
      "KiB; zombie samples %llu (none lasting); %zu processes left\n",
      static_cast<double>(c.jobs - warm_jobs) / seconds, seconds, fds_warm, fds_end, rss_warm,
      rss_end, static_cast<unsigned long long>(zombie_samples), left.size());
  std::lock_guard lock(g_report_mu);
  for (const auto& v : g_violations) std::printf("soak: VIOLATION: %s\n", v.c_str());
  if (!g_violations.empty()) std::printf("soak: the supervisor's log: %s\n", log.c_str());
  std::printf("soak: %s (replay with --seed %llu)\n", g_violations.empty() ? "passed" : "FAILED",
              static_cast<unsigned long long>(c.seed));
  if (g_violations.empty()) std::filesystem::remove_all(dir);
  return g_violations.empty() ? 0 : 1;
}

}  // namespace
}  // namespace kiln::soak

int main(int argc, char** argv) {
  kiln::soak::Config c;
  c.seed = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) %
           1'000'000'007;
  CLI::App app("kiln_soak: a randomized mix of jobs and faults against one kiln-supervisor.");
  app.add_option("--mode", c.mode, "the client link: socket (several clients) or pipe (one)")
      ->check(CLI::IsMember({"pipe", "socket"}));
  app.add_option("--jobs", c.jobs, "how many jobs in all")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1'000'000'000}));
  app.add_option("--clients", c.clients, "concurrent clients")->check(CLI::Range(1, 256));
  app.add_option("--workers", c.workers, "the supervisor's pool size")->check(CLI::Range(1, 256));
  app.add_option("--seed", c.seed, "replays a run's choices (default: from the clock, printed)");
  app.add_option("--supervisor", c.supervisor, "the kiln-supervisor binary");
  if (std::optional<int> status = kiln::parse_command_line(app, argc, argv)) return *status;
  return kiln::soak::run(c);
}
