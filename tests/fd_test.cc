// The /proc readers that tests and the worker lean on: they must not throw, whatever the process
// being read does meanwhile.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "common/fd.h"
#include "tests/process.h"

namespace kiln {
namespace {

using testing::Child;

TEST(ReadSmallFile, ReadsAProcFileWhole) {
  const auto stat = read_small_file("/proc/self/stat");
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->rfind(std::to_string(::getpid()) + " (", 0), 0u) << *stat;
  EXPECT_EQ(stat->back(), '\n');
}

TEST(ReadSmallFile, ReadsFilesLargerThanOneBuffer) {
  // /proc/self/maps of a gtest binary runs to many KiB; it must come back in one piece, ending
  // where the kernel ends it.
  const auto maps = read_small_file("/proc/self/maps");
  ASSERT_TRUE(maps.has_value());
  EXPECT_GT(maps->size(), 4096u);
  EXPECT_EQ(maps->back(), '\n');
}

TEST(ReadSmallFile, IsNulloptForAGoneProcessAndAMissingFile) {
  Child child = Child::spawn({{"/bin/true"}, {}, {}});
  const pid_t pid = child.pid();
  ASSERT_EQ(child.exit_code(), 0);
  EXPECT_FALSE(read_small_file("/proc/" + std::to_string(pid) + "/cmdline").has_value());
  EXPECT_FALSE(read_small_file("/nonexistent/kiln").has_value());
  EXPECT_FALSE(read_small_file("/proc/self").has_value());  // a directory: read() fails
}

TEST(AllPids, ListsThisProcessAndAChild) {
  Child child = Child::spawn({{"/bin/sleep", "30"}, {}, {}});
  const auto pids = testing::all_pids();
  EXPECT_NE(std::find(pids.begin(), pids.end(), ::getpid()), pids.end());
  EXPECT_NE(std::find(pids.begin(), pids.end(), child.pid()), pids.end());
  child.kill(SIGKILL);
  EXPECT_EQ(child.exit_code(), -SIGKILL);
}

TEST(AllPids, ReadingProcessesThatExitMeanwhileNeverThrows) {
  // The race that once failed CI: a process exits between listing /proc and reading its files.
  // Churn short-lived children while walking every process's files.
  for (int round = 0; round < 20; ++round) {
    Child child = Child::spawn({{"/bin/true"}, {}, {}});
    for (pid_t pid : testing::all_pids()) {
      EXPECT_NO_THROW({
        (void)read_small_file("/proc/" + std::to_string(pid) + "/cmdline");
        (void)testing::is_running(pid);
      });
    }
    EXPECT_EQ(child.exit_code(), 0);
  }
  EXPECT_NO_THROW((void)testing::processes_in_group(::getpgrp()));
}

}  // namespace
}  // namespace kiln
