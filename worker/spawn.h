// Starting a program from the worker as execvp would, split in two so that the child of a fork
// or vfork only makes system calls: the search list and the child's set-up are made before, the
// set-up's system calls and the execve calls after, in the child. A child that cannot exec says
// why through a close-on-exec report pipe, which the worker reads right after the fork: end of
// file is an exec'd program, a ChildFailure is a failed start (libuv's uv_spawn does the same).
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/exec_strings.h"

namespace kiln::worker {

// The paths execvp would try for `file`, given the environment the program will get: the
// path_candidates (common/fd.h) of its PATH, null-ended for exec_first.
ExecStrings exec_candidates(const std::string& file, const std::vector<std::string>& env);

// In the child: execve each candidate (a null-ended array) in turn. A candidate that is missing (or
// not executable) does not end the search, though EACCES is what is reported if nothing later is
// found; any other error is that of the program found, and ends it. Returns that errno (it returns
// only on failure).
int exec_first(char* const candidates[], char* const argv[], char* const envp[]);

// What a child that could not exec writes to its report pipe, then it exits 127.
struct ChildFailure {
  enum Stage : int {
    kFds = 1,    // a dup2 of the child's fds
    kChdir = 2,  // the change to its directory
    kExec = 3,   // the program itself (not found, not executable, ...): `error` says how
  };
  int stage = 0;
  int error = 0;  // errno
};

// One dup2 of the child's set-up: `source` becomes the child's `target`.
struct FdMove {
  int target;
  int source;
};

// Everything a child does between fork (or vfork) and exec, prepared before the fork: the child
// only reads it. No source of `fds`, nor `report_fd`, may be the target of an earlier move.
struct ChildSetup {
  pid_t worker = 0;  // the child's parent: a child whose parent is already gone ends at once
  std::span<const FdMove> fds;  // dup2'd in order; every fd above the highest target is closed
  // The only dispositions the child must reset (the worker's ignored signals); nullptr: all.
  const std::vector<int>* ignored_signals = nullptr;
  // The caller's own steps, after the signals and before the chdir: system calls only, and
  // nothing that can fail.
  void (*own_steps)(const void* context) = nullptr;
  const void* context = nullptr;
  const char* cwd = nullptr;          // nullptr: the worker's own
  char* const* candidates = nullptr;  // exec_first's arguments
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  int report_fd = -1;  // close-on-exec; where a failure is written
};

// In the child: its own process group, death with the worker (SIGKILL), the check that its
// parent is still the worker, the fds, the signals (defaults, an empty mask), the caller's own
// steps, the directory, every other fd close-on-exec, then exec_first. A failure is written to
// `report_fd` as a ChildFailure, then the child exits 127. Async-signal-safe: system calls only,
// no allocation, nothing of the parent's memory changed (it may run after vfork).
[[noreturn]] void exec_child(const ChildSetup& setup);

// In the parent, once its copy of the report pipe's write end is closed: what child `pid`
// reported, the child reaped (it exits 127 right after its report); or nullopt when it exec'd
// (end of file), the child left running.
std::optional<ChildFailure> read_child_failure(int report_fd, pid_t pid);

}  // namespace kiln::worker
