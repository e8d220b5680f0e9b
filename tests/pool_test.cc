// The pool's rules with a fake environment and a fake clock: no processes, no loop.
#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <ostream>

#include "common/crash_report.h"
#include "common/exit_codes.h"
#include "supervisor/pool.h"
#include "tests/fake_pool_env.h"

namespace kiln::supervisor {
namespace {

using proto::RawObject;

constexpr const char* kKey = "0123456789abcdef";

PoolConfig config(std::size_t workers = 2) {
  PoolConfig c;
  c.workers = workers;
  c.kinds = {"echo", "exec", "selftest"};
  c.key_id = kKey;
  c.grace_ms = 100;
  c.status_interval_ms = 0;
  return c;
}

proto::Submit job(uint64_t id, std::optional<int64_t> priority = std::nullopt,
                  std::optional<uint64_t> timeout_ms = std::nullopt) {
  return proto::Submit{id, "echo", RawObject::nil(), timeout_ms, priority};
}

proto::Ready ready(pid_t pid, std::string key = kKey) {
  return proto::Ready{1, static_cast<uint64_t>(pid), {"echo"}, std::move(key), std::nullopt};
}

proto::WorkerResult ok_result(uint64_t id) {
  return proto::WorkerResult{id, true, RawObject::nil(), std::nullopt, 5, std::nullopt};
}

class PoolTest : public ::testing::Test {
 protected:
  void start(PoolConfig c = config()) {
    pool_ = std::make_unique<WorkerPool>(std::move(c), env_);
    pool_->start();
  }
  void all_ready() {
    for (auto [slot, pid] : env_.pids) pool_->on_ready(slot, ready(pid));
  }
  void advance_ms(uint64_t ms) {
    env_.clock += ms * 1000;
    pool_->on_tick();
  }
  // The process of `slot` is gone (exit callback and pipes closed).
  void gone(std::size_t slot, int sig = 0, int status = 0, std::string tail = "") {
    pool_->on_gone(slot, ExitInfo{status, sig, std::move(tail)});
  }

