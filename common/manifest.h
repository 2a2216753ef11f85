// JSON manifests that list files by size and CRC-32C, written last and atomically (leveldb's
// CURRENT): the commit record of checkpoints and exports (docs/formats.md).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "common/file_util.h"
#include "common/json.h"

namespace shardrec {

// name -> {"bytes": N, "crc32c": C}
JsonObject FileDigestsToJson(const std::map<std::string, FileDigest>& files);
std::map<std::string, FileDigest> FileDigestsFromJson(const JsonValue& files);

// The manifest's checksum of itself: its last key, the CRC-32C (uint32) of the file's bytes before
// `, "manifest_crc32c": ` (docs/formats.md).
inline constexpr const char* kManifestChecksumKey = "manifest_crc32c";

// Writes `manifest` to `path` with its own checksum as the last key (temp file + fsync + rename +
// fsync of the directory).
void WriteManifestFile(const std::string& path, const JsonObject& manifest);

// Parses `path`, checks its own checksum when it has one (a manifest written before the checksum
// has none: a format whose writers always add it should require the key in `fields`), its "format"
// and "format_version" (from `oldest_version`, -1: only `format_version`, up to `format_version`),
// then calls `fields` on the parsed object. Every
// UserError (a missing key, a wrong type, one `fields` raises) names `path` once.
void ReadManifestFile(const std::string& path, const std::string& format, int64_t format_version,
                      const std::function<void(const JsonValue&)>& fields, int64_t oldest_version = -1);

// DIR/manifest.json of a directory it commits (an export version, recall lists): a missing one is a
// UserError "DIR: no manifest.json (not <what>, or an unfinished one)"; `fields` reads the rest, and
// every file its "files" lists is verified (size and CRC-32C), except those `ignore` (asked after
// `fields`) names: they are neither verified nor returned. Returns the others.
std::map<std::string, FileDigest> ReadVerifiedManifest(const std::string& dir, const std::string& format,
                                                       int64_t format_version, const std::string& what,
                                                       const std::function<void(const JsonValue&)>& fields,
                                                       int64_t oldest_version = -1,
                                                       const std::function<bool(const std::string&)>& ignore = {});

}  // namespace shardrec
