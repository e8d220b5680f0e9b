// Starting a program from the worker as execvp would, split in two so that the child of a fork
// or vfork only makes system calls: the search list is made before, the execve calls after.
#pragma once

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

}  // namespace kiln::worker