  FakeEnv env_;
  std::unique_ptr<WorkerPool> pool_;
};

TEST_F(PoolTest, StartsEveryWorkerEagerlyAndDispatchesToIdleOnes) {
  start();
  EXPECT_EQ(env_.starts, 2);
  ASSERT_EQ(pool_->submit(1, job(1)), WorkerPool::Submitted::kAccepted);
  EXPECT_TRUE(env_.jobs_sent.empty()) << "nobody is ready yet";
  all_ready();
  ASSERT_EQ(env_.jobs_sent.size(), 1u);
  EXPECT_EQ(env_.jobs_sent[0].second.id, 1u);
  pool_->on_result(env_.jobs_sent[0].first, ok_result(1));
  ASSERT_EQ(env_.answers.size(), 1u);
  EXPECT_TRUE(env_.last().ok);
  EXPECT_EQ(env_.last().worker_pid, std::optional<uint64_t>(100));
}

TEST_F(PoolTest, QueueRunsByPriorityThenSubmitOrder) {
  PoolConfig c = config(1);
  c.pipeline_depth = 1;  // each job is sent when the one before is done: the queue's order
  start(c);
  all_ready();
  pool_->submit(1, job(1));  // runs at once
  pool_->submit(1, job(2, 0));
  pool_->submit(1, job(3, 5));
  pool_->submit(1, job(4, -1));
  pool_->submit(1, job(5, 5));
  for (uint64_t id : {1, 3, 5, 2, 4}) {
    ASSERT_EQ(env_.jobs_sent.back().second.id, id);
    pool_->on_result(0, ok_result(id));
  }
  EXPECT_EQ(env_.answers.size(), 5u);
}

TEST_F(PoolTest, ConnectionsTakeTurnsAndOneCannotFillTheOthersQueue) {
  PoolConfig c = config(1);
  c.queue.max_client_jobs = 3;
  c.pipeline_depth = 1;  // each job is sent when the one before is done: the queue's order
  start(c);
  all_ready();
  pool_->submit(1, job(1));  // runs at once
  for (uint64_t id = 2; id <= 5; ++id) pool_->submit(1, job(id));
  EXPECT_EQ(env_.last_code(), "overloaded") << "connection 1 may have only 3 waiting";
  EXPECT_EQ(env_.last().error->message,
            "this connection already has 3 jobs waiting (--max-client-queue)");
  pool_->submit(2, job(1));
  pool_->submit(2, job(2));
  EXPECT_EQ(env_.answers.size(), 1u) << "connection 2's jobs were accepted";
  std::vector<std::pair<ClientId, uint64_t>> ran;
  for (int n = 0; n < 6; ++n) {
    const uint64_t id = env_.jobs_sent.back().second.id;
    pool_->on_result(0, ok_result(id));
    ran.emplace_back(env_.answers.back().first, id);
  }
  using R = std::vector<std::pair<ClientId, uint64_t>>;
  EXPECT_EQ(ran, (R{{1, 1}, {1, 2}, {2, 1}, {1, 3}, {2, 2}, {1, 4}}));
}

TEST_F(PoolTest, APausedConnectionsJobsWaitUntilItReadsAgain) {
  start(config(1));
  all_ready();
  pool_->submit(1, job(1));  // runs at once
  pool_->submit(1, job(2));
  pool_->submit(2, job(1));
  pool_->client_paused(1, true);
  pool_->on_result(0, ok_result(1));
  ASSERT_EQ(env_.jobs_sent.size(), 2u);
  EXPECT_EQ(env_.answers.back().first, 1u);
  EXPECT_EQ(env_.jobs_sent.back().second.id, 1u) << "connection 2's job, not 1's second";
  pool_->on_result(0, ok_result(1));
  EXPECT_EQ(env_.jobs_sent.size(), 2u) << "the idle worker waits while 1 is paused";
  pool_->client_paused(1, false);
  ASSERT_EQ(env_.jobs_sent.size(), 3u);
  EXPECT_EQ(env_.jobs_sent.back().second.id, 2u);
}

TEST_F(PoolTest, AWorkerThatNeverSaysReadyIsStoppedAtTheStartTimeoutAsAFailedStart) {
  PoolConfig c = config(1);
  c.start_timeout_ms = 5000;
  start(c);
  pool_->submit(1, job(1));
  advance_ms(4999);
  EXPECT_TRUE(env_.signals.empty()) << "not yet";
  advance_ms(1);
  ASSERT_EQ(env_.signals.size(), 1u);
  EXPECT_EQ(env_.signals[0], std::make_pair(std::size_t{0}, SIGTERM));
  advance_ms(c.grace_ms);
  ASSERT_EQ(env_.signals.size(), 2u);
  EXPECT_EQ(env_.signals[1].second, SIGKILL) << "SIGKILL after the grace period";
  gone(0, SIGKILL);
  EXPECT_EQ(env_.starts, 1) << "a failed start: restarted after a back-off, not at once";
  EXPECT_TRUE(env_.answers.empty()) << "the job waits for a worker that starts";
  advance_ms(kBackoffFirstUs / 1000);
  EXPECT_EQ(env_.starts, 2);
  pool_->on_ready(0, ready(env_.pids.at(0)));
  ASSERT_EQ(env_.jobs_sent.size(), 1u);
  EXPECT_EQ(env_.jobs_sent[0].second.id, 1u);
}

TEST_F(PoolTest, DuplicateUnfinishedIdIsRefusedButFinishedIdsMayReturn) {
  start(config(1));
  all_ready();
  EXPECT_EQ(pool_->submit(1, job(7)), WorkerPool::Submitted::kAccepted);
  EXPECT_EQ(pool_->submit(1, job(7)), WorkerPool::Submitted::kDuplicateId);
  EXPECT_EQ(pool_->submit(2, job(7)), WorkerPool::Submitted::kAccepted) << "ids are per client";
  pool_->on_result(0, ok_result(7));
  EXPECT_EQ(pool_->submit(1, job(7)), WorkerPool::Submitted::kAccepted);
}

TEST_F(PoolTest, OverloadAnswersAtOnceWhenTheQueueIsFull) {
  PoolConfig c = config(1);
  c.queue.max_jobs = 2;
  start(c);
  all_ready();
  pool_->submit(1, job(1));  // running
  pool_->submit(1, job(2));
  pool_->submit(1, job(3));
  EXPECT_TRUE(env_.answers.empty());
  pool_->submit(1, job(4));
  ASSERT_EQ(env_.answers.size(), 1u);
  EXPECT_EQ(env_.last().id, 4u);
  EXPECT_EQ(env_.last_code(), "overloaded");
}

TEST_F(PoolTest, UnknownKindIsAnsweredAtOnce) {
  start();
  pool_->submit(1, proto::Submit{1, "link", RawObject::nil(), std::nullopt, std::nullopt});
  EXPECT_EQ(env_.last_code(), "unknown_kind");
  EXPECT_EQ(env_.last().error->message, "no worker serves kind \"link\"");
}

TEST_F(PoolTest, OneCrashFailsOnlyItsJobAndTheWorkerIsReplaced) {
  start();
  all_ready();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  const std::size_t crashed = env_.jobs_sent[0].first, other = env_.jobs_sent[1].first;
  pool_->on_phase(crashed, proto::Phase{1, "spawned", 4242});
  gone(crashed, SIGSEGV, 0, "kiln-worker 100 crashed: SIGSEGV\n#0 kiln_selftest_crash");
  ASSERT_EQ(env_.answers.size(), 1u);
  EXPECT_EQ(env_.last().id, 1u);
  EXPECT_EQ(env_.last_code(), "worker_crashed");
  EXPECT_EQ(env_.last().error->message, "worker 100 was killed by SIGSEGV");
  EXPECT_EQ(env_.last().error->detail,
            std::optional<std::string>("kiln-worker 100 crashed: SIGSEGV\n#0 kiln_selftest_crash"));
  EXPECT_EQ(env_.groups_killed, std::vector<pid_t>{4242});
  EXPECT_EQ(env_.starts, 3) << "replaced at once, no backoff: its job paid for the crash";
  pool_->on_result(other, ok_result(2));
  EXPECT_TRUE(env_.last().ok);
  EXPECT_EQ(pool_->stats().worker_crashes, 1u);
}

TEST_F(PoolTest, AWorkerWhoseToolFailedBetweenJobsStartedNoneAndItsJobRunsElsewhere) {
  start(config(1));
  all_ready();
  // The job reached the worker as it ended over a tool unfit between jobs (exit_code::kToolFailed):
  // it never started there, and runs on the replacement.
  pool_->submit(1, job(1));
  ASSERT_EQ(env_.jobs_sent.size(), 1u);
  gone(0, 0, exit_code::kToolFailed,
       "kiln-worker: tool t (pid 7) exited with status 1 between jobs");
  EXPECT_TRUE(env_.answers.empty());
  pool_->on_ready(0, ready(env_.pids.at(0)));
  ASSERT_EQ(env_.jobs_sent.size(), 2u);
  EXPECT_EQ(env_.jobs_sent[1].second.id, env_.jobs_sent[0].second.id);
  pool_->on_result(0, ok_result(env_.jobs_sent[1].second.id));
  ASSERT_EQ(env_.answers.size(), 1u);
  EXPECT_TRUE(env_.last().ok);
}

TEST_F(PoolTest, ExitStatusIsNamedToo) {
  start(config(1));
  all_ready();
  pool_->submit(1, job(1));
  gone(0, 0, 7);
  EXPECT_EQ(env_.last().error->message, "worker 100 exited with status 7");
}

TEST_F(PoolTest, CrashLoopBacksOffThenReportsPoolUnavailableThenRecovers) {
  start(config(1));
  pool_->submit(1, job(1));  // waits for a worker
  Micros expected_delay = kBackoffFirstUs;
  for (int failure = 1; failure <= kUnavailableAfter; ++failure) {
    gone(0, 0, 1, "kiln-worker: cannot start\n");
    ASSERT_EQ(env_.starts, failure) << "no restart before the backoff delay";
    ASSERT_EQ(pool_->next_deadline(), std::optional<Micros>(env_.clock + expected_delay));
    env_.clock += expected_delay;
    pool_->on_tick();
    ASSERT_EQ(env_.starts, failure + 1);
    expected_delay *= 2;
  }
  // After five failures in a row the queued job, and new ones, end with pool_unavailable.
  ASSERT_EQ(env_.answers.size(), 1u);
  EXPECT_EQ(env_.last_code(), "pool_unavailable");
  EXPECT_EQ(env_.last().error->message,
            "workers keep failing to start: worker 104 exited with status 1: kiln-worker: cannot "
            "start");
  pool_->submit(1, job(2));
  EXPECT_EQ(env_.last_code(), "pool_unavailable");
  // The delay stops growing at the cap.
  for (int i = 0; i < 20; ++i) {
    gone(0, 0, 1);
    ASSERT_LE(*pool_->next_deadline() - env_.clock, kBackoffMaxUs);
    env_.clock = *pool_->next_deadline();
    pool_->on_tick();
  }
  // A worker that starts again makes the pool available by itself.
  pool_->on_ready(0, ready(env_.pids[0]));
  pool_->submit(1, job(3));
  ASSERT_EQ(env_.jobs_sent.size(), 1u);
  EXPECT_EQ(env_.jobs_sent[0].second.id, 3u);
}

// s6 never respawns a service within a second of its start: a worker that says ready and dies
// at once with no job to blame is a failed start like one that dies before ready.
TEST_F(PoolTest, AWorkerThatDiesRightAfterReadyBacksOffThenReportsPoolUnavailable) {
  start(config(1));
  Micros expected_delay = kBackoffFirstUs;
  for (int failure = 1; failure <= kUnavailableAfter; ++failure) {
    pool_->on_ready(0, ready(env_.pids.at(0)));
    env_.clock += kYoungUs - 1;
    gone(0, 0, 0, "kiln-worker: lost its link\n");
    ASSERT_EQ(env_.starts, failure) << "no restart before the backoff delay";
    ASSERT_STREQ(pool_->slot_state(0), "backoff");
    ASSERT_EQ(pool_->next_deadline(), std::optional<Micros>(env_.clock + expected_delay));
    env_.clock += expected_delay;
    pool_->on_tick();
    ASSERT_EQ(env_.starts, failure + 1);
    expected_delay *= 2;
  }
  EXPECT_EQ(pool_->stats().worker_crashes, static_cast<uint64_t>(kUnavailableAfter));
  pool_->submit(1, job(1));
  EXPECT_EQ(env_.last_code(), "pool_unavailable");
  EXPECT_EQ(env_.last().error->message,
            "workers keep failing to start: worker 104 exited with status 0 less than a second "
            "after its ready: kiln-worker: lost its link");
  EXPECT_EQ(env_.last().error->detail,
            std::optional<std::string>("worker 104 exited with status 0 less than a second after "
                                       "its ready: kiln-worker: lost its link\n"));
}

// The review's loop: a tool dead at once after its worker's ready has each job it is sent come
// back not_started with retire; that is a failed start too, and the job ends pool_unavailable.
TEST_F(PoolTest, AToolThatDiesRightAfterReadyBacksOffAndItsJobEndsPoolUnavailable) {
  start(config(1));
  pool_->submit(1, job(1));
  Micros expected_delay = kBackoffFirstUs;
  for (int failure = 1; failure <= kUnavailableAfter; ++failure) {
    pool_->on_ready(0, ready(env_.pids.at(0)));
    ASSERT_EQ(env_.jobs_sent.size(), static_cast<std::size_t>(failure));
    pool_->on_result(0,
                     proto::WorkerResult{1, false, std::nullopt,
                                         proto::JobError{"not_started", "tool t died", std::nullopt,
                                                         std::nullopt, std::nullopt},
                                         0, true});
    gone(0, 0, exit_code::kToolFailed, "test tool: lost the model\nkiln-worker: tool t died\n");
    if (failure < kUnavailableAfter) {
      ASSERT_TRUE(env_.answers.empty()) << "the job waits in the queue";
      ASSERT_EQ(env_.starts, failure) << "no restart before the backoff delay";
      ASSERT_EQ(pool_->next_deadline(), std::optional<Micros>(env_.clock + expected_delay));
    }
    env_.clock += expected_delay;
    pool_->on_tick();
    expected_delay *= 2;
  }
  ASSERT_EQ(env_.answers.size(), 1u);
  EXPECT_EQ(env_.last().id, 1u);
  EXPECT_EQ(env_.last_code(), "pool_unavailable");
  EXPECT_EQ(env_.last().error->message, "workers keep failing to start: kiln-worker: tool t died");
  EXPECT_EQ(env_.last().error->detail,
            std::optional<std::string>(
                "worker 104 exited with status " + std::to_string(exit_code::kToolFailed) +
                " less than a second after its ready: test tool: lost the model\nkiln-worker: "
                "tool t died\n"));
  EXPECT_EQ(env_.starts, kUnavailableAfter + 1);
}

TEST_F(PoolTest, AWorkerThatLivedASecondIsReplacedAtOnceAndEndsTheFailuresInARow) {
  start(config(1));
  for (int failure = 1; failure < kUnavailableAfter; ++failure) {
    pool_->on_ready(0, ready(env_.pids.at(0)));
    gone(0, SIGKILL);
    env_.clock = *pool_->next_deadline();
    pool_->on_tick();
  }
  pool_->on_ready(0, ready(env_.pids.at(0)));
  env_.clock += kYoungUs;
  const int starts = env_.starts;
  gone(0, SIGKILL);
  EXPECT_EQ(env_.starts, starts + 1) << "it lived: replaced at once";
  pool_->on_ready(0, ready(env_.pids.at(0)));
  gone(0, SIGKILL);
  EXPECT_EQ(pool_->next_deadline(), std::optional<Micros>(env_.clock + kBackoffFirstUs))
      << "the first failure since one lived";
  pool_->submit(1, job(1));
  EXPECT_TRUE(env_.answers.empty()) << "not unavailable: one failure in a row";
}

TEST_F(PoolTest, AYoungWorkerThePoolStoppedIsReplacedAtOnce) {
  start(config(1));
  all_ready();
  pool_->submit(1, job(1));
  pool_->cancel(1, 1);
  gone(0, SIGTERM);
  EXPECT_EQ(env_.starts, 2) << "the pool's own stop, not a failed start";
}

TEST_F(PoolTest, ASlotThatCannotStartAWorkerFailsNoJobWhileAnotherServes) {
  // Found by the fd-exhaustion test: with one worker serving and the other slot unable to start
  // one (out of fds), five failed starts used to fail every job with pool_unavailable.
  start();
  all_ready();
  env_.spawn_fails = true;
  gone(0, SIGKILL);  // killed from outside; its restarts fail from now on
  for (int i = 0; i < 3 * kUnavailableAfter; ++i) {
    env_.clock = *pool_->next_deadline();
    pool_->on_tick();
  }
  EXPECT_GT(env_.starts, 2 + 2 * kUnavailableAfter);
  pool_->submit(1, job(1));
  ASSERT_EQ(env_.jobs_sent.size(), 1u);
  EXPECT_EQ(env_.jobs_sent[0].first, 1u);
  pool_->on_result(1, ok_result(1));
  EXPECT_TRUE(env_.last().ok);
  // With the last worker gone too, it is a crash loop of the whole pool after all.
  gone(1, SIGKILL);
  pool_->submit(1, job(2));
  for (int i = 0; i < 2 * kUnavailableAfter && env_.answers.size() < 2; ++i) {
    env_.clock = *pool_->next_deadline();
    pool_->on_tick();
  }
  EXPECT_EQ(env_.last_code(), "pool_unavailable");
  EXPECT_EQ(env_.last().id, 2u);
}

TEST_F(PoolTest, SpawnFailureCountsAsAFailedStart) {
  env_.spawn_fails = true;
  start(config(1));
  EXPECT_EQ(env_.starts, 1);
  EXPECT_EQ(pool_->next_deadline(), std::optional<Micros>(env_.clock + kBackoffFirstUs));
}

TEST_F(PoolTest, WrongKeyIsAProtocolErrorAndAFailedStart) {
  start(config(1));
  pool_->on_ready(0, ready(100, "ffffffffffffffff"));
  EXPECT_EQ(env_.signals, (std::vector<std::pair<std::size_t, int>>{{0, SIGKILL}}));
  gone(0, SIGKILL);
  EXPECT_EQ(pool_->next_deadline(), std::optional<Micros>(env_.clock + kBackoffFirstUs));
}

TEST_F(PoolTest, TimeoutBackstopAnswersAndKillsAfterGrace) {
  start(config(1));
  all_ready();
  pool_->submit(1, job(1, std::nullopt, 1000));
  EXPECT_EQ(env_.jobs_sent[0].second.timeout_ms, 1000u);
  advance_ms(1000 + 2 * 100 - 1);
  EXPECT_TRUE(env_.answers.empty()) << "the worker enforces the timeout; this is the backstop";
  advance_ms(1);
  EXPECT_EQ(env_.last_code(), "timeout");
  EXPECT_EQ(env_.last().error->message, "the job ran past its timeout of 1000 ms");
  EXPECT_EQ(env_.signals.back(), (std::pair<std::size_t, int>{0, SIGTERM}));
  advance_ms(100);
  EXPECT_EQ(env_.signals.back(), (std::pair<std::size_t, int>{0, SIGKILL}));
  // The late result of the killed worker is ignored: still one answer.
  pool_->on_result(0, ok_result(1));
  gone(0, SIGKILL);
  EXPECT_EQ(env_.answers.size(), 1u);
  EXPECT_EQ(env_.starts, 2) << "a replacement";
  EXPECT_EQ(pool_->stats().worker_crashes, 0u) << "it was killed on purpose";
}

TEST_F(PoolTest, DefaultJobTimeoutApplies) {
  PoolConfig c = config(1);
  c.job_timeout_ms = 50;
  start(c);
  all_ready();
  pool_->submit(1, job(1));
  EXPECT_EQ(env_.jobs_sent[0].second.timeout_ms, 50u);
}

TEST_F(PoolTest, CancelQueuedAnswersAtOnceAndRunningKillsTheWorker) {
  start(config(1));
  all_ready();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->cancel(1, 2);
  EXPECT_EQ(env_.last().id, 2u);
  EXPECT_EQ(env_.last_code(), "cancelled");
  EXPECT_TRUE(env_.signals.empty());
  pool_->cancel(1, 1);
  EXPECT_EQ(env_.last().id, 1u);
  EXPECT_EQ(env_.last_code(), "cancelled");
  EXPECT_EQ(env_.signals, (std::vector<std::pair<std::size_t, int>>{{0, SIGTERM}}));
  pool_->cancel(1, 99);  // unknown: ignored
  pool_->cancel(1, 1);   // finished: ignored
  EXPECT_EQ(env_.answers.size(), 2u);
  gone(0, 0, 143);
  EXPECT_EQ(env_.starts, 2);
}

TEST_F(PoolTest, AJobSentAheadToAStoppingWorkerAndCancelledIsAnsweredOnceAndNeverRunsAgain) {
  start(config(1));
  all_ready();
  pool_->submit(1, job(10));
  pool_->on_result(0, ok_result(10));  // echo jobs are short now: they are sent ahead
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  ASSERT_EQ(env_.jobs_sent.size(), 3u) << "job 2 sent ahead";
  pool_->cancel(1, 1);  // the job it runs: SIGTERM
  ASSERT_STREQ(pool_->slot_state(0), "stopping");
  pool_->cancel(1, 2);
  EXPECT_EQ(env_.last().id, 2u);
  EXPECT_EQ(env_.last_code(), "cancelled");
  EXPECT_EQ(env_.signals, (std::vector<std::pair<std::size_t, int>>{{0, SIGTERM}}));
  EXPECT_TRUE(env_.cancels_sent.empty()) << "a stopping worker is told nothing more";
  gone(0, SIGTERM);
  EXPECT_EQ(env_.answers.size(), 3u) << "jobs 10, 1 and 2, each once";
  EXPECT_EQ(pool_->open_jobs(), 0u);
  all_ready();
  EXPECT_EQ(env_.jobs_sent.size(), 3u) << "job 2 is not queued again";
}

TEST_F(PoolTest, QuiesceLetsRunningJobsFinishThenStopsAndSubmitRestarts) {
  start();
  all_ready();
  pool_->submit(1, job(1));
  const std::size_t busy = env_.jobs_sent[0].first;
  pool_->quiesce();
  EXPECT_EQ(env_.shutdowns_sent, std::vector<std::size_t>{1 - busy}) << "the idle one";
  pool_->on_result(busy, ok_result(1));
  EXPECT_EQ(env_.shutdowns_sent.size(), 2u) << "the busy one, once done";
  gone(0);
  gone(1);
  EXPECT_EQ(env_.starts, 2) << "nothing restarts while quiesced";
  EXPECT_EQ(pool_->stats().workers_alive, 0u);
  pool_->submit(1, job(2));
  EXPECT_EQ(env_.starts, 4);
  all_ready();
  EXPECT_EQ(env_.jobs_sent.back().second.id, 2u);
}

TEST_F(PoolTest, QuiesceAndWakeupInAnyOrderAreSafe) {
  start();
  all_ready();
  pool_->quiesce();
  pool_->quiesce();
  pool_->wakeup();  // while stopping: they restart when gone
  gone(0);
  pool_->quiesce();
  gone(1);
  pool_->wakeup();
  pool_->wakeup();
  all_ready();
  EXPECT_EQ(pool_->stats().workers_alive, 2u);
  pool_->submit(1, job(1));
  EXPECT_EQ(env_.jobs_sent.size(), 1u);
}

TEST_F(PoolTest, IdleQuiesceStopsWorkersAfterTheIdleTime) {
  PoolConfig c = config(1);
  c.idle_quiesce_ms = 500;
  start(c);
  all_ready();
  pool_->submit(1, job(1));
  advance_ms(1000);
  EXPECT_TRUE(env_.shutdowns_sent.empty()) << "a running job is not idleness";
  pool_->on_result(0, ok_result(1));
  advance_ms(499);
  EXPECT_TRUE(env_.shutdowns_sent.empty());
  advance_ms(1);
  EXPECT_EQ(env_.shutdowns_sent.size(), 1u);
}

TEST_F(PoolTest, RecyclesByJobCountAndByRss) {
  PoolConfig c = config(1);
  c.max_jobs_per_worker = 2;
  c.max_worker_rss_kb = 50'000;
  start(c);
  all_ready();
  pool_->submit(1, job(1));
  pool_->on_result(0, ok_result(1));
  EXPECT_TRUE(env_.shutdowns_sent.empty());
  pool_->submit(1, job(2));
  pool_->on_result(0, ok_result(2));
  EXPECT_EQ(env_.shutdowns_sent.size(), 1u) << "two jobs done";
  gone(0);
  EXPECT_EQ(env_.starts, 2);
  pool_->on_ready(0, ready(env_.pids[0]));
  env_.rss[env_.pids[0]] = 60'000;
  pool_->submit(1, job(3));
  pool_->on_result(0, ok_result(3));
  EXPECT_EQ(env_.shutdowns_sent.size(), 2u) << "over the RSS limit";
}

TEST_F(PoolTest, StatusForJobsRunningLongerThanTheInterval) {
  PoolConfig c = config(1);
  c.status_interval_ms = 1000;
  start(c);
  all_ready();
  pool_->submit(9, job(1));
  pool_->on_phase(0, proto::Phase{1, "compiling", std::nullopt});
  advance_ms(999);
  EXPECT_TRUE(env_.statuses.empty());
  advance_ms(1);
  ASSERT_EQ(env_.statuses.size(), 1u);
  EXPECT_EQ(env_.statuses[0].first, 9u);
  EXPECT_EQ(env_.statuses[0].second, (proto::Status{1, 1000, 100, "compiling"}));
  advance_ms(1000);
  EXPECT_EQ(env_.statuses.size(), 2u);
}

TEST_F(PoolTest, ShutdownAnswersEveryOpenJobAndStopsEveryWorker) {
  start();
  all_ready();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->submit(1, job(3));
  pool_->shutdown(false);
  EXPECT_EQ(env_.answers.size(), 3u);
  for (const auto& [client, r] : env_.answers) EXPECT_EQ(r.error->code, "shutdown");
  pool_->submit(1, job(4));
  EXPECT_EQ(env_.last_code(), "shutdown") << "no new jobs";
  advance_ms(100);
  EXPECT_EQ(std::count_if(env_.signals.begin(), env_.signals.end(),
                          [](auto s) { return s.second == SIGKILL; }),
            2);
  EXPECT_FALSE(pool_->stopped());
  gone(0, SIGKILL);
  gone(1, SIGKILL);
  EXPECT_TRUE(pool_->stopped());
  EXPECT_EQ(env_.starts, 2);
}

TEST_F(PoolTest, DrainFinishesQueuedAndRunningJobsFirst) {
  start(config(1));
  all_ready();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->shutdown(true);
  pool_->submit(1, job(3));
  EXPECT_EQ(env_.last_code(), "shutdown");
  pool_->on_result(0, ok_result(1));
  pool_->on_result(0, ok_result(2));
  EXPECT_TRUE(env_.answers[1].second.ok);
  EXPECT_TRUE(env_.answers[2].second.ok);
  EXPECT_EQ(env_.shutdowns_sent.size(), 1u);
  gone(0);
  EXPECT_TRUE(pool_->stopped());
}

TEST_F(PoolTest, ClientGoneDropsItsQueuedJobsAndKillsItsRunningOnes) {
  start(config(2));
  all_ready();
  pool_->submit(1, job(1));
  pool_->submit(2, job(1));
  pool_->submit(1, job(2));  // queued
  pool_->client_gone(1);
  EXPECT_TRUE(env_.answers.empty()) << "nobody to answer";
  ASSERT_EQ(env_.signals.size(), 1u);
  EXPECT_EQ(env_.signals[0].second, SIGTERM);
  const std::size_t other = 1 - env_.signals[0].first;
  pool_->on_result(other, ok_result(1));
  EXPECT_EQ(env_.answers.size(), 1u);
  EXPECT_EQ(env_.answers[0].first, 2u);
  EXPECT_EQ(pool_->open_jobs(), 0u);
}

TEST_F(PoolTest, ResultForAJobItWasNotGivenIsAProtocolError) {
  start(config(1));
  all_ready();
  pool_->submit(1, job(1));
  pool_->on_result(0, ok_result(2));
  EXPECT_EQ(env_.last_code(), "worker_protocol_error");
  EXPECT_EQ(env_.last().error->message,
            "worker 100 broke the protocol: a result for job 2, which it was not running");
  EXPECT_EQ(env_.signals.back().second, SIGKILL);
  pool_->on_ready(0, ready(100));  // ignored now
  gone(0, SIGKILL);
  EXPECT_EQ(env_.answers.size(), 1u);
}

TEST_F(PoolTest, SecondReadyIsAProtocolError) {
  start(config(1));
  all_ready();
  pool_->on_ready(0, ready(100));
  EXPECT_EQ(env_.signals.back(), (std::pair<std::size_t, int>{0, SIGKILL}));
}

TEST_F(PoolTest, KillAllSendsSigkillAtOnce) {
  start();
  all_ready();
  pool_->submit(1, job(1));
  pool_->shutdown(false);
  pool_->kill_all();
  EXPECT_EQ(std::count_if(env_.signals.begin(), env_.signals.end(),
                          [](auto s) { return s.second == SIGKILL; }),
            2);
}

TEST_F(PoolTest, StatsCountWhatHappened) {
  start();
  all_ready();
  pool_->submit(1, job(1));
  env_.clock += 300;
  pool_->on_result(env_.jobs_sent[0].first, ok_result(1));
  pool_->submit(1, job(2));
  pool_->on_result(env_.jobs_sent[1].first,
                   proto::WorkerResult{2, false, std::nullopt,
                                       proto::JobError{"job_failed", "no", std::nullopt,
                                                       std::nullopt, std::nullopt},
                                       1, std::nullopt});
  const proto::Stats st = pool_->stats();
  EXPECT_EQ(st.workers_configured, 2u);
  EXPECT_EQ(st.workers_alive, 2u);
  EXPECT_EQ(st.jobs_submitted, 2u);
  EXPECT_EQ(st.jobs_succeeded, 1u);
  EXPECT_EQ(st.jobs_failed, 1u);
  EXPECT_EQ(st.worker_starts, 2u);
  EXPECT_EQ(st.run_us_max, 300u);
  ASSERT_EQ(st.worker_list.size(), 2u);
  EXPECT_EQ(st.worker_list[0].state, "idle");
  EXPECT_EQ(st.worker_list[0].rss_kb, 1000u);
}

// ---- Pipelining: jobs sent to a busy worker ahead of their turn ----

proto::WorkerResult not_started(uint64_t id, bool retire = false) {
  proto::WorkerResult r{id,
                        false,
                        std::nullopt,
                        proto::JobError{"not_started", "cancelled before it started", std::nullopt,
                                        std::nullopt, std::nullopt},
                        0,
                        std::nullopt};
  if (retire) r.retire = true;
  return r;
}

class PipelineTest : public PoolTest {
 protected:
  // One worker that has run an echo job, so that echo jobs are known to be short.
  void start_warm(PoolConfig c = config(1)) {
    start(std::move(c));
    all_ready();
    pool_->submit(9, job(900));
    pool_->on_result(0, ok_result(900));
    env_.answers.clear();
    env_.jobs_sent.clear();
  }
  std::vector<uint64_t> sent_ids() const {
    std::vector<uint64_t> ids;
    for (const auto& [slot, j] : env_.jobs_sent) ids.push_back(j.id);
    return ids;
  }
  std::vector<uint64_t> answered_ids() const {
    std::vector<uint64_t> ids;
    for (const auto& [client, r] : env_.answers) ids.push_back(r.id);
    return ids;
  }
  using Ids = std::vector<uint64_t>;
  // The worker of slot 0 breaks its link (what a selftest `garbage` job does) and is gone.
  void breaks_link_and_is_gone() {
    pool_->on_protocol_error(0, "garbage from job 2");
    EXPECT_EQ(env_.signals, (std::vector<std::pair<std::size_t, int>>{{0, SIGKILL}}));
    gone(0, SIGKILL);
  }
};

proto::Submit job_to_watch(uint64_t id) {
  proto::Submit s = job(id);
  s.notify_started = true;
  return s;
}

using StartedSaid = std::vector<std::pair<ClientId, proto::Started>>;

TEST_F(PipelineTest, StartedIsSaidWhenTheWorkerTakesTheJobNotWhenItIsSentAhead) {
  start_warm();
  pool_->submit(1, job_to_watch(1));
  pool_->submit(2, job_to_watch(2));
  pool_->submit(1, job(3));  // not asked for
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3}));
  const uint64_t pid = env_.pids[0];
  EXPECT_EQ(env_.started_said, (StartedSaid{{1, {1, pid}}})) << "2 and 3 were sent ahead";
  pool_->on_result(0, ok_result(1));
  EXPECT_EQ(env_.started_said, (StartedSaid{{1, {1, pid}}, {2, {2, pid}}}));
  pool_->on_result(0, ok_result(2));
  pool_->on_result(0, ok_result(3));
  EXPECT_EQ(env_.started_said.size(), 2u) << "3 did not ask";
  EXPECT_EQ(answered_ids(), (Ids{1, 2, 3}));
}

