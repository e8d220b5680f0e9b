// kiln-worker as a real process: start-up rules, every job kind, crash reports, and that
// nothing it starts outlives it.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/build_key.h"
#include "common/exit_codes.h"
#include "tests/worker_harness.h"
#include "worker/symbolizer.h"

namespace kiln::testing {
namespace {

using nlohmann::json;

json value_of(const std::optional<proto::WorkerResult>& r) {
  EXPECT_TRUE(r.has_value());
  if (!r) return nullptr;
  EXPECT_TRUE(r->ok) << (r->error ? r->error->code + ": " + r->error->message : "");
  if (!r->ok || !r->value) return nullptr;
  return from_raw(*r->value);
}

std::string text(const json& bin) {
  const auto& b = bin.get_binary();
  return std::string(b.begin(), b.end());
}

json bytes(const std::string& s) { return json::binary(std::vector<uint8_t>(s.begin(), s.end())); }

// Whether one of `pid`'s threads has the name `name` (its /proc comm).
bool has_thread_named(pid_t pid, const std::string& name) {
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    if (read_small_file(task.path().string() + "/comm") == name + "\n") return true;
  }
  return false;
}

// A started worker that has sent `ready`.
class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(worker_.await_ready()); }
  void TearDown() override {
    // Every test ends with the worker shut down cleanly unless the test ended it itself.
    if (!ended_) {
      worker_.link().send(proto::WorkerShutdown{});
      const auto status = worker_.process().wait(10s);
      ASSERT_TRUE(status.has_value());
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
    }
  }
  json exec(const json& payload, uint64_t timeout_ms = 0) {
    return value_of(worker_.run("exec", payload, timeout_ms));
  }
  proto::JobError exec_error(const json& payload, uint64_t timeout_ms = 0) {
    auto r = worker_.run("exec", payload, timeout_ms);
    EXPECT_TRUE(r && !r->ok && r->error);
    return r && r->error ? *r->error : proto::JobError{};
  }

  WorkerHarness worker_;
  bool ended_ = false;
};

// ---- Start-up ----

TEST(WorkerStartup, WrongParentExitsZeroAndPrintsNothing) {
  auto [out_read, out_write] = pipe_pair();
  WorkerStart start;
  start.parent = 1;
  start.extra_fds = {{1, out_write.get()}};
  WorkerHarness worker(start);
  out_write.reset();
  const auto status = worker.process().wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_EQ(worker.stderr_text(), "");
  EXPECT_EQ(read_all(out_read.get(), 5s), "");
}

TEST(WorkerStartup, BadOptionsExitTwo) {
  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {KILN_WORKER_PATH},
           {KILN_WORKER_PATH, "--parent", "1", "--read-fd", "3"},
           {KILN_WORKER_PATH, "--parent", "x", "--read-fd", "3", "--write-fd", "4"},
           {KILN_WORKER_PATH, "--parent", "1", "--read-fd", "3", "--write-fd", "4", "--bogus"},
           {KILN_WORKER_PATH, "--parent", "1", "--read-fd", "3", "--write-fd", "4", "--log-level",
            "loud"}}) {
    auto [err_read, err_write] = pipe_pair();
    Child c = Child::spawn({argv, environment_with({}), {{2, err_write.get()}}});
    err_write.reset();
    const auto status = c.wait(10s);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status));
    EXPECT_EQ(WEXITSTATUS(*status), exit_code::kUsage) << ::testing::PrintToString(argv);
    EXPECT_NE(read_all(err_read.get(), 5s), "") << "a message on stderr";
  }
}

TEST(WorkerStartup, BadOrMissingKeyExitsTwo) {
  for (const std::string& key : {std::string("KILN_KEY=not base64!"), std::string("KILN_KEY=")}) {
    WorkerStart start;
    start.env = {key};
    WorkerHarness worker(start);
    const auto status = worker.process().wait(10s);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status));
    EXPECT_EQ(WEXITSTATUS(*status), exit_code::kUsage) << key;
    EXPECT_NE(worker.stderr_text().find("KILN_KEY"), std::string::npos);
  }
}

TEST(WorkerStartup, LinkFdsThatWereNeverPassedAreRefusedBeforeAnythingIsOpened) {
  // Started by hand, as its own --parent, with nothing at fds 3 and 4: its own signalfd and
  // pidfd would have taken those numbers and made them look open.
  auto [err_read, err_write] = pipe_pair();
  Child c = Child::spawn({{KILN_WORKER_PATH, "--parent", std::to_string(::getpid()), "--read-fd",
                           "3", "--write-fd", "4"},
                          environment_with({"KILN_KEY=a2lsbg=="}),
                          {{2, err_write.get()}}});
  err_write.reset();
  EXPECT_EQ(read_all(err_read.get(), 10s), "kiln-worker: --read-fd 3 / --write-fd 4 is not open\n");
  EXPECT_EQ(c.exit_code(), exit_code::kUsage);
}

TEST(WorkerStartup, HelpAndVersionExitZero) {
  auto [out_read, out_write] = pipe_pair();
  Child c =
      Child::spawn({{KILN_WORKER_PATH, "--version"}, environment_with({}), {{1, out_write.get()}}});
  out_write.reset();
  ASSERT_EQ(c.wait(10s), std::optional<int>(0));
  EXPECT_EQ(read_all(out_read.get(), 5s), "kiln-worker 0.1.0\n");
}

