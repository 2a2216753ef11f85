// Error policy (docs/errors.md): a user's mistake (bad file, bad flag, bad id, unreachable peer)
// is reported by throwing UserError with one complete message that names the file/line/field; the
// CLI prints it once and exits non-zero. Broken invariants (programming errors) use glog's CHECK.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace shardrec {

// Thrown for mistakes the user can fix. what() is the whole message, e.g.
//   "data/u.data:17: expected 4 tab-separated fields (user item rating timestamp), got 3"
// The message is kept printable whatever input it echoes: control bytes (but newline and tab), NUL
// included, and bytes of text that is not UTF-8 become \xNN, and past kMaxErrorBytes it is cut
// ("... (N more bytes)"); so a 5 MB id or a terminal escape in a flag never reaches a terminal raw.
class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& message);
};
inline constexpr size_t kMaxErrorBytes = 4096;
// What UserError keeps of a message (idempotent).
std::string PrintableMessage(const std::string& message);

// A UserError that every rank of a job raised with the same message, agreed through a collective
// (distributed/communicator.h, FirstError): rank 0 reports it, every rank exits with status 2, and no
// rank needs to abort the others.
class AgreedUserError : public UserError {
 public:
  using UserError::UserError;
};

// Concatenates its arguments with operator<< and throws UserError.
template <typename... Args>
[[noreturn]] void Fail(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  throw UserError(os.str());
}

// A flag's value check: unless `ok`, fails with "--<flag>: expected <expected>, got <value>".
template <typename T>
void RequireFlag(bool ok, const char* flag, const char* expected, const T& value) {
  if (!ok) Fail("--", flag, ": expected ", expected, ", got ", value);
}

// Location prefix "file:line: " used by every parser.
std::string Where(const std::string& file, long long line);

}  // namespace shardrec
