// libFuzzer harness of the manifest parsers (common/json.h, common/manifest.h and the export and
// recall manifests of io/): the input is a manifest.json; every reader must accept it or throw a
// UserError, never crash, read a file outside its directory or cast an out-of-range number.
#include <string>

#include "common/json.h"
#include "common/manifest.h"
#include "io/export_format.h"
#include "io/recall_lists.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardrec;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string dir = fuzz::Scratch();
  fuzz::WriteFile(dir + "/manifest.json", text);
  fuzz::ExpectOnlyUserErrors([&] { JsonValue::Parse(text, "input"); });
  fuzz::ExpectOnlyUserErrors([&] { ReadExportManifest(dir); });
  fuzz::ExpectOnlyUserErrors([&] { ReadRecallManifest(dir); });
  // The checkpoint manifest's fields (train/checkpoint.cc reads these through the same parser).
  fuzz::ExpectOnlyUserErrors([&] {
    ReadManifestFile(dir + "/manifest.json", "shardrec.checkpoint", 1, [](const JsonValue& j) {
      j.at("step").integer();
      j.at("world_size").integer();
      FileDigestsFromJson(j.at("files"));
    });
  });
  return 0;
}
