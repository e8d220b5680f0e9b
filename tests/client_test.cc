// The client side: shell splitting, JSON conversion, the C++ Pool against a real supervisor, and
// the `kiln` command as a real process.
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <msgpack.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "client/json_msgpack.h"
#include "client/parsers.h"
#include "client/pool.h"
#include "common/frame.h"
#include "common/shell_split.h"
#include "tests/process.h"
#include "tests/vectors.h"
#include "tests/worker_harness.h"

namespace kiln::client {
namespace {

using kiln::testing::Child;
using kiln::testing::environment_with;
using kiln::testing::pipe_pair;
using kiln::testing::Ran;
using kiln::testing::read_all;
using kiln::testing::run_to_end;
using kiln::testing::RunSpec;
using nlohmann::json;
using namespace std::chrono_literals;

TEST(ShellSplit, SplitsAsAPosixShellWould) {
  using V = std::vector<std::string>;
  EXPECT_EQ(*shell_split("cc -c  a.c\t-o a.o"), (V{"cc", "-c", "a.c", "-o", "a.o"}));
  EXPECT_EQ(*shell_split("cc '-DMSG=hello world' \"-DQ=\\\"q\\\"\" a\\ b.c"),
            (V{"cc", "-DMSG=hello world", "-DQ=\"q\"", "a b.c"}));
  EXPECT_EQ(*shell_split("cc \"-D\\$X\" '\\n' \"\\n\""), (V{"cc", "-D$X", "\\n", "\\n"}));
  EXPECT_EQ(*shell_split("''"), V{""});
  EXPECT_EQ(*shell_split("   "), V{});
  EXPECT_EQ(shell_split("cc 'open").error(), "unterminated ' quote");
  EXPECT_EQ(shell_split("cc \"open").error(), "unterminated \" quote");
  EXPECT_EQ(shell_split("cc \\").error(), "a backslash at the end");
}

// Found by fuzz_job_line and fuzz_compile_db: a number beyond every C++ type made nlohmann
// throw out_of_range, which escaped as an uncaught exception and killed kiln.
TEST(Parsers, NumbersTooLargeAreAnErrorNotACrash) {
  const auto job = parse_job_line(R"({"kind": "echo", "payload": 1e99999})");
  ASSERT_FALSE(job);
  EXPECT_NE(job.error().find("invalid JSON: "), std::string::npos) << job.error();
  EXPECT_NE(job.error().find("number overflow"), std::string::npos) << job.error();
  const auto db = parse_compile_db(R"([{"directory": 1e99999}])", "db.json", "");
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().rfind("db.json: invalid JSON: ", 0), 0u) << db.error();
}

TEST(Parsers, NestingIsBoundedBeforeAnythingRecursesOnIt) {
  const auto nested = [](int depth) {
    return std::string(static_cast<std::size_t>(depth), '[') +
           std::string(static_cast<std::size_t>(depth), ']');
  };
  // The job object is level 1, so its payload may nest 63 deep.
  EXPECT_TRUE(parse_job_line(R"({"kind": "echo", "payload": )" + nested(63) + "}"));
  const auto deep = parse_job_line(R"({"kind": "echo", "payload": )" + nested(100000) + "}");
  ASSERT_FALSE(deep);
  EXPECT_EQ(deep.error(), "invalid JSON: nested deeper than 64 levels");
  const auto db = parse_compile_db(nested(100000), "db.json", "");
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error(), "db.json: invalid JSON: nested deeper than 64 levels");
}

TEST(JsonMsgpack, BytesAreTextWhenUtf8ElseBase64UnderANamedKey) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(2);
  pk.pack("stdout");
  pk.pack_bin(2);
  pk.pack_bin_body("ok", 2);
  pk.pack("stderr");
  pk.pack_bin(2);
  pk.pack_bin_body("\xff\xfe", 2);
  const json j = to_json(proto::RawObject{std::string(buf.data(), buf.size())});
  EXPECT_EQ(j, (json{{"stdout", "ok"}, {"stderr_base64", "//4="}}));
  EXPECT_EQ(to_json(to_msgpack(json{{"a", {1, -2, 2.5, nullptr, true}}})),
            (json{{"a", {1, -2, 2.5, nullptr, true}}}));
}

