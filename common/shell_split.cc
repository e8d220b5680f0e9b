#include "common/shell_split.h"

namespace kiln {

Expected<std::vector<std::string>> shell_split(std::string_view s) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else if (c == '\'') {
      const auto end = s.find('\'', i + 1);
      if (end == std::string_view::npos) return fail("unterminated ' quote");
      word.append(s.substr(i + 1, end - i - 1));
      i = end;
      in_word = true;
    } else if (c == '"') {
      std::size_t j = i + 1;
      for (; j < s.size() && s[j] != '"'; ++j) {
        if (s[j] == '\\' && j + 1 < s.size() &&
            std::string_view("$`\"\\\n").find(s[j + 1]) != std::string_view::npos) {
          ++j;
          if (s[j] == '\n') continue;  // a line continuation
        }
        word += s[j];
      }
      if (j >= s.size()) return fail("unterminated \" quote");
      i = j;
      in_word = true;
    } else if (c == '\\') {
      if (i + 1 >= s.size()) return fail("a backslash at the end");
      ++i;
      if (s[i] != '\n') word += s[i];
      in_word = in_word || s[i] != '\n';
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

}  // namespace kiln
