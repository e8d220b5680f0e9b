#include "supervisor/zygote.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <utility>

#include "common/fd.h"
#include "supervisor/pool.h"

namespace kiln::supervisor {
namespace {

// A zygote that lived this long before it died was warm: it is started again at once.
constexpr uint64_t kYoungMs = 10'000;

// A listening socket bound to the abstract name of `address` ('@' first), close-on-exec.
Expected<UniqueFd> bind_listener(const std::string& address) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, address.data(), address.size());
  addr.sun_path[0] = '\0';
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(fd.get(), 128) != 0) {
    return fail(std::string("cannot listen on its socket: ") + std::strerror(errno));
  }
  return fd;
}

}  // namespace

Zygote::Zygote(uv_loop_t* loop, std::string name, std::vector<std::string> argv,
               std::vector<std::string> envp, std::string address, int devnull)
    : loop_(loop),
      name_(std::move(name)),
      argv_(std::move(argv)),
      address_(std::move(address)),
      devnull_(devnull) {
  envp.push_back("KILN_TOOL=" + name_);
  envp.push_back("KILN_ZYGOTE=" + std::to_string(::getpid()));
  envp_ = ExecStrings(std::move(envp));
}

void Zygote::want() {
  if (!timer_ready_) {  // here, not in the constructor: the loop is set up after it
    uv_timer_init(loop_, &restart_);
    restart_.data = this;
    timer_ready_ = true;
  }
  wanted_ = true;
  if (!running_ && !backing_off_ && !closed_) spawn();
}

void Zygote::unwant() {
  wanted_ = false;
  if (backing_off_) {
    uv_timer_stop(&restart_);
    backing_off_ = false;
  }
  if (running_) uv_process_kill(process_, SIGKILL);
}

void Zygote::close() {
  unwant();
  closed_ = true;
  if (timer_ready_) uv_close(reinterpret_cast<uv_handle_t*>(&restart_), nullptr);
  // A zygote still running is reaped on its exit callback before the loop ends.
}

void Zygote::close_process() {
  uv_close(reinterpret_cast<uv_handle_t*>(std::exchange(process_, nullptr)),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_process_t*>(h); });
}

void Zygote::spawn() {
  Expected<UniqueFd> listener = bind_listener(address_);
  int rc = UV_EINVAL;
  if (listener) {
    uv_stdio_container_t stdio[4];
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = devnull_ >= 0 ? devnull_ : 0;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 2;  // what the zygote prints goes where the supervisor's stderr does
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    stdio[3].flags = UV_INHERIT_FD;
    stdio[3].data.fd = listener->get();
    uv_process_options_t options{};
    options.file = argv_.get()[0];
    options.args = const_cast<char**>(argv_.get());
    options.env = const_cast<char**>(envp_.get());
    options.stdio = stdio;
    options.stdio_count = 4;
    options.exit_cb = [](uv_process_t* p, int64_t status, int signal) {
      static_cast<Zygote*>(p->data)->on_exit(status, signal);
    };
    process_ = new uv_process_t;
    process_->data = this;
    rc = uv_spawn(loop_, process_, &options);
    // Ours is closed now: with the zygote gone, its socket is too, and a worker's request is
    // refused at once instead of waiting for a zygote that is not there.
  }
  if (rc == 0) {
    running_ = true;
    pid_ = process_->pid;
    started_ms_ = uv_now(loop_);
    spdlog::info("zygote of tool {} started (pid {})", name_, pid_);
    return;
  }
  if (listener) close_process();
  spdlog::error("cannot start the zygote of tool {}: {}", name_,
                listener ? uv_strerror(rc) : listener.error());
  on_exit(-1, 0);
}

void Zygote::on_exit(int64_t status, int signal) {
  if (running_) {
    running_ = false;
    close_process();
    if (wanted_) {
      spdlog::warn(
          "zygote of tool {} (pid {}) {}; workers start the tool from scratch until "
          "it is back",
          name_, pid_,
          signal != 0 ? "was killed by " + signal_name(signal)
                      : "exited with status " + std::to_string(status));
    }
  }
  if (!wanted_ || closed_) return;
  const bool young = uv_now(loop_) - started_ms_ < kYoungMs;
  failures_ = young ? failures_ + 1 : 0;
  const uint64_t delay_us =
      failures_ == 0
          ? 0
          : std::min<uint64_t>(kBackoffMaxUs, kBackoffFirstUs << std::min(failures_ - 1, 20));
  backing_off_ = true;
  uv_timer_start(
      &restart_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Zygote*>(t->data);
        self->backing_off_ = false;
        if (self->wanted_) self->spawn();
      },
      delay_us / 1000, 0);
}

}  // namespace kiln::supervisor