PoolOptions options(std::vector<std::string> extra = {}) {
  PoolOptions o;
  o.supervisor = KILN_SUPERVISOR_PATH;
  o.args = {"--workers", "2", "--enable-selftest", "--grace-ms", "300", "--log-level", "error"};
  o.args.insert(o.args.end(), extra.begin(), extra.end());
  return o;
}

// The client's exec payload is the protocol's, byte for byte: the vector's, and fields the client
// leaves at their defaults (no env, clear_env false) are not sent.
TEST(ExecPayload, IsTheBytesOfTheProtocolVector) {
  std::string payload;
  for (const json& v : testing::protocol_vectors()["valid"]) {
    if (v.value("exec", "") != "payload") continue;
    const std::string frame = testing::from_hex(v["frame_hex"].get<std::string>());
    Expected<proto::ClientRequest> m = proto::decode_client_request(frame.substr(kFrameHeaderSize));
    ASSERT_TRUE(m.ok()) << m.error();
    payload = std::get<proto::Submit>(*m).payload.bytes;
  }
  ASSERT_FALSE(payload.empty());
  ExecRequest r;
  r.argv = {"cc", "-c", "a.c"};
  r.cwd = "/src";
  r.umask = 18;
  r.nice = 5;
  r.rlimits = {{"nofile", {1024, 524288}}, {"core", {0, UINT64_MAX}}};
  EXPECT_EQ(exec_payload(r).bytes, payload);
}

TEST(ClientPool, SubmitExecStatsAndShutdown) {
  Expected<std::unique_ptr<Pool>> pool = Pool::start(options());
  ASSERT_TRUE(pool.ok()) << pool.error();
  EXPECT_EQ((*pool)->hello().workers, 2u);
  proto::Result echo = (*pool)->submit("echo", to_msgpack("hi")).get();
  ASSERT_TRUE(echo.ok);
  EXPECT_EQ(to_json(*echo.value), "hi");
  ExecRequest r;
  r.argv = {"sh", "-c", "cat; exit 4"};
  r.stdin_data = "in";
  proto::Result ex = (*pool)->exec(r).get();
  ASSERT_TRUE(ex.ok);
  EXPECT_EQ(to_json(*ex.value)["exit_code"], 4);
  EXPECT_EQ(to_json(*ex.value)["stdout"], "in");
  proto::Result crash = (*pool)->submit("selftest", to_msgpack({{"action", "crash"}})).get();
  EXPECT_EQ(crash.error->code, "worker_crashed");
  Expected<proto::Stats> st = (*pool)->stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->jobs_submitted, 3u);
  EXPECT_EQ(st->worker_crashes, 1u);
  (*pool)->quiesce();
  (*pool)->wakeup();
  EXPECT_TRUE((*pool)->submit("echo", to_msgpack(1)).get().ok);
  EXPECT_EQ((*pool)->shutdown(false), 0);
  // After shutdown, a submit is answered at once.
  EXPECT_EQ((*pool)->submit("echo", to_msgpack(1)).get().error->code, "shutdown");
}

