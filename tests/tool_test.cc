// Warm tools (docs/protocol.md "Tool link") through a real kiln-supervisor, its workers and
// tests/tools/test_tool.cc: every guarantee of docs/design.md, for tool jobs.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "common/exit_codes.h"
#include "common/fd.h"
#include "tests/supervisor_fixture.h"
#include "tests/worker_harness.h"

namespace kiln::testing {
namespace {

using nlohmann::json;

std::string tool_arg(const std::string& flags = "") {
  return std::string("t=") + KILN_TEST_TOOL_PATH + (flags.empty() ? "" : " " + flags);
}

json act(const std::string& action, json fields = json::object()) {
  fields["action"] = action;
  return fields;
}

// The supervisor fixture with the test tool as tool `t` (flags: the tool's own).
class ToolTest : public SupervisorFixture {
 protected:
  void start(SupervisorStart s = {}, const std::string& flags = "") {
    s.args.insert(s.args.begin(), {"--tool", tool_arg(flags)});
    SupervisorFixture::start(s);
  }
  // The pid of the tool that runs job `id` (an `pid` action).
  pid_t tool_pid(uint64_t id) {
    sup_->submit(id, "t", act("pid"));
    return static_cast<pid_t>(value_of(sup_->result(id)).get<int64_t>());
  }
};

TEST_F(ToolTest, AToolIsAKindThatKeepsItsStateBetweenJobs) {
  start({.args = {"--log-level", "debug"}, .workers = 1}, "--print-env");
  EXPECT_EQ(sup_->hello().kinds, (std::vector<std::string>{"echo", "exec", "selftest", "t"}));
  for (uint64_t id = 1; id <= 3; ++id) {
    sup_->submit(id, "t", act("count"));
    EXPECT_EQ(value_of(sup_->result(id)), id) << "one warm process served every job";
  }
  sup_->submit(4, "t", act("echo", {{"value", {{"nested", {1, "two", nullptr}}}}}));
  EXPECT_EQ(value_of(sup_->result(4)), (json{{"nested", {1, "two", nullptr}}}));
  // What a tool prints reaches the supervisor's log (at debug) on its own path, after its ready.
  EXPECT_TRUE(wait_until(
      [&] {
        return sup_->stderr_text().find("test tool env: KILN_TOOL=t KILN_KEY=set") !=
               std::string::npos;
      },
      10s))
      << sup_->stderr_text();
}

// A tool's output is relayed at debug: 1,000 MB of it made a 1,002 MB log at info.
TEST_F(ToolTest, AToolsOutputIsNotInTheLogAtInfo) {
  start({.args = {"--log-level", "info"}, .workers = 1}, "--print-env");
  sup_->submit(1, "t", act("count"));
  EXPECT_EQ(value_of(sup_->result(1)), 1);
  sup_->send(proto::Shutdown{});
  ASSERT_TRUE(sup_->await_bye());
  EXPECT_EQ(sup_->process().exit_code(), 0);  // its workers' pipes were drained before it ended
  ended_ = true;
  EXPECT_EQ(sup_->stderr_text().find("test tool env: "), std::string::npos) << sup_->stderr_text();
  EXPECT_NE(sup_->stderr_text().find("kiln-supervisor stopped"), std::string::npos);
}

TEST_F(ToolTest, AToolsFailuresKeepTheirCodeMessageAndDetail) {
  start({.workers = 1});
  sup_->submit(1, "t", act("fail", {{"message", "no such symbol"}}));
  auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "job_failed");
  EXPECT_EQ(r->error->message, "no such symbol");
  EXPECT_EQ(r->error->detail, std::optional<std::string>("the detail"));
  sup_->submit(2, "t", act("nonsense"));
  r = sup_->result(2);
  EXPECT_EQ(code_of(r), "bad_payload");
  EXPECT_EQ(r->error->message, "unknown action \"nonsense\"");
  // A code that is the pool's to give is not a tool's: it arrives as job_failed.
  sup_->submit(3, "t", act("code", {{"code", "worker_crashed"}}));
  r = sup_->result(3);
  EXPECT_EQ(code_of(r), "job_failed");
  EXPECT_EQ(r->error->message, "a foreign code");
  sup_->submit(4, "t", act("count"));
  EXPECT_EQ(value_of(sup_->result(4)), 4) << "failures cost the tool nothing";
}

TEST_F(ToolTest, AToolThatDiesBeforeReadyIsACrashLoopWithWhatItPrinted) {
  start({}, "--die-before-ready");
  sup_->submit(1, "t", act("count"));
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "pool_unavailable");
  EXPECT_EQ(r->error->message.rfind("workers keep failing to start: kiln-worker: tool t (pid ", 0),
            0u)
      << r->error->message;
  EXPECT_NE(r->error->message.find(") exited with status 3 before it was ready"), std::string::npos)
      << r->error->message;
  ASSERT_TRUE(r->error->detail.has_value());
  EXPECT_NE(r->error->detail->find("test tool: cannot load the model"), std::string::npos)
      << *r->error->detail;
  // Backoff, not a fork storm: five failures in a row make the pool unavailable.
  const auto st = sup_->stats();
  EXPECT_GE(st->worker_starts, 5u);
  EXPECT_LT(st->worker_starts, 40u);
}

