#include "common/error.h"

namespace shardrec {

std::string Where(const std::string& file, long long line) {
  return file + ":" + std::to_string(line) + ": ";
}

}  // namespace shardrec