TEST_F(PipelineTest, AJobCancelledBeforeItStartsIsNeverSaidStarted) {
  PoolConfig c = config(1);
  c.pipeline_depth = 1;
  start_warm(c);
  pool_->submit(1, job_to_watch(1));
  pool_->submit(1, job_to_watch(2));  // queued behind 1
  pool_->cancel(1, 2);
  pool_->on_result(0, ok_result(1));
  EXPECT_EQ(answered_ids(), (Ids{2, 1}));
  EXPECT_EQ(env_.answers[0].second.error->code, "cancelled");
  EXPECT_EQ(env_.started_said, (StartedSaid{{1, {1, static_cast<uint64_t>(env_.pids[0])}}}));
}

TEST_F(PipelineTest, AJobSentAheadAndCancelledIsNotSaidStartedAndTheNextOneIs) {
  start_warm();
  pool_->submit(1, job_to_watch(1));
  pool_->submit(1, job_to_watch(2));
  pool_->submit(1, job_to_watch(3));
  pool_->cancel(1, 2);
  EXPECT_EQ(env_.cancels_sent, (std::vector<std::pair<std::size_t, uint64_t>>{{0, 2}}));
  pool_->on_result(0, ok_result(1));
  EXPECT_EQ(env_.started_said.size(), 1u) << "3 waits for the worker's word on 2";
  pool_->on_result(0, not_started(2));
  const uint64_t pid = env_.pids[0];
  EXPECT_EQ(env_.started_said, (StartedSaid{{1, {1, pid}}, {1, {3, pid}}}));
}

