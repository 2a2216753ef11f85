#include "io/convert.h"
#include "io/event_log.h"

#include <glog/logging.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <map>
#include <numeric>
#include <unordered_map>

#include "common/error.h"
#include "common/file_util.h"
#include "common/strings.h"

namespace shardrec {
namespace {

// The longest line a text input may have: far above any real line (a 'lines'-layout user with a
// million events), far below what a binary or endless input would grow to.
constexpr size_t kMaxLineBytes = size_t{256} << 20;

// A text input, whole: a regular file (a device or a FIFO is refused), read in chunks, so that a
// binary file (a NUL byte) or a runaway line ends with a message naming the line instead of
// exhausting memory; a UTF-8 byte-order mark at the start is dropped.
std::string ReadTextInput(const std::string& path) {
  CheckRegularFile(path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) Fail(path, ": cannot open: ", std::strerror(errno));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, &std::fclose);
  std::string text;
  std::vector<char> chunk(size_t{1} << 20);
  long long line = 1;
  size_t line_start = 0;
  while (true) {
    const size_t n = std::fread(chunk.data(), 1, chunk.size(), f);
    if (n == 0) break;
    const size_t begin = text.size();
    text.append(chunk.data(), n);
    for (size_t i = begin; i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        line_start = i + 1;
      } else if (text[i] == '\0') {
        Fail(Where(path, line), "a NUL byte: binary data, expected a text file");
      }
    }
    if (text.size() - line_start > kMaxLineBytes) {
      Fail(Where(path, line), "line longer than ", kMaxLineBytes >> 20, " MiB: not a text file?");
    }
  }
  if (std::ferror(f)) Fail(path, ": read error: ", std::strerror(errno));
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  return text;
}


struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Interns raw ids into consecutive indices in order of first appearance. Integer ids (all of
// MovieLens and the sequence formats) take a direct-indexed table when small, a hash map otherwise;
// their canonical text ("007" == "7") is made once, on first sight.
class Interner {
 public:
  int32_t Get(std::string_view s) {
    auto it = index_.find(s);
    if (it != index_.end()) return it->second;
    int32_t id = Add(std::string(s));
    index_.emplace(names_.back(), id);
    return id;
  }
  int32_t GetInt(int64_t v) {
    if (v >= 0 && v < kDirectLimit) {
      if (static_cast<size_t>(v) >= direct_.size()) {
        direct_.resize(std::max<size_t>(static_cast<size_t>(v) + 1, direct_.size() * 2), -1);
      }
      int32_t& slot = direct_[static_cast<size_t>(v)];
      if (slot < 0) slot = Add(std::to_string(v));
      return slot;
    }
    auto it = int_index_.find(v);
    if (it != int_index_.end()) return it->second;
    int32_t id = Add(std::to_string(v));
    int_index_.emplace(v, id);
    return id;
  }
  const std::vector<std::string>& names() const { return names_; }

 private:
  static constexpr int64_t kDirectLimit = int64_t{1} << 26;
  int32_t Add(std::string name) {
    CHECK_LT(names_.size(), static_cast<size_t>(INT32_MAX)) << "too many distinct ids";
    names_.push_back(std::move(name));
    return static_cast<int32_t>(names_.size() - 1);
  }
  std::vector<std::string> names_;
  std::vector<int32_t> direct_;
  std::unordered_map<int64_t, int32_t> int_index_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> index_;
};

struct Event {
  int32_t user;
  int32_t item;
  int64_t ts;
  int64_t order;  // input position: ties in time keep file order
  float rating;
};

struct ItemMeta {
  std::string title;
  std::vector<int32_t> categories;  // indices into RawData::category_names
};

struct RawData {
  Interner users, items;
  std::vector<Event> events;
  bool has_timestamps = false;
  bool has_ratings = false;
  bool has_titles = false;
  bool has_categories = false;
  std::unordered_map<std::string, ItemMeta> meta;  // by raw item id
  std::vector<std::string> category_names;
  std::string detected;
};

int64_t NeedInt(std::string_view field, const std::string& file, long long line,
                const char* what) {
  auto v = ParseInt64(Trim(field));
  if (!v) Fail(Where(file, line), "expected an integer ", what, ", got ", Quote(field));
  return *v;
}

double NeedNumber(std::string_view field, const std::string& file, long long line,
                  const char* what) {
  auto v = ParseDouble(Trim(field));
  if (!v || !std::isfinite(*v)) Fail(Where(file, line), "expected a number ", what, ", got ", Quote(field));
  return *v;
}

// Integer ids are kept in their canonical text form ("007" and "7" are the same user).
std::string IdText(std::string_view field, const std::string& file, long long line,
                   const char* what) {
  return std::to_string(NeedInt(field, file, line, what));
}

// ---- MovieLens ---------------------------------------------------------------------------------

// "user SEP item SEP rating SEP timestamp" lines (u.data, ratings.dat).
void ParseRatings(const std::string& path, std::string_view sep, const char* expected,
                  RawData* raw) {
  const std::string text = ReadTextInput(path);
  raw->has_timestamps = raw->has_ratings = true;
  LineIterator lines(text);
  std::string_view line;
  while (lines.Next(&line)) {
    if (Trim(line).empty()) continue;
    auto f = SplitText(line, sep);
    if (f.size() != 4) {
      Fail(Where(path, lines.line_number()), "expected ", expected, ", got ", f.size(), ": ",
           Quote(line));
    }
    const long long n = lines.line_number();
    Event e;
    e.user = raw->users.GetInt(NeedInt(f[0], path, n, "user id"));
    e.item = raw->items.GetInt(NeedInt(f[1], path, n, "item id"));
    e.rating = static_cast<float>(NeedNumber(f[2], path, n, "rating"));
    e.ts = NeedInt(f[3], path, n, "timestamp");
    e.order = static_cast<int64_t>(raw->events.size());
    raw->events.push_back(e);
  }
}

void ParseMovieLens100K(const std::string& dir, RawData* raw) {
  ParseRatings(dir + "/u.data", "\t",
               "4 tab-separated fields (user item rating timestamp)", raw);
  std::string_view line;
  raw->detected = "movielens (ml-100k layout: u.data";
  // Genres: u.genre "name|index" lines; u.item has one 0/1 flag per genre.
  const std::string genre_path = dir + "/u.genre";
  if (PathExists(genre_path)) {
    std::vector<std::pair<int64_t, std::string>> genres;
    std::string gtext = ReadTextInput(genre_path);
    LineIterator g2(gtext);
    while (g2.Next(&line)) {
      if (Trim(line).empty()) continue;
      auto f = SplitText(line, "|");
      if (f.size() != 2) Fail(Where(genre_path, g2.line_number()), "expected 'name|index', got ", Quote(line));
      genres.emplace_back(NeedInt(f[1], genre_path, g2.line_number(), "genre index"), ToUtf8(f[0]));
    }
    std::sort(genres.begin(), genres.end());
    for (size_t i = 0; i < genres.size(); ++i) {
      if (genres[i].first != static_cast<int64_t>(i)) Fail(genre_path, ": genre indices must be 0..", genres.size() - 1);
      raw->category_names.push_back(genres[i].second);
    }
    raw->detected += ", u.genre";
  }
  const std::string item_path = dir + "/u.item";
  if (PathExists(item_path)) {
    const std::string itext = ReadTextInput(item_path);
    LineIterator il(itext);
    raw->has_titles = true;
    raw->has_categories = true;
    while (il.Next(&line)) {
      if (Trim(line).empty()) continue;
      auto f = SplitText(line, "|");
      if (f.size() < 6) {
        Fail(Where(item_path, il.line_number()),
             "expected 'id|title|release|video release|url|genre flags...', got ", f.size(), " fields");
      }
      const size_t flags = f.size() - 5;
      if (raw->category_names.empty()) {
        for (size_t g = 0; g < flags; ++g) raw->category_names.push_back("genre" + std::to_string(g));
      }
      if (flags != raw->category_names.size()) {
        Fail(Where(item_path, il.line_number()), "expected ", raw->category_names.size(),
             " genre flags (from u.genre), got ", flags);
      }
      ItemMeta m;
      m.title = ToUtf8(f[1]);
      for (size_t g = 0; g < flags; ++g) {
        int64_t flag = NeedInt(f[5 + g], item_path, il.line_number(), "genre flag (0 or 1)");
        if (flag != 0 && flag != 1) Fail(Where(item_path, il.line_number()), "genre flag must be 0 or 1, got ", flag);
        if (flag) m.categories.push_back(static_cast<int32_t>(g));
      }
      raw->meta[IdText(f[0], item_path, il.line_number(), "item id")] = std::move(m);
    }
    raw->detected += ", u.item";
  }
  raw->detected += ")";
}

void ParseMovieLensDat(const std::string& dir, RawData* raw) {
  ParseRatings(dir + "/ratings.dat", "::",
               "4 '::'-separated fields (UserID::MovieID::Rating::Timestamp)", raw);
  std::string_view line;
  raw->detected = "movielens (ml-1m/10m layout: ratings.dat";
  const std::string movie_path = dir + "/movies.dat";
  if (PathExists(movie_path)) {
    raw->has_titles = raw->has_categories = true;
    Interner genres;
    const std::string mtext = ReadTextInput(movie_path);
    LineIterator ml(mtext);
    while (ml.Next(&line)) {
      if (Trim(line).empty()) continue;
      auto f = SplitText(line, "::");
      if (f.size() != 3) {
        Fail(Where(movie_path, ml.line_number()),
             "expected 3 '::'-separated fields (MovieID::Title::Genres), got ", f.size());
      }
      ItemMeta m;
      m.title = ToUtf8(f[1]);
      for (auto g : SplitText(f[2], "|")) {
        if (!Trim(g).empty() && Trim(g) != "(no genres listed)") {
          m.categories.push_back(genres.Get(ToUtf8(Trim(g))));
        }
      }
      raw->meta[IdText(f[0], movie_path, ml.line_number(), "movie id")] = std::move(m);
    }
    raw->category_names = genres.names();
    raw->detected += ", movies.dat";
  }
  raw->detected += ")";
}

void ParseMovieLens(const std::string& input, RawData* raw) {
  std::string dir = input;
  if (!IsDirectory(dir)) {
    if (!PathExists(dir)) Fail(input, ": no such file or directory");
    dir = Dirname(input);
  }
  if (PathExists(dir + "/u.data")) {
    ParseMovieLens100K(dir, raw);
  } else if (PathExists(dir + "/ratings.dat")) {
    ParseMovieLensDat(dir, raw);
  } else {
    Fail(dir, ": no MovieLens ratings found (expected u.data for ML-100K or ratings.dat for "
              "ML-1M/10M; ML-20M's ratings.csv converts with --format csv)");
  }
}

// ---- seq ---------------------------------------------------------------------------------------

void ParseSeq(const std::string& path, const std::string& layout_flag, RawData* raw) {
  if (IsDirectory(path)) Fail(path, ": is a directory; --format seq reads one file");
  const std::string text = ReadTextInput(path);
  std::string layout = layout_flag;
  if (layout != "auto" && layout != "lines" && layout != "pairs") {
    Fail("--seq-layout: expected auto, lines or pairs, got ", Quote(layout));
  }
  std::string_view line;
  if (layout == "auto") {
    // Pairs when every line has exactly two fields and some user has several lines; if no user
    // repeats, both readings give the same events.
    bool all_two = true;
    std::unordered_map<std::string_view, int> seen;
    bool repeats = false;
    LineIterator it(text);
    while (it.Next(&line)) {
      auto f = SplitWhitespace(line);
      if (f.empty()) continue;
      if (f.size() != 2) {
        all_two = false;
        break;
      }
      if (++seen[f[0]] > 1) repeats = true;
    }
    layout = all_two && repeats ? "pairs" : "lines";
  }
  raw->detected = "seq (" + layout + ": " +
                  (layout == "pairs" ? "'user item' per line" : "'user item1 item2 ...' per line") + ")";
  std::unordered_map<int32_t, long long> user_line;
  LineIterator it(text);
  while (it.Next(&line)) {
    auto f = SplitWhitespace(line);
    if (f.empty()) continue;
    if (layout == "pairs" && f.size() != 2) {
      Fail(Where(path, it.line_number()), "expected 'user item' (2 fields), got ", f.size(), ": ",
           Quote(line));
    }
    if (f.size() < 2) {
      Fail(Where(path, it.line_number()), "expected a user id followed by item ids, got ",
           Quote(line));
    }
    int32_t user = raw->users.GetInt(NeedInt(f[0], path, it.line_number(), "user id"));
    if (layout == "lines") {
      auto [pos, inserted] = user_line.emplace(user, it.line_number());
      if (!inserted) {
        Fail(Where(path, it.line_number()), "user ", f[0], " already has a line (line ",
             pos->second, "); the 'lines' layout has one line per user (use --seq-layout pairs?)");
      }
    }
    for (size_t k = 1; k < f.size(); ++k) {
      Event e;
      e.user = user;
      e.item = raw->items.GetInt(NeedInt(f[k], path, it.line_number(), "item id"));
      e.ts = 0;
      e.rating = 0;
      e.order = static_cast<int64_t>(raw->events.size());
      raw->events.push_back(e);
    }
  }
}

// ---- csv ---------------------------------------------------------------------------------------

// RFC 4180 fields of one line ("a","b ""quoted""",c). Fails on an unterminated quote.
std::vector<std::string> SplitCsv(std::string_view line, char delim, const std::string& file,
                                  long long line_no) {
  std::vector<std::string> out;
  std::string cur;
  size_t i = 0;
  bool field_start = true;
  while (true) {
    if (field_start && i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        if (i >= line.size()) Fail(Where(file, line_no), "unterminated quoted field");
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            cur.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        cur.push_back(line[i++]);
      }
      if (i < line.size() && line[i] != delim) {
        Fail(Where(file, line_no), "unexpected character after a closing quote");
      }
    }
    field_start = false;
    if (i >= line.size()) {
      out.push_back(std::move(cur));
      return out;
    }
    if (line[i] == delim) {
      out.push_back(std::move(cur));
      cur.clear();
      field_start = true;
      ++i;
      continue;
    }
    cur.push_back(line[i++]);
  }
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The delimiter of a CSV file: --delimiter, else the most frequent of ',', tab and ';' in the header.
char DetectDelimiter(std::string_view header_line, char given, const std::string& where) {
  if (given != 0) return given;
  char delim = 0;
  size_t best = 0;
  for (char c : {',', '\t', ';'}) {
    size_t n = std::count(header_line.begin(), header_line.end(), c);
    if (n > best) {
      best = n;
      delim = c;
    }
  }
  if (delim == 0) Fail(where, "cannot find a delimiter (',', ';' or tab) in the header ", Quote(header_line));
  return delim;
}

// Column of each role in a CSV header (-1: absent): explicit --columns first, then well-known names.
struct CsvColumns {
  int user = -1, item = -1, timestamp = -1, rating = -1;
};
CsvColumns FindColumns(const std::vector<std::string>& header, const std::string& columns, const std::string& where) {
  std::map<std::string, std::string> mapping;
  if (!columns.empty()) {
    for (auto kv : SplitText(columns, ",")) {
      auto p = SplitText(kv, "=");
      std::string role = p.size() == 2 ? Lower(Trim(p[0])) : "";
      if (role != "user" && role != "item" && role != "timestamp" && role != "rating") {
        Fail("--columns: expected role=NAME with role user, item, timestamp or rating, got ", Quote(kv));
      }
      mapping[role] = std::string(Trim(p[1]));
    }
  }
  const std::map<std::string, std::vector<std::string>> known = {
      {"user", {"user", "user_id", "userid", "uid", "reviewerid", "customer_id"}},
      {"item", {"item", "item_id", "itemid", "iid", "movieid", "asin", "product_id", "productid"}},
      {"timestamp", {"timestamp", "time", "ts", "unixreviewtime", "datetime_unix"}},
      {"rating", {"rating", "score", "overall", "stars"}}};
  std::string header_list;
  for (const auto& h : header) header_list += (header_list.empty() ? "" : ", ") + h;
  auto column_of = [&](const std::string& role, bool required) -> int {
    auto m = mapping.find(role);
    if (m != mapping.end()) {
      for (size_t i = 0; i < header.size(); ++i) {
        if (header[i] == m->second) return static_cast<int>(i);
      }
      Fail(where, "no column named ", Quote(m->second), " (given for ", role, " by --columns); the header has: ", header_list);
    }
    for (const auto& name : known.at(role)) {
      for (size_t i = 0; i < header.size(); ++i) {
        if (Lower(header[i]) == name) return static_cast<int>(i);
      }
    }
    if (required) {
      Fail(where, "no ", role, " column; the header has: ", header_list, " (name it with --columns ", role, "=NAME)");
    }
    return -1;
  };
  CsvColumns c;
  c.user = column_of("user", true);
  c.item = column_of("item", true);
  c.timestamp = column_of("timestamp", false);
  c.rating = column_of("rating", false);
  return c;
}

// One event from the fields `f` of a data line.
Event CsvEvent(const std::vector<std::string_view>& f, const std::vector<std::string>& header, const CsvColumns& c,
               const std::string& path, long long line_no, RawData* raw) {
  auto id = [&](int col, const char* what) {
    std::string_view v = Trim(f[col]);
    if (v.empty()) Fail(Where(path, line_no), "empty ", what, " in column ", header[col]);
    if (!IsValidUtf8(v)) {
      Fail(Where(path, line_no), what, " in column ", header[col], " is not UTF-8: ", Quote(v),
           " (convert the file, e.g. iconv -f latin1 -t utf-8)");
    }
    return v;
  };
  // Raw ids may be strings (e.g. ASINs); integers are canonicalised.
  auto intern = [](Interner& in, std::string_view v) {
    auto n = ParseInt64(v);
    return n ? in.GetInt(*n) : in.Get(v);
  };
  Event e;
  e.user = intern(raw->users, id(c.user, "user id"));
  e.item = intern(raw->items, id(c.item, "item id"));
  e.ts = 0;
  if (c.timestamp >= 0) {
    double t = NeedNumber(f[c.timestamp], path, line_no, ("timestamp in column " + header[c.timestamp]).c_str());
    e.ts = static_cast<int64_t>(std::floor(t));
  }
  e.rating = c.rating >= 0
                 ? static_cast<float>(NeedNumber(f[c.rating], path, line_no, ("rating in column " + header[c.rating]).c_str()))
                 : 0.f;
  e.order = static_cast<int64_t>(raw->events.size());
  return e;
}

void ParseCsv(const std::string& path, const ConvertOptions& opt, RawData* raw) {
  if (IsDirectory(path)) Fail(path, ": is a directory; --format csv reads one file");
  const std::string text = ReadTextInput(path);
  LineIterator it(text);
  std::string_view header_line;
  while (it.Next(&header_line) && Trim(header_line).empty()) {
  }
  if (Trim(header_line).empty()) Fail(path, ": empty input (expected a header line and events)");
  const char delim = DetectDelimiter(header_line, opt.delimiter, Where(path, it.line_number()));
  const long long header_no = it.line_number();
  std::vector<std::string> header = SplitCsv(header_line, delim, path, header_no);
  for (auto& h : header) h = std::string(Trim(h));
  const CsvColumns c = FindColumns(header, opt.columns, Where(path, header_no));
  raw->has_timestamps = c.timestamp >= 0;
  raw->has_ratings = c.rating >= 0;
  raw->detected = std::string("csv (delimiter ") + (delim == '\t' ? "tab" : std::string(1, delim)) +
                  "; user=" + header[c.user] + ", item=" + header[c.item] +
                  (c.timestamp >= 0 ? ", timestamp=" + header[c.timestamp] : "") +
                  (c.rating >= 0 ? ", rating=" + header[c.rating] : "") + ")";
  std::string_view line;
  const std::string delim_str(1, delim);
  std::vector<std::string> quoted;
  std::vector<std::string_view> f;
  while (it.Next(&line)) {
    if (Trim(line).empty()) continue;
    // Fast path without allocations for the common unquoted line.
    if (line.find('"') == std::string_view::npos) {
      f = SplitText(line, delim_str);
    } else {
      quoted = SplitCsv(line, delim, path, it.line_number());
      f.assign(quoted.begin(), quoted.end());
    }
    if (f.size() != header.size()) {
      Fail(Where(path, it.line_number()), "expected ", header.size(), " fields (as in the header), got ",
           f.size(), ": ", Quote(line));
    }
    raw->events.push_back(CsvEvent(f, header, c, path, it.line_number(), raw));
  }
}

// ---- event log ---------------------------------------------------------------------------------

// Every complete segment of the event log `dir` (io/event_log.h), in log order. An event's title and
// categories describe its item: the last given in log order wins, over the --items catalogue too.
void ParseEventLog(const std::string& dir, RawData* raw) {
  if (!IsDirectory(dir)) Fail(dir, ": --format events reads an event log directory");
  const std::vector<std::string> segments = ListSegments(dir);
  if (segments.empty()) Fail(dir, ": no segment in the event log (files named <16 digits>-<producer>.jsonl)");
  Interner categories;
  for (const std::string& c : raw->category_names) categories.Get(c);  // --items's, read first
  auto intern = [](Interner& in, const std::string& v) {
    auto n = ParseInt64(v);
    return n ? in.GetInt(*n) : in.Get(v);
  };
  raw->has_timestamps = true;
  for (const std::string& name : segments) {
    for (LogEvent& le : ReadSegment(dir + "/" + name)) {
      Event e{.user = intern(raw->users, le.user), .item = intern(raw->items, le.item), .ts = le.ts,
              .order = static_cast<int64_t>(raw->events.size()), .rating = 0.f};
      raw->events.push_back(e);
      if (!le.title && !le.categories) continue;
      ItemMeta& m = raw->meta[raw->items.names()[e.item]];
      if (le.title) {
        m.title = std::move(*le.title);
        raw->has_titles = true;
      }
      if (le.categories) {
        raw->has_categories = true;
        m.categories.clear();
        for (const std::string& c : *le.categories) m.categories.push_back(categories.Get(c));
        std::sort(m.categories.begin(), m.categories.end());
        m.categories.erase(std::unique(m.categories.begin(), m.categories.end()), m.categories.end());
      }
    }
  }
  raw->category_names = categories.names();
  raw->detected = "event log (" + std::to_string(segments.size()) + " segments)" + raw->detected;
}

// ---- item catalogue (--items) --------------------------------------------------------------------

void ParseItemsFile(const std::string& path, RawData* raw) {
  const std::string text = ReadTextInput(path);
  LineIterator it(text);
  std::string_view line;
  Interner categories;
  bool first = true;
  while (it.Next(&line)) {
    if (Trim(line).empty()) continue;
    auto f = SplitText(line, "\t");
    const long long n = it.line_number();
    if (f.size() > 3) Fail(Where(path, n), "expected 'item<TAB>title<TAB>categories' (at most 3 tab-separated fields), got ", f.size());
    const std::string_view id = Trim(f[0]);
    if (first) {
      first = false;
      if (id == "item" || id == "item_id" || id == "id") continue;  // a header
    }
    if (id.empty()) Fail(Where(path, n), "empty item id");
    if (!IsValidUtf8(line)) Fail(Where(path, n), "not UTF-8: ", Quote(line), " (convert the file, e.g. iconv -f latin1 -t utf-8)");
    auto num = ParseInt64(id);
    const std::string key = num ? std::to_string(*num) : std::string(id);
    if (raw->meta.count(key)) Fail(Where(path, n), "item ", Quote(id), " is listed twice");
    ItemMeta m;
    if (f.size() >= 2) {
      m.title = std::string(Trim(f[1]));
      raw->has_titles = true;
    }
    if (f.size() >= 3) {
      raw->has_categories = true;
      for (auto c : SplitText(f[2], "|")) {
        if (!Trim(c).empty()) m.categories.push_back(categories.Get(Trim(c)));
      }
      std::sort(m.categories.begin(), m.categories.end());
      m.categories.erase(std::unique(m.categories.begin(), m.categories.end()), m.categories.end());
    }
    raw->meta[key] = std::move(m);
  }
  if (raw->meta.empty()) Fail(path, ": no items listed");
  raw->category_names = categories.names();
  raw->detected += ", catalogue " + Basename(path);
}

// ---- building ----------------------------------------------------------------------------------

// Order of raw ids: numeric when all are integers, else bytewise.
std::vector<int32_t> RawIdOrder(const std::vector<std::string>& names,
                                const std::vector<bool>& keep) {
  std::vector<int32_t> idx;
  bool numeric = true;
  std::vector<int64_t> num(names.size(), 0);
  for (size_t i = 0; i < names.size(); ++i) {
    if (!keep[i]) continue;
    idx.push_back(static_cast<int32_t>(i));
    auto v = ParseInt64(names[i]);
    if (v) {
      num[i] = *v;
    } else {
      numeric = false;
    }
  }
  if (numeric) {
    std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return num[a] < num[b]; });
  } else {
    std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return names[a] < names[b]; });
  }
  return idx;
}

