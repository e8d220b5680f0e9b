// Starts a private pool with the installed client library (which finds the installed
// kiln-supervisor by itself), runs one echo and one exec job, and prints what came back.
#include <client/pool.h>

#include <cstdio>
#include <string>

int main() {
  kiln::Expected<std::unique_ptr<kiln::client::Pool>> pool =
      kiln::client::Pool::start({.args = {"--workers", "2", "--log-level", "warn"}});
  if (!pool) {
    std::fprintf(stderr, "consumer: %s\n", pool.error().c_str());
    return 1;
  }
  const std::string nil(1, '\xc0');  // msgpack nil
  kiln::proto::Result echo = (*pool)->submit("echo", kiln::proto::RawObject{nil}).get();
  kiln::client::ExecRequest request;
  request.argv = {"/bin/sh", "-c", "exit 7"};
  kiln::proto::Result exec = (*pool)->exec(request).get();
  std::printf("echo ok=%d exec ok=%d workers=%llu\n", echo.ok, exec.ok,
              static_cast<unsigned long long>((*pool)->hello().workers));
  return (*pool)->shutdown() == 0 && echo.ok && exec.ok ? 0 : 1;
}
