// The distcc host model without processes: which commands go to a host (common/distcc.h), what
// distcc's exit statuses mean, the HOSTS syntax and each host's backoff (supervisor/hosts.h), and
// the pool's placement and re-run of a job a host failed (against a fake environment).
#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <map>

#include "common/distcc.h"
#include "supervisor/hosts.h"
#include "supervisor/pool.h"
#include "tests/fake_pool_env.h"

namespace kiln::supervisor {
namespace {

using Argv = std::vector<std::string>;

TEST(DistccCommand, ACompileOfOneCSourceToAnObjectIsDistributable) {
  EXPECT_EQ(distcc::distributable_output({"cc", "-O2", "-c", "a.c", "-o", "a.o"}), "a.o");
  EXPECT_EQ(distcc::distributable_output({"/usr/bin/g++-12", "-Iinc", "-DX=1", "-MD", "-MF", "b.d",
                                          "-c", "src/b.cpp", "-o", "obj/b.o"}),
            "obj/b.o");
  EXPECT_EQ(distcc::distributable_output({"x86_64-linux-gnu-gcc", "-c", "-oc.o", "c.c"}), "c.o");
  EXPECT_EQ(distcc::distributable_output({"clang++-16", "-x", "c++", "-c", "d.cc", "-o", "d.o"}),
            "d.o");
}

TEST(DistccCommand, WhatMustRunHereIsNotDistributable) {
  for (const Argv& argv : std::vector<Argv>{
           {"cc", "a.o", "b.o", "-o", "prog"},                   // a link
           {"sh", "script.sh", "-c", "x.c", "-o", "x.o"},        // not a compiler
           {"cc", "-c", "a.c"},                                  // no -o
           {"cc", "-E", "-c", "a.c", "-o", "a.o"},               // preprocessing
           {"cc", "-S", "-c", "a.c", "-o", "a.o"},               // assembly output
           {"cc", "-c", "a.c", "b.c", "-o", "a.o"},              // two sources
           {"cc", "-c", "a.s", "-o", "a.o"},                     // assembly input
           {"cc", "-c", "-", "-o", "a.o"},                       // standard input
           {"cc", "@args", "-c", "a.c", "-o", "a.o"},            // a response file
           {"cc", "-march=native", "-c", "a.c", "-o", "a.o"},    // this machine's CPU
           {"cc", "--coverage", "-c", "a.c", "-o", "a.o"},       // coverage files here
           {"cc", "-x", "assembler", "-c", "a.c", "-o", "a.o"},  // not C or C++
           {"cc", "-c", "a.c", "-o", "a.so"},                    // not an object
           {"ccache", "cc", "-c", "a.c", "-o", "a.o"},           // a wrapper
           {"distcc", "cc", "-c", "a.c", "-o", "a.o"},           // distcc itself
       }) {
    EXPECT_EQ(distcc::distributable_output(argv), std::nullopt) << argv[0] << " " << argv[1];
  }
}

TEST(DistccCommand, ExitStatusesTellTheCompilerFromTheHost) {
  EXPECT_EQ(distcc::outcome_of(0), distcc::Outcome::kCompiler);
  EXPECT_EQ(distcc::outcome_of(1), distcc::Outcome::kCompiler);  // a compile error, once
  EXPECT_EQ(distcc::outcome_of(128 + 11), distcc::Outcome::kCompiler);
  for (int code : {100, 103, 107, 108, 109, 110, 113, 116, 118}) {
    EXPECT_EQ(distcc::outcome_of(code), distcc::Outcome::kHostFailed) << code;
  }
  for (int code : {101, 111, 120}) {
    EXPECT_EQ(distcc::outcome_of(code), distcc::Outcome::kLocalOnly) << code;
  }
  EXPECT_EQ(distcc::exit_meaning(103), "connect failed");
  EXPECT_EQ(distcc::exit_meaning(1), "");
}

TEST(DistccHosts, ParsesDistccHostsSyntaxWithDistccsDefaultLimit) {
  Expected<std::vector<HostSpec>> hosts =
      parse_hosts("  10.0.0.2:3632/3 build1  @builder/2,lzo  h4/5:4000  ");
  ASSERT_TRUE(hosts) << hosts.error();
  ASSERT_EQ(hosts->size(), 4u);
  EXPECT_EQ((*hosts)[0], (HostSpec{"10.0.0.2:3632/3", "10.0.0.2:3632", 3}));
  EXPECT_EQ((*hosts)[1], (HostSpec{"build1", "build1", kHostDefaultLimit}));
  EXPECT_EQ((*hosts)[2], (HostSpec{"@builder/2,lzo", "@builder", 2}));
  EXPECT_EQ((*hosts)[3], (HostSpec{"h4/5:4000", "h4:4000", 5}));
  EXPECT_TRUE(parse_hosts("")->empty());
}

TEST(DistccHosts, RefusesWhatIsNoHostTheUserGave) {
  for (const char* text : {"localhost", "localhost/2", "--randomize h1", "+zeroconf",
                           "--localslots=2", "h1/0", "h1/x", "h1/100000", "user@"}) {
    EXPECT_FALSE(parse_hosts(text)) << text;
  }
}

TEST(DistccHosts, SlotsFollowTheLocalOnesAndABackoffDoublesUntilASuccess) {
  Hosts hosts(*parse_hosts("a/2 b/1"), 3);
  EXPECT_EQ(hosts.slots(), 3u);
  EXPECT_EQ(hosts.host_of(2), std::nullopt);
  EXPECT_EQ(hosts.host_of(3), std::optional<std::size_t>(0));
  EXPECT_EQ(hosts.host_of(4), std::optional<std::size_t>(0));
  EXPECT_EQ(hosts.host_of(5), std::optional<std::size_t>(1));
  EXPECT_EQ(hosts.host_of(6), std::nullopt);
  const uint64_t t = 10'000'000;
  EXPECT_TRUE(hosts.usable(0, t));
  hosts.failed(0, "distcc exit 116", t);
  EXPECT_FALSE(hosts.usable(0, t + kHostBackoffFirstUs - 1));
  EXPECT_TRUE(hosts.usable(0, t + kHostBackoffFirstUs));
  hosts.failed(0, "again", t + kHostBackoffFirstUs);
  EXPECT_FALSE(hosts.usable(0, t + 3 * kHostBackoffFirstUs - 1));
  std::vector<proto::HostInfo> info = hosts.info(t + 2 * kHostBackoffFirstUs);
  EXPECT_EQ(info[0].state, "backoff");
  EXPECT_EQ(info[0].reason, std::optional<std::string>("again"));
  EXPECT_EQ(info[0].since_ms, std::optional<uint64_t>(2000));
  EXPECT_EQ(info[0].retry_in_ms, std::optional<uint64_t>(1000));
  EXPECT_EQ(info[0].failures, 2u);
  EXPECT_EQ(info[1].state, "up");
  hosts.succeeded(0);
  EXPECT_EQ(hosts.info(t)[0].state, "up");
  EXPECT_EQ(hosts.info(t)[0].jobs, 1u);
}

// ---- The pool's placement, against a fake environment ----

proto::RawObject exec_payload(const Argv& argv) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(1);
  pk.pack("argv");
  pk.pack(argv);
  return proto::RawObject{std::string(buf.data(), buf.size())};
}

proto::Submit exec_job(uint64_t id, const Argv& argv) {
  return proto::Submit{id, "exec", exec_payload(argv), std::nullopt, std::nullopt};
}

class DistccPool : public ::testing::Test {
 protected:
  void start(const std::string& hosts) {
    PoolConfig c;
    c.workers = 1;
    c.kinds = {"exec"};
    c.key_id = "k";
    c.status_interval_ms = 0;
    c.hosts = *parse_hosts(hosts);
    pool_ = std::make_unique<WorkerPool>(std::move(c), env_);
    pool_->start();
    for (auto [slot, pid] : env_.pids) {
      pool_->on_ready(slot, proto::Ready{1, static_cast<uint64_t>(pid), {"exec"}, "k", {}});
    }
  }
  static proto::WorkerResult result(uint64_t id, const std::string& error = "") {
    proto::WorkerResult r{id, error.empty(), proto::RawObject::nil(), std::nullopt, 5'000'000, {}};
    if (!error.empty()) r.error = proto::JobError{error, "distcc exit 116 on h", {}, {}, {}};
    return r;
  }
  FakeEnv env_;
  std::unique_ptr<WorkerPool> pool_;
};

const Argv kCompile = {"cc", "-c", "a.c", "-o", "a.o"};

TEST_F(DistccPool, CapacityIsLocalSlotsPlusEveryHostsLimitAndOnlyCompilesGoToHosts) {
  start("h1/2 h2/1");
  EXPECT_EQ(pool_->slot_count(), 4u);
  pool_->submit(1, exec_job(1, {"sleep", "1"}));  // the local slot
  pool_->submit(1, exec_job(2, {"ld", "a.o"}));   // waits for it: no host takes a link
  ASSERT_EQ(env_.jobs_sent.size(), 1u);
  EXPECT_EQ(env_.jobs_sent[0].first, 0u);
  pool_->on_result(0, result(1));
  ASSERT_EQ(env_.jobs_sent.size(), 2u);
  EXPECT_EQ(env_.jobs_sent[1].first, 0u);
  for (uint64_t id = 3; id <= 5; ++id) pool_->submit(1, exec_job(id, kCompile));
  ASSERT_EQ(env_.jobs_sent.size(), 5u);
  EXPECT_EQ(env_.jobs_sent[2].first, 1u);
  EXPECT_EQ(env_.jobs_sent[3].first, 2u);
  EXPECT_EQ(env_.jobs_sent[4].first, 3u);
  pool_->submit(1, exec_job(6, kCompile));  // every slot holds one: it waits, none sent ahead
  EXPECT_EQ(env_.jobs_sent.size(), 5u);
  const proto::Stats st = pool_->stats();
  ASSERT_TRUE(st.hosts);
  EXPECT_EQ((*st.hosts)[0].running, 2u);
  EXPECT_EQ((*st.hosts)[1].slots, 1u);
}

TEST_F(DistccPool, AJobAHostFailedRunsAgainElsewhereAnsweredOnceAndTheHostBacksOff) {
  start("h1/1 h2/1");
  pool_->submit(1, exec_job(1, {"sleep", "1"}));
  pool_->submit(1, exec_job(2, kCompile));
  ASSERT_EQ(env_.jobs_sent.size(), 2u);
  ASSERT_EQ(env_.jobs_sent[1].first, 1u);  // h1
  pool_->on_result(1, result(2, "host_failed"));
  EXPECT_TRUE(env_.answers.empty()) << "a host's failure is no answer";
  ASSERT_EQ(env_.jobs_sent.size(), 3u);
  EXPECT_EQ(env_.jobs_sent[2].first, 2u) << "it runs again on the other host";
  pool_->on_result(2, result(2));
  ASSERT_EQ(env_.answers.size(), 1u);
  EXPECT_TRUE(env_.answers[0].second.ok);
  const proto::Stats st = pool_->stats();
  EXPECT_EQ((*st.hosts)[0].state, "backoff");
  EXPECT_EQ((*st.hosts)[0].failures, 1u);
  EXPECT_EQ((*st.hosts)[1].jobs, 1u);
  // Backed off, h1 takes nothing; after its backoff it is tried again.
  pool_->submit(1, exec_job(3, kCompile));
  pool_->submit(1, exec_job(4, kCompile));
  EXPECT_EQ(env_.jobs_sent.size(), 4u);
  EXPECT_EQ(env_.jobs_sent[3].first, 2u);
  env_.clock += kHostBackoffFirstUs;
  pool_->on_tick();
  ASSERT_EQ(env_.jobs_sent.size(), 5u);
  EXPECT_EQ(env_.jobs_sent[4].first, 1u);
}

TEST_F(DistccPool, EveryHostDownEveryJobRunsLocally) {
  start("h1/1");
  pool_->submit(1, exec_job(1, kCompile));  // the local slot
  pool_->submit(1, exec_job(2, kCompile));  // the host, which fails it
  pool_->on_result(1, result(2, "host_failed"));
  pool_->on_result(0, result(1));
  ASSERT_EQ(env_.jobs_sent.size(), 3u);
  EXPECT_EQ(env_.jobs_sent[2].first, 0u);
  pool_->on_result(0, result(2));
  ASSERT_EQ(env_.answers.size(), 2u);
  EXPECT_TRUE(env_.answers[0].second.ok && env_.answers[1].second.ok);
}

}  // namespace
}  // namespace kiln::supervisor
