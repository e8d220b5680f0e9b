// The supervisor's timeline file (supervisor/trace.h) on its own: what it refuses to write to,
// and its cap.
#include "supervisor/trace.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace kiln::supervisor {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class TraceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/kiln-trace-test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(TraceTest, RefusesWhatIsNotARegularFileItMayCreateAndNamesWithANul) {
  const std::string comm = read_file("/proc/self/comm");
  Expected<std::unique_ptr<Trace>> t = Trace::open("/proc/self/comm", {"worker slot 0"}, 0);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().rfind("cannot write the trace /proc/self/comm: ", 0), 0u) << t.error();
  EXPECT_EQ(read_file("/proc/self/comm"), comm) << "the process's name is as it was";
  t = Trace::open("/dev/null", {"worker slot 0"}, 0);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error(), "cannot write the trace /dev/null: it exists and is not a regular file");
  t = Trace::open(dir_, {"worker slot 0"}, 0);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error(), "cannot write the trace " + dir_ + ": it exists and is not a regular file");
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  t = Trace::open(fifo, {"worker slot 0"}, 0);  // with no reader: opening it would block
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error(), "cannot write the trace " + fifo + ": it exists and is not a regular file");
  const std::string link = dir_ + "/link";
  ASSERT_EQ(::symlink("/dev/null", link.c_str()), 0);
  t = Trace::open(link, {"worker slot 0"}, 0);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error(), "cannot write the trace " + link + ": it exists and is not a regular file");
  t = Trace::open(dir_ + std::string("/a\0b", 4), {"worker slot 0"}, 0);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error(), "cannot write the trace " + dir_ + "/a\\x00b: not a file name");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/a"));
  // A regular file is replaced by a new one, private to this user.
  const std::string file = dir_ + "/t.json";
  std::ofstream(file) << "old";
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  t = Trace::open(file, {"worker slot 0"}, 0);
  ASSERT_TRUE(t.ok()) << t.error();
  t->reset();
  struct stat st;
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(nlohmann::json::parse(read_file(file)).size(), 2u) << "its two names, nothing old";
  std::size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) entries += e.exists() ? 1 : 0;
  EXPECT_EQ(entries, 3u) << "fifo, link and t.json: no temporary file is left";
}

TEST_F(TraceTest, AtItsCapTheTimelineSaysSoOnceClosesAndWritesNoMore) {
  const std::string file = dir_ + "/t.json";
  Expected<std::unique_ptr<Trace>> t =
      Trace::open(file, {"worker slot 0", "worker slot 1"}, 1000, 4096);
  ASSERT_TRUE(t.ok()) << t.error();
  for (int i = 0; i < 200; ++i) (*t)->worker(0, 42, "worker started", 1000 + i);
  const std::string capped = read_file(file);
  EXPECT_LE(capped.size(), 4096u);
  const nlohmann::json events = nlohmann::json::parse(capped);  // closed, valid
  ASSERT_GT(events.size(), 3u);
  EXPECT_EQ(events.back()["name"],
            "the timeline reached its cap of 4096 bytes (--trace-max-mb): nothing after this is "
            "in it");
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_NE(events[i]["name"].get<std::string>().rfind("the timeline reached", 0), 0u);
  }
  (*t)->worker(1, 43, "ready", 5000);
  t->reset();
  EXPECT_EQ(read_file(file), capped) << "nothing after the cap, not even a second bracket";
}

}  // namespace
}  // namespace kiln::supervisor
