#include "common/error.h"

#include <algorithm>
#include <vector>

#include "common/strings.h"

namespace shardrec {

UserError::UserError(const std::string& message) : std::runtime_error(PrintableMessage(message)) {}

std::string PrintableMessage(const std::string& message) {
  const bool utf8 = IsValidUtf8(message);
  std::string out;
  std::vector<size_t> consumed;  // out's size after each byte of `message`
  out.reserve(std::min(message.size(), kMaxErrorBytes) + 8);
  size_t i = 0;
  for (; i < message.size() && out.size() <= kMaxErrorBytes; ++i) {
    const unsigned char c = static_cast<unsigned char>(message[i]);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F || (c >= 0x80 && !utf8)) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
    consumed.push_back(out.size());
  }
  if (i == message.size() && out.size() <= kMaxErrorBytes) return out;  // fits: as it is (so idempotent)
  // Cut to leave room for the note of what was cut, on a character boundary.
  constexpr size_t kKeep = kMaxErrorBytes - 96;
  size_t keep = 0;  // bytes of `message` kept
  while (keep < consumed.size() && consumed[keep] <= kKeep) ++keep;
  while (keep > 0 && utf8 && (static_cast<unsigned char>(message[keep]) & 0xC0) == 0x80) --keep;
  out.resize(keep == 0 ? 0 : consumed[keep - 1]);
  return out + "... (" + std::to_string(message.size() - keep) + " more bytes)";
}

std::string Where(const std::string& file, long long line) {
  return file + ":" + std::to_string(line) + ": ";
}

}  // namespace shardrec