TEST(WorkerStartup, ABadCommandLineIsAUsageErrorThatSaysWhy) {
  const auto run = [](std::vector<std::string> argv) {
    auto [err_read, err_write] = pipe_pair();
    argv.insert(argv.begin(), KILN_WORKER_PATH);
    Child c = Child::spawn({argv, environment_with({}), {{2, err_write.get()}}});
    err_write.reset();
    std::string err = read_all(err_read.get(), 10s);
    return std::make_pair(c.exit_code(), err.substr(0, err.find('\n')));
  };
  const int usage = exit_code::kUsage;
  EXPECT_EQ(run({"--parent", "1", "--read-fd", "3"}),
            std::make_pair(usage, std::string("kiln-worker: --parent, --read-fd and --write-fd "
                                              "are required")));
  EXPECT_EQ(run({"--parent", "1", "--read-fd", "-3", "--write-fd", "4"}),
            std::make_pair(usage, std::string("kiln-worker: --read-fd: '-3' is out of range or "
                                              "not a number")));
  EXPECT_EQ(run({"--parent", "1", "--read-fd", "3", "--write-fd", "4", "--max-frame", "0"}),
            std::make_pair(usage, std::string("kiln-worker: --max-frame: '0' is out of range or "
                                              "not a number")));
  EXPECT_EQ(run({"--parent", "1", "--read-fd", "3", "--write-fd", "4", "--log-level", "loud"}),
            std::make_pair(usage, std::string("kiln-worker: unknown log level 'loud'")));
  EXPECT_EQ(run({"--parent", "1", "--read-fd", "3", "--write-fd", "4", "extra"}),
            std::make_pair(usage, std::string("kiln-worker: unexpected argument 'extra'")));
  EXPECT_EQ(run({"--no-such-option"}).first, usage);
}

TEST_F(WorkerTest, ReadySaysPidKindsAndKeyId) {
  EXPECT_EQ(worker_.ready().protocol, 1u);
  EXPECT_EQ(worker_.ready().pid, static_cast<uint64_t>(worker_.process().pid()));
  EXPECT_EQ(worker_.ready().kinds, (std::vector<std::string>{"echo", "exec", "selftest"}));
  EXPECT_EQ(worker_.ready().key_id, "eac7579295a99dff");
}

TEST(WorkerStartup, WithoutSelftestTheKindIsUnknown) {
  WorkerStart start;
  start.selftest = false;
  WorkerHarness worker(start);
  ASSERT_TRUE(worker.await_ready());
  EXPECT_EQ(worker.ready().kinds, (std::vector<std::string>{"echo", "exec"}));
  auto r = worker.run("selftest", json{{"action", "crash"}});
  ASSERT_TRUE(r && r->error);
  EXPECT_EQ(r->error->code, "unknown_kind");
  EXPECT_EQ(r->error->message, "no handler for kind \"selftest\"");
}

TEST(WorkerStartup, HoldsOnlyStdioItsLinkAndItsWatchdog) {
  // An fd the worker should not have inherited, without close-on-exec.
  const int stray = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(stray, 0);
  WorkerStart start;
  start.extra_fds = {{7, stray}};
  WorkerHarness worker(start);
  ::close(stray);
  ASSERT_TRUE(worker.await_ready());
  std::vector<std::string> seen;
  for (const auto& [fd, target] : fd_targets(worker.process().pid())) {
    if (fd <= 4) continue;
    seen.push_back(target);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"anon_inode:[pidfd]", "anon_inode:[signalfd]"}));
  worker.link().send(proto::WorkerShutdown{});
  EXPECT_EQ(worker.process().wait(10s), std::optional<int>(0));
}

TEST(WorkerStartup, EndOfInputExitsZero) {
  WorkerHarness worker;
  ASSERT_TRUE(worker.await_ready());
  worker.link().close_write();
  EXPECT_EQ(worker.process().wait(10s), std::optional<int>(0));
}

TEST(WorkerStartup, ProtocolErrorFromTheSupervisorExitsThree) {
  WorkerHarness worker;
  ASSERT_TRUE(worker.await_ready());
  worker.link().write_bytes(std::string("\x00\x00\x00\x01\xc1", 5));
  const auto status = worker.process().wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), exit_code::kProtocolError);
  EXPECT_NE(worker.stderr_text().find("protocol error from the supervisor: body: invalid byte"),
            std::string::npos);
}

// ---- echo ----

TEST_F(WorkerTest, EchoReturnsThePayloadByteForByte) {
  const proto::RawObject odd{std::string("\xce\x00\x00\x00\x01", 5)};  // non-minimal uint32
  auto r = worker_.run_raw("echo", odd);
  ASSERT_TRUE(r && r->ok && r->value);
  EXPECT_EQ(r->value->bytes, odd.bytes);
  EXPECT_EQ(value_of(worker_.run("echo", json{{"a", {1, 2, nullptr}}})),
            (json{{"a", {1, 2, nullptr}}}));
}

// ---- Jobs sent ahead (pipelining) ----