// Checks that the output replaces no input, and reads the input (and --items) into `raw`.
void ParseInput(const std::string& input, const std::string& output, const ConvertOptions& opt, RawData& raw) {
  // The output must not replace an input (the rename that publishes it would).
  const std::string input_dir = IsDirectory(input) ? input : Dirname(input);
  for (const std::string& in : {input, input_dir + "/u.data", input_dir + "/u.item", input_dir + "/u.genre",
                                input_dir + "/ratings.dat", input_dir + "/movies.dat"}) {
    if (SameFile(output, in)) Fail("--output ", output, " is an input file (", in, "); write the dataset elsewhere");
  }
  if (!opt.items_file.empty() && opt.format == "movielens") {
    Fail("--items: MovieLens reads its own catalogue (u.item or movies.dat)");
  }
  if (opt.format == "movielens") {
    ParseMovieLens(input, &raw);
  } else if (opt.format == "seq") {
    ParseSeq(input, opt.seq_layout, &raw);
  } else if (opt.format == "csv") {
    ParseCsv(input, opt, &raw);
  } else if (opt.format != "events") {
    Fail("--format: unknown format ", Quote(opt.format), "; expected movielens, seq, csv or events");
  }
  if (!opt.items_file.empty()) {
    if (SameFile(output, opt.items_file)) Fail("--output ", output, " is the --items file; write the dataset elsewhere");
    ParseItemsFile(opt.items_file, &raw);
  }
  if (opt.format == "events") ParseEventLog(input, &raw);  // after --items: the log's titles win
}

