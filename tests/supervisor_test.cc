// kiln-supervisor as a real process with real workers: PyTorch's compile-worker scenarios and
// every behaviour of the pool, each asserted exactly.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/exit_codes.h"
#include "tests/supervisor_fixture.h"
#include "tests/worker_harness.h"

namespace kiln::testing {
namespace {

using nlohmann::json;

using SupervisorTest = SupervisorFixture;

TEST_F(SupervisorTest, HelloSaysWhoServesWhat) {
  start();
  EXPECT_EQ(sup_->hello().protocol, 1u);
  EXPECT_EQ(sup_->hello().server, "kiln-supervisor 0.1.0");
  EXPECT_EQ(sup_->hello().pid, static_cast<uint64_t>(sup_->process().pid()));
  EXPECT_EQ(sup_->hello().workers, 2u);
  EXPECT_EQ(sup_->hello().kinds, (std::vector<std::string>{"echo", "exec", "selftest"}));
  EXPECT_EQ(sup_->hello().key_id.size(), 16u);
}

TEST_F(SupervisorTest, KeyFromTheEnvironmentReachesWorkers) {
  start({.env = {"KILN_KEY=a2lsbg=="}});
  EXPECT_EQ(sup_->hello().key_id, "eac7579295a99dff");
  // Workers with that key say ready and serve (a mismatch would kill them).
  sup_->submit(1, "echo", "x");
  EXPECT_EQ(value_of(sup_->result(1)), "x");
}

// /proc/<pid>/environ shows the environment block a process started with, whatever unsetenv
// did since: the key must be gone from the supervisor's, every worker's and every job's.
std::string environ_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(SupervisorTest, TheKeyIsInNoProcessEnvironmentBlock) {
  const std::string key = "c2VjcmV0LWJ1aWxkLWtleS1vZi10aGUtdGVzdA==";
  start({.env = {"KILN_KEY=" + key}});
  ASSERT_TRUE(all_idle());
  ASSERT_NE(environ_of(sup_->process().pid()), "") << "the block is readable";
  EXPECT_EQ(environ_of(sup_->process().pid()).find(key), std::string::npos);
  for (pid_t w : worker_pids()) {
    EXPECT_EQ(environ_of(w).find(key), std::string::npos) << "worker " << w;
    EXPECT_EQ(environ_of(w).find("KILN_KEY="), std::string::npos) << "worker " << w;
  }
  // A job reads its own environment and its worker's block.
  sup_->submit(1, "exec", {{"argv", {"sh", "-c", "env; tr '\\0' '\\n' </proc/$PPID/environ"}}});
  const json v = value_of(sup_->result(1));
  const auto& out = v["stdout"].get_binary();
  const std::string text(out.begin(), out.end());
  EXPECT_NE(text.find("PATH="), std::string::npos) << "the job saw its environment";
  EXPECT_EQ(text.find(key), std::string::npos) << text;
  EXPECT_EQ(text.find("KILN_KEY"), std::string::npos) << text;
}

// ---- PyTorch compile_worker scenarios ----

TEST_F(SupervisorTest, BasicJobs) {
  start();
  sup_->submit(1, "echo", {{"a", 1}});
  sup_->submit(2, "exec", {{"argv", {"sh", "-c", "echo compiled"}}});
  EXPECT_EQ(value_of(sup_->result(1)), (json{{"a", 1}}));
  const json v = value_of(sup_->result(2));
  EXPECT_EQ(v["exit_code"], 0);
  const auto& out = v["stdout"].get_binary();
  EXPECT_EQ(std::string(out.begin(), out.end()), "compiled\n");
  const auto r = sup_->result(2);
  EXPECT_TRUE(r->worker_pid.has_value());
}

TEST_F(SupervisorTest, AJobsFailureCarriesItsMessage) {
  start();
  sup_->submit(1, "selftest", {{"action", "fail"}, {"message", "boom: bad kernel"}});
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "job_failed");
  EXPECT_EQ(r->error->message, "boom: bad kernel");
}

TEST_F(SupervisorTest, OneCrashFailsOneJobWhileASiblingFinishes) {
  start();
  ASSERT_TRUE(all_idle());
  sup_->submit(1, "selftest", {{"action", "sleep"}, {"ms", 300}});
  sup_->submit(2, "selftest", {{"action", "crash"}});
  const auto crashed = sup_->result(2);
  EXPECT_EQ(code_of(crashed), "worker_crashed");
  EXPECT_EQ(crashed->error->message,
            "worker " + std::to_string(*crashed->worker_pid) + " was killed by SIGSEGV");
  ASSERT_TRUE(crashed->error->detail.has_value());
  EXPECT_NE(crashed->error->detail->find("crashed: SIGSEGV (address 0x0)"), std::string::npos);
  EXPECT_NE(crashed->error->detail->find("kiln_selftest_crash"), std::string::npos);
  EXPECT_EQ(code_of(sup_->result(1)), "ok");
  // The pool stays usable: both workers serve again.
  ASSERT_TRUE(all_idle());
  for (uint64_t id = 3; id < 7; ++id) sup_->submit(id, "echo", id);
  for (uint64_t id = 3; id < 7; ++id) EXPECT_EQ(value_of(sup_->result(id)), id);
  EXPECT_EQ(sup_->stats()->worker_crashes, 1u);
}

// A crash handler stuck after its report's first line (as one that crashed inside malloc can be)
// would keep its worker, and the job, forever: the supervisor kills such a worker once the
// handler's own deadline and the grace period have passed, and the job is answered.
TEST_F(SupervisorTest, AWorkerWhoseCrashReportHangsIsKilledAndItsJobAnswered) {
  SupervisorStart s;
  s.workers = 1;
  start(s);
  ASSERT_TRUE(all_idle(1));
  const pid_t worker = worker_pids()[0];
  sup_->submit(1, "selftest", {{"action", "crash-report-hangs"}});
  const auto r = sup_->result(1, 30s);
  EXPECT_EQ(code_of(r), "worker_crashed");
  EXPECT_EQ(r->error->message, "worker " + std::to_string(worker) + " was killed by SIGKILL");
  ASSERT_TRUE(r->error->detail.has_value());
  EXPECT_NE(r->error->detail->find("kiln-worker " + std::to_string(worker) +
                                   " crashed: SIGSEGV (address 0x0)"),
            std::string::npos)
      << *r->error->detail;
  EXPECT_NE(sup_->stderr_text().find("worker " + std::to_string(worker) +
                                     " began a crash report and has not ended 5300 ms later; "
                                     "killing it"),
            std::string::npos)
      << sup_->stderr_text();
  ASSERT_TRUE(all_idle(1));  // replaced, and serving
  sup_->submit(2, "echo", 2);
  EXPECT_EQ(value_of(sup_->result(2)), 2u);
}

// With one worker, the jobs behind a crashing one were sent to it ahead of their turn: none of
// them is failed for it; each runs on the replacement and is answered once (TearDown counts).
TEST_F(SupervisorTest, JobsSentAheadOfACrashRunOnTheReplacement) {
  SupervisorStart s;
  s.workers = 1;
  start(s);
  ASSERT_TRUE(all_idle(1));
  // Both kinds run once, so that the pool knows them to be short and sends them ahead.
  sup_->submit(100, "selftest", {{"action", "sleep"}, {"ms", 0}});
  sup_->submit(101, "echo", 101);
  EXPECT_EQ(code_of(sup_->result(100)), "ok");
  EXPECT_EQ(value_of(sup_->result(101)), 101);
  sup_->submit(1, "selftest", {{"action", "crash"}});
  for (uint64_t id = 2; id <= 20; ++id) sup_->submit(id, "echo", id);
  EXPECT_EQ(code_of(sup_->result(1)), "worker_crashed");
  for (uint64_t id = 2; id <= 20; ++id) EXPECT_EQ(value_of(sup_->result(id)), id);
  const std::optional<proto::Stats> st = sup_->stats();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->worker_crashes, 1u);
  EXPECT_EQ(st->jobs_failed, 1u);
  EXPECT_EQ(st->jobs_succeeded, 21u);
}

