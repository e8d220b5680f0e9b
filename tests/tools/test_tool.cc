// kiln-test-tool: a warm tool that misbehaves on request, for the tests of the tool link
// (tests/tool_test.cc). Start-up faults come from argv, job faults from the payload, a map with
// `action` and its fields (--exit-after-ready: says ready, then exits with status 5 at once):
//
//   count            value: how many jobs this process has served (warm state)
//   pid              value: this process's pid
//   echo   value     value: `value`
//   fail   message   job_failed with that message and detail "the detail" (or `detail`)
//   code   code      an error with that code (the worker lets only two through)
//   crash            prints a line to stderr, then SIGSEGV
//   exit   code      _exit(code)
//   hang             ignores SIGTERM, sleeps for ever
//   sleep  ms        sleeps, then value: null
//   phase  ms        sends phase "lowering" (or `bytes` of 'p'), sleeps, then value: null
//   say    text      writes `text` to stderr, then value: null
//   twice            answers twice: value "first", then value "second"
//   stray            value: its pid; from then on, SIGUSR1 makes it send a result of its own
//                    accord (for this job again), between jobs
//   child            starts a child that sleeps for ever (in the tool's group, or in its own
//                    session with `setsid: true`); value: its pid
//   stdout bytes     writes that many bytes to stdout, then value: null
//   garbage          writes bytes to the link that are not a frame
//   alloc  mb        allocates and touches that much memory and keeps it; value: null
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "client/tool.h"
#include "common/protocol.h"

namespace {

std::string field_str(const msgpack::object& map, const char* key) {
  for (uint32_t i = 0; map.type == msgpack::type::MAP && i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.as<std::string>() == key && kv.val.type == msgpack::type::STR) {
      return kv.val.as<std::string>();
    }
  }
  return "";
}

int64_t field_int(const msgpack::object& map, const char* key) {
  for (uint32_t i = 0; map.type == msgpack::type::MAP && i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.as<std::string>() == key && (kv.val.type == msgpack::type::POSITIVE_INTEGER ||
                                            kv.val.type == msgpack::type::NEGATIVE_INTEGER)) {
      return kv.val.as<int64_t>();
    }
  }
  return 0;
}

const msgpack::object* field(const msgpack::object& map, const char* key) {
  for (uint32_t i = 0; map.type == msgpack::type::MAP && i < map.via.map.size; ++i) {
    if (map.via.map.ptr[i].key.as<std::string>() == key) return &map.via.map.ptr[i].val;
  }
  return nullptr;
}

void write_raw(const std::string& bytes) { (void)!::write(4, bytes.data(), bytes.size()); }

[[noreturn]] void sleep_for_ever() {
  for (;;) ::pause();
}

std::vector<std::string> g_kept;  // the `alloc` action's memory

// A result frame for job `id` whose value is the string `value`.
std::string result_frame(uint64_t id, const std::string& value) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, value);
  std::string frame;
  kiln::proto::encode(
      kiln::proto::ToolResult{id, true, kiln::proto::RawObject{std::string(buf.data(), buf.size())},
                              std::nullopt},
      frame);
  return frame;
}

std::string g_stray;  // what SIGUSR1 sends, made before the handler may run

void send_stray(int) { (void)!::write(4, g_stray.data(), g_stray.size()); }

