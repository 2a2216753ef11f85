#include "common/manifest.h"

#include <glog/logging.h>

#include <cstdlib>
#include <string_view>

#include "common/crc32c.h"
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

namespace {

constexpr std::string_view kSelfChecksumKey = ", \"manifest_crc32c\": ";

// `text` without its trailing newline(s), when it ends in the self-checksum key: the CRC-32C it
// records, and where the key starts (the bytes before it are the ones covered). Absent: -1.
int64_t FindSelfChecksum(std::string_view text, size_t* covered) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (text.empty() || text.back() != '}') return -1;
  const size_t at = text.rfind(kSelfChecksumKey);
  if (at == std::string_view::npos) return -1;
  const std::string_view digits = text.substr(at + kSelfChecksumKey.size(), text.size() - 1 - at - kSelfChecksumKey.size());
  if (digits.empty() || digits.size() > 10 || digits.find_first_not_of("0123456789") != std::string_view::npos) return -1;
  *covered = at;
  return std::strtoll(std::string(digits).c_str(), nullptr, 10);
}

}  // namespace

void WriteManifestFile(const std::string& path, const JsonObject& manifest) {
  // The manifest's own checksum, its last key: the CRC-32C of every byte before ", "manifest_crc32c"".
  std::string text = manifest.str();
  CHECK(text.size() > 2 && text.back() == '}') << "an empty manifest";
  text.pop_back();
  const uint32_t crc = Crc32c(text.data(), text.size());
  text += std::string(kSelfChecksumKey) + std::to_string(crc) + "}\n";
  WriteFileAtomically(path, text);
}

void ReadManifestFile(const std::string& path, const std::string& format, int64_t format_version,
                      const std::function<void(const JsonValue&)>& fields, int64_t oldest_version) {
  if (oldest_version < 0) oldest_version = format_version;
  try {
    const std::string text = ReadFileToString(path);
    JsonValue j = JsonValue::Parse(text, path);
    if (j.type != JsonValue::kObject || !j.has("format") || j.at("format").str() != format) {
      Fail("not a ", format, " manifest (damaged?)");
    }
    // Verified wherever present (readers of formats that always write it require the key too).
    if (j.has(kManifestChecksumKey)) {
      size_t covered = 0;
      const int64_t recorded = FindSelfChecksum(text, &covered);
      if (recorded < 0) Fail(kManifestChecksumKey, " is not the last key, as a number (damaged?)");
      const uint32_t crc = Crc32c(text.data(), covered);
      if (recorded != static_cast<int64_t>(crc)) {
        Fail("the manifest's own checksum does not match: ", kManifestChecksumKey, " ", recorded, ", the bytes before it ",
             crc, " (the file is damaged)");
      }
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
