#include "common/manifest.h"

#include "common/error.h"
#include "common/strings.h"

namespace shardrec {

JsonObject FileDigestsToJson(const std::map<std::string, FileDigest>& files) {
  JsonObject out;
  for (const auto& [name, d] : files) {
    JsonObject e;
    e.Add("bytes", d.bytes).Add("crc32c", static_cast<int64_t>(d.crc32c));
    out.Add(name, e);
  }
  return out;
}

std::map<std::string, FileDigest> FileDigestsFromJson(const JsonValue& files) {
  std::map<std::string, FileDigest> out;
  if (files.type != JsonValue::kObject) Fail("'files' is not an object");
  for (const auto& [name, e] : files.object) {
    // Names are files of the manifest's own directory, never paths elsewhere.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos || name.find('\0') != std::string::npos) {
      Fail("files: ", Quote(name), " is not a file name");
    }
    const int64_t bytes = e.at("bytes").integer(), crc = e.at("crc32c").integer();
    if (bytes < 0 || crc < 0 || crc > 0xffffffffLL) Fail("files: ", Quote(name), ": bytes ", bytes, " or crc32c ", crc, " out of range");
    out[name] = {bytes, static_cast<uint32_t>(crc)};
  }
  return out;
}

void WriteManifestFile(const std::string& path, const JsonObject& manifest) {
  WriteFileAtomically(path, manifest.str() + "\n");
}

void ReadManifestFile(const std::string& path, const std::string& format, int64_t format_version,
                      const std::function<void(const JsonValue&)>& fields, int64_t oldest_version) {
  if (oldest_version < 0) oldest_version = format_version;
  try {
    JsonValue j = JsonValue::Parse(ReadFileToString(path), path);
    if (j.type != JsonValue::kObject || !j.has("format") || j.at("format").str() != format) {
      Fail("not a ", format, " manifest (damaged?)");
    }
    const int64_t v = j.at("format_version").integer();
    if (v < oldest_version || v > format_version) {
      Fail("format_version ", v, " is not supported (this build reads ",
           oldest_version == format_version ? std::to_string(format_version)
                                            : std::to_string(oldest_version) + " to " + std::to_string(format_version),
           ")");
    }
    fields(j);
  } catch (const UserError& e) {
    if (std::string(e.what()).rfind(path, 0) == 0) throw;  // already names the file
    Fail(path, ": ", e.what());
  }
}

std::map<std::string, FileDigest> ReadVerifiedManifest(const std::string& dir, const std::string& format,
                                                       int64_t format_version, const std::string& what,
                                                       const std::function<void(const JsonValue&)>& fields,
                                                       int64_t oldest_version,
                                                       const std::function<bool(const std::string&)>& ignore) {
  const std::string path = dir + "/manifest.json";
  if (!PathExists(path)) Fail(dir, ": no manifest.json (not ", what, ", or an unfinished one)");
  std::map<std::string, FileDigest> files;
  ReadManifestFile(path, format, format_version, [&](const JsonValue& j) {
    fields(j);
    files = FileDigestsFromJson(j.at("files"));
  }, oldest_version);
  if (ignore) std::erase_if(files, [&](const auto& f) { return ignore(f.first); });
  for (const auto& [name, digest] : files) VerifyFileDigest(dir + "/" + name, digest);
  return files;
}

}  // namespace shardrec
