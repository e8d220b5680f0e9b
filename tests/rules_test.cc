// The supervisor's own rules with a fake clock: signals, a link's end, idle exit, stale events.
#include "supervisor/rules.h"

#include <gtest/gtest.h>

#include <csignal>

namespace kiln::supervisor {
namespace {

using Act = Rules::Act;

Rules daemon(uint64_t idle_exit_ms = 0) { return Rules({true, idle_exit_ms, 2}); }
Rules pipes() { return Rules({false, 0, 2}); }

TEST(RulesTest, TheFirstSigintShutsDownAndTheSecondKillsTheWorkers) {
  Rules r = daemon();
  const Rules::Decision first = r.on_signal(SIGINT);
  EXPECT_EQ(first.act, Act::kShutDown);
  EXPECT_EQ(first.why, "received SIGINT");
  const Rules::Decision term = r.on_signal(SIGTERM);  // not a SIGINT: counts for nothing
  EXPECT_EQ(term.act, Act::kShutDown);
  EXPECT_EQ(term.why, "received SIGTERM");
  EXPECT_EQ(r.on_signal(SIGINT).act, Act::kKillAll);
  EXPECT_EQ(r.on_signal(SIGINT).act, Act::kKillAll);
}

TEST(RulesTest, SigtermAndSighupShutDownAndSigchldEndsOrphans) {
  Rules r = pipes();
  EXPECT_EQ(r.on_signal(SIGHUP).why, "received SIGHUP");
  EXPECT_EQ(r.on_signal(SIGTERM).act, Act::kShutDown);
  EXPECT_EQ(r.on_signal(SIGCHLD).act, Act::kEndOrphans);
  EXPECT_EQ(r.on_signal(SIGINT).act, Act::kShutDown) << "the first SIGINT, whatever came before";
}

TEST(RulesTest, ThePipeLinksEndIsTheServicesEndASocketClientsIsOnlyItsOwn) {
  const Rules::Decision pipe_end = pipes().on_client_end();
  EXPECT_EQ(pipe_end.act, Act::kShutDown);
  EXPECT_EQ(pipe_end.why, "the client link ended");
  EXPECT_EQ(daemon().on_client_end().act, Act::kDropClient);
}

TEST(RulesTest, ADaemonExitsAfterItsIdleTimeAndAnyWorkStartsTheClockAgain) {
  Rules r = daemon(/*idle_exit_ms=*/50);
  Micros now = 1'000'000;
  EXPECT_EQ(r.idle(true, now), std::optional<Micros>(now + 50'000));
  EXPECT_EQ(r.idle(true, now + 20'000), std::optional<Micros>(now + 50'000)) << "still idle";
  EXPECT_EQ(r.idle_exit_due(now + 49'999), std::nullopt);
  EXPECT_EQ(r.idle(false, now + 30'000), std::nullopt) << "a client came";
  EXPECT_EQ(r.idle_exit_due(now + 50'000), std::nullopt);
  now += 40'000;
  EXPECT_EQ(r.idle(true, now), std::optional<Micros>(now + 50'000));
  EXPECT_EQ(r.idle_exit_due(now + 50'000),
            std::optional<std::string>("no client and no job for 50 ms"));
}

TEST(RulesTest, IdleExitIsOnlyForADaemonThatAskedForIt) {
  Rules never = daemon(/*idle_exit_ms=*/0);
  Rules piped = Rules({false, 50, 1});
  for (Rules* r : {&never, &piped}) {
    EXPECT_EQ(r->idle(true, 1'000'000), std::nullopt);
    EXPECT_EQ(r->idle_exit_due(1'000'000'000), std::nullopt);
  }
}

TEST(RulesTest, OnlyTheEventsOfASlotsNewestProcessAreCurrent) {
  Rules r = daemon();
  const uint64_t first = r.new_generation(0);
  const uint64_t other_slot = r.new_generation(1);
  EXPECT_TRUE(r.current(0, first));
  const uint64_t second = r.new_generation(0);
  EXPECT_FALSE(r.current(0, first)) << "the replaced process's late events are stale";
  EXPECT_TRUE(r.current(0, second));
  EXPECT_TRUE(r.current(1, other_slot)) << "slots count apart";
}

}  // namespace
}  // namespace kiln::supervisor
