#include "io/event_log.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <exception>

#include "common/error.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/strings.h"

namespace shardrec {
namespace {

constexpr size_t kMaxIdBytes = 256, kMaxTitleBytes = 4096, kMaxCategories = 256;

bool ValidProducer(std::string_view p) {
  if (p.empty() || p.size() > 64) return false;
  for (char c : p) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

std::string Id(const JsonValue& v, const std::string& field) {
  std::string out;
  if (v.type == JsonValue::kNumber && v.is_integer) {
    out = std::to_string(v.exact);
  } else if (v.type == JsonValue::kString) {
    out = v.string;
  } else {
    Fail(field, ": expected a string or an integer id");
  }
  if (out.empty() || out.size() > kMaxIdBytes) Fail(field, ": expected an id of 1 to ", kMaxIdBytes, " bytes, got ", out.size());
  for (unsigned char c : out) {
    if (c < 0x20 || c == 0x7f) Fail(field, ": an id may not hold control characters: ", Quote(out));
  }
  return out;
}

// The event in `v`; mistakes name `field` ("events[3]", or a segment's file:line) and the key.
LogEvent FromJson(const JsonValue& v, const std::string& field) {
  if (v.type != JsonValue::kObject) Fail(field, ": expected an object {\"user\", \"item\", \"ts\"}");
  LogEvent e;
  bool user = false, item = false, ts = false;
  for (const auto& [key, value] : v.object) {
    const std::string f = field + "." + key;
    if (key == "user") {
      e.user = Id(value, f);
      user = true;
    } else if (key == "item") {
      e.item = Id(value, f);
      item = true;
    } else if (key == "ts") {
      if (value.type != JsonValue::kNumber || !value.is_integer || value.exact < 0) {
        Fail(f, ": expected whole seconds since the epoch (an integer >= 0)");
      }
      e.ts = value.exact;
      ts = true;
    } else if (key == "title") {
      if (value.type != JsonValue::kString || value.string.size() > kMaxTitleBytes) Fail(f, ": expected a string of at most ", kMaxTitleBytes, " bytes");
      e.title = value.string;
    } else if (key == "categories") {
      if (value.type != JsonValue::kArray || value.array.size() > kMaxCategories) Fail(f, ": expected an array of at most ", kMaxCategories, " strings");
      e.categories.emplace();
      for (size_t i = 0; i < value.array.size(); ++i) {
        const JsonValue& c = value.array[i];
        if (c.type != JsonValue::kString || c.string.empty() || c.string.size() > kMaxIdBytes || c.string.find('|') != std::string::npos) {
          Fail(f, "[", i, "]: expected a category name (1 to ", kMaxIdBytes, " bytes, no '|')");
        }
        e.categories->push_back(c.string);
      }
    } else {
      Fail(f, ": unknown field (an event has user, item, ts, title, categories)");
    }
  }
  for (const auto& [given, name] : {std::pair{user, "user"}, {item, "item"}, {ts, "ts"}}) {
    if (!given) Fail(field, ": missing \"", name, "\"");
  }
  return e;
}

void WriteAll(int fd, const std::string& text, const std::string& path) {
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Fail("cannot write ", path, ": ", std::strerror(errno));
    p += n;
    left -= static_cast<size_t>(n);
  }
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The microseconds of a segment name (IsSegmentName holds).
int64_t NameMicros(const std::string& name) { return *ParseInt64(std::string_view(name).substr(0, 16)); }

}  // namespace

LogEvent ParseLogEvent(std::string_view json, const std::string& where) {
  return FromJson(JsonValue::Parse(json, where), where);
}

std::string LogEventJson(const LogEvent& e) {
  JsonObject o;
  o.Add("user", e.user).Add("item", e.item).Add("ts", e.ts);
  if (e.title) o.Add("title", *e.title);
  if (e.categories) {
    std::string arr = "[";
    for (size_t i = 0; i < e.categories->size(); ++i) arr += (i ? ", " : "") + JsonEscape((*e.categories)[i]);
    o.AddRaw("categories", arr + "]");
  }
  return o.str();
}

std::vector<LogEvent> ParseEventsBody(std::string_view body, size_t max_events) {
  const JsonValue v = JsonValue::Parse(body, "body");
  if (v.type != JsonValue::kObject || !v.has("events") || v.object.size() != 1) {
    Fail("body: expected {\"events\": [{\"user\": ..., \"item\": ..., \"ts\": ...}, ...]}");
  }
  const JsonValue& events = v.at("events");
  if (events.type != JsonValue::kArray || events.array.empty() || events.array.size() > max_events) {
    Fail("events: expected an array of 1 to ", max_events, " events");
  }
  std::vector<LogEvent> out;
  out.reserve(events.array.size());
  for (size_t i = 0; i < events.array.size(); ++i) out.push_back(FromJson(events.array[i], "events[" + std::to_string(i) + "]"));
  return out;
}

bool IsSegmentName(const std::string& name, std::string* producer) {
  constexpr std::string_view kSuffix = ".jsonl";
  if (name.size() < 16 + 1 + 1 + kSuffix.size() || !name.ends_with(kSuffix) || name[16] != '-') return false;
  for (size_t i = 0; i < 16; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return false;
  }
  const std::string p = name.substr(17, name.size() - 17 - kSuffix.size());
  if (!ValidProducer(p)) return false;
  if (producer) *producer = p;
  return true;
}

std::vector<std::string> ListSegments(const std::string& dir) {
  if (!IsDirectory(dir)) Fail(dir, ": not a directory (the event log)");
  std::vector<std::string> out;
  for (const std::string& name : ListDirectory(dir)) {
    if (IsSegmentName(name)) out.push_back(name);
  }
  return out;  // ListDirectory sorts
}

std::vector<LogEvent> ReadSegment(const std::string& path) {
  const std::string text = ReadFileToString(path);
  std::vector<LogEvent> out;
  LineIterator lines(text);
  std::string_view line;
  while (lines.Next(&line)) {
    if (Trim(line).empty()) continue;
    out.push_back(ParseLogEvent(line, Where(path, lines.line_number())));
  }
  return out;
}

struct EventLogWriter::Batch {
  std::string text;
  int64_t events = 0;
  bool done = false;
  std::exception_ptr error;
};

EventLogWriter::EventLogWriter(std::string dir, std::string producer, Options options)
    : dir_(std::move(dir)), producer_(std::move(producer)), options_(options) {
  if (!ValidProducer(producer_)) Fail("event producer name ", Quote(producer_), ": expected 1 to 64 letters, digits or '_'");
  if (options_.roll_bytes < 1 || !(options_.roll_seconds > 0)) {
    Fail("event log ", dir_, ": roll_bytes (", options_.roll_bytes, ") and roll_seconds (", options_.roll_seconds, ") must be > 0");
  }
  MakeDirs(dir_);
  const std::string lock = dir_ + "/." + producer_ + ".lock";
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) Fail(lock, ": cannot open: ", std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (err == EWOULDBLOCK) Fail("event log ", dir_, ": producer ", Quote(producer_), " is in use by another writer (give each its own name)");
    Fail(lock, ": cannot lock: ", std::strerror(err));
  }
  try {
    Recover();
  } catch (...) {
    ::close(lock_fd_);
    throw;
  }
}

EventLogWriter::~EventLogWriter() {
  try {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return !writing_; });
    Publish();
  } catch (const std::exception& e) {
    LOG(ERROR) << "event log " << dir_ << ": " << e.what() << " (the next writer as " << producer_ << " publishes it)";
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void EventLogWriter::Recover() {
  const std::vector<std::string> names = ListDirectory(dir_);
  for (const std::string& name : names) {
    std::string producer;
    if (IsSegmentName(name, &producer) && producer == producer_) last_us_ = std::max(last_us_, NameMicros(name));
  }
  for (const std::string& name : names) {
    std::string producer;
    if (!name.starts_with(".") || !name.ends_with(".open")) continue;
    const std::string final_name = name.substr(1, name.size() - 1 - 5);
    if (!IsSegmentName(final_name, &producer) || producer != producer_) continue;
    const std::string path = dir_ + "/" + name;
    const std::string text = ReadFileToString(path);
    // Whole events only: what follows the first line that is not one (a torn write, or what a power
    // loss left after the last fdatasync) was never acknowledged.
    size_t keep = 0;
    for (size_t end; (end = text.find('\n', keep)) != std::string::npos; keep = end + 1) {
      try {
        ParseLogEvent(std::string_view(text).substr(keep, end - keep), path);
      } catch (const UserError&) {
        break;
      }
    }
    if (keep == 0) {
      if (::unlink(path.c_str()) != 0) Fail(path, ": cannot remove: ", std::strerror(errno));
      continue;
    }
    if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0) Fail(path, ": cannot truncate: ", std::strerror(errno));
    SyncPath(path);
    // Under its own name if that still comes after this producer's last segment, else under the next
    // name: a consumer past that segment must still find these events.
    std::string to = final_name;
    if (NameMicros(final_name) < last_us_) to = SegmentName(++last_us_);
    if (::rename(path.c_str(), (dir_ + "/" + to).c_str()) != 0) Fail(path, ": cannot publish: ", std::strerror(errno));
    SyncPath(dir_);
    last_us_ = std::max(last_us_, NameMicros(to));
    ++segments_;
    LOG(INFO) << "event log " << dir_ << ": published " << to << ", left open by an earlier writer (" << keep << " of "
              << text.size() << " bytes)";
  }
}