// The worker takes in every command that has arrived before it starts a job: a job cancelled
// before its turn is answered not_started, in its place in the order, and never run.
TEST_F(WorkerTest, JobsSentAheadRunInOrderAndACancelledOneIsNeverStarted) {
  const std::string fifo = ::testing::TempDir() + "kiln-pipeline-" + std::to_string(::getpid());
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string marker = fifo + ".ran";
  ASSERT_TRUE(worker_.submit(1, "exec", {{"argv", {"cat", fifo}}}));  // runs until we write
  ASSERT_TRUE(worker_.submit(2, "exec", {{"argv", {"touch", marker}}}));
  ASSERT_TRUE(worker_.submit(3, "echo", "three"));
  ASSERT_TRUE(worker_.link().send(proto::Cancel{2}));
  ASSERT_TRUE(worker_.link().send(proto::Cancel{99}));        // none such: ignored
  ASSERT_TRUE(worker_.link().send(proto::WorkerShutdown{}));  // after the jobs before it
  std::vector<proto::WorkerResult> results;
  auto event = worker_.next_event(10s);
  ASSERT_TRUE(event && std::holds_alternative<proto::Phase>(*event)) << "cat spawned";
  {
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);  // once cat opens it
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  while (results.size() < 3) {
    event = worker_.next_event(10s);
    ASSERT_TRUE(event.has_value());
    if (auto* r = std::get_if<proto::WorkerResult>(&*event)) results.push_back(*r);
  }
  EXPECT_EQ(results[0].id, 1u);
  EXPECT_TRUE(results[0].ok);
  EXPECT_EQ(results[1].id, 2u);
  ASSERT_TRUE(results[1].error.has_value());
  EXPECT_EQ(results[1].error->code, "not_started");
  EXPECT_EQ(results[1].error->message, "cancelled before it started");
  EXPECT_EQ(results[2].id, 3u);
  EXPECT_EQ(value_of(results[2]), "three");
  const auto status = worker_.process().wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  ended_ = true;
  EXPECT_NE(::access(marker.c_str(), F_OK), 0) << "the cancelled command ran";
  ::unlink(fifo.c_str());
}

// ---- exec ----

TEST_F(WorkerTest, ExecReportsExitCodeAndOutput) {
  json v = exec({{"argv", {"sh", "-c", "echo out; echo err >&2; exit 3"}}});
  EXPECT_EQ(v["exit_code"], 3);
  EXPECT_EQ(v["signal"], 0);
  EXPECT_EQ(text(v["stdout"]), "out\n");
  EXPECT_EQ(text(v["stderr"]), "err\n");
  EXPECT_EQ(v["stdout_truncated"], false);
  EXPECT_EQ(v["stderr_truncated"], false);
  EXPECT_GT(v["wall_us"].get<uint64_t>(), 0u);
  EXPECT_GT(v["max_rss_kb"].get<uint64_t>(), 0u);
  EXPECT_TRUE(v.contains("user_us") && v.contains("sys_us"));
  ASSERT_EQ(worker_.phases().size(), 1u);
  EXPECT_EQ(worker_.phases()[0].phase, "spawned");
  EXPECT_TRUE(worker_.phases()[0].pgid.has_value());
}

TEST_F(WorkerTest, ExecReportsTheKillingSignal) {
  json v = exec({{"argv", {"sh", "-c", "kill -SEGV $$"}}});
  EXPECT_EQ(v["exit_code"], -1);
  EXPECT_EQ(v["signal"], SIGSEGV);
}

TEST_F(WorkerTest, ExecFeedsStdin) {
  json v = exec({{"argv", {"cat"}}, {"stdin", bytes("hello\nworld")}});
  EXPECT_EQ(text(v["stdout"]), "hello\nworld");
}

TEST_F(WorkerTest, ExecMovesTenMegabytesEachWayWithoutDeadlock) {
  const std::string input(10 << 20, 'i');
  // cat copies 10 MB of stdin to stdout while the shell writes 10 MB to stderr at the same time.
  json v = exec({{"argv", {"sh", "-c", "head -c 10485760 /dev/zero >&2 & cat; wait"}},
                 {"stdin", bytes(input)}});
  EXPECT_EQ(v["exit_code"], 0);
  EXPECT_EQ(v["stdout"].get_binary().size(), 10u << 20);
  EXPECT_EQ(text(v["stdout"]), input);
  EXPECT_EQ(v["stderr"].get_binary().size(), 10u << 20);
  EXPECT_EQ(v["stdout_truncated"], false);
  EXPECT_EQ(v["stderr_truncated"], false);
}

TEST_F(WorkerTest, ExecTruncatesPerStreamButLetsTheCommandFinish) {
  json v = exec({{"argv", {"sh", "-c", "head -c 300000 /dev/zero; head -c 50 /dev/zero >&2"}},
                 {"max_output_bytes", 1000}});
  EXPECT_EQ(v["exit_code"], 0);
  EXPECT_EQ(v["stdout"].get_binary().size(), 1000u);
  EXPECT_EQ(v["stdout_truncated"], true);
  EXPECT_EQ(v["stderr"].get_binary().size(), 50u);
  EXPECT_EQ(v["stderr_truncated"], false);
}

TEST_F(WorkerTest, ExecRunsInCwd) {
  EXPECT_EQ(text(exec({{"argv", {"pwd"}}, {"cwd", "/tmp"}})["stdout"]), "/tmp\n");
}

TEST_F(WorkerTest, ExecAddsEnvAndHidesTheKey) {
  json v = exec({{"argv", {"sh", "-c", "echo $KILN_TEST_VAR; env"}},
                 {"env", {{"KILN_TEST_VAR", "forty-two"}}}});
  const std::string out = text(v["stdout"]);
  EXPECT_EQ(out.substr(0, out.find('\n')), "forty-two");
  EXPECT_EQ(out.find("KILN_KEY"), std::string::npos);
  EXPECT_NE(out.find("PATH="), std::string::npos) << "the worker's environment is kept";
}

TEST_F(WorkerTest, ExecClearEnvGivesOnlyTheGivenEnvironment) {
  json v = exec({{"argv", {"env"}}, {"env", {{"ONLY", "this"}}}, {"clear_env", true}});
  EXPECT_EQ(text(v["stdout"]), "ONLY=this\n");
}