// Keeps the first event of each (user, item) of `ev` (sorted by user, then time).
void DropDuplicates(std::vector<Event>& ev, ConvertReport& report) {
  std::vector<Event> kept;
  kept.reserve(ev.size());
  size_t i = 0;
  while (i < ev.size()) {
    size_t j = i;
    while (j < ev.size() && ev[j].user == ev[i].user) ++j;
    std::vector<int32_t> seen;
    for (size_t k = i; k < j; ++k) seen.push_back(ev[k].item);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    std::vector<bool> used(seen.size(), false);
    for (size_t k = i; k < j; ++k) {
      size_t pos = std::lower_bound(seen.begin(), seen.end(), ev[k].item) - seen.begin();
      if (!used[pos]) {
        used[pos] = true;
        kept.push_back(ev[k]);
      }
    }
    i = j;
  }
  report.dropped_duplicates = static_cast<int64_t>(ev.size() - kept.size());
  ev.swap(kept);
}

// k-core: drop users/items below the thresholds until nothing changes.
void KCore(std::vector<Event>& ev, size_t nu, size_t ni, const ConvertOptions& opt, ConvertReport& report) {
  if (opt.min_user_events > 0 || opt.min_item_events > 0) {
    const size_t before = ev.size();
    while (true) {
      std::vector<int64_t> uc(nu, 0), ic(ni, 0);
      for (const auto& e : ev) {
        ++uc[e.user];
        ++ic[e.item];
      }
      auto end = std::remove_if(ev.begin(), ev.end(), [&](const Event& e) {
        return uc[e.user] < opt.min_user_events || ic[e.item] < opt.min_item_events;
      });
      ++report.kcore_rounds;
      if (end == ev.end()) break;
      ev.erase(end, ev.end());
    }
    report.dropped_by_kcore = static_cast<int64_t>(before - ev.size());
  }
}