std::string EventLogWriter::SegmentName(int64_t micros) const {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%016lld", static_cast<long long>(micros));
  return std::string(digits) + "-" + producer_ + ".jsonl";
}

void EventLogWriter::Open() {
  Publish();  // one this writer closed but could not rename comes first: names stay in order
  last_us_ = std::max(NowMicros(), last_us_ + 1);  // names only grow, whatever the clock does
  open_name_ = SegmentName(last_us_);
  open_bytes_ = 0;
  opened_ = std::chrono::steady_clock::now();
  const std::string temp = dir_ + "/." + open_name_ + ".open";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) Fail(temp, ": cannot create: ", std::strerror(errno));
  try {
    SyncPath(dir_);  // the file itself survives a crash: the next writer's Recover finds it
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  fd_ = fd;
}

void EventLogWriter::Publish() {
  if (fd_ >= 0) {  // close the open segment; it waits in closed_ until renamed
    const int fd = fd_;
    fd_ = -1;
    closed_ = open_name_;
    closed_bytes_ = open_bytes_;
    const bool synced = ::fsync(fd) == 0;
    const int err = errno;
    if (::close(fd) != 0 || !synced) Fail("cannot write ", dir_, "/.", closed_, ".open: ", std::strerror(synced ? errno : err));
  }
  if (closed_.empty()) return;
  const std::string temp = dir_ + "/." + closed_ + ".open";
  if (closed_bytes_ == 0) {
    if (::unlink(temp.c_str()) != 0 && errno != ENOENT) Fail(temp, ": cannot remove: ", std::strerror(errno));
  } else {
    if (::rename(temp.c_str(), (dir_ + "/" + closed_).c_str()) != 0) Fail(temp, ": cannot publish: ", std::strerror(errno));
    SyncPath(dir_);
    ++segments_;
  }
  closed_.clear();
}