TEST_F(WorkerTest, ExecCommandHoldsOnlyStdio) {
  // The shell lists its own fds: 0, 1, 2 and nothing else. (The glob's own directory fd is
  // closed again by the time readlink runs, so it prints nothing.)
  json v = exec({{"argv", {"sh", "-c", "for f in /proc/$$/fd/*; do readlink $f; done"}}});
  std::istringstream lines(text(v["stdout"]));
  std::vector<std::string> targets;
  for (std::string line; std::getline(lines, line);) targets.push_back(line.substr(0, 5));
  EXPECT_EQ(targets, (std::vector<std::string>{"pipe:", "pipe:", "pipe:"}));
}

TEST_F(WorkerTest, ExecCommandGetsDefaultSignalsInItsOwnGroup) {
  // grep is the command itself, so it reads the mask and dispositions the worker gave it (a
  // shell would show its own, which changes while it waits for a child).
  json v = exec({{"argv", {"grep", "-E", "^(SigBlk|SigIgn)", "/proc/self/status"}}});
  EXPECT_EQ(text(v["stdout"]), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n")
      << "the worker's blocked SIGTERM and ignored SIGINT/SIGPIPE must not leak";
  // Its own process group: field 5 of /proc/PID/stat is the shell's group, which is its pid.
  v = exec({{"argv", {"sh", "-c", "echo $$; cut -d' ' -f5 /proc/$$/stat"}}});
  std::istringstream lines(text(v["stdout"]));
  std::string pid, pgid;
  lines >> pid >> pgid;
  EXPECT_EQ(pgid, pid);
}

TEST_F(WorkerTest, ExecRefusesNulInCwdAndEnvAndEqualsInEnvNames) {
  // "/tmp\0/etc" would have run in /tmp, the kernel reading up to the NUL.
  proto::JobError e = exec_error({{"argv", {"true"}}, {"cwd", std::string("/tmp\0/etc", 9)}});
  EXPECT_EQ(e.code, "bad_payload");
  EXPECT_EQ(e.message, "exec.cwd: contains a NUL byte");
  e = exec_error({{"argv", {"true"}}, {"env", {{"A=B", "c"}}}});
  EXPECT_EQ(e.code, "bad_payload");
  EXPECT_EQ(e.message, "exec.env: the name \"A=B\" is empty or contains '=' or a NUL byte");
  e = exec_error({{"argv", {"true"}}, {"env", {{std::string("A\0B", 3), "c"}}}});
  EXPECT_EQ(e.message, "exec.env: the name \"A\\x00B\" is empty or contains '=' or a NUL byte");
  e = exec_error({{"argv", {"true"}}, {"env", {{"", "c"}}}});
  EXPECT_EQ(e.message, "exec.env: the name \"\" is empty or contains '=' or a NUL byte");
  e = exec_error({{"argv", {"true"}}, {"env", {{"A", std::string("x\0y", 3)}}}});
  EXPECT_EQ(e.code, "bad_payload");
  EXPECT_EQ(e.message, "exec.env: the value of A contains a NUL byte");
}

TEST_F(WorkerTest, ExecSetsTheUmaskNiceValueAndLimitsItIsGiven) {
  json v = exec({{"argv", {"sh", "-c", "umask; nice; ulimit -S -n; ulimit -H -n"}},
                 {"umask", 0077},
                 {"nice", 7},
                 {"rlimits", {{"nofile", {123, 456}}}}});
  EXPECT_EQ(text(v["stdout"]), "0077\n7\n123\n456\n");
  // A hard limit above the worker's own cannot be had without privilege: then the worker's
  // hard limit, and a soft one no higher (as root, the exact values).
  rlimit own{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &own), 0);
  v = exec({{"argv", {"sh", "-c", "ulimit -S -n"}}, {"rlimits", {{"nofile", {64, own.rlim_max}}}}});
  EXPECT_EQ(text(v["stdout"]), "64\n");
  proto::JobError e = exec_error({{"argv", {"true"}}, {"umask", 01000}});
  EXPECT_EQ(e.code, "bad_payload");
  EXPECT_EQ(e.message, "exec.umask: must be at most 0777");
  e = exec_error({{"argv", {"true"}}, {"nice", 20}});
  EXPECT_EQ(e.message, "exec.nice: must be from -20 to 19");
  e = exec_error({{"argv", {"true"}}, {"rlimits", {{"files", {1, 2}}}}});
  EXPECT_EQ(e.message, "exec.rlimits: unknown limit \"files\"");
  e = exec_error({{"argv", {"true"}}, {"rlimits", {{"nofile", {3, 2}}}}});
  EXPECT_EQ(e.message, "exec.rlimits: the soft limit of nofile is above its hard limit");
  e = exec_error({{"argv", {"true"}}, {"rlimits", {{"nofile", 3}}}});
  EXPECT_EQ(e.message, "exec.rlimits: expected map of str to [uint, uint]");
}