TEST_F(PipelineTest, AJobOfAKindNotSeenYetIsNotSentAheadOfItsTurn) {
  start(config(1));
  all_ready();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  EXPECT_EQ(env_.jobs_sent.size(), 1u) << "how long an echo job takes is not known yet";
  pool_->on_result(0, ok_result(1));
  pool_->submit(1, job(3));
  EXPECT_EQ(env_.jobs_sent.size(), 3u) << "2 runs, 3 is sent ahead";
}

TEST_F(PipelineTest, AWorkerIsSentUpToTheDepthAndRunsThemInOrder) {
  PoolConfig c = config(1);
  c.pipeline_depth = 3;
  start_warm(c);
  for (uint64_t id = 1; id <= 5; ++id) pool_->submit(1, job(id));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3}));
  EXPECT_EQ(pool_->stats().jobs_queued, 4u) << "two sent ahead and two in the queue";
  EXPECT_EQ(pool_->stats().jobs_running, 1u);
  pool_->on_result(0, ok_result(1));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3, 4}));
  for (uint64_t id = 2; id <= 5; ++id) pool_->on_result(0, ok_result(id));
  EXPECT_EQ(answered_ids(), (Ids{1, 2, 3, 4, 5}));
  pool_->submit(1, job(6));
  pool_->on_result(0, ok_result(3));  // out of order
  EXPECT_EQ(env_.signals, (std::vector<std::pair<std::size_t, int>>{{0, SIGKILL}}));
  EXPECT_EQ(env_.last().id, 6u);
  EXPECT_EQ(env_.last_code(), "worker_protocol_error");
}

