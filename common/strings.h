// Strict parsing and text helpers used by every reader of user files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardrec {

// Splits on a single-character or multi-character separator; empty fields are kept.
std::vector<std::string_view> SplitText(std::string_view text, std::string_view sep);
// Splits on runs of spaces/tabs; no empty fields.
std::vector<std::string_view> SplitWhitespace(std::string_view text);
std::string_view Trim(std::string_view text);

// Whole-string parses: no leading/trailing junk, no overflow. nullopt on any problem.
std::optional<int64_t> ParseInt64(std::string_view text);
std::optional<double> ParseDouble(std::string_view text);

bool IsValidUtf8(std::string_view text);
// Bytes 0x80-0xFF become their Latin-1 code points in UTF-8.
std::string Latin1ToUtf8(std::string_view text);
// UTF-8 as is when valid, otherwise decoded as Latin-1 (old MovieLens files are ISO-8859-1).
std::string ToUtf8(std::string_view text);

// Iterates lines of a buffer; strips "\n" and a trailing "\r". Line numbers start at 1.
class LineIterator {
 public:
  explicit LineIterator(std::string_view text) : text_(text) {}
  bool Next(std::string_view* line);  // false at end
  long long line_number() const { return line_number_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  long long line_number_ = 0;
};

// printf into `out` (appended), for reports built as text: any length.
void Appendf(std::string& out, const char* format, ...) __attribute__((format(printf, 2, 3)));
// Readable quoting for messages: 'abc' (truncated at 60 chars, non-printables escaped).
std::string Quote(std::string_view text);
// Input echoed into text output: control bytes (tab too), DEL and bytes of text that is not UTF-8
// as \xNN (\t for tab), cut after `max_bytes` bytes of input with "...".
std::string Printable(std::string_view text, size_t max_bytes);

}  // namespace shardrec