TEST_F(WorkerTest, ExecPayloadsOfMillionsOfValuesAreRefusedBeforeTheyAreUnpacked) {
  // 2,000,000 small ints: 2 MB on the wire, 48 MB as msgpack objects.
  proto::RawObject raw;
  raw.bytes = std::string("\x82\xa4") + "argv" + "\x91\xa4" + "true" + "\xa5" + "extra" + "\xdd";
  const uint32_t n = 2'000'000;
  for (int shift = 24; shift >= 0; shift -= 8) raw.bytes += static_cast<char>((n >> shift) & 0xff);
  raw.bytes += std::string(n, '\x01');
  const auto r = worker_.run_raw("exec", raw);
  ASSERT_TRUE(r && r->error);
  EXPECT_EQ(r->error->code, "bad_payload");
  EXPECT_EQ(r->error->message,
            "exec.payload: 2000006 msgpack values, more than the 1000000 a payload may hold");
  EXPECT_LT(proc_kb(worker_.process().pid(), "status", "VmHWM"), 100u << 10)
      << "the worker never held them unpacked";
}

TEST_F(WorkerTest, ExecMergesTensOfThousandsOfVariablesInLinearTime) {
  auto environment = [](int n) {
    json env = json::object();
    for (int i = 0; i < n; ++i) env["KILN_TEST_VAR_" + std::to_string(i)] = std::to_string(i);
    env["PATH"] = "/usr/bin:/bin";  // replaces the worker's own
    return env;
  };
  auto timed = [this](const json& env, json& value) {
    const auto start = std::chrono::steady_clock::now();
    value = exec(
        {{"argv", {"sh", "-c", "echo $KILN_TEST_VAR_39999 $PATH; env | wc -l"}}, {"env", env}});
    return std::chrono::steady_clock::now() - start;
  };
  // Ten times the variables may cost some tens of times as long, not a hundred (comparing every
  // pair once took 12.7 s for 40,000). A ratio, not a time: sanitizer builds run it 10x slower.
  json small_value, value;
  std::vector<std::chrono::steady_clock::duration> small;
  const json small_env = environment(4000);
  for (int i = 0; i < 3; ++i) small.push_back(timed(small_env, small_value));
  std::sort(small.begin(), small.end());
  const auto big = timed(environment(40000), value);
  // Measured 32x here (the shell and the encoding add their own share); quadratic was ~85x.
  EXPECT_LT(big, 60 * small[1]) << "40,000 variables against 4,000: quadratic?";
  std::istringstream out(text(value["stdout"]));
  std::string last, path;
  int count = 0;
  out >> last >> path >> count;
  EXPECT_EQ(last, "39999");
  EXPECT_EQ(path, "/usr/bin:/bin");
  EXPECT_GE(count, 40000);
}

// max_output_bytes is clamped to what a result frame can carry (half of it per stream): asking
// for 2^64-1 once held 200 MB in the worker before the job failed as too big to send.
TEST(WorkerLimits, MaxOutputBytesIsClampedToWhatAResultFrameCarries) {
  WorkerStart start;
  start.extra_args = {"--max-frame", "2000000"};
  WorkerHarness worker(start);
  ASSERT_TRUE(worker.await_ready());
  const auto r = worker.run(
      "exec", {{"argv", {"head", "-c", "3000000", "/dev/zero"}}, {"max_output_bytes", UINT64_MAX}});
  ASSERT_TRUE(r && r->ok) << (r && r->error ? r->error->message : "no result");
  const json v = from_raw(*r->value);
  EXPECT_EQ(v["stdout"].get_binary().size(), 1000000u);
  EXPECT_EQ(v["stdout_truncated"], true);
  worker.link().send(proto::WorkerShutdown{});
  EXPECT_EQ(worker.process().exit_code(), 0);
}

TEST_F(WorkerTest, ExecSpawnFailuresNameTheCommandAndTheError) {
  proto::JobError e = exec_error({{"argv", {"/nonexistent/cc", "-c"}}});
  EXPECT_EQ(e.code, "spawn_failed");
  EXPECT_EQ(e.message, "cannot execute '/nonexistent/cc': No such file or directory");
  EXPECT_EQ(e.os_errno, std::optional<uint64_t>(ENOENT))
      << "a client tells 127 (not found) from 126 by it";

  e = exec_error({{"argv", {"kiln-no-such-compiler"}}});
  EXPECT_EQ(e.code, "spawn_failed");
  EXPECT_EQ(e.message, "cannot execute 'kiln-no-such-compiler': No such file or directory");

  char path[] = "/tmp/kiln-noexec-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ::chmod(path, 0644);
  e = exec_error({{"argv", {path}}});
  ::unlink(path);
  EXPECT_EQ(e.code, "spawn_failed");
  EXPECT_EQ(e.message, "cannot execute '" + std::string(path) + "': Permission denied");
  EXPECT_EQ(e.os_errno, std::optional<uint64_t>(EACCES));

  // As execvp: an entry of PATH where the name is not executable, then one where it is missing,
  // do not stop the search for the real one further on; alone, EACCES is what is reported.
  char dir[] = "/tmp/kiln-noexec-dir-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string fake = std::string(dir) + "/true";
  std::ofstream(fake) << "#!/bin/sh\nexit 9\n";
  ::chmod(fake.c_str(), 0644);
  const json searched =
      exec({{"argv", {"true"}}, {"env", {{"PATH", std::string(dir) + ":/nonexistent:/usr/bin"}}}});
  EXPECT_EQ(searched["exit_code"], 0) << "/usr/bin/true ran";
  e = exec_error({{"argv", {"true"}}, {"env", {{"PATH", std::string(dir) + ":/nonexistent"}}}});
  EXPECT_EQ(e.message, "cannot execute 'true': Permission denied");
  // A PATH that ends in ':' searches the current directory (the job's cwd) last, as execvp does.
  std::ofstream(fake) << "#!/bin/sh\necho from cwd\n";
  ::chmod(fake.c_str(), 0755);
  const json last = exec({{"argv", {"true"}}, {"cwd", dir}, {"env", {{"PATH", "/nonexistent:"}}}});
  EXPECT_EQ(text(last["stdout"]), "from cwd\n");
  ::unlink(fake.c_str());
  ::rmdir(dir);

  e = exec_error({{"argv", {"true"}}, {"cwd", "/nonexistent-dir"}});
  EXPECT_EQ(e.code, "spawn_failed");
  EXPECT_EQ(e.message,
            "cannot change to directory '/nonexistent-dir' for 'true': No such file or directory");
  EXPECT_EQ(e.os_errno, std::nullopt) << "the command itself was never tried";
}