TEST_F(PipelineTest, NothingIsSentAheadBehindJobsThatTakeLong) {
  start_warm();
  pool_->submit(1, proto::Submit{1, "exec", RawObject::nil(), std::nullopt, std::nullopt});
  pool_->on_result(0, proto::WorkerResult{1, true, RawObject::nil(), std::nullopt,
                                          kPipelineUpToUs + 1, std::nullopt});
  pool_->submit(1, proto::Submit{2, "exec", RawObject::nil(), std::nullopt, std::nullopt});
  pool_->submit(1, job(3));
  EXPECT_EQ(sent_ids(), (Ids{1, 2})) << "3 would wait behind a job of over 2 ms";
  pool_->on_result(0, ok_result(2));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3}));
}

TEST_F(PipelineTest, JobsSentAheadGoBackToTheQueueWhenTheWorkerCrashes) {
  start_warm();
  for (uint64_t id = 1; id <= 3; ++id) pool_->submit(1, job(id));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3}));
  gone(0, SIGSEGV);
  ASSERT_EQ(env_.answers.size(), 1u) << "only the job it ran";
  EXPECT_EQ(env_.last().id, 1u);
  EXPECT_EQ(env_.last_code(), "worker_crashed");
  EXPECT_EQ(pool_->stats().jobs_queued, 2u);
  pool_->on_ready(0, ready(env_.pids[0]));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3, 2, 3}));
  pool_->on_result(0, ok_result(2));
  pool_->on_result(0, ok_result(3));
  EXPECT_EQ(answered_ids(), (Ids{1, 2, 3}));
  EXPECT_TRUE(env_.last().ok);
  EXPECT_EQ(env_.last().worker_pid, std::optional<uint64_t>(env_.pids[0]));
}

// The crash report's deadline (docs/design.md, start-up step 6): the handler's 5 s for the
// symbolizer plus the grace period, from the report's first line; nothing is signalled before it.
TEST_F(PipelineTest, AWorkerWhoseCrashReportHangsIsKilledAtItsDeadlineAndItsJobAnswered) {
  start_warm();
  for (uint64_t id = 1; id <= 3; ++id) pool_->submit(1, job(id, std::nullopt, 1000));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3}));
  pool_->on_crash_reported(0);
  EXPECT_EQ(pool_->stats().jobs_running, 1u) << "job 1 runs until the crash answers it";
  advance_ms(crash_report::kSymbolizeDeadlineMs + 100 - 1);
  EXPECT_TRUE(env_.signals.empty()) << "not even job 1's timeout backstop: the report runs";
  EXPECT_TRUE(env_.answers.empty());
  advance_ms(1);
  EXPECT_EQ(env_.signals, (std::vector<std::pair<std::size_t, int>>{{0, SIGKILL}}));
  advance_ms(60'000);
  EXPECT_EQ(env_.signals.size(), 1u) << "one SIGKILL";
  gone(0, SIGKILL, 0, "kiln-worker 100 crashed: SIGSEGV\n");
  EXPECT_EQ(answered_ids(), (Ids{1}));
  EXPECT_EQ(env_.last_code(), "worker_crashed");
  EXPECT_EQ(pool_->stats().worker_crashes, 1u);
  EXPECT_EQ(pool_->stats().jobs_queued, 2u) << "2 and 3 never started: back in the queue";
}

TEST_F(PipelineTest, AWorkerThatEndsItsCrashReportInTimeIsNotSignalled) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->on_crash_reported(0);
  advance_ms(1000);
  gone(0, SIGSEGV);
  EXPECT_TRUE(env_.signals.empty());
  EXPECT_EQ(env_.last_code(), "worker_crashed");
  pool_->on_ready(0, ready(env_.pids[0]));  // its replacement
  advance_ms(60'000);
  EXPECT_TRUE(env_.signals.empty()) << "the deadline went with the worker";
}

TEST_F(PipelineTest, CancellingTheJobOfACrashingWorkerSendsItNothing) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->on_crash_reported(0);
  pool_->cancel(1, 1);
  EXPECT_EQ(env_.last_code(), "cancelled");
  EXPECT_TRUE(env_.signals.empty()) << "SIGTERM would end the report early";
  EXPECT_TRUE(env_.cancels_sent.empty());
  gone(0, SIGSEGV);
  EXPECT_EQ(answered_ids(), (Ids{1})) << "job 2 goes back to the queue";
  EXPECT_EQ(pool_->stats().jobs_queued, 1u);
  EXPECT_EQ(pool_->stats().worker_crashes, 1u) << "the cancel does not make the crash a stop";
}

TEST_F(PipelineTest, ACrashingWorkerWhoseJobWasCancelledIsKilledAtTheReportsDeadline) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->on_crash_reported(0);
  pool_->cancel(1, 1);
  advance_ms(crash_report::kSymbolizeDeadlineMs + 100 - 1);
  EXPECT_TRUE(env_.signals.empty()) << "not at --grace-ms: the report is still being written";
  advance_ms(1);
  EXPECT_EQ(env_.signals, (std::vector<std::pair<std::size_t, int>>{{0, SIGKILL}}));
  gone(0, SIGKILL);
  EXPECT_EQ(answered_ids(), (Ids{1}));
  EXPECT_EQ(env_.last_code(), "cancelled");
  EXPECT_EQ(pool_->stats().worker_crashes, 1u);
}

TEST_F(PipelineTest, CancellingTheJobOfACrashingWorkerAlreadyKilledSendsNoSecondSignal) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->on_crash_reported(0);
  advance_ms(crash_report::kSymbolizeDeadlineMs + 100);
  ASSERT_EQ(env_.signals.size(), 1u);
  pool_->cancel(1, 1);
  EXPECT_EQ(env_.last_code(), "cancelled");
  advance_ms(60'000);
  EXPECT_EQ(env_.signals.size(), 1u) << "it was killed already; its end is awaited";
  gone(0, SIGKILL);
  EXPECT_EQ(answered_ids(), (Ids{1})) << "answered once";
  EXPECT_EQ(pool_->stats().worker_crashes, 1u);
  EXPECT_EQ(pool_->stats().workers_alive, 1u) << "a replacement starts";
}

TEST_F(PipelineTest, AStoppedWorkerThatEndsAsToldIsNoCrash) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->cancel(1, 1);
  ASSERT_EQ(env_.signals, (std::vector<std::pair<std::size_t, int>>{{0, SIGTERM}}));
  gone(0, 0, exit_code::kSignalBase + SIGTERM);  // its watchdog's exit on SIGTERM
  EXPECT_EQ(pool_->stats().worker_crashes, 0u);
}

