#include "bench/bench.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "common/build_key.h"

extern char** environ;

namespace kiln::bench {

void die(const std::string& why) {
  std::fprintf(stderr, "bench: %s\n", why.c_str());
  std::exit(1);
}

Summary summarize(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  Summary s;
  s.median = v[v.size() / 2];
  s.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  s.min = v.front();
  s.max = v.back();
  return s;
}

namespace {

std::string format(const char* fmt, double a, double b, double c) {
  char buf[128];
  std::snprintf(buf, sizeof buf, fmt, a, b, c);
  return buf;
}

}  // namespace

std::string show_us(const Summary& s) {
  return format("%.1f us (%.1f-%.1f)", s.median, s.min, s.max);
}
std::string show_ms(const Summary& s) {
  return format("%.1f ms (%.1f-%.1f)", s.median / 1000, s.min / 1000, s.max / 1000);
}
std::string show_rate(const Summary& s) {
  return format("%.0f jobs/s (%.0f-%.0f)", s.median, s.min, s.max);
}
std::string show_kib(double kib) { return format("%.2f MiB (%.0f KiB)", kib / 1024, kib, 0); }
std::string show_ratio(double r) { return format(r < 0.1 ? "%.4fx" : "%.2fx", r, 0, 0); }

void row(const std::string& figure, const std::string& kiln, const std::string& comparison,
         const std::string& ratio, const std::string& target, std::optional<bool> met) {
  const char* verdict = !met ? "-" : *met ? "yes" : "**no**";
  std::printf("| %s | %s | %s | %s | %s | %s |\n", figure.c_str(), kiln.c_str(), comparison.c_str(),
              ratio.c_str(), target.c_str(), verdict);
  std::fflush(stdout);
}

Options parse_options(int argc, char** argv, const char* usage) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      o.quick = true;
      o.rounds = 1;
    } else if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      o.rounds = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--label") == 0 && i + 1 < argc) {
      o.label = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--rounds N] [--label TEXT]\n%s\n", argv[0], usage);
      std::exit(std::strcmp(argv[i], "--help") == 0 ? 0 : 2);
    }
  }
  return o;
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die(std::string("write: ") + std::strerror(errno));
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

LinkedChild spawn_linked(const std::vector<std::string>& argv) {
  auto [to_read, to_write] = make_pipe();
  auto [from_read, from_write] = make_pipe();
  const std::string key = "KILN_KEY=" + base64_encode("bench");
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    // Copies above the targets first: a source fd may itself be 3 or 4.
    const int in = ::fcntl(to_read.get(), F_DUPFD, 10),
              out = ::fcntl(from_write.get(), F_DUPFD, 10);
    ::dup2(in, 3);
    ::dup2(out, 4);
    ::putenv(const_cast<char*>(key.c_str()));
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  return {pid, std::move(to_write), std::move(from_read)};
}

Supervisor::Supervisor(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {
      beside_self("kiln-supervisor"), "--read-fd", "3", "--write-fd", "4", "--log-level", "warn"};
  argv.insert(argv.end(), args.begin(), args.end());
  LinkedChild child = spawn_linked(argv);
  pid_ = child.pid;
  to_ = std::move(child.to);
  from_ = std::move(child.from);
  const proto::ClientEvent first = next();
  if (!std::holds_alternative<proto::Hello>(first)) die("the supervisor did not say hello first");
  hello_ = std::get<proto::Hello>(first);
}

Supervisor::~Supervisor() {
  if (pid_ <= 0) return;
  to_.reset();    // end of input: shutdown without drain
  from_.reset();  // whatever it still has to say, nobody reads
  ::waitpid(pid_, nullptr, 0);
}

void Supervisor::kill() {
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void Supervisor::send(const std::string& frame) { write_all(to_.get(), frame); }

proto::ClientEvent Supervisor::next() {
  Expected<FrameInbox::Read> read = inbox_.fill(from_.get());
  if (!read && read.error_code() != FrameInbox::kReadFailed) {
    die("bad frame from the supervisor: " + read.error());
  }
  if (!read || *read != FrameInbox::Read::kOk) die("the supervisor closed its link");
  auto event = proto::decode_client_event(inbox_.take());
  if (!event) die("bad message from the supervisor: " + event.error());
  return std::move(*event);
}

proto::Result Supervisor::next_result() {
  for (;;) {
    proto::ClientEvent e = next();
    if (auto* r = std::get_if<proto::Result>(&e)) return std::move(*r);
  }
}

proto::Stats Supervisor::stats() {
  std::string frame;
  proto::encode(proto::StatsRequest{}, frame);
  send(frame);
  for (;;) {
    proto::ClientEvent e = next();
    if (auto* s = std::get_if<proto::Stats>(&e)) return std::move(*s);
  }
}

void Supervisor::await_idle_workers(std::size_t count, const std::vector<uint64_t>& not_pids) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  for (;;) {
    const proto::Stats s = stats();
    std::size_t idle = 0;
    bool old = false;
    for (const auto& w : s.worker_list) {
      idle += w.state == "idle";
      old = old || std::find(not_pids.begin(), not_pids.end(), w.pid) != not_pids.end();
    }
    if (idle == count && !old) return;
    if (Clock::now() > deadline) die("workers did not become ready within 60 s");
    // A pause between polls, so that asking does not take the CPUs the new workers need; it
    // bounds the error of a measured time to 0.2 ms.
    ::usleep(200);
  }
}

std::string Supervisor::submit_frame(const std::string& kind, const std::string& payload) {
  proto::Submit s;
  s.id = next_id_++;
  s.kind = kind;
  s.payload.bytes = payload;
  std::string frame;
  proto::encode(s, frame);
  return frame;
}

double Supervisor::burst(const std::string& kind, const std::string& payload, int n) {
  std::string all;
  for (int i = 0; i < n; ++i) all += submit_frame(kind, payload);
  const auto start = Clock::now();
  std::thread writer([&] { send(all); });
  for (int i = 0; i < n; ++i) {
    if (!next_result().ok) die("a " + kind + " job failed");
  }
  writer.join();
  return micros_since(start);
}

std::string bin_payload(std::size_t n) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  const std::string bytes(n, 'x');
  pk.pack_bin(static_cast<uint32_t>(n));
  pk.pack_bin_body(bytes.data(), static_cast<uint32_t>(n));
  return std::string(buf.data(), buf.size());
}

std::string sleep_payload(uint64_t ms) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(2);
  pk.pack("action");
  pk.pack("sleep");
  pk.pack("ms");
  pk.pack(ms);
  return std::string(buf.data(), buf.size());
}

double time_command(const std::vector<std::string>& argv, const std::string& cwd) {
  const auto start = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
    std::vector<char*> cargv;
    for (auto a : argv) cargv.push_back(::strdup(a.c_str()));
    cargv.push_back(nullptr);
    ::execvp(cargv[0], cargv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  const double us = micros_since(start);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die(argv[0] + " failed with wait status " + std::to_string(status));
  return us;
}

std::vector<double> python_figures(const std::vector<std::string>& args) {
  std::string cmd = "/usr/bin/python3 " KILN_BENCH_DIR "/ppe_bench.py";
  for (const auto& a : args) cmd += " " + a;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) die("cannot run " + cmd);
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out = buf;  // the last line
  if (::pclose(p) != 0) die(cmd + " failed");
  std::istringstream in(out);
  std::vector<double> figures;
  for (double d; in >> d;) figures.push_back(d);
  return figures;
}

}  // namespace kiln::bench