TEST(ClientPool, OnStatusTellsAJobThatStillRunsHowLongAndOnWhichWorker) {
  Expected<std::unique_ptr<Pool>> pool = Pool::start(options({"--status-interval-ms", "50"}));
  ASSERT_TRUE(pool.ok()) << pool.error();
  std::mutex mu;
  std::vector<proto::Status> slow_said, quick_said;
  std::promise<proto::Result> slow_done, quick_done;
  ExecRequest r;
  r.argv = {"sh", "-c", "sleep 0.5"};
  const uint64_t slow = (*pool)->submit(
      "exec", exec_payload(r), std::nullopt, std::nullopt,
      [&](proto::Result result) { slow_done.set_value(std::move(result)); },
      [&](const proto::Status& st) {
        std::lock_guard lock(mu);
        slow_said.push_back(st);
      });
  (*pool)->submit(
      "echo", to_msgpack(1), std::nullopt, std::nullopt,
      [&](proto::Result result) { quick_done.set_value(std::move(result)); },
      [&](const proto::Status& st) {
        std::lock_guard lock(mu);
        quick_said.push_back(st);
      });
  const proto::Result quick = quick_done.get_future().get();
  const proto::Result result = slow_done.get_future().get();
  ASSERT_TRUE(result.ok);
  std::lock_guard lock(mu);
  EXPECT_TRUE(quick_said.empty()) << "a job answered within the interval hears nothing";
  ASSERT_GE(slow_said.size(), 2u) << "every 50 ms of a 500 ms job";
  uint64_t last = 0;
  for (const proto::Status& st : slow_said) {
    EXPECT_EQ(st.id, slow);
    EXPECT_EQ(st.worker_pid, result.worker_pid.value_or(0));
    EXPECT_EQ(st.phase, std::optional<std::string>("spawned"));
    EXPECT_GE(st.elapsed_ms, 50u);
    EXPECT_GT(st.elapsed_ms, last) << "each later than the one before";
    last = st.elapsed_ms;
  }
  EXPECT_LT(last, 1000u);
}

// kiln-supervisor --trace: a Chrome Trace Event file (the JSON array form), checked against the
// format's rules for the events it uses, and for what a build's timeline must show.
TEST(Trace, TheTimelineHasALanePerSlotASpanPerJobAndTheWorkersLife) {
  char dir_template[] = "/tmp/kiln-trace.XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/build.trace.json";
  Expected<std::unique_ptr<Pool>> pool = Pool::start(options({"--trace", path}));
  ASSERT_TRUE(pool.ok()) << pool.error();
  const uint64_t pid = (*pool)->hello().pid;
  ASSERT_TRUE((*pool)->submit("echo", to_msgpack(1)).get().ok);
  ExecRequest compile;
  compile.argv = {"sh", "-c", "exit 0", "sh", "-O2", "-c", "lib/b.cpp", "-o", "b.o"};
  ASSERT_TRUE((*pool)->exec(compile).get().ok);
  ExecRequest tool;
  tool.argv = {"/bin/true"};
  ASSERT_TRUE((*pool)->exec(tool).get().ok);
  EXPECT_EQ((*pool)->submit("selftest", to_msgpack({{"action", "crash"}})).get().error->code,
            "worker_crashed");
  ASSERT_TRUE((*pool)->submit("echo", to_msgpack(2)).get().ok);
  // The replacement ready before the end (alive counts a worker still starting).
  ASSERT_TRUE(kiln::testing::wait_until(
      [&] {
        const std::vector<proto::WorkerInfo> list = (*pool)->stats()->worker_list;
        return list.size() == 2 && std::all_of(list.begin(), list.end(),
                                               [](const auto& w) { return w.state == "idle"; });
      },
      10s));
  ASSERT_EQ((*pool)->shutdown(false), 0);

  std::ifstream in(path);
  const json events = json::parse(in);  // throws (fails the test) unless whole and valid
  ASSERT_TRUE(events.is_array());
  std::multiset<std::string> spans, marks;
  std::map<int, std::vector<std::pair<uint64_t, uint64_t>>> lanes;  // tid -> (ts, dur)
  std::size_t lane_names = 0, counters = 0;
  for (const json& e : events) {
    ASSERT_TRUE(e["name"].is_string() && e["ph"].is_string()) << e;
    ASSERT_TRUE(e["pid"].is_number_unsigned() && e["tid"].is_number_unsigned()) << e;
    ASSERT_TRUE(e["ts"].is_number_unsigned()) << e;
    EXPECT_EQ(e["pid"], pid);
    const std::string ph = e["ph"], name = e["name"];
    if (ph == "M") {
      EXPECT_TRUE(name == "process_name" || name == "thread_name") << e;
      EXPECT_TRUE(e["args"]["name"].is_string()) << e;
      lane_names += name == "thread_name" ? 1 : 0;
    } else if (ph == "X") {
      ASSERT_TRUE(e["dur"].is_number_unsigned()) << e;
      EXPECT_TRUE(e["tid"] == 1 || e["tid"] == 2) << e;
      EXPECT_TRUE(e["args"]["queue_us"].is_number_unsigned()) << e;
      EXPECT_EQ(e["args"]["outcome"], name == "selftest" ? "worker_crashed" : "ok") << e;
      spans.insert(name);
      lanes[e["tid"]].emplace_back(e["ts"], e["dur"]);
    } else if (ph == "i") {
      EXPECT_EQ(e["s"], "t") << e;
      marks.insert(name.starts_with("crashed: ") ? "crashed" : name.substr(0, name.find(':')));
      if (name.starts_with("crashed: ")) {
        EXPECT_NE(name.find("SIGSEGV"), std::string::npos) << name;
      }
    } else {
      ASSERT_EQ(ph, "C") << e;
      EXPECT_TRUE(e["args"]["queued"].is_number_unsigned() &&
                  e["args"]["running"].is_number_unsigned() &&
                  e["args"]["workers alive"].is_number_unsigned())
          << e;
      ++counters;
    }
  }
  EXPECT_EQ(lane_names, 2u) << "a lane per worker slot";
  EXPECT_EQ(spans, (std::multiset<std::string>{"echo", "echo", "b.cpp", "true", "selftest"}))
      << "named after the source file, else the command, else the kind";
  EXPECT_EQ(marks,
            (std::multiset<std::string>{"worker started", "worker started", "worker started",
                                        "ready", "ready", "ready", "crashed", "ended", "ended"}))
      << "two starts, the crash, its replacement, and the two that shutdown ended";
  EXPECT_EQ(counters, 5u) << "the load after each job";
  for (auto& [tid, runs] : lanes) {
    std::sort(runs.begin(), runs.end());
    for (std::size_t i = 1; i < runs.size(); ++i) {
      EXPECT_LE(runs[i - 1].first + runs[i - 1].second, runs[i].first) << "lane " << tid;
    }
  }
  std::filesystem::remove_all(dir_template);
}