TEST_F(SupervisorTest, QuiesceThenWakeupRepeatedly) {
  start();
  for (int round = 0; round < 3; ++round) {
    sup_->send(proto::Quiesce{});
    ASSERT_TRUE(wait_until([&] { return sup_->stats()->workers_alive == 0; }, 20s));
    if (round % 2 == 0) {
      sup_->send(proto::Wakeup{});
      ASSERT_TRUE(all_idle());
    }
    const uint64_t id = 10 + round;
    sup_->submit(id, "echo", round);
    EXPECT_EQ(value_of(sup_->result(id)), round);
  }
}

TEST_F(SupervisorTest, LogsToAFile) {
  char path[] = "/tmp/kiln-log-XXXXXX";
  ::close(::mkstemp(path));
  start({.args = {"--log-file", path, "--log-level", "info"}});
  sup_->submit(1, "echo", 1);
  ASSERT_TRUE(sup_->result(1));
  sup_->send(proto::Shutdown{});
  ASSERT_TRUE(sup_->await_bye());
  EXPECT_EQ(sup_->process().exit_code(), 0);
  ended_ = true;
  std::ifstream in(path);
  std::stringstream log;
  log << in.rdbuf();
  ::unlink(path);
  EXPECT_NE(log.str().find("serving its client link with 2 workers"), std::string::npos)
      << log.str();
  EXPECT_NE(log.str().find("kiln-supervisor stopped"), std::string::npos);
  EXPECT_EQ(sup_->stderr_text(), "") << "nothing on stderr when logging to a file";
}

// ---- Timeouts and cancels ----

TEST_F(SupervisorTest, ExecTimeoutIsEnforcedByTheWorkerWhichStaysWarm) {
  start();
  sup_->submit(1, "exec", {{"argv", {"sleep", "100"}}}, 200);
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "timeout");
  EXPECT_EQ(r->error->message, "'sleep' ran past its timeout of 200 ms");
  EXPECT_EQ(sup_->stats()->worker_starts, 2u) << "no worker was replaced";
}

TEST_F(SupervisorTest, HangThatIgnoresSigtermEndsAtTheBackstop) {
  start();
  sup_->submit(1, "selftest", {{"action", "hang"}}, 100);
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "timeout");
  EXPECT_EQ(r->error->message, "the job ran past its timeout of 100 ms");
  // SIGTERM is ignored, SIGKILL follows the grace period, and a replacement serves.
  sup_->submit(2, "echo", 2);
  EXPECT_EQ(value_of(sup_->result(2)), 2);
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->worker_starts == 3; }, 10s));
  EXPECT_EQ(sup_->stats()->worker_crashes, 0u);
}

TEST_F(SupervisorTest, DefaultJobTimeout) {
  start({.args = {"--job-timeout-ms", "150"}});
  sup_->submit(1, "exec", {{"argv", {"sleep", "100"}}});
  EXPECT_EQ(code_of(sup_->result(1)), "timeout");
}