TEST_F(ToolTest, AToolCommandThatCannotBeExecutedIsACrashLoopThatNamesItAndTheError) {
  SupervisorFixture::start({.args = {"--tool", "t=kiln-no-such-tool"}});
  sup_->submit(1, "t", act("count"));
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "pool_unavailable");
  const std::string& m = r->error->message;
  EXPECT_TRUE(m.starts_with("workers keep failing to start: worker ")) << m;
  EXPECT_TRUE(
      m.ends_with(" exited with status 6: kiln-worker: cannot start tool t: cannot execute "
                  "the tool's command 'kiln-no-such-tool': No such file or directory"))
      << m;
}

TEST_F(ToolTest, AToolThatDiesRightAfterReadyBacksOffThenAnswersPoolUnavailable) {
  start({.workers = 1}, "--exit-after-ready");
  // A job sent to one of them would die with it (worker_crashed): the first is sent once five
  // have died, when the pool is unavailable.
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->worker_crashes >= 5; }, 20s));
  sup_->submit(1, "t", act("count"));
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "pool_unavailable");
  EXPECT_EQ(r->error->message.rfind("workers keep failing to start: ", 0), 0u) << r->error->message;
  ASSERT_TRUE(r->error->detail.has_value());
  EXPECT_NE(r->error->detail->find("less than a second after its ready: "), std::string::npos)
      << *r->error->detail;
  EXPECT_NE(r->error->detail->find("test tool: lost the model right after ready"),
            std::string::npos)
      << *r->error->detail;
  // Five failed starts make the pool unavailable; the next start waits 160 ms, the one after 320.
  const auto st = sup_->stats();
  EXPECT_GE(st->worker_starts, 5u);
  EXPECT_LE(st->worker_starts, 7u);
}

TEST_F(ToolTest, AToolThatNeverSaysReadyIsStoppedAtTheStartTimeout) {
  start({.args = {"--start-timeout-ms", "300"}, .workers = 1}, "--never-ready");
  sup_->submit(1, "t", act("count"));
  const auto r = sup_->result(1, 60s);
  EXPECT_EQ(code_of(r), "pool_unavailable");
  EXPECT_NE(r->error->message.find("did not say ready within 300 ms"), std::string::npos)
      << r->error->message;
  // The failed starts leave nothing: each tool went with its worker (one may be starting now).
  sup_->send(proto::Shutdown{});
  ASSERT_TRUE(sup_->await_bye());
  EXPECT_EQ(sup_->process().exit_code(), 0);
  ended_ = true;
}

TEST_F(ToolTest, AToolThatBreaksTheLinkBeforeReadyIsAFailedStart) {
  start({.workers = 1}, "--garbage-before-ready");
  sup_->submit(1, "t", act("count"));
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "pool_unavailable");
  ASSERT_TRUE(r->error->detail.has_value());
  EXPECT_NE(r->error->detail->find("broke the tool link before it was ready: frame: length"),
            std::string::npos)
      << *r->error->detail;
}

TEST_F(ToolTest, AToolThatDiesMidJobCostsThatJobAlone) {
  start();
  ASSERT_TRUE(all_idle(2));
  sup_->submit(1, "t", act("sleep", {{"ms", 400}}));
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 1; }, 10s));
  sup_->submit(2, "t", act("crash"));
  auto r = sup_->result(2);
  EXPECT_EQ(code_of(r), "worker_crashed");
  EXPECT_EQ(r->error->message.rfind("tool t (pid ", 0), 0u) << r->error->message;
  EXPECT_NE(r->error->message.find(") was killed by SIGSEGV during the job"), std::string::npos)
      << r->error->message;
  EXPECT_EQ(r->error->detail, std::optional<std::string>("test tool: about to crash in job 2\n"));
  EXPECT_EQ(value_of(sup_->result(1)), nullptr) << "the sibling job finished";
  sup_->submit(3, "t", act("exit", {{"code", 7}}));
  r = sup_->result(3);
  EXPECT_EQ(code_of(r), "worker_crashed");
  EXPECT_NE(r->error->message.find(") exited with status 7 during the job"), std::string::npos)
      << r->error->message;
  // The pool serves on, on fresh workers and tools.
  ASSERT_TRUE(all_idle(2));
  for (uint64_t id = 4; id < 8; ++id) sup_->submit(id, "t", act("echo", {{"value", id}}));
  for (uint64_t id = 4; id < 8; ++id) EXPECT_EQ(value_of(sup_->result(id)), id);
  const auto st = sup_->stats();
  EXPECT_EQ(st->worker_crashes, 2u);
  EXPECT_EQ(st->jobs_failed, 2u);
}

