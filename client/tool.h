// kiln::tool::serve: a C++ program as a warm tool (docs/protocol.md "Tool link") in a few lines.
//
//   int main() {
//     Model model = load_model();  // the warm-up: done once, before ready
//     return kiln::tool::serve([&](const kiln::tool::Job& job) {
//       return kiln::tool::Reply::of(model.compile(job.unpack()->as<std::string>()));
//     });
//   }
//
// Started by kiln-worker with the tool link on fds 3 (jobs in) and 4 (results out) and its
// stdout and stderr going to the supervisor's log; run one, as `kiln-supervisor --tool
// NAME=COMMAND`, and jobs of kind NAME come here one at a time.
#pragma once

#include <msgpack.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace kiln::tool {

// One job as the tool gets it. Valid during the handler's call.
class Job {
 public:
  Job(uint64_t id, std::string_view payload, uint64_t timeout_ms, int events_fd)
      : id_(id), payload_(payload), timeout_ms_(timeout_ms), events_fd_(events_fd) {}

  uint64_t id() const { return id_; }
  // The run-time limit the worker enforces (0: none); a tool may use it to give up in time.
  uint64_t timeout_ms() const { return timeout_ms_; }
  // The payload's msgpack bytes, as the client sent them.
  std::string_view payload() const { return payload_; }
  msgpack::object_handle unpack() const {
    return msgpack::unpack(payload_.data(), payload_.size());
  }
  // Progress, which the client sees as `status.phase` while the job runs.
  void phase(std::string_view what) const;

 private:
  uint64_t id_;
  std::string_view payload_;
  uint64_t timeout_ms_;
  int events_fd_;
};

// What a handler returns: a value, or a failure the client sees as job_failed or bad_payload.
class Reply {
 public:
  // `msgpack` is one whole msgpack object, sent as it is.
  static Reply raw(std::string msgpack) { return Reply(true, std::move(msgpack), "", "", ""); }
  template <class T>
  static Reply of(const T& value) {
    msgpack::sbuffer buf;
    msgpack::pack(buf, value);
    return raw(std::string(buf.data(), buf.size()));
  }
  static Reply failed(std::string message, std::string detail = "") {
    return Reply(false, "", "job_failed", std::move(message), std::move(detail));
  }
  static Reply bad_payload(std::string message) {
    return Reply(false, "", "bad_payload", std::move(message), "");
  }
  // Any code: the worker passes job_failed and bad_payload and turns every other into job_failed.
  static Reply error(std::string code, std::string message, std::string detail = "") {
    return Reply(false, "", std::move(code), std::move(message), std::move(detail));
  }

  bool ok() const { return ok_; }
  const std::string& value() const { return value_; }
  const std::string& code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::string& detail() const { return detail_; }

 private:
  Reply(bool ok, std::string value, std::string code, std::string message, std::string detail)
      : ok_(ok),
        value_(std::move(value)),
        code_(std::move(code)),
        message_(std::move(message)),
        detail_(std::move(detail)) {}

  bool ok_;
  std::string value_;
  std::string code_, message_, detail_;
};

using Handler = std::function<Reply(const Job& job)>;

// Says `ready` (so call it once the warm-up is done), then runs each job through `handler` until
// `shutdown` or end of input. A handler that throws fails its job with the exception's what();
// the tool serves on. Returns the status for main to exit with: 0, or 3 if the link broke the
// protocol or KILN_TOOL is not set (the program was not started as a tool); it says why on
// stderr. Started as its pool's zygote (kiln-supervisor --zygote NAME, docs/protocol.md "Zygote
// link"), it forks every worker's tool from the state warmed up before the call, and each fork
// goes on here.
int serve(const Handler& handler);

}  // namespace kiln::tool