TEST_F(SupervisorTest, CancelQueuedAndRunning) {
  start({.workers = 1});
  ASSERT_TRUE(all_idle(1));
  sup_->submit(1, "exec", {{"argv", {"sleep", "100"}}});
  sup_->submit(2, "echo", 2);
  // Wait until job 1 runs (its status comes through stats).
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 1; }, 10s));
  sup_->send(proto::Cancel{2});
  EXPECT_EQ(code_of(sup_->result(2)), "cancelled");
  sup_->send(proto::Cancel{1});
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "cancelled");
  sup_->submit(3, "echo", 3);
  EXPECT_EQ(value_of(sup_->result(3)), 3) << "a replacement worker serves";
  sup_->send(proto::Cancel{3});   // finished: ignored
  sup_->send(proto::Cancel{99});  // unknown: ignored
}

// ---- Crash loop, recycling, overload, status, stats ----

TEST_F(SupervisorTest, CrashLoopAnswersPoolUnavailableWithoutAForkStorm) {
  start({.args = {"--worker", "/bin/false"}});
  sup_->submit(1, "echo", 1);
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "pool_unavailable");
  EXPECT_NE(r->error->message.find("workers keep failing to start"), std::string::npos);
  sup_->submit(2, "echo", 2);
  EXPECT_EQ(code_of(sup_->result(2)), "pool_unavailable");
  // Backoff: 10+20+40+80+160 ms gets two slots to five failures; a storm would be thousands.
  const auto st = sup_->stats();
  EXPECT_LT(st->worker_starts, 40u);
  EXPECT_GE(st->worker_starts, 5u);
  EXPECT_NE(sup_->stderr_text().find("workers keep failing to start"), std::string::npos);
}

TEST_F(SupervisorTest, AWorkerThatDiesRightAfterReadyBacksOffThenAnswersPoolUnavailable) {
  // A real kiln-worker whose link in is /dev/null: it says ready, reads the end at once and exits.
  char dir_template[] = "/tmp/kiln-young-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template, script = dir + "/worker";
  {
    std::ofstream out(script);
    out << "#!/bin/sh\necho 'test worker: about to lose its link' >&2\nexec " KILN_WORKER_PATH
           " \"$@\" --read-fd 9 9</dev/null\n";
  }
  ASSERT_EQ(::chmod(script.c_str(), 0700), 0);
  start({.args = {"--worker", script}, .workers = 1});
  // A job sent to one of them would die with it (worker_crashed): the first is sent once five
  // have died, when the pool is unavailable.
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->worker_crashes >= 5; }, 20s));
  sup_->submit(1, "echo", 1);
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "pool_unavailable");
  ASSERT_TRUE(r->error->detail.has_value());
  EXPECT_NE(r->error->detail->find(" exited with status 0 less than a second after its ready: "),
            std::string::npos)
      << *r->error->detail;
  EXPECT_NE(r->error->detail->find("test worker: about to lose its link"), std::string::npos)
      << *r->error->detail;
  const auto st = sup_->stats();
  // Five failed starts make the pool unavailable; the next start waits 160 ms, the one after 320.
  EXPECT_GE(st->worker_crashes, 5u);
  EXPECT_GE(st->worker_starts, 5u);
  EXPECT_LE(st->worker_starts, 7u);
  std::remove(script.c_str());
  ::rmdir(dir.c_str());
}

TEST_F(SupervisorTest, RecyclesAfterMaxJobs) {
  start({.args = {"--max-jobs-per-worker", "2"}, .workers = 1});
  std::vector<uint64_t> pids;
  for (uint64_t id = 1; id <= 3; ++id) {
    sup_->submit(id, "echo", id);
    pids.push_back(*sup_->result(id)->worker_pid);
  }
  EXPECT_EQ(pids[0], pids[1]);
  EXPECT_NE(pids[1], pids[2]);
}

TEST_F(SupervisorTest, RecyclesAWorkerOverTheRssLimit) {
  start({.args = {"--max-worker-rss-mb", "64"}, .workers = 1});
  sup_->submit(1, "selftest", {{"action", "alloc"}, {"mb", 128}});
  const auto first = sup_->result(1);
  ASSERT_EQ(code_of(first), "ok");
  sup_->submit(2, "echo", 2);
  EXPECT_NE(*sup_->result(2)->worker_pid, *first->worker_pid);
}

TEST_F(SupervisorTest, OverloadedWhenTheQueueIsFull) {
  start({.args = {"--max-queue", "1"}, .workers = 1});
  ASSERT_TRUE(all_idle(1));
  sup_->submit(1, "selftest", {{"action", "sleep"}, {"ms", 500}});
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 1; }, 10s));
  sup_->submit(2, "echo", 2);
  sup_->submit(3, "echo", 3);
  const auto r = sup_->result(3);
  EXPECT_EQ(code_of(r), "overloaded");
  EXPECT_EQ(r->error->message, "the queue already holds 1 jobs (--max-queue)");
  EXPECT_EQ(code_of(sup_->result(2)), "ok");
}

TEST_F(SupervisorTest, StatusWhileAJobRunsLong) {
  start({.args = {"--status-interval-ms", "100"}, .workers = 1});
  sup_->submit(1, "selftest", {{"action", "sleep"}, {"ms", 450}});
  ASSERT_EQ(code_of(sup_->result(1)), "ok");
  ASSERT_GE(sup_->statuses.size(), 2u);
  EXPECT_EQ(sup_->statuses[0].id, 1u);
  EXPECT_GE(sup_->statuses[0].elapsed_ms, 100u);
  EXPECT_GT(sup_->statuses[1].elapsed_ms, sup_->statuses[0].elapsed_ms);
}

