// A worker's crash report as the supervisor sees it from outside (docs/design.md, start-up step
// 6): its first line, and how long the rest may take.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::crash_report {

// How long the crash handler waits for kiln-symbolize before it prints bare addresses instead.
inline constexpr int kSymbolizeDeadlineMs = 5000;

// The first line of the report of worker `pid`, up to its signal's name:
// "kiln-worker <pid> crashed: ".
inline std::string first_line_prefix(int64_t pid) {
  return "kiln-worker " + std::to_string(pid) + " crashed: ";
}

inline bool is_first_line(std::string_view line, int64_t pid) {
  return line.rfind(first_line_prefix(pid), 0) == 0;
}

}  // namespace kiln::crash_report
