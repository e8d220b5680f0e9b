#include "worker/spawn.h"

#include <unistd.h>

#include <cerrno>

#include "common/text.h"

namespace kiln::worker {

std::vector<std::string> exec_candidates(const std::string& file,
                                         const std::vector<std::string>& env) {
  if (file.find('/') != std::string::npos) return {file};
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  std::vector<std::string> candidates;
  for (std::string_view dir : split(path, ':')) {
    candidates.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + file);
  }
  return candidates;
}

int exec_first(const std::vector<const char*>& candidates, char* const argv[], char* const envp[]) {
  int error = ENOENT;
  for (const char* candidate : candidates) {
    ::execve(candidate, argv, envp);
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
