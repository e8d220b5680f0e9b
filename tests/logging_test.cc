#include "common/logging.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/text.h"

namespace kiln {
namespace {

using spdlog::level::level_enum;

TEST(EnvLevels, ReadsSpdlogLevelAsSpdlogDoes) {
  EnvLevels l = parse_env_levels("debug");
  EXPECT_EQ(l.all, std::optional<level_enum>(level_enum::debug));
  EXPECT_TRUE(l.named.empty());

  l = parse_env_levels(" kiln-worker = TRACE ,off,,kiln-supervisor=warn,kiln-worker=err");
  EXPECT_EQ(l.all, std::optional<level_enum>(level_enum::off));
  EXPECT_EQ(l.named, (std::unordered_map<std::string, level_enum>{
                         {"kiln-worker", level_enum::err}, {"kiln-supervisor", level_enum::warn}}));

  // An item whose level is not one is dropped, after the last of its name has won.
  l = parse_env_levels("info,loud,x=debug,x=nonsense");
  EXPECT_FALSE(l.all.has_value());
  EXPECT_TRUE(l.named.empty());

  EXPECT_FALSE(parse_env_levels("").all.has_value());
  EXPECT_FALSE(parse_env_levels(std::string(510, ' ') + "debug").all.has_value()) << "over 512";
  EXPECT_EQ(parse_env_levels(std::string(507, ' ') + "debug").all,
            std::optional<level_enum>(level_enum::debug));
}

TEST(Split, GivesThePiecesStdGetlineGives) {
  using V = std::vector<std::string_view>;
  EXPECT_EQ(split("a::b", ':'), (V{"a", "", "b"}));
  EXPECT_EQ(split(":a:", ':'), (V{"", "a"}));
  EXPECT_EQ(split("a", ':'), (V{"a"}));
  EXPECT_EQ(split("", ':'), V{});
  EXPECT_EQ(split(":", ':'), (V{""}));
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

TEST(LogFile, AtItsCapALastLineSaysSoAndNothingMoreIsWritten) {
  char dir_template[] = "/tmp/kiln-log-test.XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string file = std::string(dir_template) + "/k.log";
  ASSERT_TRUE(setup_logging("kiln-test", LogOptions{"info", file, 4096}).ok());
  for (int i = 0; i < 200; ++i) spdlog::info("line {} of a flood", i);
  spdlog::error("an error after the cap");
  ASSERT_TRUE(setup_logging("kiln-test", LogOptions{"info", "", 0}).ok());  // stderr again
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::filesystem::remove_all(dir_template);
  ASSERT_GT(lines.size(), 10u);
  EXPECT_EQ(lines.back(),
            "kiln: this log reached its cap of 4096 bytes (--log-max-mb): no more lines are "
            "written");
  EXPECT_NE(lines[lines.size() - 2].find("line " + std::to_string(lines.size() - 2) + " of a"),
            std::string::npos)
      << lines[lines.size() - 2];
  std::size_t bytes = 0;
  for (const std::string& line : lines) bytes += line.size() + 1;
  EXPECT_LE(bytes, 4096u);
}

}  // namespace
}  // namespace kiln