// A client that asks (submit.notify_started) hears `started` from the worker that runs the job,
// before its result, and only when that worker takes it: a job waiting behind another has not.
TEST_F(SupervisorTest, StartedComesWhenAWorkerTakesTheJobAndBeforeItsResult) {
  start({.workers = 1});
  proto::Submit first{
      1, "selftest", to_raw({{"action", "sleep"}, {"ms", 300}}), std::nullopt, std::nullopt, true};
  proto::Submit second{2, "echo", to_raw(2), std::nullopt, std::nullopt, true};
  ASSERT_TRUE(sup_->send(first) && sup_->send(second));
  sup_->submit(3, "echo", 3);       // asks for nothing
  ASSERT_TRUE(sup_->next_event());  // hello came already: this is the first job's start
  ASSERT_EQ(sup_->started.size(), 1u);
  EXPECT_EQ(sup_->started[0].id, 1u);
  const auto r1 = sup_->result(1);
  ASSERT_EQ(code_of(r1), "ok");
  EXPECT_EQ(sup_->started[0].worker_pid, r1->worker_pid);
  const auto next = sup_->next_event();
  ASSERT_TRUE(next && std::holds_alternative<proto::Started>(*next))
      << "2's start, then its result";
  EXPECT_EQ(std::get<proto::Started>(*next), (proto::Started{2, *r1->worker_pid}));
  EXPECT_EQ(code_of(sup_->result(2)), "ok");
  EXPECT_EQ(code_of(sup_->result(3)), "ok");
  EXPECT_EQ(sup_->started.size(), 2u) << "3 did not ask";
}

TEST_F(SupervisorTest, StatsHaveEveryKeyAndCount) {
  start();
  sup_->submit(1, "echo", 1);
  sup_->submit(2, "selftest", {{"action", "fail"}, {"message", "x"}});
  ASSERT_TRUE(sup_->result(1) && sup_->result(2));
  // Read the raw map to check the key set, not just what the struct decodes.
  std::string frame;
  proto::encode(proto::StatsRequest{}, frame);
  sup_->link().write_bytes(frame);
  std::string body;
  ASSERT_EQ(sup_->link().read_body(body, 10s), FrameChannel::Status::kFrame);
  const json st = json::from_msgpack(body);
  for (const char* key :
       {"uptime_ms", "workers_configured", "workers_alive", "workers_busy", "jobs_submitted",
        "jobs_succeeded", "jobs_failed", "jobs_queued", "jobs_running", "worker_starts",
        "worker_crashes", "max_queue_depth", "queue_us_p50", "queue_us_p95", "queue_us_max",
        "run_us_p50", "run_us_p95", "run_us_max", "worker_list"}) {
    EXPECT_TRUE(st.contains(key)) << key;
  }
  EXPECT_EQ(st["jobs_submitted"], 2);
  EXPECT_EQ(st["jobs_succeeded"], 1);
  EXPECT_EQ(st["jobs_failed"], 1);
  EXPECT_EQ(st["workers_configured"], 2);
  EXPECT_EQ(st["worker_list"].size(), 2u);
  EXPECT_GT(st["worker_list"][0]["rss_kb"].get<uint64_t>(), 0u);
}

TEST_F(SupervisorTest, UnknownKindAndPriorityOrder) {
  start({.workers = 1});
  ASSERT_TRUE(all_idle(1));
  sup_->submit(1, "link", 1);
  EXPECT_EQ(code_of(sup_->result(1)), "unknown_kind");
  sup_->submit(2, "selftest", {{"action", "sleep"}, {"ms", 200}});
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 1; }, 10s));
  sup_->submit(3, "echo", 3, std::nullopt, 0);
  sup_->submit(4, "echo", 4, std::nullopt, 10);
  ASSERT_TRUE(sup_->result(3) && sup_->result(4));
  EXPECT_LT(sup_->result(4)->queue_us, sup_->result(3)->queue_us) << "higher priority first";
}

// ---- Protocol errors ----

TEST_F(SupervisorTest, DuplicateIdEndsTheConnection) {
  start({.workers = 1});
  sup_->submit(1, "selftest", {{"action", "sleep"}, {"ms", 2000}});
  sup_->submit(1, "echo", 1);
  EXPECT_TRUE(sup_->await_bye());
  ASSERT_EQ(sup_->errors.size(), 1u);
  EXPECT_EQ(sup_->errors[0], (proto::Error{"duplicate_id", "id 1 is still running"}));
  EXPECT_EQ(sup_->result_counts[1], 1) << "its job is answered once, with shutdown";
  EXPECT_EQ(sup_->process().exit_code(), 0);
  ended_ = true;
}

TEST_F(SupervisorTest, MalformedFrameEndsTheConnectionCleanly) {
  start();
  sup_->link().write_bytes(std::string("\x00\x00\x00\x01\xc1", 5));
  EXPECT_TRUE(sup_->await_bye());
  ASSERT_EQ(sup_->errors.size(), 1u);
  EXPECT_EQ(sup_->errors[0].code, "protocol_error");
  EXPECT_EQ(sup_->errors[0].message, "body: invalid byte 0xc1 at offset 0");
  EXPECT_EQ(sup_->process().exit_code(), 0);
  ended_ = true;
}