TEST_F(ToolTest, AToolKilledBetweenJobsCostsNoJob) {
  start({.workers = 1});
  const pid_t tool = tool_pid(1);
  ASSERT_EQ(::kill(tool, SIGKILL), 0);
  // The worker notices at once and is replaced; the next job finds a fresh tool.
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->worker_starts == 2; }, 10s));
  ASSERT_TRUE(all_idle(1));
  sup_->submit(2, "t", act("count"));
  EXPECT_EQ(value_of(sup_->result(2)), 1);
  EXPECT_EQ(sup_->stats()->jobs_failed, 0u);
}

TEST_F(ToolTest, TimeoutOfAToolJobThatIgnoresSigterm) {
  start({.workers = 1});
  const pid_t first = tool_pid(1);
  sup_->submit(2, "t", act("hang"), 200);
  const auto r = sup_->result(2);
  EXPECT_EQ(code_of(r), "timeout");
  EXPECT_EQ(r->error->message, "the job ran past its timeout of 200 ms; tool t (pid " +
                                   std::to_string(first) + ") was stopped");
  EXPECT_FALSE(is_running(first));
  EXPECT_NE(tool_pid(3), first) << "a replacement tool";
  EXPECT_EQ(sup_->stats()->worker_crashes, 0u);
}

TEST_F(ToolTest, CancelOfARunningToolJob) {
  start({.workers = 1});
  const pid_t first = tool_pid(1);
  sup_->submit(2, "t", act("sleep", {{"ms", 100000}}));
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 1; }, 10s));
  sup_->send(proto::Cancel{2});
  EXPECT_EQ(code_of(sup_->result(2)), "cancelled");
  EXPECT_TRUE(wait_until([&] { return !is_running(first); }, 5s));
  sup_->submit(3, "t", act("count"));
  EXPECT_EQ(value_of(sup_->result(3)), 1) << "a fresh tool on the replacement worker";
}