// A FIFO opened for writing blocks until a reader comes: the supervisor's loop must never open
// one, nor a device, nor a file it could not create.
TEST(Trace, ATimelineIntoAFifoOrADeviceIsRefusedAndTheSupervisorServesOn) {
  char dir_template[] = "/tmp/kiln-trace.XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string fifo = std::string(dir_template) + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Expected<std::unique_ptr<Pool>> pool = Pool::start(options());
  ASSERT_TRUE(pool.ok()) << pool.error();
  Expected<proto::Traced> traced = (*pool)->trace(fifo, 10s);
  ASSERT_TRUE(traced.ok()) << traced.error();
  EXPECT_EQ(traced->error,
            "cannot write the trace " + fifo + ": it exists and is not a regular file");
  EXPECT_EQ(traced->file, std::nullopt);
  traced = (*pool)->trace("/dev/null", 10s);
  ASSERT_TRUE(traced.ok()) << traced.error();
  EXPECT_EQ(traced->error, "cannot write the trace /dev/null: it exists and is not a regular file");
  ASSERT_TRUE((*pool)->submit("echo", to_msgpack(1)).get().ok) << "the loop serves on";
  ASSERT_EQ((*pool)->shutdown(false), 0);
  std::filesystem::remove_all(dir_template);
}

TEST(ClientPool, ToolsGivenInTheOptionsServeTheirKind) {
  PoolOptions o = options();
  o.tools = {std::string("upcase=") + KILN_UPCASE_TOOL_PATH};
  Expected<std::unique_ptr<Pool>> pool = Pool::start(o);
  ASSERT_TRUE(pool.ok()) << pool.error();
  const std::vector<std::string>& kinds = (*pool)->hello().kinds;
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "upcase"), kinds.end());
  proto::Result r = (*pool)->submit("upcase", to_msgpack("kiln")).get();
  ASSERT_TRUE(r.ok) << r.error->message;
  EXPECT_EQ(to_json(*r.value)["text"], "KILN");
  EXPECT_EQ((*pool)->shutdown(false), 0);
}