TEST_F(SupervisorTest, WorkerSendingGarbageIsKilledAndItsJobAnswered) {
  start();
  sup_->submit(1, "selftest", {{"action", "garbage"}});
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "worker_protocol_error");
  EXPECT_EQ(r->error->message, "worker " + std::to_string(*r->worker_pid) +
                                   " broke the protocol: body: invalid byte 0xc1 at offset 0");
  sup_->submit(2, "echo", 2);
  EXPECT_EQ(value_of(sup_->result(2)), 2);
}

// ---- Shutdown ----

TEST_F(SupervisorTest, DrainFinishesQueuedJobs) {
  start({.workers = 1});
  for (uint64_t id = 1; id <= 4; ++id)
    sup_->submit(id, "selftest", {{"action", "sleep"}, {"ms", 20}});
  sup_->send(proto::Shutdown{true});
  ASSERT_TRUE(sup_->await_bye());
  for (uint64_t id = 1; id <= 4; ++id) EXPECT_EQ(code_of(sup_->result(id, 0ms)), "ok") << id;
  EXPECT_EQ(sup_->process().exit_code(), 0);
  ended_ = true;
}

TEST_F(SupervisorTest, SigtermAnswersOpenJobsAndExitsCleanly) {
  start({.workers = 1});
  sup_->submit(1, "exec", {{"argv", {"sleep", "100"}}});
  sup_->submit(2, "echo", 2);
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 1; }, 10s));
  const auto workers = worker_pids();
  sup_->process().kill(SIGTERM);
  ASSERT_TRUE(sup_->await_bye());
  EXPECT_EQ(code_of(sup_->result(1, 0ms)), "shutdown");
  EXPECT_EQ(code_of(sup_->result(2, 0ms)), "shutdown");
  EXPECT_EQ(sup_->process().exit_code(), 0);
  for (pid_t w : workers) EXPECT_FALSE(is_running(w));
  ended_ = true;
}

TEST_F(SupervisorTest, EndOfInputShutsDown) {
  start();
  sup_->submit(1, "selftest", {{"action", "sleep"}, {"ms", 5000}});
  sup_->link().close_write();
  ::shutdown(sup_->link().read_fd(), SHUT_WR);
  ASSERT_TRUE(sup_->await_bye());
  EXPECT_EQ(code_of(sup_->result(1, 0ms)), "shutdown");
  EXPECT_EQ(sup_->process().exit_code(), 0);
  ended_ = true;
}

TEST_F(SupervisorTest, ShutdownIsBoundedByGraceAndASecondSigintKillsAtOnce) {
  start({.workers = 1, .grace_ms = 60000});
  sup_->submit(1, "selftest", {{"action", "hang"}});
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 1; }, 10s));
  sup_->process().kill(SIGINT);
  EXPECT_EQ(code_of(sup_->result(1)), "shutdown");
  // The hang ignores SIGTERM and the grace is a minute; a second SIGINT does not wait.
  sup_->process().kill(SIGINT);
  EXPECT_TRUE(sup_->await_bye(10s));
  EXPECT_EQ(sup_->process().exit_code(10s), 0);
  ended_ = true;
}

TEST_F(SupervisorTest, ShutdownTakesNoLongerThanGraceWhateverWorkersDo) {
  start({.workers = 2, .grace_ms = 300});
  sup_->submit(1, "selftest", {{"action", "hang"}});
  sup_->submit(2, "selftest", {{"action", "hang"}});
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 2; }, 10s));
  const auto t0 = Clock::now();
  sup_->send(proto::Shutdown{});
  ASSERT_TRUE(sup_->await_bye(10s));
  EXPECT_EQ(sup_->process().exit_code(), 0);
  EXPECT_LT(Clock::now() - t0, 5s);
  ended_ = true;
}

// ---- Nothing outlives its parent ----

// With a grace period far longer than the bound: the last `bye`, whose write fails, must not
// wait for a drain that a failed write never signalled (it waited the whole grace period).
TEST(SupervisorLifetime, ParentSigkilledTakesSupervisorAndWorkersWithItAtOnce) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  auto [report_read, report_write] = pipe_pair();
  const pid_t parent = ::fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {
    SupervisorHarness sup({.grace_ms = 5000});
    if (!sup.await_hello()) ::_exit(1);
    if (!wait_until([&] { return sup.stats()->workers_alive == 2; }, 20s)) ::_exit(1);
    std::vector<pid_t> pids = {sup.process().pid()};
    const std::optional<proto::Stats> st = sup.stats();
    if (!st) ::_exit(1);
    for (const auto& w : st->worker_list) pids.push_back(static_cast<pid_t>(w.pid));
    (void)!::write(report_write.get(), pids.data(), pids.size() * sizeof(pid_t));
    ::kill(::getpid(), SIGKILL);
  }
  report_write.reset();
  pid_t pids[3] = {};
  ASSERT_EQ(::read(report_read.get(), pids, sizeof pids), static_cast<ssize_t>(sizeof pids));
  ASSERT_EQ(::waitpid(parent, nullptr, 0), parent);
  const auto parent_gone = Clock::now();
  // Orphans are ours now (subreaper): each must exit within a second.
  for (pid_t p : pids) {
    EXPECT_TRUE(
        wait_until([&] { return ::waitpid(p, nullptr, WNOHANG) == p || !is_running(p); }, 1s))
        << p;
  }
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - parent_gone);
  std::printf("supervisor and 2 workers gone %lld ms after their parent's SIGKILL\n",
              static_cast<long long>(took.count()));
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

