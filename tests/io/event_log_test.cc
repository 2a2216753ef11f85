// The event log (io/event_log.h): what is appended is read back once, in order, from whole
// segments; a killed writer's acknowledged events survive; producers exclude each other; malformed
// input names its place; and `data convert --format events` gives the dataset the same events give
// through the CSV converter (the oracle).
#include "io/event_log.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "io/convert.h"
#include "io/dataset.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

LogEvent Ev(const std::string& user, const std::string& item, int64_t ts) { return {.user = user, .item = item, .ts = ts}; }

std::vector<LogEvent> ReadAll(const std::string& dir) {
  std::vector<LogEvent> out;
  for (const std::string& s : ListSegments(dir)) {
    auto got = ReadSegment(dir + "/" + s);
    out.insert(out.end(), got.begin(), got.end());
  }
  return out;
}

TEST(EventLog, AppendedEventsReadBackInOrderFromSegmentsRolledBySizeAndTime) {
  testing::TempDir dir;
  const std::string log = dir.File("log");
  std::vector<LogEvent> sent;
  {
    EventLogWriter w(log, "p1", {.roll_bytes = 300, .roll_seconds = 3600});
    for (int i = 0; i < 40; ++i) {
      LogEvent e = Ev("u" + std::to_string(i % 7), std::to_string(100 + i), 1'700'000'000 + i);
      if (i % 5 == 0) e.title = "A \"quoted\" title, with ünïcode " + std::to_string(i);
      if (i % 10 == 0) e.categories = std::vector<std::string>{"Drama", "Comedy"};
      sent.push_back(e);
      w.Append({e});
      // What is visible is whole segments: a prefix of what was sent.
      const auto visible = ReadAll(log);
      ASSERT_LE(visible.size(), sent.size());
      EXPECT_TRUE(std::equal(visible.begin(), visible.end(), sent.begin()));
    }
    EXPECT_GT(w.segments(), 3);  // rolled by size
    EXPECT_EQ(w.events(), 40);
    w.MaybeRoll();  // not old enough: stays open
    const size_t visible = ReadAll(log).size();
    EXPECT_LT(visible, sent.size());
    w.MaybeRoll(/*force=*/true);
    EXPECT_EQ(ReadAll(log), sent);
  }
  // Names: 16 digits, the producer, growing; hidden temporaries and the lock are not segments.
  std::string producer;
  const auto segments = ListSegments(log);
  for (size_t i = 0; i < segments.size(); ++i) {
    ASSERT_TRUE(IsSegmentName(segments[i], &producer)) << segments[i];
    EXPECT_EQ(producer, "p1");
    if (i > 0) {
      EXPECT_LT(segments[i - 1], segments[i]);
    }
  }
  EXPECT_FALSE(IsSegmentName(".p1.lock"));
  EXPECT_FALSE(IsSegmentName("." + segments[0] + ".open"));
  EXPECT_FALSE(IsSegmentName("123-p1.jsonl"));
  // Rolled by time: a segment whose first event is older than roll_seconds is published by MaybeRoll.
  EventLogWriter w(log, "p1", {.roll_bytes = 1 << 20, .roll_seconds = 0.05});
  w.Append({Ev("u9", "9", 5)});
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  w.MaybeRoll();
  EXPECT_EQ(ReadAll(log).back(), Ev("u9", "9", 5));
  EXPECT_GT(ListSegments(log).back(), segments.back());  // a later writer's names come after
}

TEST(EventLog, ConcurrentAppendsAreEachWrittenOnceAndShareSyncs) {
  testing::TempDir dir;
  const std::string log = dir.File("log");
  constexpr int kThreads = 8, kEach = 200;
  int64_t syncs = 0;
  {
    EventLogWriter w(log, "srv", {.roll_bytes = 4096, .roll_seconds = 3600});
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&w, t] {
        for (int i = 0; i < kEach; ++i) w.Append({Ev("t" + std::to_string(t), std::to_string(i), i)});
      });
    }
    for (auto& th : threads) th.join();
    syncs = w.syncs();
    EXPECT_EQ(w.events(), kThreads * kEach);
  }
  std::map<std::string, std::vector<int64_t>> per_thread;
  for (const LogEvent& e : ReadAll(log)) per_thread[e.user].push_back(e.ts);
  ASSERT_EQ(per_thread.size(), static_cast<size_t>(kThreads));
  for (const auto& [user, ts] : per_thread) {
    ASSERT_EQ(ts.size(), static_cast<size_t>(kEach)) << user;
    for (int i = 0; i < kEach; ++i) ASSERT_EQ(ts[i], i) << user;  // each thread's events once, in its order
  }
  EXPECT_LT(syncs, kThreads * kEach);  // appends that arrived during a write shared the next sync
  std::printf("%d appends from %d threads: %lld fdatasyncs\n", kThreads * kEach, kThreads, static_cast<long long>(syncs));
}