TEST(ClientPool, SafeFromManyThreads) {
  Expected<std::unique_ptr<Pool>> pool = Pool::start(options());
  ASSERT_TRUE(pool.ok()) << pool.error();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::future<proto::Result>> futures;
      for (int i = 0; i < 250; ++i)
        futures.push_back((*pool)->submit("echo", to_msgpack(t * 1000 + i)));
      for (int i = 0; i < 250; ++i) {
        proto::Result r = futures[i].get();
        if (r.ok && to_json(*r.value) == t * 1000 + i) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 1000);
}

TEST(ClientPool, StatsAreFreshFromManyThreadsAndBoundedByADeadline) {
  Expected<std::unique_ptr<Pool>> pool = Pool::start(options());
  ASSERT_TRUE(pool.ok()) << pool.error();
  // Each thread's stats answer counts at least every job answered before it asked.
  std::atomic<uint64_t> answered{0};
  std::atomic<int> fresh{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if ((*pool)->submit("echo", to_msgpack(i)).get().ok) ++answered;
        const uint64_t before = answered.load();
        Expected<proto::Stats> st = (*pool)->stats();
        if (st.ok() && st->jobs_submitted >= before) ++fresh;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(answered.load(), 200u);
  EXPECT_EQ(fresh.load(), 200);

  // A stopped supervisor: stats gives up at its deadline, then works again once it runs.
  const auto pid = static_cast<pid_t>((*pool)->hello().pid);
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  Expected<proto::Stats> late = (*pool)->stats(200ms);
  ::kill(pid, SIGCONT);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error(), "the supervisor did not answer within 200 ms");
  Expected<proto::Stats> st = (*pool)->stats();
  ASSERT_TRUE(st.ok()) << st.error();
  EXPECT_EQ(st->jobs_submitted, 200u);
  EXPECT_EQ((*pool)->shutdown(false), 0);
}

TEST(ClientPool, OpenJobsFailWhenTheSupervisorDies) {
  Expected<std::unique_ptr<Pool>> pool = Pool::start(options());
  ASSERT_TRUE(pool.ok()) << pool.error();
  auto f = (*pool)->submit("selftest", to_msgpack({{"action", "sleep"}, {"ms", 60000}}));
  ASSERT_TRUE(kiln::testing::wait_until([&] { return (*pool)->stats()->jobs_running == 1; }, 10s));
  ::kill(static_cast<pid_t>((*pool)->hello().pid), SIGKILL);
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const proto::Result r = f.get();
  EXPECT_EQ(r.error->code, "shutdown");
  EXPECT_EQ(r.error->message, "the supervisor closed the link");
}

// ---- the kiln command ----

Ran run_kiln(const std::vector<std::string>& args, const std::string& input = "") {
  std::vector<std::string> argv = {KILN_CLI_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  RunSpec spec;
  spec.input = input;
  spec.timeout = 120s;
  return run_to_end(argv, spec);
}

std::vector<json> lines_of(const std::string& out) {
  std::vector<json> v;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) v.push_back(json::parse(line));
  return v;
}

TEST(KilnRun, RunsEveryGoodLineAndNamesBadOnesByNumber) {
  const Ran r = run_kiln({"run", "--ordered", "--workers", "2", "-"},
                         "{\"kind\": \"echo\", \"payload\": [1, \"two\"]}\n"
                         "{\"argv\": [\"sh\", \"-c\", \"printf out\"], \"env\": {\"A\": \"b\"}}\n"
                         "{oops\n"
                         "\n"
                         "{\"payload\": 1}\n"
                         "{\"argv\": [\"printf\", \"\\\\377\\\\376\"]}\n");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("kiln run: line 3: invalid JSON"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kiln run: line 5: a job needs \"kind\" (and \"payload\") or \"argv\""),
            std::string::npos)
      << r.err;
  const auto results = lines_of(r.out);
  ASSERT_EQ(results.size(), 3u) << r.out;
  EXPECT_EQ(results[0]["line"], 1);
  EXPECT_EQ(results[0]["value"], (json{1, "two"}));
  EXPECT_EQ(results[1]["line"], 2);
  EXPECT_EQ(results[1]["value"]["stdout"], "out");
  EXPECT_EQ(results[2]["line"], 6);
  EXPECT_EQ(results[2]["value"].value("stdout_base64", ""), "//4=") << results[2];
}