// A command that left its job's process group (setsid) is still the worker's to end when the
// supervisor dies: it was found running under init after a SIGKILL of the supervisor.
TEST(SupervisorLifetime, SupervisorSigkilledTakesEvenWhatEscapedTheJobsGroup) {
  SupervisorHarness sup;
  ASSERT_TRUE(sup.await_hello());
  sup.submit(1, "exec", {{"argv", {"sh", "-c", "n=31415; setsid sleep $n & sleep 100"}}});
  // The pid from the same look that found it: a second look could miss it (a /proc read that
  // fails under load), and front() of nothing crashed this test once in a 20-run loop.
  pid_t escaped = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        const std::vector<pid_t> found = processes_with("sleep 31415");
        if (found.size() == 1) escaped = found.front();
        return found.size() == 1;
      },
      10s));
  sup.process().kill(SIGKILL);
  ASSERT_TRUE(sup.process().wait(5s).has_value());
  const auto t0 = Clock::now();
  EXPECT_TRUE(wait_until([&] { return !is_running(escaped); }, 1s))
      << "sleep 31415 (pid " << escaped << ") outlived the supervisor";
  std::printf(
      "the escaped command was gone %lld ms after the supervisor's SIGKILL\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()));
  if (is_running(escaped)) ::kill(escaped, SIGKILL);
}