// A worker out of fds cannot make the command's pipes: the job fails, the worker stays.
TEST_F(WorkerTest, ExecWithoutFdsForItsPipesFailsTheJobAndKeepsTheWorker) {
  const pid_t pid = worker_.process().pid();
  // The watchdog's thread starts just after ready. Under UBSan its start checks a vptr, and that
  // check reads the memory through a pipe of the sanitizer's own: without two free fds it reports
  // a false "invalid vptr" and ends the worker (a CI run lost the race). So: once it runs.
  ASSERT_TRUE(wait_until([&] { return has_thread_named(pid, "kiln-watchdog"); }, 10s));
  rlimit old{};
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, nullptr, &old), 0);
  const rlimit few{8, old.rlim_max};  // the worker holds 0-6: not a pipe's two more
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &few, nullptr), 0);
  const proto::JobError e = exec_error({{"argv", {"true"}}});
  EXPECT_EQ(e.code, "spawn_failed");
  EXPECT_EQ(e.message, "cannot start 'true': pipe: Too many open files");
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &old, nullptr), 0);
  EXPECT_EQ(exec({{"argv", {"true"}}})["exit_code"], 0);
  EXPECT_EQ(worker_.process().pid(), pid);
}

TEST_F(WorkerTest, ExecBadPayloadsNameTheField) {
  EXPECT_EQ(exec_error(json{{"cwd", "/"}}).message, "exec.argv: missing");
  EXPECT_EQ(exec_error(json{{"argv", "cc"}}).message, "exec.argv: expected array, got str");
  EXPECT_EQ(exec_error(json{{"argv", json::array()}}).message,
            "exec.argv: must hold at least the command");
  EXPECT_EQ(exec_error(json{{"argv", {"cc", 1}}}).message, "exec.argv[1]: expected str, got uint");
  EXPECT_EQ(exec_error(json{{"argv", {"cat"}}, {"stdin", "text"}}).message,
            "exec.stdin: expected bin, got str");
  EXPECT_EQ(exec_error(json{{"argv", {"env"}}, {"env", {{"A", 1}}}}).message,
            "exec.env: expected map of str to str");
  EXPECT_EQ(exec_error(json{{"argv", {"true"}}, {"max_output_bytes", -1}}).message,
            "exec.max_output_bytes: expected uint, got int");
  proto::JobError e = exec_error(json("just a string"));
  EXPECT_EQ(e.code, "bad_payload");
  EXPECT_EQ(e.message, "exec.payload: expected map, got str");
}

TEST_F(WorkerTest, ExecTimeoutKillsACommandThatIgnoresSigterm) {
  const auto start = Clock::now();
  auto r = worker_.run("exec",
                       {{"argv",
                         {"sh", "-c",
                          "trap '' TERM; echo waiting >&2; "
                          "sleep 100 & wait; sleep 100"}}},
                       200);
  const auto took = Clock::now() - start;
  ASSERT_TRUE(r && r->error);
  EXPECT_EQ(r->error->code, "timeout");
  EXPECT_EQ(r->error->message, "'sh' ran past its timeout of 200 ms");
  EXPECT_EQ(r->error->detail, std::optional<std::string>("waiting\n"));
  EXPECT_LT(took, 10s) << "SIGKILL followed the grace period";
  ASSERT_EQ(worker_.phases().size(), 1u);
  const pid_t group = static_cast<pid_t>(*worker_.phases()[0].pgid);
  EXPECT_EQ(processes_in_group(group), std::vector<pid_t>{});
  // The worker itself is still warm.
  EXPECT_EQ(value_of(worker_.run("echo", 5)), 5);
}

TEST_F(WorkerTest, ExecLeavesNoProcessBehind) {
  json v = exec({{"argv", {"sh", "-c", "sleep 100 & echo $!"}}});
  EXPECT_EQ(v["exit_code"], 0);
  const pid_t background = std::stoi(text(v["stdout"]));
  ASSERT_EQ(worker_.phases().size(), 1u);
  EXPECT_EQ(processes_in_group(static_cast<pid_t>(*worker_.phases()[0].pgid)),
            std::vector<pid_t>{});
  EXPECT_FALSE(is_running(background));
}

TEST_F(WorkerTest, ExecEndsEvenCommandsThatLeftTheirGroup) {
  json v = exec({{"argv", {"sh", "-c", "setsid sleep 100 >/dev/null 2>&1 & echo $!"}}});
  const pid_t escaped = std::stoi(text(v["stdout"]));
  EXPECT_FALSE(is_running(escaped));
}

// ---- selftest ----

struct CrashCase {
  const char* action;
  int signal;
  const char* line;  // what the first line of the report says after "crashed: "
};

class WorkerCrash : public ::testing::TestWithParam<CrashCase> {};

