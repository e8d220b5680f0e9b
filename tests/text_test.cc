#include <gtest/gtest.h>

#include "common/exec_strings.h"
#include "common/text.h"

namespace kiln {
namespace {

TEST(Utf8, AcceptsValidTextAndRejectsBrokenSequences) {
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\xc3"));              // cut short
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // beyond U+10FFFF
}

TEST(Utf8, ReplacesEachInvalidByte) {
  EXPECT_EQ(to_valid_utf8("a\xff"
                          "b"),
            "a\xef\xbf\xbd"
            "b");
  EXPECT_EQ(to_valid_utf8("\xc3\xa9"), "\xc3\xa9");
}

}  // namespace
}  // namespace kiln

namespace kiln {

TEST(Printable, EscapesControlCharactersAndCutsLongText) {
  EXPECT_EQ(printable("launch"), "launch");
  EXPECT_EQ(printable("a\nb\\c\x01\x7f"), "a\\nb\\\\c\\x01\\x7f");
  EXPECT_EQ(printable(std::string("x\0y", 3)), "x\\x00y");
  EXPECT_EQ(printable("\x1b]0;t\x07\x1b[2J\xc2\x9b"
                      "31m\xc2\xa0"),
            "\\x1b]0;t\\x07\\x1b[2J\\u009b31m\xc2\xa0")
      << "terminal controls, C1 ones too; U+00A0 is text";
  EXPECT_EQ(printable("\xff"), "\xef\xbf\xbd") << "invalid UTF-8 becomes U+FFFD";
  EXPECT_EQ(printable(std::string(300, 'k'), 10), std::string(10, 'k') + "... (300 bytes)");
  // Never cut inside a character: "é" is two bytes.
  EXPECT_EQ(printable("aé", 1), "a... (3 bytes)");
  EXPECT_EQ(printable("aé", 2), "aé");
  EXPECT_EQ(printable("aéb", 2), "aé... (4 bytes)");
}

}  // namespace kiln

namespace kiln {
namespace {

TEST(ExecStrings, IsANullEndedArrayOfItsStringsThatAMoveKeeps) {
  // Short strings live inside their std::string: a move of the list must not leave the
  // pointers on the old one.
  ExecStrings moved(std::vector<std::string>{"/bin/true", "-x", std::string(100, 'y')});
  ExecStrings list = std::move(moved);
  char** argv = list.get();
  ASSERT_EQ(list.strings().size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(argv[i], list.strings()[i].data()) << i;
    EXPECT_STREQ(argv[i], list.strings()[i].c_str()) << i;
  }
  EXPECT_EQ(argv[3], nullptr);
  EXPECT_EQ(ExecStrings().get()[0], nullptr);
}

}  // namespace
}  // namespace kiln

namespace kiln {

TEST(Shortened, KeepsTextWithinItsBoundAsValidUtf8) {
  EXPECT_EQ(shortened("lowering", 8), "lowering");
  EXPECT_EQ(shortened("a\nb", 8), "a\nb") << "not escaped: only bounded";
  EXPECT_EQ(shortened(std::string(300, 'k'), 10), std::string(10, 'k') + "... (300 bytes)");
  // Never cut inside a character, never past the bound: "é" is two bytes.
  EXPECT_EQ(shortened("aé", 2), "a... (3 bytes)");
  EXPECT_EQ(shortened("aé", 3), "aé");
  EXPECT_EQ(shortened("a\xff", 8), "a\xef\xbf\xbd") << "invalid UTF-8 becomes U+FFFD";
  EXPECT_EQ(shortened("a\xff", 3), "a... (2 bytes)") << "U+FFFD counts its three bytes";
}

}  // namespace kiln