TEST(SupervisorLifetime, SupervisorSigkilledTakesWorkersAndTheirCommandsWithIt) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  SupervisorHarness sup;
  ASSERT_TRUE(sup.await_hello());
  sup.submit(1, "exec", {{"argv", {"sh", "-c", "sleep 100 & sleep 100"}}});
  sup.submit(2, "exec", {{"argv", {"sleep", "100"}}});
  ASSERT_TRUE(wait_until([&] { return sup.stats()->jobs_running == 2; }, 10s));
  // Every process that must die with the supervisor: 2 workers, sh and its 2 sleeps, 1 sleep.
  // The commands fork as they start, so wait until all of them exist.
  std::vector<pid_t> doomed;
  ASSERT_TRUE(wait_until(
      [&] {
        doomed.clear();
        const std::optional<proto::Stats> st = sup.stats();
        if (!st) return false;
        for (const auto& w : st->worker_list) {
          doomed.push_back(static_cast<pid_t>(w.pid));
          for (pid_t c : children_of(static_cast<pid_t>(w.pid))) {
            for (pid_t p : processes_in_group(c)) doomed.push_back(p);
          }
        }
        return doomed.size() == 6;
      },
      10s))
      << doomed.size();
  sup.process().kill(SIGKILL);
  ASSERT_TRUE(sup.process().wait(5s).has_value());
  for (pid_t p : doomed) {
    EXPECT_TRUE(gone_within(p, 1s))
        << p << " " << read_small_file("/proc/" + std::to_string(p) + "/cmdline").value_or("")
        << " " << read_small_file("/proc/" + std::to_string(p) + "/stat").value_or("");
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

// Found by the soak: a worker killed after starting a command but before telling the supervisor
// its process group left the command running (reparented to init). The supervisor is now the
// subreaper of its workers' descendants and ends what a dead worker leaves. A command that left
// its group (setsid) is the deterministic case of the same escape.
TEST_F(SupervisorTest, WhatADeadWorkerLeavesBehindIsKilled) {
  start({.workers = 1});
  ASSERT_TRUE(all_idle(1));
  const std::string marker = "kiln-orphan-test-" + std::to_string(::getpid());
  sup_->submit(
      1, "exec",
      {{"argv", {"sh", "-c", "setsid sh -c 'sleep 300; :' " + marker + " & sleep 300", marker}}});
  auto escaped = [&] { return processes_with("sh -c sleep 300; : " + marker); };
  ASSERT_TRUE(wait_until([&] { return escaped().size() == 1; }, 10s));
  const pid_t worker = worker_pids().at(0);
  ::kill(worker, SIGKILL);
  EXPECT_EQ(code_of(sup_->result(1)), "worker_crashed");
  EXPECT_TRUE(wait_until([&] { return escaped().empty(); }, 5s)) << escaped().size();
  EXPECT_TRUE(wait_until(
      [&] {
        return sup_->stderr_text().find("left behind by a worker that died") != std::string::npos;
      },
      5s))
      << sup_->stderr_text();
  EXPECT_TRUE(all_idle(1));
  EXPECT_EQ(children_of(sup_->process().pid(), /*zombies=*/true), std::vector<pid_t>{});
}

// ---- Hygiene ----

TEST_F(SupervisorTest, WorkersInheritOnlyStdioAndTheirLink) {
  start({.workers = 1});
  ASSERT_TRUE(all_idle(1));
  const pid_t worker = worker_pids()[0];
  std::set<int> fds;
  std::map<int, std::string> targets;
  for (const auto& [fd, target] : fd_targets(worker)) {
    if (target.rfind("anon_inode:", 0) != 0) fds.insert(fd);  // the watchdog's own
    targets[fd] = target;
  }
  EXPECT_EQ(fds, (std::set<int>{0, 1, 2, 3, 4}));
  // Its stderr and link are pipes (a pipe's write wakes the reader sooner than a socketpair's),
  // each a pipe of its own.
  std::set<std::string> pipes;
  for (int fd : {2, 3, 4}) {
    EXPECT_EQ(targets[fd].rfind("pipe:[", 0), 0u) << fd << " is " << targets[fd];
    pipes.insert(targets[fd]);
  }
  EXPECT_EQ(pipes.size(), 3u);
  // Its stdin and stdout are /dev/null: the supervisor's own, opened once for every worker.
  EXPECT_EQ(targets[0], "/dev/null");
  EXPECT_EQ(targets[1], "/dev/null");
}

TEST_F(SupervisorTest, NoFdLeakAndNoZombieAfterAHundredCrashes) {
  start();
  ASSERT_TRUE(all_idle());
  const std::size_t fds_before = open_fds(sup_->process().pid()).size();
  for (uint64_t id = 1; id <= 100; ++id) {
    sup_->submit(id, "selftest", {{"action", id % 2 ? "crash" : "abort"}});
  }
  for (uint64_t id = 1; id <= 100; ++id) {
    ASSERT_EQ(code_of(sup_->result(id, 60s)), "worker_crashed") << id;
  }
  ASSERT_TRUE(all_idle());
  EXPECT_EQ(sup_->stats()->worker_crashes, 100u);
  EXPECT_EQ(open_fds(sup_->process().pid()).size(), fds_before);
  EXPECT_EQ(children_of(sup_->process().pid(), /*zombies=*/true), std::vector<pid_t>{});
  EXPECT_EQ(children_of(sup_->process().pid()).size(), 2u);
}

TEST_F(SupervisorTest, ThreeThousandJobsWithWorkersKilledFromOutsideAreEachAnsweredOnce) {
  start({.workers = 2});
  ASSERT_TRUE(all_idle());
  constexpr uint64_t kJobs = 3000;
  std::mt19937 rng(12345);
  uint64_t sent = 0, answered = 0, killed = 0;
  std::set<uint64_t> crashed_pids;
  while (answered < kJobs) {
    // Keep up to 64 jobs in flight.
    while (sent < kJobs && sent - answered < 64) {
      ++sent;
      if (sent % 3 == 0) {
        sup_->submit(sent, "selftest", {{"action", "sleep"}, {"ms", 1}});
      } else {
        sup_->submit(sent, "echo", sent);
      }
    }
    auto e = sup_->next_event(30s);
    ASSERT_TRUE(e.has_value()) << "answered " << answered;
    auto* r = std::get_if<proto::Result>(&*e);
    if (r == nullptr) continue;
    ++answered;
    ASSERT_TRUE(r->ok || r->error->code == "worker_crashed") << r->error->code;
    if (rng() % 40 == 0 && r->worker_pid && crashed_pids.insert(*r->worker_pid).second) {
      ::kill(static_cast<pid_t>(*r->worker_pid), SIGKILL);
      ++killed;
    }
  }
  EXPECT_GE(killed, 20u);
  for (uint64_t id = 1; id <= kJobs; ++id) ASSERT_EQ(sup_->result_counts[id], 1) << id;
  // A worker killed a moment ago may be a zombie until the loop reaps it; none may stay one.
  EXPECT_TRUE(
      wait_until([&] { return children_of(sup_->process().pid(), /*zombies=*/true).empty(); }, 5s));
}

// ---- Resource exhaustion ----

// The lowest fd number a process does not have open: the number its next new fd would get.
int lowest_free_fd(pid_t pid) {
  const auto fds = open_fds(pid);
  const std::set<int> open(fds.begin(), fds.end());
  int fd = 0;
  while (open.count(fd) != 0) ++fd;
  return fd;
}

TEST_F(SupervisorTest, OutOfFdsWhileAWorkerRestartsItServesOnAndRecovers) {
  start();
  ASSERT_TRUE(all_idle());
  const pid_t sup = sup_->process().pid();
  const std::vector<pid_t> workers = worker_pids();
  // No new fd at all, except in the numbers the killed worker's three pipes leave free: a
  // restart needs more than that at once (three pipe pairs and uv_spawn's own).
  rlimit low{static_cast<rlim_t>(lowest_free_fd(sup)), 0}, saved{};
  ASSERT_EQ(::prlimit(sup, RLIMIT_NOFILE, nullptr, &saved), 0);
  low.rlim_max = saved.rlim_max;
  ASSERT_EQ(::prlimit(sup, RLIMIT_NOFILE, &low, nullptr), 0);
  ::kill(workers[0], SIGKILL);
  // Six failed starts in a row: more than the five after which a pool with no worker up would
  // answer pool_unavailable.
  auto failed_starts = [&] {
    const std::string log = sup_->stderr_text();
    int n = 0;
    for (auto at = log.find("cannot start a worker"); at != std::string::npos;
         at = log.find("cannot start a worker", at + 1)) {
      ++n;
    }
    return n;
  };
  ASSERT_TRUE(wait_until([&] { return failed_starts() >= 6; }, 20s)) << sup_->stderr_text();
  EXPECT_NE(sup_->stderr_text().find("too many open files"), std::string::npos)
      << sup_->stderr_text();
  // The other worker goes on serving: no job fails for want of fds in another slot.
  for (uint64_t id = 1; id <= 20; ++id) sup_->submit(id, "echo", id);
  for (uint64_t id = 1; id <= 20; ++id) {
    const auto r = sup_->result(id);
    ASSERT_EQ(code_of(r), "ok") << id;
    EXPECT_EQ(*r->worker_pid, static_cast<uint64_t>(workers[1]));
  }
  // With fds back, the backoff's next try brings the pool to full size again.
  ASSERT_EQ(::prlimit(sup, RLIMIT_NOFILE, &saved, nullptr), 0);
  EXPECT_TRUE(all_idle());
}

TEST_F(SupervisorTest, AWorkerBinaryThatCannotBeSpawnedAnswersPoolUnavailable) {
  start({.args = {"--worker", "/nonexistent/kiln-worker"}});
  sup_->submit(1, "echo", 1);
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "pool_unavailable");
  EXPECT_EQ(r->error->message,
            "workers keep failing to start: cannot start /nonexistent/kiln-worker: no such file "
            "or directory");
  EXPECT_NE(sup_->stderr_text().find("cannot start a worker: cannot start "
                                     "/nonexistent/kiln-worker: no such file or directory"),
            std::string::npos)
      << sup_->stderr_text();
  EXPECT_EQ(children_of(sup_->process().pid()), std::vector<pid_t>{});
}