kiln::tool::Reply act(const kiln::tool::Job& job, uint64_t served) {
  using kiln::tool::Reply;
  const msgpack::object_handle handle = job.unpack();
  const msgpack::object& p = handle.get();
  const std::string action = field_str(p, "action");
  if (action == "count") return Reply::of(served);
  if (action == "pid") return Reply::of(static_cast<int64_t>(::getpid()));
  if (action == "echo") {
    const msgpack::object* v = field(p, "value");
    if (v == nullptr) return Reply::bad_payload("echo: no value");
    msgpack::sbuffer buf;
    msgpack::pack(buf, *v);
    return Reply::raw(std::string(buf.data(), buf.size()));
  }
  if (action == "fail") {
    const std::string detail = field_str(p, "detail");
    return Reply::failed(field_str(p, "message"), detail.empty() ? "the detail" : detail);
  }
  if (action == "say") {
    const std::string text = field_str(p, "text");
    (void)!::write(2, text.data(), text.size());
    return Reply::of(msgpack::type::nil_t());
  }
  if (action == "twice") {
    write_raw(result_frame(job.id(), "first"));
    return Reply::of(std::string("second"));
  }
  if (action == "stray") {
    g_stray = result_frame(job.id(), "stray");
    struct sigaction sa {};
    sa.sa_handler = send_stray;
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGUSR1, &sa, nullptr);
    return Reply::of(static_cast<int64_t>(::getpid()));
  }
  if (action == "code") return Reply::error(field_str(p, "code"), "a foreign code");
  if (action == "crash") {
    std::fprintf(stderr, "test tool: about to crash in job %llu\n",
                 static_cast<unsigned long long>(job.id()));
    std::fflush(stderr);
    // The default action, not a sanitizer's handler: the kernel kills us with SIGSEGV.
    ::signal(SIGSEGV, SIG_DFL);
    ::raise(SIGSEGV);
  }
  if (action == "exit") ::_exit(static_cast<int>(field_int(p, "code")));
  if (action == "hang") {
    ::signal(SIGTERM, SIG_IGN);
    sleep_for_ever();
  }
  if (action == "sleep" || action == "phase") {
    if (action == "phase") {
      const int64_t bytes = field_int(p, "bytes");
      job.phase(bytes > 0 ? std::string(static_cast<std::size_t>(bytes), 'p') : "lowering");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(field_int(p, "ms")));
    return Reply::of(msgpack::type::nil_t());
  }
  if (action == "child") {
    const msgpack::object* s = field(p, "setsid");
    const bool own_session = s != nullptr && s->type == msgpack::type::BOOLEAN && s->via.boolean;
    const pid_t child = ::fork();
    if (child == 0) {
      if (own_session) ::setsid();
      sleep_for_ever();
    }
    return Reply::of(static_cast<int64_t>(child));
  }
  if (action == "stdout") {
    const std::string junk(static_cast<std::size_t>(field_int(p, "bytes")), 'x');
    std::fwrite(junk.data(), 1, junk.size(), stdout);
    std::fflush(stdout);
    return Reply::of(msgpack::type::nil_t());
  }
  if (action == "garbage") {
    write_raw(std::string("\xff\xff\xff\xff garbage", 12));
    sleep_for_ever();
  }
  if (action == "alloc") {
    g_kept.emplace_back(static_cast<std::size_t>(field_int(p, "mb")) << 20, 'k');
    return Reply::of(msgpack::type::nil_t());
  }
  return Reply::bad_payload("unknown action \"" + action + "\"");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--die-before-ready") {
      std::fprintf(stderr, "test tool: cannot load the model\n");
      return 3;
    }
    if (arg == "--garbage-before-ready") {
      write_raw("nonsense");
      sleep_for_ever();
    }
    if (arg == "--never-ready") sleep_for_ever();
    if (arg == "--exit-after-ready") {
      std::string ready;
      kiln::proto::encode(
          kiln::proto::ToolReady{kiln::proto::kProtocolVersion, static_cast<uint64_t>(::getpid())},
          ready);
      write_raw(ready);
      std::fprintf(stderr, "test tool: lost the model right after ready\n");
      return 5;
    }
    if (arg == "--print-env") {
      std::fprintf(stderr, "test tool env: KILN_TOOL=%s KILN_KEY=%s\n", std::getenv("KILN_TOOL"),
                   std::getenv("KILN_KEY") ? "set" : "unset");
    }
  }
  uint64_t served = 0;
  return kiln::tool::serve([&](const kiln::tool::Job& job) { return act(job, ++served); });
}
