#include "client/tool.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>

#include "client/tool_zygote.h"
#include "common/exit_codes.h"
#include "common/frame.h"
#include "common/protocol.h"

namespace kiln::tool {
namespace {

constexpr int kCommandsFd = 3;
constexpr int kEventsFd = 4;

bool write_all(int fd, const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

template <class M>
bool send(const M& message) {
  std::string frame;
  proto::encode(message, frame);
  return write_all(kEventsFd, frame);
}

// Blocking reads of whole commands from fd 3.
class Commands {
 public:
  explicit Commands(uint32_t max_frame) : inbox_(max_frame) {}

  // The next command; nullopt at the end of fd 3; a failure when the link failed or broke the
  // protocol.
  Expected<std::optional<proto::ToolCommand>> next() {
    Expected<FrameInbox::Read> read = inbox_.fill(kCommandsFd);
    if (!read) return fail(FrameInbox::error_text(read, "reading fd 3"));
    if (*read == FrameInbox::Read::kEnd) return std::optional<proto::ToolCommand>();
    // Only if the tool's own code made fd 3 non-blocking: no command can be waited for.
    if (*read == FrameInbox::Read::kAgain) return fail("reading fd 3: it is non-blocking");
    Expected<proto::ToolCommand> decoded = proto::decode_tool_command(inbox_.take());
    if (!decoded) return fail(decoded.error());
    return std::optional<proto::ToolCommand>(std::move(*decoded));
  }

 private:
  FrameInbox inbox_;
};

proto::ToolResult run_one(const Handler& handler, const proto::ToolJob& job) {
  proto::ToolResult result;
  result.id = job.id;
  try {
    const Reply reply = handler(Job(job.id, job.payload.bytes, job.timeout_ms, kEventsFd));
    result.ok = reply.ok();
    if (reply.ok()) {
      result.value = proto::RawObject{reply.value()};
    } else {
      result.error =
          proto::JobError{reply.code(), reply.message(),
                          reply.detail().empty() ? std::nullopt : std::optional(reply.detail()),
                          std::nullopt, std::nullopt};
    }
  } catch (const std::exception& e) {
    result.ok = false;
    result.error = proto::JobError{std::string(proto::code::kJobFailed),
                                   std::string("the tool's handler threw: ") + e.what(),
                                   std::nullopt, std::nullopt, std::nullopt};
  }
  return result;
}

}  // namespace

void Job::phase(std::string_view what) const {
  (void)send(proto::Phase{id_, std::string(what), std::nullopt});
}

int serve(const Handler& handler) {
  if (std::getenv("KILN_TOOL") == nullptr) {
    std::fprintf(stderr,
                 "this program is a kiln tool: kiln-worker starts it (kiln-supervisor --tool "
                 "NAME=COMMAND) with the tool link on fds 3 and 4\n");
    return exit_code::kProtocolError;
  }
  // Started as the pool's zygote (docs/protocol.md "Zygote link"): warm now, so every worker's
  // tool is forked from here; each fork goes on below.
  if (std::getenv("KILN_ZYGOTE") != nullptr) {
    if (std::optional<int> status = run_zygote()) return *status;
  }
  if (!send(proto::ToolReady{proto::kProtocolVersion, static_cast<uint64_t>(::getpid())})) {
    return exit_code::kOk;  // the worker is gone already
  }
  Commands commands(kDefaultMaxFrame);
  for (;;) {
    Expected<std::optional<proto::ToolCommand>> command = commands.next();
    if (!command) {
      std::fprintf(stderr, "kiln tool: protocol error from kiln-worker: %s\n",
                   command.error().c_str());
      return exit_code::kProtocolError;
    }
    if (!*command || std::holds_alternative<proto::WorkerShutdown>(**command)) {
      return exit_code::kOk;
    }
    if (!send(run_one(handler, std::get<proto::ToolJob>(**command)))) return exit_code::kOk;
  }
}

}  // namespace kiln::tool