TEST_F(SupervisorTest, AFloodOfSubmitsIsAnsweredOverloadedWithMemoryBounded) {
  start({.args = {"--max-queue", "1000"}, .workers = 1});
  ASSERT_TRUE(all_idle(1));
  const pid_t sup = sup_->process().pid();
  // The only worker is busy until we cancel its job, however slowly this build runs.
  sup_->submit(1, "selftest", {{"action", "sleep"}, {"ms", 600000}});
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 1; }, 10s));
  const unsigned long rss_before = rss_kb(sup);
  // 50,000 submits written as fast as the pipe takes them, while we read the answers.
  constexpr uint64_t kFlood = 50000;
  std::string frames;
  for (uint64_t id = 2; id < 2 + kFlood; ++id) {
    proto::Submit s;
    s.id = id;
    s.kind = "echo";
    s.payload.bytes = std::string("\xc4\x40") + std::string(64, 'x');  // bin 8, 64 bytes
    proto::encode(s, frames);
  }
  std::thread writer([&] { EXPECT_TRUE(sup_->link().write_bytes(frames)); });
  std::map<std::string, uint64_t> codes;
  unsigned long rss_peak = rss_before;
  bool cancelled = false;
  for (uint64_t n = 0; n < kFlood;) {
    auto e = sup_->next_event(60s);
    if (!e) {
      ADD_FAILURE() << n << " answered";
      break;
    }
    auto* r = std::get_if<proto::Result>(&*e);
    if (r == nullptr || r->id == 1) continue;  // not one of the flood's answers
    ++codes[code_of(*r)];
    if (++n % 5000 == 0) rss_peak = std::max(rss_peak, rss_kb(sup));
    if (!cancelled && codes["overloaded"] == kFlood - 1000) {
      // Every submit has been read and answered or queued: free the worker for the queue.
      writer.join();
      sup_->send(proto::Cancel{1});
      cancelled = true;
    }
  }
  if (!cancelled) writer.join();
  EXPECT_EQ(codes["overloaded"], kFlood - 1000);
  EXPECT_EQ(codes["ok"], 1000u) << "the queue's 1,000 run once the worker is free";
  // Bounded: 1,000 queued jobs, and at most 4 MiB of answers held back for a client that reads
  // slower than they come (beyond that the supervisor stops reading its submits) -- not the
  // whole flood's 4.5 MB of submits and 5 MB of answers.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // (Not under a sanitizer: ASan keeps freed memory in quarantine, TSan adds shadow memory.)
  EXPECT_LT(rss_peak - rss_before, 8u << 10)
      << rss_before << " KiB before, " << rss_peak << " KiB at the peak";
#endif
  const std::string log = sup_->stderr_text();
  EXPECT_NE(log.find("queue limit reached: new jobs are answered overloaded (the queue already "
                     "holds 1000 jobs (--max-queue))"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("the queue has room again after 49000 jobs were answered overloaded"),
            std::string::npos)
      << log;
  EXPECT_EQ(code_of(sup_->result(1)), "cancelled");
}

// ---- Command line ----

TEST(SupervisorCommandLine, InvalidValuesExitTwoWithAMessage) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--workers", "0"},
                                             {"--workers", "many"},
                                             {"--read-fd", "3"},
                                             {"--log-level", "loud"},
                                             {"--max-frame", "10"},
                                             {"--key-file", "/nonexistent"},
                                             {"--bogus"}}) {
    std::vector<std::string> argv = {KILN_SUPERVISOR_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    auto [err_read, err_write] = pipe_pair();
    Child c = Child::spawn({argv, environment_with({}), {{2, err_write.get()}}});
    err_write.reset();
    EXPECT_EQ(c.exit_code(), exit_code::kUsage) << ::testing::PrintToString(args);
    EXPECT_NE(read_all(err_read.get(), 5s), "");
  }
}

TEST(SupervisorCommandLine, BadKeyExitsTwo) {
  auto [err_read, err_write] = pipe_pair();
  Child c = Child::spawn(
      {{KILN_SUPERVISOR_PATH}, environment_with({"KILN_KEY=###"}), {{2, err_write.get()}}});
  err_write.reset();
  EXPECT_EQ(c.exit_code(), exit_code::kUsage);
  EXPECT_EQ(read_all(err_read.get(), 5s),
            "kiln-supervisor: KILN_KEY is not a non-empty padded base64 key\n");
}

TEST(SupervisorCommandLine, ALinkThatIsNotAPipeIsRefused) {
  const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  auto [err_read, err_write] = pipe_pair();
  Child c = Child::spawn({{KILN_SUPERVISOR_PATH, "--workers", "1"},
                          environment_with({}),
                          {{0, devnull}, {1, devnull}, {2, err_write.get()}}});
  ::close(devnull);
  err_write.reset();
  EXPECT_EQ(c.exit_code(), exit_code::kUsage);
  EXPECT_NE(read_all(err_read.get(), 5s).find("the client link --read-fd 0 is"), std::string::npos);
}

}  // namespace
}  // namespace kiln::testing
