// What Kiln needs to know of distcc (Debian's distcc 3.4) to run compile jobs on its hosts: which
// commands distcc can compile on another machine, and what the distcc client's exit status says
// (the compiler's answer, or a failure of distcc or of the host). docs/design.md "distcc hosts".
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::distcc {

// The object file of `argv` if it is a compile distcc can run on a host: a C or C++ compiler
// (cc, gcc, g++, c++, clang, clang++, with a target prefix or a version suffix) compiling one C
// or C++ source to an object (`-c ... -o FILE.o`), with nothing that must run here (preprocessing
// or assembly only, dependency output only, a response file, standard input, -march=native and
// the like, coverage or profile files). nullopt for anything else: it runs locally.
std::optional<std::string> distributable_output(const std::vector<std::string>& argv);

// What the distcc client's exit status means with DISTCC_FALLBACK=0 and DISTCC_SKIP_LOCAL_RETRY=1
// (distcc(1), "EXIT CODES"): 0 to 99 and 128 and up are the compiler's own (its errors, its
// signal); 100 to 127 are distcc's. Of those, a failure of the host (unreachable, refused, gone,
// timed out, a crash there) is kHostFailed; one that says the command cannot be distributed (bad
// arguments, recursion, a file that must be preprocessed here) is kLocalOnly.
enum class Outcome { kCompiler, kHostFailed, kLocalOnly };
Outcome outcome_of(int exit_code);

// distcc's own words for its exit status `exit_code` (100 to 127), "" for others.
std::string_view exit_meaning(int exit_code);

// The variables a distcc client is run with for one host: DISTCC_HOSTS is that host alone, and
// distcc never compiles locally and never retries locally (Kiln does, where it can see it), and
// its own backoff is shorter than Kiln's.
std::vector<std::pair<std::string, std::string>> client_env(const std::string& host_spec);

}  // namespace kiln::distcc
