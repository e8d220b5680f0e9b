// The /proc readers that tests and the worker lean on: they must not throw, whatever the process
// being read does meanwhile.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/fd.h"
#include "tests/process.h"

namespace kiln {
namespace {

using testing::Child;
using namespace std::chrono_literals;

// One PATH walk for the worker's commands and tools and for the binaries finding each other.
TEST(PathCandidates, AreEachDirectoryInOrderAndAnEmptyOneIsTheCurrentOne) {
  using V = std::vector<std::string>;
  EXPECT_EQ(path_candidates("cc", "/a:/b"), (V{"/a/cc", "/b/cc"}));
  EXPECT_EQ(path_candidates("cc", ":/a::/b:"), (V{"./cc", "/a/cc", "./cc", "/b/cc", "./cc"}));
  EXPECT_EQ(path_candidates("cc", ""), (V{"./cc"}));
  EXPECT_EQ(path_candidates("cc", std::nullopt),
            (V{"/usr/local/bin/cc", "/usr/bin/cc", "/bin/cc"}));
  EXPECT_EQ(path_candidates("bin/cc", "/a"), (V{"bin/cc"})) << "a '/' means no search";
}

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

TEST(RssKb, IsWhatStatusCallsVmRss) {
  Child child = Child::spawn({{"/bin/sleep", "30"}, {}, {}});
  ASSERT_TRUE(testing::wait_until([&] { return rss_kb(child.pid()) > 0; }, 10s));
  ::kill(child.pid(), SIGSTOP);  // nothing of it changes between the two looks
  ASSERT_TRUE(testing::wait_until(
      [&] {
        const auto stat = read_small_file("/proc/" + std::to_string(child.pid()) + "/stat");
        return stat && stat->find(") T ") != std::string::npos;
      },
      10s));
  EXPECT_EQ(rss_kb(child.pid()), proc_kb(child.pid(), "status", "VmRSS"));
  EXPECT_EQ(rss_kb(::getpid() + 4000000), 0u);  // no such process
  child.kill(SIGKILL);
  EXPECT_EQ(child.exit_code(), -SIGKILL);
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

// In a forked child (closing fds in the test's own process would close gtest's): the fds kept,
// given unsorted, between and after closed ranges, stay open; every other fd >= 3 is closed.
TEST(CloseFdsExcept, KeepsExactlyTheListedFds) {
  std::vector<int> opened;
  for (int i = 0; i < 12; ++i) opened.push_back(::dup(STDERR_FILENO));
  auto [report_read, report_write] = make_pipe();
  std::vector<int> keep = {opened[7], opened[2], opened[3], opened[11], report_write.get()};
  const pid_t pid = ::fork();
  if (pid == 0) {
    // -1 (an fd that was never opened) and a duplicate keep nothing more.
    close_fds_except({keep[0], -1, keep[1], keep[2], keep[2], keep[3], keep[4]});
    std::string open_now;
    for (int fd : open_fds(::getpid())) open_now += std::to_string(fd) + " ";
    (void)!::write(keep.back(), open_now.data(), open_now.size());
    ::_exit(0);
  }
  report_write.reset();
  std::string report;
  char buf[256];
  for (ssize_t n; (n = ::read(report_read.get(), buf, sizeof buf)) > 0;) report.append(buf, n);
  int status = -1;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_EQ(status, 0);
  std::vector<int> left;
  for (std::size_t at = 0, space; (space = report.find(' ', at)) != std::string::npos;
       at = space + 1) {
    if (const int fd = std::stoi(report.substr(at, space - at)); fd > 2) left.push_back(fd);
  }
  std::sort(left.begin(), left.end());
  std::sort(keep.begin(), keep.end());
  EXPECT_EQ(left, keep) << report;
  for (int fd : opened) ::close(fd);
}

}  // namespace
}  // namespace kiln