TEST_F(ToolTest, AToolsChildrenDieWithIt) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  start({.workers = 1});
  sup_->submit(1, "t", act("child"));
  const auto in_group = static_cast<pid_t>(value_of(sup_->result(1)).get<int64_t>());
  sup_->submit(2, "t", act("child", {{"setsid", true}}));
  const auto escaped = static_cast<pid_t>(value_of(sup_->result(2)).get<int64_t>());
  ASSERT_TRUE(is_running(in_group));
  ASSERT_TRUE(is_running(escaped));
  sup_->submit(3, "t", act("crash"));
  EXPECT_EQ(code_of(sup_->result(3)), "worker_crashed");
  for (pid_t p : {in_group, escaped}) {
    EXPECT_TRUE(gone_within(p, 2s)) << p;
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_F(ToolTest, SupervisorSigkilledLeavesNoToolBehindWithinASecond) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  start();
  ASSERT_TRUE(all_idle(2));
  sup_->submit(1, "t", act("child"));
  std::vector<pid_t> doomed{static_cast<pid_t>(value_of(sup_->result(1)).get<int64_t>())};
  sup_->submit(2, "t", act("sleep", {{"ms", 100000}}));
  sup_->submit(3, "t", act("sleep", {{"ms", 100000}}));
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 2; }, 10s));
  for (pid_t p : descendants_of(sup_->process().pid())) {
    if (p != doomed[0]) doomed.push_back(p);
  }
  ASSERT_EQ(doomed.size(), 5u) << "two workers, their tools, one tool's child";
  sup_->process().kill(SIGKILL);
  ASSERT_TRUE(sup_->process().wait(5s).has_value());
  ended_ = true;
  for (pid_t p : doomed) {
    EXPECT_TRUE(gone_within(p, 1s)) << p;
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_F(ToolTest, QuiesceStopsTheToolsAndTheNextJobStartsThem) {
  start({.workers = 1});
  for (int round = 0; round < 3; ++round) {
    const pid_t tool = tool_pid(10 * round + 1);
    sup_->send(proto::Quiesce{});
    ASSERT_TRUE(wait_until([&] { return sup_->stats()->workers_alive == 0; }, 20s));
    EXPECT_FALSE(is_running(tool)) << "its memory is given back";
    sup_->submit(10 * round + 2, "t", act("count"));
    EXPECT_EQ(value_of(sup_->result(10 * round + 2)), 1) << "a tool started again";
  }
}

TEST_F(ToolTest, RssCountsTheWorkerTogetherWithItsTools) {
  start({.args = {"--max-worker-rss-mb", "100"}, .workers = 1});
  sup_->submit(1, "t", act("alloc", {{"mb", 60}}));
  const auto first = sup_->result(1);
  ASSERT_EQ(code_of(first), "ok");
  const auto st = sup_->stats();
  ASSERT_EQ(st->worker_list.size(), 1u);
  EXPECT_GE(st->worker_list[0].rss_kb, 60u * 1024);
  sup_->submit(2, "t", act("alloc", {{"mb", 60}}));
  ASSERT_EQ(code_of(sup_->result(2)), "ok");
  // 120 MiB in the tool, a few in the worker: over the limit only counted together.
  sup_->submit(3, "t", act("count"));
  const auto r = sup_->result(3);
  EXPECT_NE(*r->worker_pid, *first->worker_pid);
  EXPECT_EQ(value_of(r), 1);
}

TEST_F(ToolTest, WhatAToolPrintsToStdoutCannotCorruptTheLink) {
  start({.workers = 1});
  sup_->submit(1, "t", act("stdout", {{"bytes", 1 << 20}}));
  EXPECT_EQ(value_of(sup_->result(1)), nullptr);
  sup_->submit(2, "t", act("count"));
  EXPECT_EQ(value_of(sup_->result(2)), 2) << "the same tool, link intact";
}

TEST_F(ToolTest, AToolThatBreaksTheProtocolIsWorkerProtocolError) {
  start({.workers = 1});
  const pid_t first = tool_pid(1);
  sup_->submit(2, "t", act("garbage"));
  const auto r = sup_->result(2);
  EXPECT_EQ(code_of(r), "worker_protocol_error");
  EXPECT_EQ(r->error->message, "tool t (pid " + std::to_string(first) +
                                   ") broke the tool link: frame: length 4294967295 exceeds the "
                                   "maximum of 67108864; it was killed");
  sup_->submit(3, "t", act("count"));
  EXPECT_EQ(value_of(sup_->result(3)), 1);
}

TEST_F(ToolTest, AToolsPhaseReachesTheClientAsStatus) {
  start({.args = {"--status-interval-ms", "100"}, .workers = 1});
  sup_->submit(1, "t", act("phase", {{"ms", 600}}));
  EXPECT_EQ(value_of(sup_->result(1)), nullptr);
  ASSERT_FALSE(sup_->statuses.empty());
  EXPECT_EQ(sup_->statuses.back().id, 1u);
  EXPECT_EQ(sup_->statuses.back().phase, std::optional<std::string>("lowering"));
}

TEST_F(ToolTest, AToolsLongPhaseIsCutAndNeverTakesAFramePastTheLimit) {
  // Two phases of 600,000 bytes each made a stats reply of 1.2 MB, over this frame limit: the
  // client's link failed, and every job on it (the harness holds the supervisor to the limit).
  start({.args = {"--max-frame", "1048576", "--status-interval-ms", "100"}, .workers = 3});
  ASSERT_TRUE(all_idle(3));
  for (uint64_t id : {1, 2}) {
    sup_->submit(id, "t", act("phase", {{"bytes", 600000}, {"ms", 100000}}));
  }
  const std::string cut = std::string(proto::kMaxPhaseBytes, 'p') + "... (600000 bytes)";
  std::optional<proto::Stats> st;
  ASSERT_TRUE(wait_until(
      [&] {
        st = sup_->stats();
        return st && std::count_if(st->worker_list.begin(), st->worker_list.end(),
                                   [&](auto& w) { return w.job && w.job->phase == cut; }) == 2;
      },
      20s));
  sup_->submit(3, "echo", json{{"still", "served"}});
  EXPECT_EQ(value_of(sup_->result(3)), (json{{"still", "served"}}));
  ASSERT_TRUE(wait_until(
      [&] {
        sup_->stats();  // reads the statuses that came meanwhile
        return std::any_of(sup_->statuses.begin(), sup_->statuses.end(),
                           [](const proto::Status& s) { return s.phase.has_value(); });
      },
      20s));
  for (const proto::Status& s : sup_->statuses) {
    if (s.phase) {
      EXPECT_EQ(*s.phase, cut) << "status of job " << s.id;
    }
  }
}

TEST_F(ToolTest, StatsLeaveOutTheWorkersThatWouldTakeThemPastTheFrameLimit) {
  // Each busy worker's entry holds a phase of the largest length a tool may send: four of them
  // are more than this limit allows one frame, three are not.
  start({.args = {"--max-frame", "4096"}, .workers = 4});
  ASSERT_TRUE(all_idle(4));
  for (uint64_t id = 1; id <= 4; ++id) {
    sup_->submit(id, "t", act("phase", {{"bytes", proto::kMaxPhaseBytes}, {"ms", 100000}}));
  }
  const std::string phase(proto::kMaxPhaseBytes, 'p');
  std::optional<proto::Stats> st;
  EXPECT_TRUE(wait_until(
      [&] {
        st = sup_->stats();
        return st && st->jobs_running == 4 &&
               std::all_of(st->worker_list.begin(), st->worker_list.end(),
                           [&](auto& w) { return w.job && w.job->phase == phase; });
      },
      20s));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->workers_alive, 4u);
  EXPECT_EQ(st->worker_list.size(), 3u);
}