// Has a ready worker run selftest `action`, checks that it ended by `signal`, and returns what it
// printed on stderr: its crash report.
std::string crash_report(WorkerHarness& worker, const std::string& action, int signal) {
  EXPECT_TRUE(worker.await_ready());
  worker.submit(1, "selftest", {{"action", action}});
  const auto status = worker.process().wait(60s);
  EXPECT_TRUE(status.has_value() && WIFSIGNALED(*status) && WTERMSIG(*status) == signal)
      << (status ? "wait status " + std::to_string(*status) : "still running after 60 s");
  return worker.stderr_text();
}

TEST_P(WorkerCrash, ExitsByTheSignalWithASymbolizedReport) {
  const CrashCase& c = GetParam();
  WorkerHarness worker;
  const std::string report = crash_report(worker, c.action, c.signal);
  const std::string first =
      "kiln-worker " + std::to_string(worker.process().pid()) + " crashed: " + c.line + "\n";
  EXPECT_EQ(report.substr(0, first.size()), first) << report;
  // Symbolized by kiln-symbolize: the function that crashed, with its file and line.
  EXPECT_EQ(report.find("Stack trace (most recent call first):\n#0  0x"), first.size()) << report;
  const std::string frame = std::string(c.action) == "crash" ? " in kiln_selftest_crash at "
                                                             : " in kiln::worker::run_selftest(";
  const std::size_t at = report.find(frame);
  ASSERT_NE(at, std::string::npos) << report;
  EXPECT_NE(report.find("worker/selftest_job.cc:", at), std::string::npos) << report;
}

INSTANTIATE_TEST_SUITE_P(Actions, WorkerCrash,
                         ::testing::Values(CrashCase{"crash", SIGSEGV, "SIGSEGV (address 0x0)"},
                                           CrashCase{"abort", SIGABRT, "SIGABRT"}),
                         [](const auto& info) { return std::string(info.param.action); });

// A worker copied where no kiln-symbolize is, or beside one that hangs: the report still gives
// the stack, as bare addresses, and the worker still ends by its signal (the hanging symbolizer is
// killed at its 5 s deadline; without one the worker would wait for its 100 s sleep).
TEST(WorkerCrashReport, WithoutASymbolizerThatAnswersTheStackIsBareAddresses) {
  for (const bool hangs : {false, true}) {
    SCOPED_TRACE(hangs ? "a symbolizer that hangs" : "no symbolizer");
    const std::string dir = ::testing::TempDir() + "kiln-crash-" + std::to_string(::getpid()) +
                            (hangs ? "-hangs" : "-none");
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(KILN_WORKER_PATH, dir + "/kiln-worker");
    if (hangs) {
      std::ofstream(dir + "/kiln-symbolize") << "#!/bin/sh\nexec sleep 100\n";
      std::filesystem::permissions(dir + "/kiln-symbolize", std::filesystem::perms::owner_all);
    }
    WorkerStart start;
    start.path = dir + "/kiln-worker";
    WorkerHarness worker(start);
    const std::string report = crash_report(worker, "crash", SIGSEGV);
    EXPECT_NE(report.find("Stack trace, addresses only (most recent call first):\n#0 0x"),
              std::string::npos)
        << report;
    std::filesystem::remove_all(dir);
  }
}

extern "C" [[gnu::noinline]] uintptr_t kiln_test_symbolized_here() {
  return reinterpret_cast<uintptr_t>(__builtin_return_address(0)) - 1;  // in our caller
}

// kiln-symbolize's part, on this live process: the address of a call names the function that
// makes it, its file and line; an address no module maps is printed bare.
TEST(Symbolizer, NamesTheFunctionFileAndLineOfALiveProcessesAddress) {
  const uintptr_t here = kiln_test_symbolized_here();
  const uintptr_t own = reinterpret_cast<uintptr_t>(&kiln_test_symbolized_here);
  const std::vector<std::string> lines = worker::symbolize(::getpid(), {own, here, 0x10});
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].rfind("#0  0x", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(" in kiln_test_symbolized_here at "), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("worker_test.cc:"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("NamesTheFunctionFileAndLineOfALiveProcessesAddress"), std::string::npos)
      << lines[1];
  EXPECT_EQ(lines[2], "#2  0x0000000000000010 in ??");
  EXPECT_TRUE(worker::symbolize(0, {own}).empty());  // no such process
}

TEST(WorkerSelftest, ExitEndsTheWorkerWithThatCode) {
  WorkerHarness worker;
  ASSERT_TRUE(worker.await_ready());
  worker.submit(1, "selftest", {{"action", "exit"}, {"code", 7}});
  const auto status = worker.process().wait(10s);
  ASSERT_TRUE(status && WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 7);
}

TEST_F(WorkerTest, SelftestFailSleepAndAllocAndItsBadFieldsAreNamed) {
  auto r = worker_.run("selftest", {{"action", "fail"}, {"message", "as asked"}});
  ASSERT_TRUE(r && r->error);
  EXPECT_EQ(r->error->code, "job_failed");
  EXPECT_EQ(r->error->message, "as asked");

  EXPECT_EQ(value_of(worker_.run("selftest", {{"action", "sleep"}, {"ms", 1}})), nullptr);

  const unsigned long before = rss_kb(worker_.process().pid());
  EXPECT_EQ(value_of(worker_.run("selftest", {{"action", "alloc"}, {"mb", 64}})), nullptr);
  EXPECT_GE(rss_kb(worker_.process().pid()), before + (64 << 10));

  r = worker_.run("selftest", {{"action", "dance"}});
  ASSERT_TRUE(r && r->error);
  EXPECT_EQ(r->error->code, "bad_payload");
  EXPECT_EQ(r->error->message, "selftest.action: unknown action \"dance\"");

  // A field missing or of another type is a bad_payload that names it.
  const std::pair<json, std::string> bad[] = {
      {{{"ms", 1}}, "selftest.action: missing"},
      {{{"action", 7}}, "selftest.action: expected str, got uint"},
      {{{"action", "sleep"}, {"ms", "1"}}, "selftest.ms: expected uint, got str"},
      {{{"action", "exit"}, {"code", 1.5}}, "selftest.code: expected int, got float"},
      {{{"action", "fail"}}, "selftest.message: missing"},
  };
  for (const auto& [payload, message] : bad) {
    r = worker_.run("selftest", payload);
    ASSERT_TRUE(r && r->error) << payload;
    EXPECT_EQ(r->error->code, "bad_payload") << payload;
    EXPECT_EQ(r->error->message, message) << payload;
  }
}