TEST(KilnRun, ExitsZeroOnlyWhenEveryJobSucceeded) {
  EXPECT_EQ(run_kiln({"run", "-"}, "{\"argv\": [\"true\"]}\n{\"kind\": \"echo\"}\n").status, 0);
  EXPECT_EQ(run_kiln({"run", "-"}, "{\"argv\": [\"false\"]}\n").status, 1);
  EXPECT_EQ(run_kiln({"run", "-"}, "{\"argv\": [\"/no/such/cc\"]}\n").status, 1);
}

TEST(KilnRun, JobsOfAToolRunOnItsWarmProcess) {
  const Ran r = run_kiln({"run", "--ordered", "--workers", "1", "--tool",
                          std::string("upcase=") + KILN_UPCASE_TOOL_PATH, "-"},
                         "{\"kind\": \"upcase\", \"payload\": \"warm\"}\n"
                         "{\"kind\": \"upcase\", \"payload\": \"again\"}\n"
                         "{\"kind\": \"upcase\", \"payload\": 3}\n");
  EXPECT_EQ(r.status, 1) << r.err;
  const auto results = lines_of(r.out);
  ASSERT_EQ(results.size(), 3u) << r.out;
  EXPECT_EQ(results[0]["value"], (json{{"text", "WARM"}, {"served", 1}}));
  EXPECT_EQ(results[1]["value"], (json{{"text", "AGAIN"}, {"served", 2}}));
  EXPECT_EQ(results[2]["error"]["code"], "bad_payload");
  EXPECT_EQ(results[2]["error"]["message"], "expected str");
}

TEST(KilnCompileDb, TheProgressLineNamesTheLongestRunningFile) {
  char dir_template[] = "/tmp/kiln-compile-db-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  // slow.c "compiles" until quick.c's compile is done and the slow one has been heard of twice:
  // it waits for a file the test makes once stderr has named it.
  const json db = json::array(
      {{{"directory", dir},
        {"file", "slow.c"},
        {"arguments", {"sh", "-c", "while [ ! -e go ]; do sleep 0.05; done", "cc", "slow.c"}}},
       {{"directory", dir}, {"file", "quick.c"}, {"arguments", {"true", "quick.c"}}}});
  std::ofstream(dir + "/compile_commands.json") << db.dump();
  auto [err_read, err_write] = pipe_pair();
  Child c = Child::spawn({{KILN_CLI_PATH, "compile-db", "--workers", "2", "--progress",
                           "--status-interval-ms", "100", dir + "/compile_commands.json"},
                          environment_with({}, {"SPDLOG_LEVEL"}),
                          {{2, err_write.get()}}});
  err_write.reset();
  std::string err;
  ASSERT_TRUE(kiln::testing::wait_until(
      [&] {
        pollfd ready{err_read.get(), POLLIN, 0};
        char buf[4096];
        const ssize_t n = ::poll(&ready, 1, 100) > 0 ? ::read(err_read.get(), buf, sizeof buf) : 0;
        if (n > 0) err.append(buf, static_cast<std::size_t>(n));
        return err.find("[1/2] 0 failed, ") != std::string::npos &&
               err.find(", slowest: slow.c (") != std::string::npos;
      },
      20s))
      << err;
  std::ofstream(dir + "/go") << "";
  err += read_all(err_read.get(), 20s);
  EXPECT_EQ(c.exit_code(20s), 0) << err;
  EXPECT_NE(err.find("[2/2] 0 failed, "), std::string::npos) << err;
  std::filesystem::remove_all(dir);
}