TEST_F(ToolTest, AToolsErrorTextIsCutToItsBounds) {
  start({.workers = 1});
  sup_->submit(
      1, "t",
      act("fail", {{"message", std::string(5000, 'm')}, {"detail", std::string(70000, 'd')}}));
  const auto r = sup_->result(1);
  EXPECT_EQ(code_of(r), "job_failed");
  EXPECT_EQ(r->error->message, std::string(proto::kMaxMessageBytes, 'm') + "... (5000 bytes)");
  EXPECT_EQ(r->error->detail,
            std::optional(std::string(proto::kMaxDetailBytes, 'd') + "... (70000 bytes)"));
}

TEST_F(ToolTest, WhatAToolPrintsCannotPassForTheWorkersCrashReport) {
  start({.args = {"--log-level", "debug"}, .workers = 1});
  sup_->submit(1, "t", act("count"));
  const auto first = sup_->result(1);
  ASSERT_EQ(code_of(first), "ok");
  const uint64_t worker = *first->worker_pid;
  const std::string fake = "kiln-worker " + std::to_string(worker) + " crashed: SIGSEGV";
  // The worker's own report line, from the tool: on a line of its own, after a partial line,
  // and after a line longer than a pipe's atomic write.
  const std::vector<std::string> texts = {fake + "\n", "50%", "\n" + fake + "\n",
                                          std::string(5000, 'x') + fake + "\n"};
  uint64_t id = 2;
  for (const std::string& text : texts) {
    sup_->submit(id, "t", act("say", {{"text", text}}));
    const auto r = sup_->result(id);
    EXPECT_EQ(code_of(r), "ok") << text.size() << (r && r->error ? r->error->message : "");
    EXPECT_EQ(r->worker_pid, std::optional(worker));
    ++id;
  }
  sup_->submit(id, "t", act("count"));
  const auto last = sup_->result(id);
  EXPECT_EQ(value_of(last), 6) << "the same tool served every job";
  EXPECT_EQ(last->worker_pid, std::optional(worker));
  const auto st = sup_->stats();
  EXPECT_EQ(st->worker_crashes, 0u);
  EXPECT_EQ(st->worker_starts, 1u);
  // The tool's lines reach the log, each marked as the tool's; the partial line "50%" only once
  // the next job's text ends it, and the log is relayed on its own, behind the results.
  const std::string marked = "worker " + std::to_string(worker) + ": tool t: ";
  EXPECT_TRUE(wait_until(
      [&] {
        const std::string log = sup_->stderr_text();
        return log.find(marked + fake) != std::string::npos &&
               log.find(marked + "50%\n") != std::string::npos;
      },
      10s))
      << sup_->stderr_text();
}

TEST_F(ToolTest, AToolsSecondResultForAJobCostsNoOtherJob) {
  start({.workers = 1});
  sup_->submit(1, "t", act("twice"));
  const auto r1 = sup_->result(1);
  EXPECT_EQ(value_of(r1), "first");
  // The next job has its own answer: from this tool, when the second result came only while it
  // ran, or from a fresh one. Either way this tool is given no job after it.
  sup_->submit(2, "t", act("echo", {{"value", 2}}));
  EXPECT_EQ(value_of(sup_->result(2)), 2);
  sup_->submit(3, "t", act("echo", {{"value", 3}}));
  const auto r3 = sup_->result(3);
  EXPECT_EQ(value_of(r3), 3);
  EXPECT_NE(r3->worker_pid, r1->worker_pid);
  EXPECT_EQ(sup_->stats()->jobs_failed, 0u);
}