TEST(EventLog, AKilledWritersAcknowledgedEventsArePublishedAndATornLineIsNot) {
  testing::TempDir dir;
  const std::string log = dir.File("log");
  MakeDirs(log);
  // What a writer killed mid-line leaves: a hidden open segment, two whole lines, bytes a power loss
  // left after the last sync (a line that is not an event, then a whole one), and half a line.
  const std::string name = "1700000000000000-srv.jsonl";
  testing::WriteText(log + "/." + name + ".open", LogEventJson(Ev("a", "1", 1)) + "\n" + LogEventJson(Ev("b", "2", 2)) +
                                                       "\n" + std::string("\0\0garbage", 9) + "\n" + LogEventJson(Ev("x", "3", 3)) +
                                                       "\n{\"user\": \"c\", \"it");
  testing::WriteText(log + "/.1700000000000001-other.jsonl.open", LogEventJson(Ev("z", "9", 9)) + "\n");  // not this producer's
  // A newer segment of the same producer is published already (its writer went on after this one):
  // the recovered events must come after it, or a consumer past it would never read them.
  testing::WriteText(log + "/1700000000000005-srv.jsonl", LogEventJson(Ev("n", "5", 5)) + "\n");
  {
    EventLogWriter w(log, "srv", {});
    EXPECT_EQ(w.segments(), 1);
    EXPECT_EQ(ListSegments(log), (std::vector<std::string>{"1700000000000005-srv.jsonl", "1700000000000006-srv.jsonl"}));
    EXPECT_EQ(ReadSegment(log + "/1700000000000006-srv.jsonl"), (std::vector<LogEvent>{Ev("a", "1", 1), Ev("b", "2", 2)}));
    EXPECT_TRUE(PathExists(log + "/.1700000000000001-other.jsonl.open"));
  }
  // A recovered name later than the clock: the next segment's name still comes after it.
  const std::string future = "9000000000000000-srv.jsonl";
  testing::WriteText(log + "/." + future + ".open", LogEventJson(Ev("f", "7", 7)) + "\n");
  EventLogWriter w(log, "srv", {});
  EXPECT_EQ(ListSegments(log).back(), future);
  w.Append({Ev("d", "4", 4)});
  w.MaybeRoll(true);
  EXPECT_EQ(ListSegments(log).back(), "9000000000000001-srv.jsonl");
  // An open segment with nothing whole in it is removed, not published.
  testing::WriteText(log + "/.9100000000000000-srv2.jsonl.open", "{\"user\"");
  EventLogWriter w2(log, "srv2", {});
  EXPECT_FALSE(PathExists(log + "/.9100000000000000-srv2.jsonl.open"));
  EXPECT_EQ(w2.segments(), 0);
}