TEST(KilnCompileDb, RunsBothEntryFormsAndReportsFailures) {
  char dir_template[] = "/tmp/kiln-compile-db-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  std::ofstream(dir + "/good.c") << "int good(void) { return MSG_LEN; }\n";
  std::ofstream(dir + "/bad.c") << "int bad(void) { return undeclared; }\n";
  const json db = json::array({{{"directory", dir},
                                {"file", "good.c"},
                                {"command", "cc '-DMSG_LEN=sizeof(\"a b\")' -c good.c -o good.o"}},
                               {{"directory", dir},
                                {"file", "bad.c"},
                                {"arguments", {"cc", "-c", "bad.c", "-o", "bad.o"}}}});
  std::ofstream(dir + "/compile_commands.json") << db.dump();

  Ran r = run_kiln({"compile-db", "--workers", "2", dir + "/compile_commands.json"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("FAILED: bad.c -> bad.o\ncc -c bad.c -o bad.o\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("undeclared"), std::string::npos);
  EXPECT_NE(r.out.find("kiln compile-db: 1 succeeded, 1 failed, on 2 workers"), std::string::npos);
  struct stat st;
  EXPECT_EQ(::stat((dir + "/good.o").c_str(), &st), 0);

  r = run_kiln({"compile-db", "--filter", "good", dir + "/compile_commands.json"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("1 succeeded, 0 failed"), std::string::npos);
  EXPECT_NE(r.out.find("(summed compile time / wall time)"), std::string::npos) << r.out;

  r = run_kiln({"compile-db", "--filter", "nomatch", dir + "/compile_commands.json"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "kiln compile-db: --filter nomatch matches none of the 2 entries of " + dir +
                       "/compile_commands.json\n");

  // Two entries of one source, told apart by their outputs.
  const json twice = json::array(
      {{{"directory", dir}, {"file", "bad.c"}, {"arguments", {"cc", "-c", "bad.c", "-o", "x.o"}}},
       {{"directory", dir},
        {"file", "bad.c"},
        {"output", "y.o"},
        {"arguments", {"cc", "-DY", "-c", "bad.c", "-oy.o"}}}});
  std::ofstream(dir + "/twice.json") << twice.dump();
  r = run_kiln({"compile-db", "--workers", "1", dir + "/twice.json"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("FAILED: bad.c -> x.o\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FAILED: bad.c -> y.o\n"), std::string::npos) << r.out;

  // One bad entry fails alone: the good one beside it still compiles.
  const json mixed =
      json::array({{{"directory", "/"}},
                   {{"directory", dir},
                    {"file", "good.c"},
                    {"arguments", {"cc", "-DMSG_LEN=1", "-c", "good.c", "-o", "again.o"}}}});
  std::ofstream(dir + "/broken.json") << mixed.dump();
  r = run_kiln({"compile-db", dir + "/broken.json"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("FAILED: " + dir +
                       "/broken.json: entry 1: needs \"directory\" and \"file\" "
                       "strings\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("kiln compile-db: 1 succeeded, 1 failed"), std::string::npos) << r.out;
  EXPECT_EQ(::stat((dir + "/again.o").c_str(), &st), 0);
  std::ofstream(dir + "/notjson.json") << "[{";
  r = run_kiln({"compile-db", dir + "/notjson.json"});
  EXPECT_EQ(r.status, 2) << "a file that is not JSON at all is still an error of the whole";
  std::system(("rm -rf " + dir).c_str());
}

TEST(KilnCommand, HelpAndVersion) {
  EXPECT_EQ(run_kiln({"--version"}).out, "kiln 0.1.0\n");
  const Ran help = run_kiln({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("compile-db"), std::string::npos);
  EXPECT_EQ(run_kiln({"launch"}).status, 2);
}

TEST(KilnCommand, ExecWithoutTheSeparatorSaysToAddIt) {
  const Ran r = run_kiln({"exec", "cc", "-c", "a.c"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err,
            "kiln exec: put -- before the command, so that its options are not taken for kiln's: "
            "kiln exec [--socket PATH] -- cc ...\n");
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(run_kiln({"exec", "--socket", "/nonexistent/s", "cc", "-O2"}).status, 2);
}

}  // namespace
}  // namespace kiln::client