TEST_F(ToolTest, AToolThatSpeaksBetweenJobsEndsItsWorkerBeforeTheNextJob) {
#if defined(__SANITIZE_THREAD__)
  // The test tool speaks from its SIGUSR1 handler while it blocks reading its link, and TSan's
  // runtime holds a handler back until that read returns, which it never does: the stray result
  // is never sent. The release and ASan passes prove this behaviour.
  GTEST_SKIP() << "TSan defers the test tool's signal handler past its blocking read";
#endif
  start({.args = {"--log-level", "info"}, .workers = 1});
  sup_->submit(1, "t", act("stray"));
  const auto tool = static_cast<pid_t>(value_of(sup_->result(1)).get<int64_t>());
  ASSERT_EQ(::kill(tool, SIGUSR1), 0);  // a result for job 1 again, now that it is idle
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->worker_starts == 2; }, 10s));
  EXPECT_TRUE(gone_within(tool, 5s));
  ASSERT_TRUE(all_idle(1));
  sup_->submit(2, "t", act("count"));
  EXPECT_EQ(value_of(sup_->result(2)), 1);
  EXPECT_EQ(sup_->stats()->jobs_failed, 0u);
  EXPECT_NE(sup_->stderr_text().find("kiln-worker: tool t (pid " + std::to_string(tool) +
                                     ") sent a result between jobs; it was killed"),
            std::string::npos)
      << sup_->stderr_text();
}

TEST_F(ToolTest, AToolHasOnlyStdioAndItsLinkOpen) {
  start({.workers = 1});
  const pid_t tool = tool_pid(1);
  EXPECT_EQ(open_fds(tool), (std::vector<int>{0, 1, 2, 3, 4}));
}

// A worker out of fds as it starts its tool ends before its ready, saying so, with the status of a
// failed tool start (the supervisor's crash-loop handling reports that line). It used to exit
// through fatal_errno with "kiln: pipe2: Too many open files", an internal error.
TEST(ToolStart, AWorkerOutOfFdsForItsToolSaysSoAndEndsAsAFailedStart) {
  WorkerStart start;
  // The worker holds 0-6; /dev/null takes 7 and the first pipe 8-9: the second finds no fd 11.
  start.wrapper = {"/usr/bin/prlimit", "--nofile=11"};
  start.extra_args = {"--tool", tool_arg()};
  WorkerHarness worker(start);
  EXPECT_EQ(worker.process().exit_code(), exit_code::kToolFailed);
  EXPECT_EQ(worker.stderr_text(5s),
            "kiln-worker: cannot start tool t: pipe: Too many open files\n");
}

// A tool whose command cannot be executed is a failed start at once, the worker told by its child
// before the exec (as libuv's uv_spawn is), not a tool that exits 127 before its ready.
TEST(ToolStart, AToolCommandThatIsNotFoundIsAFailedStartNamingItAndTheError) {
  WorkerStart start;
  start.extra_args = {"--tool", "t=kiln-no-such-tool --flag"};
  WorkerHarness worker(start);
  EXPECT_EQ(worker.process().exit_code(), exit_code::kToolFailed);
  EXPECT_EQ(worker.stderr_text(5s),
            "kiln-worker: cannot start tool t: cannot execute the tool's command "
            "'kiln-no-such-tool': No such file or directory\n");
}

TEST(ToolStart, AToolCommandThatIsNotExecutableIsAFailedStartNamingItAndTheError) {
  char path[] = "/tmp/kiln-noexec-tool-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ASSERT_EQ(::chmod(path, 0644), 0);
  WorkerStart start;
  start.extra_args = {"--tool", std::string("t=") + path};
  WorkerHarness worker(start);
  const int status = worker.process().exit_code();
  const std::string err = worker.stderr_text(5s);
  ::unlink(path);
  EXPECT_EQ(status, exit_code::kToolFailed);
  EXPECT_EQ(err, "kiln-worker: cannot start tool t: cannot execute the tool's command '" +
                     std::string(path) + "': Permission denied\n");
}

