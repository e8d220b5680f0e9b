#include "common/distcc.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace kiln::distcc {
namespace {

std::string_view basename_of(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

// cc, gcc, g++, c++, clang, clang++; "x86_64-linux-gnu-gcc-12", "clang++-16".
bool is_compiler(std::string_view path) {
  std::string_view name = basename_of(path);
  // A version suffix: "-12", "-16.0".
  if (const std::size_t dash = name.rfind('-'); dash != std::string_view::npos) {
    const std::string_view v = name.substr(dash + 1);
    if (!v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
        })) {
      name = name.substr(0, dash);
    }
  }
  static constexpr std::array<std::string_view, 6> kNames = {"cc",  "c++",   "gcc",
                                                             "g++", "clang", "clang++"};
  for (std::string_view n : kNames) {
    if (name == n) return true;
    // A target prefix: "x86_64-linux-gnu-gcc" (not "cc", which would take "ccache-cc" and such).
    if (n != "cc" && n != "c++" && ends_with(name, std::string("-").append(n))) return true;
  }
  return false;
}

bool is_source(std::string_view arg) {
  static constexpr std::array<std::string_view, 9> kExtensions = {
      ".c", ".cc", ".cpp", ".cxx", ".c++", ".C", ".cp", ".i", ".ii"};
  const std::size_t dot = arg.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || arg[dot - 1] == '/') return false;
  return std::find(kExtensions.begin(), kExtensions.end(), arg.substr(dot)) != kExtensions.end();
}

// Options whose value is the next argument.
bool takes_value(std::string_view arg) {
  static constexpr std::array<std::string_view, 22> kOptions = {
      "-o",       "-I",      "-D",         "-U",       "-include",       "-imacros",
      "-isystem", "-iquote", "-idirafter", "-iprefix", "-iwithprefix",   "-isysroot",
      "-MF",      "-MT",     "-MQ",        "-x",       "-Xpreprocessor", "-Xassembler",
      "-Xclang",  "--param", "-target",    "--sysroot"};
  return std::find(kOptions.begin(), kOptions.end(), arg) != kOptions.end();
}

// An option that makes the command one that must run here.
bool must_run_here(std::string_view arg) {
  static constexpr std::array<std::string_view, 11> kExact = {"-E",
                                                              "-S",
                                                              "-M",
                                                              "-MM",
                                                              "-",
                                                              "-fsyntax-only",
                                                              "--coverage",
                                                              "-ftest-coverage",
                                                              "-fprofile-arcs",
                                                              "-fprofile-generate",
                                                              "-fprofile-use"};
  if (std::find(kExact.begin(), kExact.end(), arg) != kExact.end()) return true;
  static constexpr std::array<std::string_view, 6> kPrefixes = {
      "@", "-save-temps", "-fprofile-", "-fauto-profile", "-specs", "-Wa,-a"};
  for (std::string_view p : kPrefixes) {
    if (arg.substr(0, p.size()) == p) return true;
  }
  return ends_with(arg, "=native");  // -march=native and the like: this machine's, not the host's
}

}  // namespace

std::optional<std::string> distributable_output(const std::vector<std::string>& argv) {
  if (argv.size() < 4 || !is_compiler(argv[0])) return std::nullopt;
  bool compile_only = false;
  std::optional<std::string> output;
  int sources = 0;
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string_view a = argv[i];
    if (must_run_here(a)) return std::nullopt;
    if (a == "-c") {
      compile_only = true;
    } else if (takes_value(a)) {
      if (i + 1 >= argv.size()) return std::nullopt;
      const std::string_view value = argv[++i];
      if (a == "-o") output = std::string(value);
      // Only C and C++: "-x assembler" and the like stay here.
      if (a == "-x" && value != "c" && value != "c++") return std::nullopt;
    } else if (a.substr(0, 2) == "-o") {
      output = std::string(a.substr(2));
    } else if (!a.empty() && a[0] != '-') {
      if (!is_source(a)) return std::nullopt;  // an object, an assembly file, a library
      ++sources;
    }
  }
  if (!compile_only || sources != 1 || !output || !ends_with(*output, ".o")) return std::nullopt;
  return output;
}

std::string_view exit_meaning(int exit_code) {
  switch (exit_code) {
    case 100:
      return "general distcc failure";
    case 101:
      return "bad arguments";
    case 102:
      return "bind failed";
    case 103:
      return "connect failed";
    case 104:
      return "compiler crashed";
    case 105:
      return "out of memory";
    case 106:
      return "bad host spec";
    case 107:
      return "I/O error";
    case 108:
      return "truncated";
    case 109:
      return "protocol error";
    case 110:
      return "compiler not found on the host";
    case 111:
      return "recursive call to distcc";
    case 112:
      return "failed to discard privileges";
    case 113:
      return "network access denied";
    case 114:
      return "in use by another process";
    case 115:
      return "no such file";
    case 116:
      return "no hosts defined and fallbacks disabled";
    case 117:
      return "gone";
    case 118:
      return "timeout";
    case 119:
      return "GSS-API error";
    case 120:
      return "called for preprocessing, which must be done locally";
    default:
      return exit_code >= 100 && exit_code <= 127 ? "distcc failure" : "";
  }
}

Outcome outcome_of(int exit_code) {
  if (exit_code < 100 || exit_code > 127) return Outcome::kCompiler;
  switch (exit_code) {
    case 101:  // bad arguments
    case 106:  // bad host spec: Kiln gave it, it cannot be this host's fault alone
    case 111:  // recursion
    case 115:  // no such file (a local input)
    case 120:  // must be preprocessed here
      return Outcome::kLocalOnly;
    default:
      return Outcome::kHostFailed;
  }
}

std::vector<std::pair<std::string, std::string>> client_env(const std::string& host_spec) {
  return {{"DISTCC_HOSTS", host_spec},
          {"DISTCC_FALLBACK", "0"},
          {"DISTCC_SKIP_LOCAL_RETRY", "1"},
          // Not 0: distcc 3.4 then retries a refused host in a loop until it runs out of fds and
          // aborts. One second, shorter than Kiln's own first backoff, so that it never turns
          // away a host Kiln tries again.
          {"DISTCC_BACKOFF_PERIOD", "1"}};
}

}  // namespace kiln::distcc