// The events the options keep, sorted by (user, time, input order).
void FilterEvents(RawData& raw, const ConvertOptions& opt, const std::string& input, ConvertReport& report) {
  std::vector<Event>& ev = raw.events;
  if (opt.since || opt.until) {
    if (!raw.has_timestamps) Fail("--since/--until: ", input, " has no timestamps");
    if (opt.since && opt.until && *opt.until <= *opt.since) {
      Fail("--until ", *opt.until, " is not after --since ", *opt.since, ": the window is empty");
    }
    auto end = std::remove_if(ev.begin(), ev.end(), [&](const Event& e) {
      return (opt.since && e.ts < *opt.since) || (opt.until && e.ts >= *opt.until);
    });
    report.dropped_by_time = ev.end() - end;
    ev.erase(end, ev.end());
  }
  if (opt.min_rating) {
    if (!raw.has_ratings) Fail("--min-rating: ", input, " has no ratings");
    auto end = std::remove_if(ev.begin(), ev.end(),
                              [&](const Event& e) { return e.rating < *opt.min_rating; });
    report.dropped_by_rating = ev.end() - end;
    ev.erase(end, ev.end());
  }
  std::sort(ev.begin(), ev.end(), [](const Event& a, const Event& b) {
    if (a.user != b.user) return a.user < b.user;
    if (a.ts != b.ts) return a.ts < b.ts;
    return a.order < b.order;
  });
  if (opt.dedup) DropDuplicates(ev, report);
  KCore(ev, raw.users.names().size(), raw.items.names().size(), opt, report);
  if (ev.empty()) {
    Fail(input, ": no events left after filtering (", report.dropped_by_time, " by --since/--until, ", report.dropped_by_rating,
         " by --min-rating, ",
         report.dropped_by_kcore, " by --min-user-events/--min-item-events)");
  }

}