TEST(ToolCommandLine, BadToolsAreRefusedWithAMessage) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--tool", "Py=python3"}, "Py: a tool's name is [a-z][a-z0-9_.-]*, at most 64 characters"},
      {{"--tool", "exec=cc"}, "exec: that is a built-in job kind"},
      {{"--tool", "py="}, "py: no command"},
      {{"--tool", "py"}, "py: expected NAME=COMMAND"},
      {{"--tool", "py=python3 'open"}, "py: unterminated ' quote"},
      {{"--tool", "py=a", "--tool", "py=b"}, "--tool py: given twice"},
  };
  for (const auto& [args, message] : cases) {
    SupervisorHarness sup({.args = args});
    EXPECT_EQ(sup.process().exit_code(), 2) << message;
    EXPECT_NE(sup.stderr_text().find(message), std::string::npos) << sup.stderr_text();
  }
}

// ---- Tools forked from a zygote (docs/protocol.md "Zygote link"): kiln-test-tool speaks it
// through kiln::tool::serve, and every guarantee above holds for a forked tool. ----

// The parent of a live process (0 if it is gone).
pid_t parent_of(pid_t pid) {
  const std::optional<std::string> stat = read_small_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return 0;
  const std::size_t end = stat->rfind(')');
  pid_t ppid = 0;
  char state = 0;
  return std::sscanf(stat->c_str() + end + 1, " %c %d", &state, &ppid) == 2 ? ppid : 0;
}

class ZygoteTest : public ToolTest {
 protected:
  void start_forked(SupervisorStart s = {}) {
    s.args.insert(s.args.end(), {"--zygote", "t"});
    start(std::move(s));
  }
  std::vector<pid_t> worker_pids() {
    std::vector<pid_t> pids;
    const std::optional<proto::Stats> st = sup_->stats();
    for (const auto& w : st->worker_list) pids.push_back(static_cast<pid_t>(w.pid));
    return pids;
  }
};

TEST_F(ZygoteTest, EveryToolIsForkedFromOneZygoteAndLeadsItsOwnGroup) {
  start_forked();
  ASSERT_TRUE(all_idle(2));
  const std::vector<pid_t> workers = worker_pids();
  const pid_t sup = sup_->process().pid();
  std::vector<pid_t> zygotes, tools;
  for (pid_t p : descendants_of(sup)) {
    if (parent_of(p) == sup && std::find(workers.begin(), workers.end(), p) == workers.end()) {
      zygotes.push_back(p);
    }
  }
  ASSERT_EQ(zygotes.size(), 1u) << "one zygote beside the workers";
  for (pid_t p : descendants_of(sup)) {
    if (parent_of(p) == zygotes[0]) tools.push_back(p);
  }
  ASSERT_EQ(tools.size(), 2u) << "it forked both tools";
  for (pid_t tool : tools) {
    EXPECT_EQ(::getpgid(tool), tool) << "its own group";
    // Stdio, its link and the pidfd of its worker: nothing of the zygote's.
    EXPECT_EQ(open_fds(tool).size(), 6u);
  }
  std::set<pid_t> served;
  for (uint64_t id = 1; id <= 2; ++id) served.insert(tool_pid(id));
  for (pid_t tool : served) EXPECT_NE(std::find(tools.begin(), tools.end(), tool), tools.end());
}

TEST_F(ZygoteTest, AForkedToolDiesWithItsWorkerAndTakesWhatItStarted) {
  start_forked({.workers = 1});
  const pid_t tool = tool_pid(1);
  sup_->submit(2, "t", act("child"));
  const auto child = static_cast<pid_t>(value_of(sup_->result(2)).get<int64_t>());
  ASSERT_EQ(::getpgid(child), tool);
  const std::vector<pid_t> workers = worker_pids();
  ASSERT_EQ(workers.size(), 1u);
  ASSERT_EQ(::kill(workers[0], SIGKILL), 0);
  EXPECT_TRUE(gone_within(tool, 1s));
  EXPECT_TRUE(gone_within(child, 1s));
  EXPECT_NE(tool_pid(3), tool) << "a replacement serves";
}

