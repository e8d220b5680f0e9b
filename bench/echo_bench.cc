// Echo through Kiln against the floor and against ProcessPoolExecutor.
//
// The floor is a relay written for this benchmark: client -> relay process -> echo process ->
// relay -> client over pipes, 64-byte frames, the same two process hops as client ->
// kiln-supervisor -> kiln-worker and back, with nothing done at either hop but copying bytes.
// Kiln runs with 2 workers; each submit frame is about 64 bytes (a 30-byte bin payload).
//
// Figures: the round trip with one job in flight (median and p99), and the throughput of 20,000
// jobs submitted at once, each the median over the rounds with the rounds' range. The burst runs
// also on pools with other --pipeline-depth values, in the same rounds: the default's choice.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench.h"

namespace kiln::bench {
namespace {

constexpr std::size_t kRelayFrame = 64;

// Copies whatever arrives on `in` to `out` until end of input.
[[noreturn]] void echo_process(int in, int out) {
  char buf[1 << 16];
  for (ssize_t n; (n = ::read(in, buf, sizeof buf)) > 0;) write_all(out, std::string_view(buf, n));
  ::_exit(0);
}

// Forwards client -> echo and echo -> client as bytes arrive, never blocking on one direction
// while the other has bytes waiting (which would deadlock a pipelined burst). What it holds
// back per direction is bounded; past the bound it stops reading that side for a while.
[[noreturn]] void relay_process(int from_client, int to_client, int to_echo, int from_echo) {
  for (int fd : {to_client, to_echo}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  constexpr std::size_t kHold = 1 << 20;
  std::string to_echo_buf, to_client_buf;
  char buf[1 << 16];
  bool client_open = true, echo_open = true;
  for (;;) {
    pollfd fds[4] = {
        {client_open && to_echo_buf.size() < kHold ? from_client : -1, POLLIN, 0},
        {to_client_buf.size() < kHold ? from_echo : -1, POLLIN, 0},
        {to_echo_buf.empty() ? -1 : to_echo, POLLOUT, 0},
        {to_client_buf.empty() ? -1 : to_client, POLLOUT, 0},
    };
    if (::poll(fds, 4, -1) < 0) continue;
    if (fds[0].revents != 0) {
      const ssize_t n = ::read(from_client, buf, sizeof buf);
      if (n <= 0)
        client_open = false;
      else
        to_echo_buf.append(buf, static_cast<std::size_t>(n));
    }
    if (fds[1].revents != 0) {
      const ssize_t n = ::read(from_echo, buf, sizeof buf);
      if (n <= 0) ::_exit(0);
      to_client_buf.append(buf, static_cast<std::size_t>(n));
    }
    if (fds[2].revents != 0) {
      const ssize_t n = ::write(to_echo, to_echo_buf.data(), to_echo_buf.size());
      if (n > 0) to_echo_buf.erase(0, static_cast<std::size_t>(n));
    }
    if (fds[3].revents != 0) {
      const ssize_t n = ::write(to_client, to_client_buf.data(), to_client_buf.size());
      if (n > 0) to_client_buf.erase(0, static_cast<std::size_t>(n));
    }
    if (!client_open && to_echo_buf.empty() && echo_open) {
      ::close(to_echo);  // the echo process sees its end, and then so do we
      echo_open = false;
    }
  }
}

// The relay floor: two forked processes, our ends of its pipes.
class Relay {
 public:
  Relay() {
    auto [c2r_r, c2r_w] = make_pipe();
    auto [r2c_r, r2c_w] = make_pipe();
    auto [r2e_r, r2e_w] = make_pipe();
    auto [e2r_r, e2r_w] = make_pipe();
    // Each child keeps only its own ends, so that every end of input arrives.
    echo_ = ::fork();
    if (echo_ == 0) {
      close_fds_except({r2e_r.get(), e2r_w.get()});
      echo_process(r2e_r.get(), e2r_w.get());
    }
    relay_ = ::fork();
    if (relay_ == 0) {
      close_fds_except({c2r_r.get(), r2c_w.get(), r2e_w.get(), e2r_r.get()});
      relay_process(c2r_r.get(), r2c_w.get(), r2e_w.get(), e2r_r.get());
    }
    to_ = std::move(c2r_w);
    from_ = std::move(r2c_r);
  }
  ~Relay() {
    to_.reset();
    ::waitpid(relay_, nullptr, 0);
    ::waitpid(echo_, nullptr, 0);
  }
  int to() const { return to_.get(); }
  // Reads exactly n bytes.
  void read_exactly(std::size_t n) {
    char buf[1 << 16];
    while (n > 0) {
      const ssize_t got = ::read(from_.get(), buf, std::min(n, sizeof buf));
      if (got <= 0) die("the relay closed");
      n -= static_cast<std::size_t>(got);
    }
  }

 private:
  pid_t echo_ = -1, relay_ = -1;
  UniqueFd to_, from_;
};

std::string relay_frame() {
  std::string f(kRelayFrame, 'x');
  f[0] = f[1] = f[2] = 0;
  f[3] = static_cast<char>(kRelayFrame - 4);
  return f;
}

struct RoundTrips {
  double median, p99;
};

RoundTrips relay_round_trips(Relay& relay, int n) {
  const std::string frame = relay_frame();
  std::vector<double> samples;
  for (int i = 0; i < n; ++i) {
    const auto start = Clock::now();
    write_all(relay.to(), frame);
    relay.read_exactly(frame.size());
    samples.push_back(micros_since(start));
  }
  const Summary s = summarize(samples);
  return {s.median, s.p99};
}

double relay_throughput(Relay& relay, int n) {
  std::string all;
  for (int i = 0; i < n; ++i) all += relay_frame();
  const auto start = Clock::now();
  std::thread writer([&] { write_all(relay.to(), all); });
  relay.read_exactly(all.size());
  writer.join();
  return n / (micros_since(start) / 1e6);
}

RoundTrips kiln_round_trips(Supervisor& sup, int n) {
  const std::string payload = bin_payload(30);
  std::vector<double> samples;
  for (int i = 0; i < n; ++i) {
    const std::string frame = sup.submit_frame("echo", payload);
    const auto start = Clock::now();
    sup.send(frame);
    const proto::Result r = sup.next_result();
    samples.push_back(micros_since(start));
    if (!r.ok) die("an echo job failed");
  }
  const Summary s = summarize(samples);
  return {s.median, s.p99};
}

// The figures of every round, each a list over the rounds.
struct Figures {
  std::vector<double> relay_med, relay_p99, relay_rate, kiln_med, kiln_p99, kiln_rate, ppe_med,
      ppe_p99, ppe_rate, py_rate, py_submit_rate;
  std::vector<std::vector<double>> deep_rate;  // per entry of kDepths
};

// The same pool with other pipeline depths (the default is 8), for the burst only.
constexpr int kDepths[] = {1, 2, 4, 16, 32};

void report(const Options& o, const Figures& f, int burst) {
  const Summary rm = summarize(f.relay_med), rp = summarize(f.relay_p99),
                km = summarize(f.kiln_med), kp = summarize(f.kiln_p99), pm = summarize(f.ppe_med),
                rr = summarize(f.relay_rate), kr = summarize(f.kiln_rate),
                pr = summarize(f.ppe_rate), yr = summarize(f.py_rate),
                ys = summarize(f.py_submit_rate);
  const double floor_ratio = km.median / rm.median, ppe_speedup = pm.median / km.median;
  row(o.figure("echo round trip, median, 1 in flight, 2 workers"), show_us(km),
      "relay floor " + show_us(rm), show_ratio(floor_ratio), "<= 1.5x the floor",
      floor_ratio <= 1.5);
  row(o.figure("echo round trip, p99"), show_us(kp), "relay floor " + show_us(rp),
      show_ratio(kp.median / rp.median), "-", std::nullopt);
  row(o.figure("echo round trip, median, against ProcessPoolExecutor"), show_us(km),
      "ProcessPoolExecutor " + show_us(pm), show_ratio(ppe_speedup) + " faster", ">= 3x faster",
      ppe_speedup >= 3);
  const std::string burst_name = "echo throughput, " + std::to_string(burst) + " jobs at once";
  row(o.figure(burst_name), show_rate(kr), "relay floor " + show_rate(rr),
      show_ratio(kr.median / rr.median) + " of the floor", "-", std::nullopt);
  row(o.figure(burst_name + ", against ProcessPoolExecutor"), show_rate(kr),
      "ProcessPoolExecutor " + show_rate(pr), show_ratio(kr.median / pr.median) + " faster",
      ">= 10x faster", kr.median / pr.median >= 10);
  row(o.figure(burst_name + " from Python (kiln.Pool.map), against ProcessPoolExecutor.map"),
      show_rate(yr), "ProcessPoolExecutor " + show_rate(pr),
      show_ratio(yr.median / pr.median) + " faster", ">= 8x faster", yr.median / pr.median >= 8);
  row(o.figure(burst_name + " from Python, a kiln.Pool.submit per job"), show_rate(ys),
      "ProcessPoolExecutor " + show_rate(pr), show_ratio(ys.median / pr.median) + " faster", "-",
      std::nullopt);
  for (std::size_t d = 0; d < f.deep_rate.size(); ++d) {
    const Summary dr = summarize(f.deep_rate[d]);
    row(o.figure(burst_name + ", --pipeline-depth " + std::to_string(kDepths[d])), show_rate(dr),
        "the default (8) " + show_rate(kr), show_ratio(dr.median / kr.median) + " of it", "-",
        std::nullopt);
  }
}

}  // namespace
}  // namespace kiln::bench

int main(int argc, char** argv) {
  using namespace kiln::bench;
  const Options o = parse_options(argc, argv, "echo round trip and throughput: Kiln, a relay, PPE");
  const int trips = o.quick ? 200 : 2000;
  const int burst = o.quick ? 2000 : 20000;
  Figures f;
  Relay relay;
  Supervisor sup({"--workers", "2"});
  sup.await_idle_workers(2);
  std::vector<std::unique_ptr<Supervisor>> deep;
  for (int depth : kDepths) {
    deep.push_back(std::make_unique<Supervisor>(
        std::vector<std::string>{"--workers", "2", "--pipeline-depth", std::to_string(depth)}));
    deep.back()->await_idle_workers(2);
  }
  f.deep_rate.resize(deep.size());
  kiln_round_trips(sup, 200);  // warm both up
  relay_round_trips(relay, 200);
  for (int round = 0; round < o.rounds; ++round) {
    // Interleaved, so that whatever else the machine does falls on all of them alike.
    const RoundTrips r = relay_round_trips(relay, trips);
    f.relay_med.push_back(r.median);
    f.relay_p99.push_back(r.p99);
    const RoundTrips k = kiln_round_trips(sup, trips);
    f.kiln_med.push_back(k.median);
    f.kiln_p99.push_back(k.p99);
    f.relay_rate.push_back(relay_throughput(relay, burst));
    f.kiln_rate.push_back(burst / (sup.burst("echo", bin_payload(30), burst) / 1e6));
    for (std::size_t d = 0; d < deep.size(); ++d) {
      f.deep_rate[d].push_back(burst / (deep[d]->burst("echo", bin_payload(30), burst) / 1e6));
    }
    const auto p = python_figures({"echo-rtt", std::to_string(trips)});
    f.ppe_med.push_back(p.at(0));
    f.ppe_p99.push_back(p.at(1));
    f.ppe_rate.push_back(python_figures({"echo-throughput", std::to_string(burst)}).at(0));
    const auto py = python_figures(
        {"kiln-echo-throughput", std::to_string(burst), kiln::beside_self("kiln-supervisor")});
    f.py_rate.push_back(py.at(0));
    f.py_submit_rate.push_back(py.at(1));
    std::printf(
        "round %d: relay %.1f us, kiln %.1f us, ppe %.1f us; relay %.0f/s, kiln %.0f/s, "
        "ppe %.0f/s, kiln from python %.0f/s (map), %.0f/s (submit)\n",
        round + 1, r.median, k.median, p.at(0), f.relay_rate.back(), f.kiln_rate.back(),
        f.ppe_rate.back(), f.py_rate.back(), f.py_submit_rate.back());
  }
  report(o, f, burst);
  return 0;
}