// Writes the dataset of the filtered events; report.info holds what it wrote.
void WriteConverted(RawData& raw, const ConvertOptions& opt, const std::string& input, const std::string& output,
                    ConvertReport& report) {
  const std::vector<Event>& ev = raw.events;
  const size_t nu = raw.users.names().size();
  // The catalogue's items join those with events (the k-core, when asked for, leaves them out:
  // it counts events, and they have none).
  if (opt.min_item_events <= 0) {
    for (const auto& [name, m] : raw.meta) {
      auto num = ParseInt64(name);
      num ? raw.items.GetInt(*num) : raw.items.Get(name);
    }
  }
  const size_t all_items = raw.items.names().size();
  std::vector<bool> user_kept(nu, false), item_kept(all_items, false);
  for (const auto& e : ev) {
    user_kept[e.user] = true;
    item_kept[e.item] = true;
  }
  if (opt.min_item_events <= 0) {
    for (size_t i = 0; i < all_items; ++i) {
      if (raw.meta.count(raw.items.names()[i]) && !item_kept[i]) {
        item_kept[i] = true;
        ++report.items_without_events;
      }
    }
  }
  std::vector<int32_t> user_order = RawIdOrder(raw.users.names(), user_kept);
  std::vector<int32_t> item_order = RawIdOrder(raw.items.names(), item_kept);
  std::vector<int32_t> item_dense(all_items, -1);
  for (size_t d = 0; d < item_order.size(); ++d) item_dense[item_order[d]] = static_cast<int32_t>(d);
  // Events grouped per user (already sorted by time within a user).
  std::vector<int64_t> user_begin(nu + 1, 0);
  for (const auto& e : ev) ++user_begin[e.user + 1];
  std::partial_sum(user_begin.begin(), user_begin.end(), user_begin.begin());

  DatasetWriterOptions wo;
  wo.timestamps = raw.has_timestamps;
  wo.titles = raw.has_titles;
  wo.categories = raw.has_categories;
  wo.source = "shardrec data convert --format " + opt.format + " " + Basename(input) +
              " [" + raw.detected + "]";
  auto writer = DatasetWriter::Create(output, wo);
  std::vector<int32_t> items;
  std::vector<int64_t> ts;
  for (int32_t u : user_order) {
    items.clear();
    ts.clear();
    for (int64_t k = user_begin[u]; k < user_begin[u + 1]; ++k) {
      items.push_back(item_dense[ev[k].item]);
      if (raw.has_timestamps) ts.push_back(ev[k].ts);
    }
    writer->AddUser(raw.users.names()[u], items, ts);
  }
  if (raw.has_categories) writer->SetCategoryNames(raw.category_names);
  static const ItemMeta kNoMeta;
  for (int32_t i : item_order) {
    const std::string& name = raw.items.names()[i];
    auto m = raw.meta.find(name);
    const ItemMeta& meta = m == raw.meta.end() ? kNoMeta : m->second;
    writer->AddItem(name, raw.has_titles ? std::string_view(meta.title) : std::string_view(),
                    raw.has_categories ? std::span<const int32_t>(meta.categories)
                                       : std::span<const int32_t>());
  }
  report.info = writer->Finish();
}

}  // namespace