TEST_F(ZygoteTest, SupervisorSigkilledLeavesNoZygoteOrForkedToolWithinASecond) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  start_forked();
  ASSERT_TRUE(all_idle(2));
  sup_->submit(1, "t", act("child"));
  std::vector<pid_t> doomed{static_cast<pid_t>(value_of(sup_->result(1)).get<int64_t>())};
  sup_->submit(2, "t", act("sleep", {{"ms", 100000}}));
  sup_->submit(3, "t", act("sleep", {{"ms", 100000}}));
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 2; }, 10s));
  for (pid_t p : descendants_of(sup_->process().pid())) {
    if (p != doomed[0]) doomed.push_back(p);
  }
  ASSERT_EQ(doomed.size(), 6u) << "two workers, the zygote, two tools, one tool's child";
  sup_->process().kill(SIGKILL);
  ASSERT_TRUE(sup_->process().wait(5s).has_value());
  ended_ = true;
  for (pid_t p : doomed) EXPECT_TRUE(gone_within(p, 1s)) << p;
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_F(ZygoteTest, AForkedToolsCrashCostsItsJobAloneAndNamesItsSignal) {
  start_forked();
  ASSERT_TRUE(all_idle(2));
  sup_->submit(1, "t", act("sleep", {{"ms", 400}}));
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 1; }, 10s));
  sup_->submit(2, "t", act("crash"));
  auto r = sup_->result(2);
  EXPECT_EQ(code_of(r), "worker_crashed");
  EXPECT_NE(r->error->message.find(") was killed by SIGSEGV during the job"), std::string::npos)
      << r->error->message;
  EXPECT_EQ(r->error->detail, std::optional<std::string>("test tool: about to crash in job 2\n"));
  EXPECT_EQ(value_of(sup_->result(1)), nullptr) << "the sibling job finished";
  sup_->submit(3, "t", act("exit", {{"code", 7}}));
  r = sup_->result(3);
  EXPECT_NE(r->error->message.find(") exited with status 7 during the job"), std::string::npos)
      << r->error->message;
  ASSERT_TRUE(all_idle(2));
  for (uint64_t id = 4; id < 8; ++id) sup_->submit(id, "t", act("echo", {{"value", id}}));
  for (uint64_t id = 4; id < 8; ++id) EXPECT_EQ(value_of(sup_->result(id)), id);
  EXPECT_EQ(sup_->stats()->worker_crashes, 2u);
}

TEST_F(ZygoteTest, AHungForkedToolTimesOutAndCostsItsJobAlone) {
  start_forked({.workers = 1});
  const pid_t first = tool_pid(1);
  sup_->submit(2, "t", act("hang"), 200);
  const auto r = sup_->result(2);
  EXPECT_EQ(code_of(r), "timeout");
  EXPECT_TRUE(gone_within(first, 5s));
  EXPECT_NE(tool_pid(3), first);
}

TEST_F(ZygoteTest, ADeadZygoteCostsNoJobAndIsStartedAgain) {
  start_forked({.workers = 1});
  const pid_t tool = tool_pid(1);
  const pid_t zygote = parent_of(tool);
  sup_->submit(2, "t", act("sleep", {{"ms", 300}}));
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->jobs_running == 1; }, 10s));
  ASSERT_EQ(::kill(zygote, SIGKILL), 0);
  EXPECT_EQ(value_of(sup_->result(2)), nullptr) << "the tool outlives its zygote";
  EXPECT_EQ(tool_pid(3), tool);
  // Replacements come forked from a zygote started again (or from scratch until it is back).
  uint64_t id = 4;
  pid_t next_parent = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        sup_->submit(id, "t", act("exit", {{"code", 1}}));
        EXPECT_EQ(code_of(sup_->result(id++)), "worker_crashed");
        const pid_t next = tool_pid(id++);
        next_parent = parent_of(next);
        return next_parent != zygote && next_parent != worker_pids().at(0);
      },
      20s));
  EXPECT_EQ(parent_of(next_parent), sup_->process().pid());
  EXPECT_EQ(sup_->stats()->jobs_failed, (id - 4) / 2);
}

TEST_F(ZygoteTest, QuiesceStopsTheZygoteTooAndTheNextJobStartsIt) {
  start_forked({.workers = 1});
  const pid_t zygote = parent_of(tool_pid(1));
  sup_->send(proto::Quiesce{});
  ASSERT_TRUE(wait_until([&] { return sup_->stats()->workers_alive == 0; }, 20s));
  EXPECT_TRUE(gone_within(zygote, 5s));
  const pid_t again = parent_of(tool_pid(2));
  EXPECT_NE(again, zygote);
  EXPECT_EQ(parent_of(again), sup_->process().pid());
}

TEST(ZygoteCommandLine, AZygoteForAToolThatIsNotThereIsRefused) {
  SupervisorHarness sup({.args = {"--zygote", "t"}});
  EXPECT_EQ(sup.process().exit_code(), 2);
  EXPECT_NE(sup.stderr_text().find("--zygote t: no --tool of that name"), std::string::npos)
      << sup.stderr_text();
}

}  // namespace
}  // namespace kiln::testing