void EventLogWriter::Append(const std::vector<LogEvent>& events) {
  if (events.empty()) return;
  Batch mine;
  for (const LogEvent& e : events) mine.text += LogEventJson(e) + "\n";
  mine.events = static_cast<int64_t>(events.size());
  std::unique_lock<std::mutex> lock(mu_);
  pending_.push_back(&mine);
  while (!mine.done) {
    if (writing_) {
      done_.wait(lock);
      continue;
    }
    // This thread writes every batch waiting now, its own among them, with one fdatasync.
    writing_ = true;
    std::vector<Batch*> batches;
    batches.swap(pending_);
    std::exception_ptr error;
    try {
      WriteBatches(batches, lock);
    } catch (...) {
      error = std::current_exception();
    }
    writing_ = false;
    for (Batch* b : batches) {
      b->done = true;
      b->error = error;
    }
    done_.notify_all();
  }
  if (mine.error) std::rethrow_exception(mine.error);
}

// Writes `batches` to the open segment with one fdatasync, `lock` (on mu_) released meanwhile.
// Throws if they are not in the log; returns once they are durable.
void EventLogWriter::WriteBatches(const std::vector<Batch*>& batches, std::unique_lock<std::mutex>& lock) {
  if (!broken_.empty()) Fail(broken_);
  std::string text;
  int64_t n = 0;
  for (const Batch* b : batches) {
    text += b->text;
    n += b->events;
  }
  if (fd_ < 0) Open();
  const int fd = fd_;
  const std::string temp = dir_ + "/." + open_name_ + ".open";
  std::exception_ptr failed;
  lock.unlock();
  try {
    WriteAll(fd, text, temp);
    if (::fdatasync(fd) != 0) Fail("cannot write ", temp, ": ", std::strerror(errno));
  } catch (...) {
    failed = std::current_exception();
  }
  lock.lock();
  ++syncs_;
  if (failed) {
    // What this write left is not in the log: cut it off and publish what was acknowledged. If even
    // that fails the segment is left as it is for the next writer's Recover, and this one stops.
    if (::ftruncate(fd_, static_cast<off_t>(open_bytes_)) != 0) {
      broken_ = "event log " + dir_ + ": a failed write could not be undone (" + std::strerror(errno) + "); restart the writer";
      ::close(fd_);
      fd_ = -1;
    } else {
      try {
        Publish();
      } catch (const std::exception& e) {
        LOG(ERROR) << e.what();
      }
    }
    std::rethrow_exception(failed);
  }
  open_bytes_ += static_cast<int64_t>(text.size());
  events_ += n;
  if (open_bytes_ >= options_.roll_bytes) {
    try {
      Publish();  // these events are durable already: a failed rename is retried before the next segment
    } catch (const std::exception& e) {
      LOG(ERROR) << e.what();
    }
  }
}

void EventLogWriter::MaybeRoll(bool force) {
  std::unique_lock<std::mutex> lock(mu_);
  if (force) done_.wait(lock, [&] { return !writing_; });
  if (writing_) return;
  const bool old = fd_ >= 0 && std::chrono::steady_clock::now() - opened_ >= std::chrono::duration<double>(options_.roll_seconds);
  if (force || old || !closed_.empty()) Publish();
}

int64_t EventLogWriter::events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}
int64_t EventLogWriter::segments() const {
  std::lock_guard<std::mutex> lock(mu_);
  return segments_;
}
int64_t EventLogWriter::syncs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return syncs_;
}

}  // namespace shardrec
