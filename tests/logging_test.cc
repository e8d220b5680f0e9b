#include "common/logging.h"

#include <gtest/gtest.h>

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