ConvertReport ConvertToDataset(const std::string& input, const std::string& output, const ConvertOptions& opt) {
  RawData raw;
  ParseInput(input, output, opt, raw);
  ConvertReport report;
  report.detected = raw.detected;
  report.input_events = static_cast<int64_t>(raw.events.size());
  if (raw.events.empty()) Fail(input, ": empty input: no events found");
  if (opt.min_user_events < 0 || opt.min_item_events < 0) Fail("--min-user-events/--min-item-events must be >= 0");

  FilterEvents(raw, opt, input, report);
  WriteConverted(raw, opt, input, output, report);
  return report;
}

std::string ConvertReportText(const ConvertReport& r, const ConvertOptions& o, const std::string& output, double secs) {
  std::string out;
  auto line = [&](const char* what, int64_t n) { Appendf(out, "%s: %lld\n", what, static_cast<long long>(n)); };
  Appendf(out, "read %s: %lld events\n", r.detected.c_str(), static_cast<long long>(r.input_events));
  if (o.since || o.until) line("dropped by --since/--until", r.dropped_by_time);
  if (o.min_rating) line("dropped by --min-rating", r.dropped_by_rating);
  if (o.dedup) line("dropped duplicates", r.dropped_duplicates);
  if (o.min_user_events > 0 || o.min_item_events > 0) {
    Appendf(out, "dropped by k-core: %lld (%d rounds)\n", static_cast<long long>(r.dropped_by_kcore), r.kcore_rounds);
  }
  Appendf(out, "wrote %s: %lld users, %lld items (%lld without events), %lld events in %.2f s (%.0f events/s)\n",
          output.c_str(), static_cast<long long>(r.info.num_users), static_cast<long long>(r.info.num_items),
          static_cast<long long>(r.items_without_events), static_cast<long long>(r.info.num_events), secs,
          r.input_events / std::max(secs, 1e-9));
  return out;
}

