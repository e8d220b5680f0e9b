#include <gtest/gtest.h>

#include "common/build_key.h"

namespace kiln {
namespace {

TEST(Base64, EncodesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

TEST(Base64, DecodesRfc4648Vectors) {
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode("Zg=="), "f");
  EXPECT_EQ(base64_decode("Zm8="), "fo");
  EXPECT_EQ(base64_decode("Zm9v"), "foo");
  EXPECT_EQ(base64_decode("Zm9vYg=="), "foob");
  EXPECT_EQ(base64_decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(base64_decode("Zm9vYmFy"), "foobar");
}

TEST(Base64, RoundTripsEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  EXPECT_EQ(base64_decode(base64_encode(all)), all);
}

TEST(Base64, RejectsWhatIsNotPaddedStandardBase64) {
  EXPECT_EQ(base64_decode("Zg"), std::nullopt);      // padding missing
  EXPECT_EQ(base64_decode("Zg="), std::nullopt);     // padding short
  EXPECT_EQ(base64_decode("Zm9v!"), std::nullopt);   // not an alphabet character
  EXPECT_EQ(base64_decode("Zm9v\n"), std::nullopt);  // trailing newline
  EXPECT_EQ(base64_decode("-_-_"), std::nullopt);    // the URL-safe alphabet
  EXPECT_EQ(base64_decode("Zm9vYmFy===="), std::nullopt);
}

TEST(KeyId, MatchesKnownAnswer) {
  EXPECT_EQ(key_id("kiln"), "eac7579295a99dff");
  EXPECT_EQ(key_id(*base64_decode("a2lsbg==")), "eac7579295a99dff");
}

TEST(KeyId, IsSixteenLowercaseHexDigits) {
  const std::string id = key_id(random_key());
  ASSERT_EQ(id.size(), 16u);
  for (char c : id) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << id;
}

TEST(RandomKey, HasTheAskedLengthAndDiffersEachTime) {
  const std::string a = random_key(32), b = random_key(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace kiln