TEST_F(PipelineTest, AWorkerThatCrashesAsItStopsIsACrash) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->cancel(1, 1);
  gone(0, SIGSEGV, 0, "kiln-worker 100 crashed: SIGSEGV\n");
  EXPECT_EQ(pool_->stats().worker_crashes, 1u);
  EXPECT_EQ(answered_ids(), (Ids{1})) << "its cancel only: job 2 goes back to the queue";
  EXPECT_EQ(env_.last_code(), "cancelled");
  EXPECT_EQ(pool_->stats().jobs_queued, 1u);
}

TEST_F(PipelineTest, AWorkerThatBeginsACrashReportAsItStopsIsACrashKilledAtItsGraceDeadline) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->cancel(1, 1);
  pool_->on_crash_reported(0);
  advance_ms(100 - 1);
  EXPECT_EQ(env_.signals.size(), 1u) << "SIGTERM only, until the stop's grace period is over";
  advance_ms(1);
  EXPECT_EQ(env_.signals.back(), (std::pair<std::size_t, int>{0, SIGKILL}));
  advance_ms(60'000);
  EXPECT_EQ(env_.signals.size(), 2u) << "one SIGKILL";
  gone(0, SIGKILL);
  EXPECT_EQ(pool_->stats().worker_crashes, 1u) << "killed, but it had crashed";
  EXPECT_EQ(answered_ids(), (Ids{1}));
}

TEST_F(PipelineTest, AJobSentAheadIsTimedFromItsStartNotFromWhenItWasSent) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2, std::nullopt, 1000));
  EXPECT_EQ(sent_ids(), (Ids{1, 2}));
  advance_ms(5000);
  EXPECT_TRUE(env_.answers.empty()) << "job 2 has not started";
  pool_->on_result(0, ok_result(1));
  advance_ms(1000 + 2 * 100 - 1);
  EXPECT_EQ(env_.answers.size(), 1u);
  advance_ms(1);
  EXPECT_EQ(env_.last().id, 2u);
  EXPECT_EQ(env_.last_code(), "timeout");
  EXPECT_EQ(env_.last().queue_us, std::optional<uint64_t>(5000'000));
}

TEST_F(PipelineTest, CancellingAJobSentAheadLeavesTheRunningOneAlone) {
  start_warm();
  for (uint64_t id = 1; id <= 3; ++id) pool_->submit(1, job(id));
  pool_->cancel(1, 2);
  EXPECT_EQ(env_.last().id, 2u);
  EXPECT_EQ(env_.last_code(), "cancelled");
  EXPECT_EQ(env_.cancels_sent, (std::vector<std::pair<std::size_t, uint64_t>>{{0, 2}}));
  EXPECT_TRUE(env_.signals.empty()) << "job 1 runs on";
  pool_->on_result(0, ok_result(1));
  pool_->on_result(0, not_started(2));
  pool_->on_result(0, ok_result(3));
  EXPECT_EQ(answered_ids(), (Ids{2, 1, 3})) << "one answer each";
}

TEST_F(PipelineTest, ACancelledJobTheWorkerStartedAnywayIsAnsweredOnce) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->cancel(1, 2);
  pool_->on_result(0, ok_result(1));
  pool_->on_result(0, ok_result(2));  // it had started 2 before the cancel arrived
  EXPECT_EQ(answered_ids(), (Ids{2, 1}));
  EXPECT_EQ(env_.answers[0].second.error->code, "cancelled");
  EXPECT_TRUE(env_.signals.empty());
  EXPECT_EQ(pool_->stats().workers_busy, 0u);
}

TEST_F(PipelineTest, NotStartedForAJobThatWasNotCancelledIsAProtocolError) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->on_result(0, not_started(1));
  EXPECT_EQ(env_.signals, (std::vector<std::pair<std::size_t, int>>{{0, SIGKILL}}));
  EXPECT_EQ(env_.last().id, 1u);
  EXPECT_EQ(env_.last_code(), "worker_protocol_error");
  gone(0, SIGKILL);
  pool_->on_ready(0, ready(env_.pids[0]));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 2})) << "2 was not its to lose";
}

TEST_F(PipelineTest, AHigherPriorityJobTakesThePlaceOfLowerOnesSentAhead) {
  PoolConfig c = config(1);
  c.pipeline_depth = 3;
  start_warm(c);
  for (uint64_t id = 1; id <= 3; ++id) pool_->submit(1, job(id));
  pool_->submit(1, job(4));  // queued
  pool_->submit(1, job(5, 5));
  EXPECT_EQ(env_.cancels_sent, (std::vector<std::pair<std::size_t, uint64_t>>{{0, 2}, {0, 3}}));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3, 5})) << "only 5 takes their place, not 4 after it";
  pool_->on_result(0, ok_result(1));
  pool_->on_result(0, not_started(2));
  pool_->on_result(0, not_started(3));
  pool_->on_result(0, ok_result(5));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3, 5, 2, 3, 4})) << "back in their order";
  for (uint64_t id : {2, 3, 4}) pool_->on_result(0, ok_result(id));
  EXPECT_EQ(answered_ids(), (Ids{1, 5, 2, 3, 4}));
}

// Found by the soak (seed 35859192): job 2 was asked back for job 3's priority, but the worker
// had started it already, and job 2 broke the link. Job 3 was blamed for it.
TEST_F(PipelineTest, AJobBehindOneAskedBackIsNotBlamedForWhatTheWorkerDoes) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->submit(1, job(3, 5));
  EXPECT_EQ(env_.cancels_sent, (std::vector<std::pair<std::size_t, uint64_t>>{{0, 2}}));
  pool_->on_result(0, ok_result(1));
  EXPECT_EQ(pool_->stats().jobs_running, 1u) << "the worker runs 2 or 3: it has not said which";
  EXPECT_FALSE(pool_->stats().worker_list[0].job.has_value());
  breaks_link_and_is_gone();
  EXPECT_EQ(answered_ids(), (Ids{1})) << "neither is known to have done it";
  EXPECT_EQ(pool_->stats().jobs_queued, 2u);
}

// The soak's case: job 2, of a client that cancels it (or goes), was sent ahead and the worker
// started it before the cancel came.
TEST_F(PipelineTest, AJobBehindACancelledOneIsNotBlamedForWhatTheWorkerDoes) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(2, job(2));
  pool_->submit(1, job(3));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3}));
  pool_->cancel(2, 2);
  EXPECT_EQ(env_.cancels_sent, (std::vector<std::pair<std::size_t, uint64_t>>{{0, 2}}));
  pool_->on_result(0, ok_result(1));
  breaks_link_and_is_gone();
  EXPECT_EQ(answered_ids(), (Ids{2, 1})) << "2 cancelled, 1 ok, and 3 not blamed";
  EXPECT_EQ(pool_->stats().jobs_queued, 1u);
}

TEST_F(PipelineTest, AJobBehindOneAskedBackIsTimedFromWhenThatOnesAnswerComes) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->submit(1, job(3, 5, 1000));
  pool_->on_result(0, ok_result(1));
  advance_ms(5000);  // the worker runs job 2 after all
  EXPECT_EQ(answered_ids(), (Ids{1}));
  pool_->on_result(0, ok_result(2));
  advance_ms(1000 + 2 * 100 - 1);
  EXPECT_EQ(answered_ids(), (Ids{1, 2}));
  advance_ms(1);
  EXPECT_EQ(answered_ids(), (Ids{1, 2, 3}));
  EXPECT_EQ(env_.last_code(), "timeout");
}

TEST_F(PipelineTest, ARecalledJobTheWorkerRanAnywayKeepsItsResult) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->submit(1, job(3, 5));
  EXPECT_EQ(env_.cancels_sent, (std::vector<std::pair<std::size_t, uint64_t>>{{0, 2}}));
  pool_->on_result(0, ok_result(1));
  pool_->on_result(0, ok_result(2));  // too late to leave it
  pool_->on_result(0, ok_result(3));
  EXPECT_EQ(answered_ids(), (Ids{1, 2, 3}));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3})) << "2 ran once";
}

TEST_F(PipelineTest, AWorkerBeingReplacedRunsWhatItWasSentThenStops) {
  PoolConfig c = config(1);
  c.pipeline_depth = 4;
  c.max_worker_rss_kb = 50'000;
  start_warm(c);
  for (uint64_t id = 1; id <= 3; ++id) pool_->submit(1, job(id));
  env_.rss[env_.pids[0]] = 60'000;
  pool_->on_result(0, ok_result(1));
  pool_->submit(1, job(4));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3})) << "it is given nothing more";
  EXPECT_TRUE(env_.shutdowns_sent.empty()) << "2 and 3 are its";
  pool_->on_result(0, ok_result(2));
  pool_->on_result(0, ok_result(3));
  EXPECT_EQ(env_.shutdowns_sent, std::vector<std::size_t>{0});
  gone(0);
  pool_->on_ready(0, ready(env_.pids[0]));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3, 4}));
}

TEST_F(PipelineTest, AWorkerIsSentNoMoreThanItsJobLimitAllows) {
  PoolConfig c = config(1);
  c.max_jobs_per_worker = 3;  // the warm-up job was its first
  start_warm(c);
  for (uint64_t id = 1; id <= 4; ++id) pool_->submit(1, job(id));
  EXPECT_EQ(sent_ids(), (Ids{1, 2}));
  pool_->on_result(0, ok_result(1));
  pool_->on_result(0, ok_result(2));
  EXPECT_EQ(env_.shutdowns_sent, std::vector<std::size_t>{0});
  EXPECT_EQ(pool_->stats().jobs_queued, 2u);
}

