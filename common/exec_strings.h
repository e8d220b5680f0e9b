// An argv or an envp: the strings and the null-ended array of pointers into them that execve,
// posix_spawn and uv_spawn take. Built once, it can be passed to any number of spawns. The
// supervisor's spawns pass the same one: copying the strings for each spawn and freeing the copies
// after the fork wrote to a dozen heap pages the fork had just made copy-on-write (bench/NOTES.md).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace kiln {

class ExecStrings {
 public:
  ExecStrings() : ExecStrings(std::vector<std::string>{}) {}
  explicit ExecStrings(std::vector<std::string> strings) : strings_(std::move(strings)) {
    pointers_.reserve(strings_.size() + 1);
    for (std::string& s : strings_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);
  }
  // A copy would point into the original's strings. A move keeps them where they are.
  ExecStrings(const ExecStrings&) = delete;
  ExecStrings& operator=(const ExecStrings&) = delete;
  ExecStrings(ExecStrings&&) = default;
  ExecStrings& operator=(ExecStrings&&) = default;

  // Null-ended. Not const: that is how exec's callers are declared; nothing writes through it.
  char** get() { return pointers_.data(); }
  char* const* get() const { return pointers_.data(); }  // what execve itself takes
  const std::vector<std::string>& strings() const { return strings_; }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

}  // namespace kiln
