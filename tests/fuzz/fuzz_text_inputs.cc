// libFuzzer harness of the small text inputs a user hands over: run configurations and cluster
// descriptions (flat YAML, common/flat_yaml.h) and users files (io/recall_lists.h). Each must be
// read or refused with a UserError, never crash, hang or take memory out of proportion to the input;
// a message echoes the input escaped and bounded (common/error.h).
#include <functional>
#include <string>

#include "common/error.h"
#include "common/flat_yaml.h"
#include "io/recall_lists.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardrec;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto bounded = [&](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const UserError& e) {
      const std::string m = e.what();
      if (m.size() > kMaxErrorBytes) std::abort();  // a message must stay bounded
      for (char c : m) {
        if (c == '\0' || c == '\x1b') std::abort();  // and printable
      }
    }
  };
  const std::string dir = fuzz::Scratch();
  fuzz::WriteFile(dir + "/config.yaml", text);
  fuzz::WriteFile(dir + "/users.txt", text);
  fuzz::ExpectOnlyUserErrors([&] { bounded([&] { ParseFlatYaml(text, "config.yaml"); }); });
  fuzz::ExpectOnlyUserErrors([&] { bounded([&] { ReadFlatYaml(dir + "/config.yaml"); }); });
  fuzz::ExpectOnlyUserErrors([&] {
    bounded([&] {
      for (const auto& e : ReadUserList(dir + "/users.txt")) {
        if (e.id.empty() || e.id.size() > kMaxUserIdBytes || e.line < 1) std::abort();
      }
    });
  });
  return 0;
}
