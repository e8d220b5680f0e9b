#include "tests/supervisor_harness.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/text.h"
#include "tests/worker_harness.h"

namespace kiln::testing {

SupervisorHarness::SupervisorHarness(const SupervisorStart& start) : link_(UniqueFd(), UniqueFd()) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) fatal_errno("socketpair");
  UniqueFd ours(sv[0]), theirs(sv[1]);
  // stderr goes to a file: a pipe nobody drains would block the supervisor's logging.
  char path[] = "/tmp/kiln-supervisor-test-XXXXXX";
  UniqueFd err_file(::mkostemp(path, O_CLOEXEC));
  if (!err_file) fatal_errno("mkostemp");
  stderr_path_ = path;
  Child::Spec spec;
  spec.argv = {KILN_SUPERVISOR_PATH,
               "--read-fd",
               "3",
               "--write-fd",
               "3",
               "--workers",
               std::to_string(start.workers),
               "--grace-ms",
               std::to_string(start.grace_ms)};
  if (start.selftest) spec.argv.push_back("--enable-selftest");
  spec.argv.insert(spec.argv.end(), start.args.begin(), start.args.end());
  spec.env = environment_with(start.env, {"SPDLOG_LEVEL", "KILN_KEY"});
  spec.fds = {{3, theirs.get()}, {2, err_file.get()}};
  child_ = Child::spawn(spec);
  const int dup = ::dup(ours.get());
  if (dup < 0) fatal_errno("dup");
  set_cloexec(dup);
  // Our end holds the supervisor to its own --max-frame: a bigger frame fails the link, as it
  // would a client's.
  uint32_t max_frame = kDefaultMaxFrame;
  for (std::size_t i = 0; i + 1 < start.args.size(); ++i) {
    if (start.args[i] != "--max-frame") continue;
    if (auto n = parse_unsigned(start.args[i + 1].c_str(), 10, 1, UINT32_MAX)) max_frame = *n;
  }
  link_ = FrameChannel(std::move(ours), UniqueFd(dup), max_frame);
}

SupervisorHarness::~SupervisorHarness() { ::unlink(stderr_path_.c_str()); }

bool SupervisorHarness::await_hello(std::chrono::milliseconds timeout) {
  std::optional<proto::ClientEvent> e = next_event(timeout);
  if (!e || !std::holds_alternative<proto::Hello>(*e)) {
    ADD_FAILURE() << "no hello; stderr: " << stderr_text();
    return false;
  }
  hello_ = std::get<proto::Hello>(*e);
  return true;
}

bool SupervisorHarness::submit(uint64_t id, const std::string& kind, const nlohmann::json& payload,
                               std::optional<uint64_t> timeout_ms,
                               std::optional<int64_t> priority) {
  return link_.send(proto::Submit{id, kind, to_raw(payload), timeout_ms, priority});
}

std::optional<proto::ClientEvent> SupervisorHarness::next_event(std::chrono::milliseconds timeout) {
  std::string body;
  if (link_.read_body(body, timeout) != FrameChannel::Status::kFrame) return std::nullopt;
  Expected<proto::ClientEvent> event = proto::decode_client_event(body);
  EXPECT_TRUE(event.ok()) << event.error();
  if (!event) return std::nullopt;
  proto::ClientEvent& e = event.value();
  if (auto* r = std::get_if<proto::Result>(&e)) {
    ++result_counts[r->id];
    results_[r->id] = *r;
  } else if (auto* s = std::get_if<proto::Status>(&e)) {
    statuses.push_back(*s);
  } else if (auto* st = std::get_if<proto::Started>(&e)) {
    started.push_back(*st);
  } else if (auto* err = std::get_if<proto::Error>(&e)) {
    errors.push_back(*err);
  } else if (auto* st = std::get_if<proto::Stats>(&e)) {
    stats_.push_back(*st);
  } else if (std::holds_alternative<proto::Bye>(e)) {
    bye_ = true;
  }
  return std::move(e);
}

std::optional<proto::Result> SupervisorHarness::result(uint64_t id,
                                                       std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (results_.count(id) == 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || !next_event(left)) return std::nullopt;
  }
  return results_.at(id);
}

std::optional<proto::Stats> SupervisorHarness::stats(std::chrono::milliseconds timeout) {
  stats_.clear();
  link_.send(proto::StatsRequest{});
  const auto deadline = Clock::now() + timeout;
  while (stats_.empty()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || !next_event(left)) return std::nullopt;
  }
  return stats_.back();
}

bool SupervisorHarness::await_bye(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!bye_) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || !next_event(left)) return bye_;
  }
  return true;
}

std::string SupervisorHarness::stderr_text() {
  std::ifstream in(stderr_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<pid_t> children_of(pid_t pid, bool zombies) {
  std::vector<pid_t> kids;
  for (pid_t k : child_pids(pid)) {
    if (is_running(k) != zombies) kids.push_back(k);
  }
  return kids;
}

std::vector<pid_t> descendants_of(pid_t pid) {
  std::vector<pid_t> all;
  for (pid_t c : children_of(pid)) {
    all.push_back(c);
    for (pid_t d : descendants_of(c)) all.push_back(d);
  }
  return all;
}

}  // namespace kiln::testing