// A write the file system refuses (here: past RLIMIT_FSIZE, as a full disk would): the Append that
// hit it fails naming the file and the reason, the segment is cut back to the events acknowledged
// before and published, and the writer goes on.
TEST(EventLog, AFailedWriteIsCutBackToWhatWasAcknowledged) {
  testing::TempDir dir;
  const std::string log = dir.File("log");
  EventLogWriter w(log, "p", {.roll_bytes = 1 << 20, .roll_seconds = 3600});
  struct rlimit old;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  struct rlimit small = old;
  small.rlim_cur = 2000;
  auto* const old_handler = std::signal(SIGXFSZ, SIG_IGN);  // write(2) then fails with EFBIG
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  std::vector<LogEvent> acked;
  std::string failure;
  for (int i = 0; i < 200 && failure.empty(); ++i) {
    LogEvent e = Ev("u", std::to_string(i), i);
    e.title = std::string(100, 'x');
    try {
      w.Append({e});
      acked.push_back(e);
    } catch (const UserError& err) {
      failure = err.what();
    }
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(failure.empty()) << "no write failed";
  EXPECT_NE(failure.find("cannot write"), std::string::npos) << failure;
  EXPECT_NE(failure.find(".open"), std::string::npos) << failure;
  ASSERT_GT(acked.size(), 3u);
  EXPECT_EQ(ReadAll(log), acked);  // published, and not one byte of the failed write
  w.Append({Ev("after", "1", 1)});
  w.MaybeRoll(true);
  EXPECT_EQ(ReadAll(log).back(), Ev("after", "1", 1));
  EXPECT_EQ(ReadAll(log).size(), acked.size() + 1);
}

TEST(EventLog, OneWriterPerProducerAndMistakesNameTheirPlace) {
  testing::TempDir dir;
  const std::string log = dir.File("log");
  EventLogWriter a(log, "srv", {});
  testing::ExpectUserError([&] { EventLogWriter b(log, "srv", {}); }, {"producer", "srv", "in use"});
  EventLogWriter c(log, "srv2", {});  // another name is fine
  testing::ExpectUserError([&] { EventLogWriter d(log, "no-dash", {}); }, {"event producer name", "no-dash"});
  // POST /v1/events bodies.
  EXPECT_EQ(ParseEventsBody(R"({"events": [{"user": 7, "item": "B00X", "ts": 12}]})", 10),
            (std::vector<LogEvent>{Ev("7", "B00X", 12)}));
  const std::vector<std::pair<std::string, std::vector<std::string>>> bad = {
      {"[1]", {"body: expected {\"events\""}},
      {R"({"events": []})", {"events: expected an array of 1 to 10"}},
      {R"({"events": [{"user": "u", "item": "i"}]})", {"events[0]", "missing \"ts\""}},
      {R"({"events": [{"user": "u", "item": "i", "ts": 1}, {"user": "u", "item": "i", "ts": -1}]})", {"events[1].ts", "integer >= 0"}},
      {R"({"events": [{"user": "u", "item": "i", "ts": 1.5}]})", {"events[0].ts"}},
      {R"({"events": [{"user": "", "item": "i", "ts": 1}]})", {"events[0].user", "1 to 256 bytes"}},
      {R"({"events": [{"user": "u", "item": {}, "ts": 1}]})", {"events[0].item", "string or an integer"}},
      {R"({"events": [{"user": "u", "item": "i", "ts": 1, "titel": "x"}]})", {"events[0].titel", "unknown field"}},
      {R"({"events": [{"user": "u", "item": "i", "ts": 1, "categories": ["a|b"]}]})", {"events[0].categories[0]"}},
      {R"({"events": [{"user": "u", "item": "i", "ts": 1}], "more": 1})", {"body: expected"}},
      {R"({"events": [{"user": "u", "item": "i", "ts": 1)", {"body"}},
  };
  for (const auto& [body, fragments] : bad) testing::ExpectUserError([&] { ParseEventsBody(body, 10); }, fragments);
  testing::ExpectUserError([&] { ParseEventsBody(R"({"events": [{"user": "u", "item": "i", "ts": 1}, {"user": "u", "item": "i", "ts": 1}]})", 1); },
                           {"1 to 1 events"});
  // A damaged segment names its file and line.
  testing::WriteText(log + "/1700000000000000-x.jsonl", LogEventJson(Ev("a", "1", 1)) + "\nnot json\n");
  testing::ExpectUserError([&] { ReadSegment(log + "/1700000000000000-x.jsonl"); }, {"1700000000000000-x.jsonl", "2"});
  testing::ExpectUserError([&] { ListSegments(dir.File("none")); }, {"none", "not a directory"});
}

// The log through `data convert --format events` equals the same events and catalogue through the
// CSV converter with --items.
TEST(EventLog, ConvertGivesTheDatasetTheCsvConverterGivesForTheSameEvents) {
  testing::TempDir dir;
  const std::string log = dir.File("log");
  std::string csv = "user,item,timestamp\n", items = "item\ttitle\tcategories\n";
  {
    EventLogWriter w(log, "p", {.roll_bytes = 500, .roll_seconds = 3600});
    for (int i = 0; i < 60; ++i) {
      LogEvent e = Ev("u" + std::to_string(i % 9), std::to_string(i % 13 + 1), 1000 + (i * 37) % 50);
      csv += e.user + "," + e.item + "," + std::to_string(e.ts) + "\n";
      w.Append({e});
    }
    // A new item with its content; a later event gives item 2 a new title (the last wins).
    LogEvent fresh = Ev("u1", "99", 2000);
    fresh.title = "Brand New";
    fresh.categories = std::vector<std::string>{"Sci-Fi", "Drama"};
    LogEvent retitled = Ev("u2", "2", 2001);
    retitled.title = "Two, again";
    retitled.categories = std::vector<std::string>{"Drama"};
    w.Append({fresh, retitled});
    csv += "u1,99,2000\nu2,2,2001\n";
  }
  for (int i = 1; i <= 13; ++i) items += std::to_string(i) + "\t" + (i == 2 ? "Two, again" : "Item " + std::to_string(i)) + "\tDrama\n";
  items += "99\tBrand New\tDrama|Sci-Fi\n";
  testing::WriteText(dir.File("events.csv"), csv);
  testing::WriteText(dir.File("items.tsv"), items);
  // The log names items 1-13 without titles: give them through --items, as a catalogue would.
  std::string catalogue = "item\ttitle\tcategories\n";
  for (int i = 1; i <= 13; ++i) catalogue += std::to_string(i) + "\t" + "Item " + std::to_string(i) + "\tDrama\n";
  testing::WriteText(dir.File("catalogue.tsv"), catalogue);
  ConvertOptions from_log{.format = "events", .items_file = dir.File("catalogue.tsv")};
  const ConvertReport r = ConvertToDataset(log, dir.File("log.h5"), from_log);
  EXPECT_EQ(r.input_events, 62);
  ConvertOptions from_csv{.format = "csv", .items_file = dir.File("items.tsv")};
  ConvertToDataset(dir.File("events.csv"), dir.File("csv.h5"), from_csv);
  auto a = Dataset::Open(dir.File("log.h5")), b = Dataset::Open(dir.File("csv.h5"));
  EXPECT_TRUE(SameEventsByRawId(*a, *b));
  ASSERT_EQ(a->info().num_items, b->info().num_items);
  const int64_t n = a->info().num_items;
  EXPECT_EQ(a->ReadItemRawIds(0, n), b->ReadItemRawIds(0, n));
  EXPECT_EQ(a->ReadItemTitles(0, n), b->ReadItemTitles(0, n));
  const auto ca = a->ReadCategoryNames(), cb = b->ReadCategoryNames();
  const Dataset::Categories xa = a->ReadItemCategories(0, n), xb = b->ReadItemCategories(0, n);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<std::string> na, nb;
    for (int64_t j = xa.offsets[i]; j < xa.offsets[i + 1]; ++j) na.push_back(ca[xa.values[j]]);
    for (int64_t j = xb.offsets[i]; j < xb.offsets[i + 1]; ++j) nb.push_back(cb[xb.values[j]]);
    std::sort(na.begin(), na.end());
    std::sort(nb.begin(), nb.end());
    EXPECT_EQ(na, nb) << "item " << i;
  }
  EXPECT_EQ(a->ReadItemTitles(0, n).back(), "Brand New");
  MakeDirs(dir.File("empty"));
  testing::ExpectUserError([&] { ConvertToDataset(dir.File("empty"), dir.File("x.h5"), {.format = "events"}); }, {"empty", "no segment"});
  testing::ExpectUserError([&] { ConvertToDataset(dir.File("none"), dir.File("x.h5"), {.format = "events"}); }, {"none", "event log directory"});
}

}  // namespace
}  // namespace shardrec