void WriteEventsCsv(const Dataset& ds, const std::string& path) {
  FileWriter out(path);
  out.Append("user,item,timestamp\n");
  const auto& off = ds.user_offsets();
  const auto item_ids = ds.ReadItemRawIds(0, ds.info().num_items);
  const int64_t block = 4096;
  std::string text;
  for (int64_t ub = 0; ub < ds.info().num_users; ub += block) {
    const int64_t ue = std::min(ds.info().num_users, ub + block);
    const auto user_ids = ds.ReadUserRawIds(ub, ue);
    const auto items = ds.ReadItems(off[ub], off[ue]);
    const auto ts = ds.ReadTimestamps(off[ub], off[ue]);
    text.clear();
    for (int64_t u = ub; u < ue; ++u) {
      for (int64_t k = off[u]; k < off[u + 1]; ++k) {
        text += user_ids[u - ub] + ',' + item_ids[items[k - off[ub]]] + ',' + std::to_string(ts[k - off[ub]]) + '\n';
      }
    }
    out.Append(text);
  }
  out.Commit();
}

bool SameEventsByRawId(const Dataset& a, const Dataset& b) {
  if (a.info().num_users != b.info().num_users || a.info().num_events != b.info().num_events ||
      a.user_offsets() != b.user_offsets()) {
    return false;
  }
  const auto a_ids = a.ReadItemRawIds(0, a.info().num_items), b_ids = b.ReadItemRawIds(0, b.info().num_items);
  const auto a_items = a.ReadItems(0, a.info().num_events), b_items = b.ReadItems(0, b.info().num_events);
  for (size_t k = 0; k < a_items.size(); ++k) {
    if (a_ids[a_items[k]] != b_ids[b_items[k]]) return false;
  }
  return true;
}

}  // namespace shardrec
