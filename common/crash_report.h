// A worker's crash report as the supervisor sees it from outside (docs/design.md, start-up step
// 6): its first line, and how long the rest may take.
#pragma once

#include <cstdint>
#include <string>

namespace kiln::crash_report {

// How long the crash handler waits for kiln-symbolize before it prints bare addresses instead.
inline constexpr int kSymbolizeDeadlineMs = 5000;

// The report's first line is kBeforePid, the worker's pid, kAfterPid, then the signal's name.
inline constexpr const char* kBeforePid = "kiln-worker ";
inline constexpr const char* kAfterPid = " crashed: ";

// How the first line of worker `pid`'s report begins, up to its signal's name.
inline std::string first_line_prefix(int64_t pid) {
  return kBeforePid + std::to_string(pid) + kAfterPid;
}

}  // namespace kiln::crash_report