TEST_F(PipelineTest, AWorkerWhoseToolDiedLeavesWhatItHadNotStarted) {
  start_warm();
  for (uint64_t id = 1; id <= 3; ++id) pool_->submit(1, job(id));
  pool_->on_result(0, ok_result(1));
  pool_->on_result(0, not_started(2, /*retire=*/true));
  EXPECT_EQ(answered_ids(), (Ids{1}));
  EXPECT_EQ(pool_->stats().jobs_queued, 2u) << "2 is back in the queue; 3 is sent ahead";
  gone(0, 0, 3);
  EXPECT_EQ(pool_->stats().jobs_queued, 2u) << "both back in the queue";
  EXPECT_EQ(env_.answers.size(), 1u);
  advance_ms(kBackoffFirstUs / 1000);  // its tool died young: a failed start
  pool_->on_ready(0, ready(env_.pids[0]));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 3, 2, 3}));
}

TEST_F(PipelineTest, QuiesceLetsAWorkerRunWhatItWasSentBeforeItStops) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  EXPECT_EQ(sent_ids(), (Ids{1, 2}));
  pool_->quiesce();
  pool_->on_result(0, ok_result(1));
  EXPECT_TRUE(env_.shutdowns_sent.empty()) << "2 is still to run";
  pool_->on_result(0, ok_result(2));
  EXPECT_EQ(env_.shutdowns_sent, std::vector<std::size_t>{0});
  EXPECT_EQ(answered_ids(), (Ids{1, 2}));
  gone(0);
  EXPECT_EQ(pool_->stats().workers_alive, 0u);
}

TEST_F(PipelineTest, ShutdownAnswersJobsSentAheadAndDrainRunsThem) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->shutdown(/*drain=*/true);
  pool_->on_result(0, ok_result(1));
  EXPECT_TRUE(env_.shutdowns_sent.empty()) << "2 is still to run";
  pool_->on_result(0, ok_result(2));
  EXPECT_EQ(env_.shutdowns_sent, std::vector<std::size_t>{0});
  EXPECT_EQ(answered_ids(), (Ids{1, 2}));
  EXPECT_TRUE(env_.last().ok);
}

TEST_F(PipelineTest, ACrashDuringADrainIsReplacedOnlyForTheJobsItHeldBack) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->shutdown(/*drain=*/true);
  const int starts = env_.starts;
  gone(0, SIGKILL);  // 1 dies with it; 2, sent ahead, goes back to the queue and needs a worker
  EXPECT_EQ(answered_ids(), (Ids{1}));
  EXPECT_EQ(env_.last_code(), "worker_crashed");
  ASSERT_EQ(env_.starts, starts + 1);
  pool_->on_ready(0, ready(env_.pids[0]));
  EXPECT_EQ(sent_ids(), (Ids{1, 2, 2}));
  gone(0, SIGKILL);  // 2 dies with this one: nothing is left to run, so nothing replaces it
  EXPECT_EQ(answered_ids(), (Ids{1, 2}));
  EXPECT_EQ(env_.starts, starts + 1);
  EXPECT_TRUE(pool_->stopped());
}

TEST_F(PipelineTest, ShutdownWithoutDrainAnswersEveryJobSentAtOnce) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(1, job(2));
  pool_->shutdown(/*drain=*/false);
  EXPECT_EQ(answered_ids(), (Ids{1, 2}));
  EXPECT_EQ(env_.answers[1].second.error->code, "shutdown");
  pool_->on_result(0, ok_result(1));
  gone(0, SIGTERM);
  EXPECT_EQ(env_.answers.size(), 2u);
  EXPECT_TRUE(pool_->stopped());
}

TEST_F(PipelineTest, AGoneClientsJobSentAheadIsCancelledNotKilled) {
  start_warm();
  pool_->submit(1, job(1));
  pool_->submit(2, job(1));
  EXPECT_EQ(env_.jobs_sent.size(), 1u) << "two jobs of one id never share a worker's link";
  pool_->on_result(0, ok_result(1));
  EXPECT_EQ(env_.jobs_sent.size(), 2u);
  pool_->submit(1, job(2));
  pool_->client_gone(1);
  EXPECT_EQ(env_.cancels_sent, (std::vector<std::pair<std::size_t, uint64_t>>{{0, 2}}));
  EXPECT_TRUE(env_.signals.empty()) << "client 2's job runs on";
  pool_->on_result(0, ok_result(1));
  pool_->on_result(0, not_started(2));
  EXPECT_EQ(env_.answers.size(), 2u);
  EXPECT_EQ(env_.answers.back().first, 2u);
}

// ---- The slot's life: every cell of the table in pool.cc (kLife) ----

struct Cell {
  const char* state;  // the slot's state before
  WorkerPool::Event event;
  const char* after;   // its state after
  const char* answer;  // the code of the answer the event gave job 1, "" if none
  int signal;          // the signal it sent the worker, 0 if none
};

std::ostream& operator<<(std::ostream& os, const Cell& c) {
  return os << c.state << " x " << WorkerPool::event_name(c.event);
}

class LifeTest : public PoolTest, public ::testing::WithParamInterface<Cell> {
 protected:
  // Slot 0 of a one-worker pool, brought into `state` the way the pool gets there; job 1, with
  // a timeout of 1 s, is the one it runs (busy), crashed in (crashing) or ran (stopping, killed,
  // crashing-out: cancelled).
  void enter(const std::string& state) {
    PoolConfig c = config(1);
    if (state == "backoff") env_.spawn_fails = true;
    start(c);
    if (state == "backoff" || state == "starting") return;
    all_ready();
    if (state == "empty") {
      pool_->quiesce();
      gone(0);
      return;
    }
    if (state == "idle") return;
    pool_->submit(1, job(1, std::nullopt, 1000));
    if (state == "busy") return;
    if (state == "crashing") return pool_->on_crash_reported(0);
    pool_->cancel(1, 1);
    if (state == "stopping") return;
    if (state == "crashing-out") return pool_->on_crash_reported(0);
    advance_ms(100);  // the grace period: SIGKILL
  }
  void deliver(WorkerPool::Event event) {
    const pid_t pid = env_.pids.count(0) ? env_.pids[0] : 0;
    switch (event) {
      case WorkerPool::Event::kReady:
        return pool_->on_ready(0, ready(pid));
      case WorkerPool::Event::kResult:
        return pool_->on_result(0, ok_result(1));
      case WorkerPool::Event::kPhase:
        return pool_->on_phase(0, proto::Phase{1, "compiling", std::nullopt});
      case WorkerPool::Event::kBrokeProtocol:
        return pool_->on_protocol_error(0, "a test");
      case WorkerPool::Event::kGone:
        return gone(0, SIGSEGV);
      case WorkerPool::Event::kDeadline: {
        const std::optional<Micros> due = pool_->next_deadline();
        env_.clock = due ? *due : env_.clock + 3600'000'000;
        return pool_->on_tick();
      }
      case WorkerPool::Event::kCrashReported:
        return pool_->on_crash_reported(0);
      case WorkerPool::Event::kQuiesce:
        return pool_->quiesce();
      case WorkerPool::Event::kWakeup:
        return pool_->wakeup();
      case WorkerPool::Event::kShutdown:
        return pool_->shutdown(/*drain=*/false);
      case WorkerPool::Event::kCancel:
        return pool_->cancel(1, 1);
      case WorkerPool::Event::kKillAll:
        return pool_->kill_all();
    }
  }
};

TEST_P(LifeTest, EachCellDoesWhatTheTableSays) {
  const Cell& cell = GetParam();
  enter(cell.state);
  ASSERT_STREQ(pool_->slot_state(0), cell.state);
  env_.spawn_fails = false;
  const std::size_t answers = env_.answers.size(), signals = env_.signals.size();
  deliver(cell.event);
  EXPECT_STREQ(pool_->slot_state(0), cell.after);
  if (*cell.answer == '\0') {
    EXPECT_EQ(env_.answers.size(), answers);
  } else {
    ASSERT_EQ(env_.answers.size(), answers + 1);
    EXPECT_EQ(env_.last().id, 1u);
    EXPECT_EQ(env_.last_code(), cell.answer);
  }
  if (cell.signal == 0) {
    EXPECT_EQ(env_.signals.size(), signals);
  } else {
    ASSERT_EQ(env_.signals.size(), signals + 1);
    EXPECT_EQ(env_.signals.back(), (std::pair<std::size_t, int>{0, cell.signal}));
  }
}

