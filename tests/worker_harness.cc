#include "tests/worker_harness.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "common/build_key.h"

namespace kiln::testing {

proto::RawObject to_raw(const nlohmann::json& value) {
  const std::vector<uint8_t> bytes = nlohmann::json::to_msgpack(value);
  return proto::RawObject{std::string(bytes.begin(), bytes.end())};
}

nlohmann::json from_raw(const proto::RawObject& value) {
  return nlohmann::json::from_msgpack(value.bytes);
}

LinkPipes link_pipes() {
  auto [a_read, a_write] = pipe_pair();
  auto [b_read, b_write] = pipe_pair();
  return LinkPipes{std::move(a_read), std::move(a_write), std::move(b_read), std::move(b_write)};
}

namespace {

FrameChannel make_channel(LinkPipes& pipes) {
  return FrameChannel(std::move(pipes.our_read), std::move(pipes.our_write));
}

}  // namespace

WorkerHarness::WorkerHarness(const WorkerStart& start) : link_(UniqueFd(), UniqueFd()) {
  LinkPipes pipes = link_pipes();
  auto [err_read, err_write] = pipe_pair();
  Child::Spec spec;
  spec.argv = {start.path,  "--parent",   std::to_string(start.parent.value_or(::getpid())),
               "--read-fd", "3",          "--write-fd",
               "4",         "--grace-ms", "300"};
  spec.argv.insert(spec.argv.begin(), start.wrapper.begin(), start.wrapper.end());
  if (start.selftest) spec.argv.push_back("--enable-selftest");
  spec.argv.insert(spec.argv.end(), start.extra_args.begin(), start.extra_args.end());
  std::vector<std::string> env = start.env;
  const bool own_key = std::any_of(
      env.begin(), env.end(), [](const std::string& e) { return e.rfind("KILN_KEY=", 0) == 0; });
  if (!own_key) env.push_back("KILN_KEY=" + base64_encode(kTestKey));
  spec.env = environment_with(env, {"SPDLOG_LEVEL"});
  spec.fds = {{3, pipes.child_read.get()}, {4, pipes.child_write.get()}, {2, err_write.get()}};
  spec.fds.insert(spec.fds.end(), start.extra_fds.begin(), start.extra_fds.end());
  child_ = Child::spawn(spec);
  link_ = make_channel(pipes);
  stderr_ = std::move(err_read);
}

bool WorkerHarness::await_ready(std::chrono::milliseconds timeout) {
  std::optional<proto::WorkerEvent> event = next_event(timeout);
  if (!event || !std::holds_alternative<proto::Ready>(*event)) {
    ADD_FAILURE() << "no ready from the worker; stderr: " << stderr_text(1s);
    return false;
  }
  ready_ = std::get<proto::Ready>(*event);
  return true;
}

std::optional<proto::WorkerEvent> WorkerHarness::next_event(std::chrono::milliseconds timeout) {
  std::string body;
  if (link_.read_body(body, timeout) != FrameChannel::Status::kFrame) return std::nullopt;
  Expected<proto::WorkerEvent> event = proto::decode_worker_event(body);
  EXPECT_TRUE(event.ok()) << event.error();
  if (!event) return std::nullopt;
  return std::move(event.value());
}

bool WorkerHarness::submit(uint64_t id, const std::string& kind, const nlohmann::json& payload,
                           uint64_t timeout_ms) {
  return link_.send(proto::Job{id, kind, to_raw(payload), timeout_ms});
}

std::optional<proto::WorkerResult> WorkerHarness::run(const std::string& kind,
                                                      const nlohmann::json& payload,
                                                      uint64_t timeout_ms,
                                                      std::chrono::milliseconds wait) {
  return run_raw(kind, to_raw(payload), timeout_ms, wait);
}

std::optional<proto::WorkerResult> WorkerHarness::run_raw(const std::string& kind,
                                                          const proto::RawObject& payload,
                                                          uint64_t timeout_ms,
                                                          std::chrono::milliseconds wait) {
  const uint64_t id = next_id_++;
  if (!link_.send(proto::Job{id, kind, payload, timeout_ms})) return std::nullopt;
  const auto deadline = Clock::now() + wait;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    std::optional<proto::WorkerEvent> event = next_event(std::max(left, 0ms));
    if (!event) return std::nullopt;
    if (auto* phase = std::get_if<proto::Phase>(&*event)) {
      EXPECT_EQ(phase->id, id);
      phases_.push_back(*phase);
      continue;
    }
    if (auto* result = std::get_if<proto::WorkerResult>(&*event)) {
      EXPECT_EQ(result->id, id);
      return *result;
    }
    ADD_FAILURE() << "unexpected message from the worker";
    return std::nullopt;
  }
}

std::string WorkerHarness::stderr_text(std::chrono::milliseconds timeout) {
  return read_all(stderr_.get(), timeout);
}

}  // namespace kiln::testing
