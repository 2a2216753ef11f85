#include "io/recall_lists.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string_view>
#include <unordered_map>

#include "common/error.h"
#include "common/file_util.h"
#include "common/manifest.h"
#include "common/strings.h"
#include "io/h5.h"

namespace shardrec {

void WriteRecallPart(const std::string& path, const RecallPart& p) {
  const size_t n = p.users.size(), k = static_cast<size_t>(p.k);
  CHECK_EQ(p.items.size(), n * k);
  CHECK_EQ(p.scores.size(), n * k);
  CHECK_EQ(p.counts.size(), n);
  h5::File f = h5::File::Create(path);
  f.SetAttr("/", "format", std::string("shardrec.recall"));
  f.SetAttr("/", "format_version", kRecallFormatVersion);
  f.SetAttr("/", "k", p.k);
  f.Write<float>("/scores", p.scores, std::max<int64_t>(1, p.k));
  f.Write<int32_t>("/counts", p.counts);
  {
    h5::StringAppender users(&f, "/users");
    for (const auto& u : p.users) users.Append(u);
    users.Flush();
  }
  {
    h5::StringAppender items(&f, "/items");
    for (const auto& i : p.items) items.Append(i);
    items.Flush();
  }
  f.Close();
}

RecallPart ReadRecallPart(const std::string& path) {
  h5::File f = h5::File::Open(path);
  if (f.GetStringAttr("/", "format").value_or("") != "shardrec.recall") Fail(path, ": not a recall-list file (format attribute)");
  RecallPart p;
  p.k = f.GetIntAttr("/", "k").value_or(0);
  if (p.k < 1) Fail(path, ": k attribute missing or < 1");
  p.counts = f.ReadAll<int32_t>("/counts");
  const int64_t n = static_cast<int64_t>(p.counts.size());
  p.scores = f.ReadAll<float>("/scores");
  if (static_cast<int64_t>(p.scores.size()) != n * p.k) Fail(path, ": /scores does not hold ", n, " x ", p.k);
  p.users = h5::ReadStrings(f, "/users", 0, n);
  p.items = h5::ReadStrings(f, "/items", 0, n * p.k);
  for (int64_t u = 0; u < n; ++u) {
    if (p.counts[u] < 0 || p.counts[u] > p.k) Fail(path, ": /counts[", u, "] = ", p.counts[u], " outside [0, ", p.k, "]");
  }
  return p;
}

void WriteRecallManifest(const std::string& dir, RecallManifest m) {
  m.files.clear();
  std::string parts = "[";
  for (size_t i = 0; i < m.parts.size(); ++i) {
    m.files[m.parts[i].file] = DigestFile(dir + "/" + m.parts[i].file);
    JsonObject o;
    o.Add("file", m.parts[i].file).Add("users", m.parts[i].users);
    parts += (i ? ", " : "") + o.str();
  }
  JsonObject o;
  o.Add("format", "shardrec.recall").Add("format_version", m.format_version).Add("export", m.export_dir)
      .Add("export_version", m.export_version).Add("search", m.search).Add("k", m.k).Add("selection", m.selection)
      .Add("num_users", m.num_users).Add("seconds", m.seconds).AddRaw("parts", parts + "]")
      .Add("files", FileDigestsToJson(m.files));
  WriteManifestFile(dir + "/manifest.json", o);
}

RecallManifest ReadRecallManifest(const std::string& dir) {
  RecallManifest m;
  m.files = ReadVerifiedManifest(dir, "shardrec.recall", kRecallFormatVersion, "a recall-list directory", [&](const JsonValue& j) {
    m.format_version = j.at("format_version").integer();
    m.export_dir = j.at("export").str();
    m.export_version = j.at("export_version").str();
    m.search = j.at("search").str();
    m.k = j.at("k").integer();
    m.selection = j.at("selection").str();
    m.num_users = j.at("num_users").integer();
    m.seconds = j.at("seconds").num();
    int64_t total = 0;
    for (const auto& p : j.at("parts").array) {
      m.parts.push_back({p.at("file").str(), p.at("users").integer()});
      total += m.parts.back().users;
    }
    if (total != m.num_users) Fail("parts hold ", total, " users, num_users says ", m.num_users);
    for (const auto& p : m.parts) {
      if (!j.at("files").has(p.file)) Fail("part ", p.file, " has no entry in files");
    }
  });
  return m;
}

std::vector<UserListEntry> ParseUserList(const std::string& text, const std::string& name) {
  std::vector<UserListEntry> out;
  std::unordered_map<std::string_view, int64_t> first_line;
  int64_t line_no = 0;
  for (const auto& line : SplitText(text, "\n")) {
    ++line_no;
    const std::string_view id = Trim(line);
    if (id.empty() || id[0] == '#') continue;
    if (id.size() > kMaxUserIdBytes) {
      Fail(name, ":", line_no, ": a user id of ", id.size(), " bytes (at most ", kMaxUserIdBytes, "): ", Quote(id));
    }
    if (std::any_of(id.begin(), id.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; })) {
      Fail(name, ":", line_no, ": the user id ", Quote(id), " holds a control byte (one raw user id per line, as text)");
    }
    auto [seen, fresh] = first_line.emplace(id, line_no);
    if (!fresh) Fail(name, ":", line_no, ": user id ", Quote(id), " listed twice (first at line ", seen->second, ")");
    out.push_back({std::string(id), line_no});
  }
  if (out.empty()) Fail(name, ": no user ids (one raw user id per line)");
  return out;
}

std::vector<UserListEntry> ReadUserList(const std::string& path) {
  if (!PathExists(path)) Fail("--users: ", path, ": no such file (give 'all' or a file of raw user ids, one per line)");
  return ParseUserList(ReadFileToString(path), path);
}

}  // namespace shardrec