using E = WorkerPool::Event;
INSTANTIATE_TEST_SUITE_P(
    EveryStateAndEvent, LifeTest,
    ::testing::Values(
        // No process: nothing can happen but the backoff's end.
        Cell{"empty", E::kReady, "empty", "", 0}, Cell{"empty", E::kResult, "empty", "", 0},
        Cell{"empty", E::kPhase, "empty", "", 0}, Cell{"empty", E::kBrokeProtocol, "empty", "", 0},
        Cell{"empty", E::kGone, "empty", "", 0}, Cell{"empty", E::kDeadline, "empty", "", 0},
        Cell{"empty", E::kCrashReported, "empty", "", 0},
        Cell{"backoff", E::kReady, "backoff", "", 0}, Cell{"backoff", E::kResult, "backoff", "", 0},
        Cell{"backoff", E::kPhase, "backoff", "", 0},
        Cell{"backoff", E::kBrokeProtocol, "backoff", "", 0},
        Cell{"backoff", E::kGone, "backoff", "", 0},
        Cell{"backoff", E::kDeadline, "starting", "", 0},
        Cell{"backoff", E::kCrashReported, "backoff", "", 0},
        // Before ready, anything but ready breaks the protocol; gone is a failed start.
        Cell{"starting", E::kReady, "idle", "", 0},
        Cell{"starting", E::kResult, "killed", "", SIGKILL},
        Cell{"starting", E::kPhase, "killed", "", SIGKILL},
        Cell{"starting", E::kBrokeProtocol, "killed", "", SIGKILL},
        Cell{"starting", E::kGone, "backoff", "", 0},
        Cell{"starting", E::kDeadline, "stopping", "", SIGTERM},  // the start timeout
        Cell{"starting", E::kCrashReported, "crashing", "", 0},
        Cell{"idle", E::kReady, "killed", "", SIGKILL},
        Cell{"idle", E::kResult, "killed", "", SIGKILL},  // for a job it was not sent
        Cell{"idle", E::kPhase, "killed", "", SIGKILL},
        Cell{"idle", E::kBrokeProtocol, "killed", "", SIGKILL},
        // Gone with no job at once after its ready: it died young, a failed start (kYoungUs).
        Cell{"idle", E::kGone, "backoff", "", 0}, Cell{"idle", E::kDeadline, "idle", "", 0},
        Cell{"idle", E::kCrashReported, "crashing", "", 0},
        Cell{"busy", E::kReady, "killed", "worker_protocol_error", SIGKILL},
        Cell{"busy", E::kResult, "idle", "ok", 0}, Cell{"busy", E::kPhase, "busy", "", 0},
        Cell{"busy", E::kBrokeProtocol, "killed", "worker_protocol_error", SIGKILL},
        Cell{"busy", E::kGone, "starting", "worker_crashed", 0},
        Cell{"busy", E::kDeadline, "stopping", "timeout", SIGTERM},  // the backstop
        Cell{"busy", E::kCrashReported, "crashing", "", 0},  // no SIGTERM: it would cut the report
        // On its way out (job 1 was cancelled): only its end and its deadline matter.
        Cell{"stopping", E::kReady, "stopping", "", 0},
        Cell{"stopping", E::kResult, "stopping", "", 0},
        Cell{"stopping", E::kPhase, "stopping", "", 0},
        Cell{"stopping", E::kBrokeProtocol, "killed", "", SIGKILL},
        Cell{"stopping", E::kGone, "starting", "", 0},
        Cell{"stopping", E::kDeadline, "killed", "", SIGKILL},
        Cell{"stopping", E::kCrashReported, "crashing-out", "", 0},
        Cell{"killed", E::kReady, "killed", "", 0}, Cell{"killed", E::kResult, "killed", "", 0},
        Cell{"killed", E::kPhase, "killed", "", 0},
        Cell{"killed", E::kBrokeProtocol, "killed", "", 0},
        Cell{"killed", E::kGone, "starting", "", 0}, Cell{"killed", E::kDeadline, "killed", "", 0},
        Cell{"killed", E::kCrashReported, "killed", "", 0},
        // Its crash handler runs: what it says but a result does not matter any more; its end
        // answers job 1 worker_crashed; a report that hangs is cut short at the deadline.
        Cell{"crashing", E::kReady, "crashing", "", 0},
        Cell{"crashing", E::kResult, "crashing", "ok", 0},  // written before the crash
        Cell{"crashing", E::kPhase, "crashing", "", 0},
        Cell{"crashing", E::kBrokeProtocol, "crashing", "", 0},
        Cell{"crashing", E::kGone, "starting", "worker_crashed", 0},
        Cell{"crashing", E::kDeadline, "crashing", "", SIGKILL},
        Cell{"crashing", E::kCrashReported, "crashing", "", 0},
        // It crashed on its way out: as stopping, but its end is a crash, and its deadline (its
        // stop's: the grace period bounds the report) leaves it crashing-out.
        Cell{"crashing-out", E::kReady, "crashing-out", "", 0},
        Cell{"crashing-out", E::kResult, "crashing-out", "", 0},
        Cell{"crashing-out", E::kPhase, "crashing-out", "", 0},
        Cell{"crashing-out", E::kBrokeProtocol, "crashing-out", "", 0},
        Cell{"crashing-out", E::kGone, "starting", "", 0},
        Cell{"crashing-out", E::kDeadline, "crashing-out", "", SIGKILL},
        Cell{"crashing-out", E::kCrashReported, "crashing-out", "", 0}));

// The pool's commands, applied to every slot (cancel: to the slot that holds job 1, if any).
INSTANTIATE_TEST_SUITE_P(
    EveryStateAndCommand, LifeTest,
    ::testing::Values(
        // Quiesce: a start waiting in backoff is dropped; an idle worker with nothing queued is
        // stopped; the others are stopped when ready or done, or are on their way out.
        Cell{"empty", E::kQuiesce, "empty", "", 0}, Cell{"backoff", E::kQuiesce, "empty", "", 0},
        Cell{"starting", E::kQuiesce, "starting", "", 0},
        Cell{"idle", E::kQuiesce, "stopping", "", 0}, Cell{"busy", E::kQuiesce, "busy", "", 0},
        Cell{"stopping", E::kQuiesce, "stopping", "", 0},
        Cell{"killed", E::kQuiesce, "killed", "", 0},
        Cell{"crashing", E::kQuiesce, "crashing", "", 0},
        Cell{"crashing-out", E::kQuiesce, "crashing-out", "", 0},
        // Wakeup: an empty slot starts a worker; a backoff keeps its deadline.
        Cell{"empty", E::kWakeup, "starting", "", 0}, Cell{"backoff", E::kWakeup, "backoff", "", 0},
        Cell{"starting", E::kWakeup, "starting", "", 0}, Cell{"idle", E::kWakeup, "idle", "", 0},
        Cell{"busy", E::kWakeup, "busy", "", 0}, Cell{"stopping", E::kWakeup, "stopping", "", 0},
        Cell{"killed", E::kWakeup, "killed", "", 0},
        Cell{"crashing", E::kWakeup, "crashing", "", 0},
        Cell{"crashing-out", E::kWakeup, "crashing-out", "", 0},
        // Shutdown (not draining): every job held ends shutdown, but a crashing worker's, which
        // its end answers worker_crashed.
        Cell{"empty", E::kShutdown, "empty", "", 0}, Cell{"backoff", E::kShutdown, "empty", "", 0},
        Cell{"starting", E::kShutdown, "stopping", "", 0},  // shutdown sent
        Cell{"idle", E::kShutdown, "stopping", "", 0},
        Cell{"busy", E::kShutdown, "stopping", "shutdown", SIGTERM},
        Cell{"stopping", E::kShutdown, "stopping", "", 0},
        Cell{"killed", E::kShutdown, "killed", "", 0},
        Cell{"crashing", E::kShutdown, "crashing", "", 0},
        Cell{"crashing-out", E::kShutdown, "crashing-out", "", 0},
        // Cancel of job 1: held only when busy (it runs it) or crashing (it crashed in it; its
        // report runs on, and its end answers nothing more).
        Cell{"empty", E::kCancel, "empty", "", 0}, Cell{"backoff", E::kCancel, "backoff", "", 0},
        Cell{"starting", E::kCancel, "starting", "", 0}, Cell{"idle", E::kCancel, "idle", "", 0},
        Cell{"busy", E::kCancel, "stopping", "cancelled", SIGTERM},
        Cell{"stopping", E::kCancel, "stopping", "", 0},
        Cell{"killed", E::kCancel, "killed", "", 0},
        Cell{"crashing", E::kCancel, "crashing", "cancelled", 0},
        Cell{"crashing-out", E::kCancel, "crashing-out", "", 0},
        // Kill-all (the second SIGINT): SIGKILL to every worker not killed yet.
        Cell{"empty", E::kKillAll, "empty", "", 0}, Cell{"backoff", E::kKillAll, "empty", "", 0},
        Cell{"starting", E::kKillAll, "killed", "", SIGKILL},
        Cell{"idle", E::kKillAll, "killed", "", SIGKILL},
        Cell{"busy", E::kKillAll, "killed", "shutdown", SIGKILL},
        Cell{"stopping", E::kKillAll, "killed", "", SIGKILL},
        Cell{"killed", E::kKillAll, "killed", "", 0},
        Cell{"crashing", E::kKillAll, "killed", "shutdown", SIGKILL},
        Cell{"crashing-out", E::kKillAll, "killed", "", SIGKILL}));

}  // namespace
}  // namespace kiln::supervisor
