#include "worker/spawn.h"

#include <unistd.h>

#include <cerrno>

#include "common/fd.h"

namespace kiln::worker {

ExecStrings exec_candidates(const std::string& file, const std::vector<std::string>& env) {
  std::optional<std::string_view> path;
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = std::string_view(e).substr(5);
  }
  return ExecStrings(path_candidates(file, path));
}

int exec_first(char* const candidates[], char* const argv[], char* const envp[]) {
  int error = ENOENT;
  for (char* const* candidate = candidates; *candidate != nullptr; ++candidate) {
    ::execve(*candidate, argv, envp);
    switch (errno) {
      case EACCES:
        error = EACCES;
        break;
      case ENOENT:
      case ENOTDIR:
      case ESTALE:
      case ENODEV:
      case ETIMEDOUT:
        break;
      default:
        return errno;
    }
  }
  return error;
}

}  // namespace kiln::worker
