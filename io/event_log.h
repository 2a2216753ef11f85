// The event log (docs/formats.md, "Event log"): an append-only directory of segment files, each
// one JSON object per line (user, item, timestamp; optionally the item's title and categories, for
// items the catalogue does not have yet). `shardrec serve --event-log DIR` appends what POST
// /v1/events receives; any other program may produce segments too, by the same rules:
//   - a segment is written under a hidden temporary name, `.NAME.open`, and renamed to NAME when it
//     is complete: a reader sees only whole segments and never a segment that changes;
//   - NAME is `<16-digit microseconds since the epoch>-<producer>.jsonl`: the time its first event
//     was appended, then the producer's name; one producer's names only grow, so "every segment of
//     producer P up to NAME" is an offset (what a consumer commits to read each event once);
//   - a producer name is held by one process at a time (a lock file, `.PRODUCER.lock`).
// Readers take segments in name order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardrec {

struct LogEvent {
  std::string user, item;  // raw ids (a JSON integer is kept in its decimal form)
  int64_t ts = 0;          // seconds since the epoch
  std::optional<std::string> title;
  std::optional<std::vector<std::string>> categories;
  bool operator==(const LogEvent&) const = default;
};

// One event from one JSON object; UserError naming `where` and the field at fault.
LogEvent ParseLogEvent(std::string_view json, const std::string& where);
// The event as one line of a segment (no newline).
std::string LogEventJson(const LogEvent& event);
// The body of POST /v1/events, {"events": [EVENT, ...]} (1 to `max_events` of them); a UserError
// names the field at fault ("events[3].ts: ...").
std::vector<LogEvent> ParseEventsBody(std::string_view body, size_t max_events);

// Whether `name` is a complete segment's name (not a temporary, not a lock); its producer in
// `producer` if so.
bool IsSegmentName(const std::string& name, std::string* producer = nullptr);
// The complete segments of `dir`, in log (name) order. A missing directory is a UserError.
std::vector<std::string> ListSegments(const std::string& dir);
// A segment's events in order; a malformed line is a UserError naming the file and line.
std::vector<LogEvent> ReadSegment(const std::string& path);

// Appends events to the log as one producer. Thread-safe: concurrent Appends are written together
// and made durable by one fdatasync (group commit).
class EventLogWriter {
 public:
  struct Options {
    int64_t roll_bytes = 64 << 20;  // a segment is published once it holds this much
    double roll_seconds = 2;        // ... or once its first event is this old (at MaybeRoll)
  };
  // Opens `dir` (made if missing) as `producer` ([A-Za-z0-9_]{1,64}). Another process writing as
  // `producer` is a UserError. A segment this producer left open (it was killed) is published
  // first, up to its last complete line: an event Append returned for is never lost.
  EventLogWriter(std::string dir, std::string producer, Options options);
  ~EventLogWriter();  // publishes the open segment (errors logged)
  EventLogWriter(const EventLogWriter&) = delete;
  EventLogWriter& operator=(const EventLogWriter&) = delete;

  // Returns once `events` are on disk (written and fdatasync'ed) in the open segment; publishes the
  // segment when it reaches roll_bytes. A write error is a UserError naming the file and reason
  // (then these events are not in the log, and the segment so far is published).
  void Append(const std::vector<LogEvent>& events);
  // Publishes the open segment if its first event is roll_seconds old, or at all with `force`.
  void MaybeRoll(bool force = false);

  int64_t events() const;    // appended by this writer
  int64_t segments() const;  // published by this writer (a recovered one included)
  int64_t syncs() const;     // fdatasyncs (fewer than Appends under concurrency)
  const std::string& dir() const { return dir_; }

 private:
  struct Batch;
  // These run with mu_ held.
  void Open();     // a new open segment (publishing a closed one first)
  void Publish();  // closes the open segment and renames it (and any closed one) into the log
  void WriteBatches(const std::vector<Batch*>& batches, std::unique_lock<std::mutex>& lock);
  void Recover();
  std::string SegmentName(int64_t micros) const;

  const std::string dir_, producer_;
  const Options options_;
  int lock_fd_ = -1;
  mutable std::mutex mu_;
  std::condition_variable done_;
  std::vector<Batch*> pending_;
  bool writing_ = false;
  int fd_ = -1;            // the open segment, or -1
  std::string open_name_;  // its final name
  int64_t open_bytes_ = 0, last_us_ = 0;
  std::chrono::steady_clock::time_point opened_;  // for its age (the wall clock may step)
  std::string closed_;     // a segment closed whose rename failed: retried before any other
  int64_t closed_bytes_ = 0;
  std::string broken_;     // why this writer takes no more events, if it does not
  int64_t events_ = 0, segments_ = 0, syncs_ = 0;
};

}  // namespace shardrec