TEST_F(WorkerTest, SelftestGarbageBreaksTheLink) {
  worker_.submit(1, "selftest", {{"action", "garbage"}});
  // A whole frame arrives; its body is not msgpack.
  std::string body;
  ASSERT_EQ(worker_.link().read_body(body, 10s), FrameChannel::Status::kFrame);
  Expected<proto::WorkerEvent> event = proto::decode_worker_event(body);
  ASSERT_FALSE(event.ok());
  EXPECT_EQ(event.error(), "body: invalid byte 0xc1 at offset 0");
  worker_.process().kill(SIGKILL);
  ended_ = true;
}

// ---- Ends ----

TEST_F(WorkerTest, SigtermEndsTheWorkerAndItsCommand) {
  worker_.submit(1, "exec", {{"argv", {"sleep", "100"}}});
  auto event = worker_.next_event(10s);
  ASSERT_TRUE(event && std::holds_alternative<proto::Phase>(*event));
  const pid_t group = static_cast<pid_t>(*std::get<proto::Phase>(*event).pgid);
  worker_.process().kill(SIGTERM);
  const auto status = worker_.process().wait(5s);
  ASSERT_TRUE(status && WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 128 + SIGTERM);
  EXPECT_TRUE(wait_until([&] { return processes_in_group(group).empty(); }, 5s));
  // The killed command is not reported as a job that ended (ok, exit_code -1): the supervisor,
  // which stopped the worker, decides what becomes of it.
  EXPECT_FALSE(worker_.next_event(1s).has_value()) << "a result after SIGTERM";
  ended_ = true;
}

// The watchdog's thread starts just after `ready`: a SIGTERM sent as soon as `ready` is read
// (blocked since before it, so it waits) ends the worker through the watchdog all the same.
TEST(WorkerStartup, SigtermRightAfterReadyEndsTheWorker) {
  for (int i = 0; i < 20; ++i) {
    WorkerHarness worker;
    ASSERT_TRUE(worker.await_ready());
    worker.process().kill(SIGTERM);
    const auto status = worker.process().wait(5s);
    ASSERT_TRUE(status.has_value()) << "round " << i;
    ASSERT_TRUE(WIFEXITED(*status)) << "round " << i;
    EXPECT_EQ(WEXITSTATUS(*status), 128 + SIGTERM) << "round " << i;
  }
}

TEST_F(WorkerTest, HangIgnoresSigtermUntilKilled) {
  worker_.submit(1, "selftest", {{"action", "hang"}});
  auto event = worker_.next_event(10s);
  ASSERT_TRUE(event && std::holds_alternative<proto::Phase>(*event));
  EXPECT_EQ(std::get<proto::Phase>(*event).phase, "hanging");
  worker_.process().kill(SIGTERM);
  EXPECT_FALSE(worker_.process().wait(500ms).has_value());
  worker_.process().kill(SIGKILL);
  const auto status = worker_.process().wait(5s);
  ASSERT_TRUE(status && WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGKILL);
  ended_ = true;
}

// The parent is a child of the test, which becomes the subreaper of what the parent leaves.
TEST(WorkerParentDeath, WorkerAndItsCommandAreGoneWithinASecond) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  auto [report_read, report_write] = pipe_pair();
  const pid_t parent = ::fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {
    WorkerHarness worker;
    if (!worker.await_ready()) ::_exit(1);
    worker.submit(1, "exec", {{"argv", {"sh", "-c", "sleep 100 & sleep 100"}}});
    auto event = worker.next_event(10s);
    if (!event || !std::holds_alternative<proto::Phase>(*event)) ::_exit(1);
    const pid_t pids[2] = {worker.process().pid(),
                           static_cast<pid_t>(*std::get<proto::Phase>(*event).pgid)};
    (void)!::write(report_write.get(), pids, sizeof pids);
    ::kill(::getpid(), SIGKILL);
  }
  report_write.reset();
  pid_t pids[2] = {0, 0};
  ASSERT_EQ(::read(report_read.get(), pids, sizeof pids), static_cast<ssize_t>(sizeof pids));
  int status = 0;
  ASSERT_EQ(::waitpid(parent, &status, 0), parent);
  const auto died = Clock::now();
  // The worker is now our child (we are the subreaper): reap it when it exits.
  int worker_status = 0;
  EXPECT_TRUE(
      wait_until([&] { return ::waitpid(pids[0], &worker_status, WNOHANG) == pids[0]; }, 1s));
  EXPECT_TRUE(wait_until(
      [&] {
        while (::waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        return processes_in_group(pids[1]).empty();
      },
      1s - std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - died)));
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

}  // namespace
}  // namespace kiln::testing
