#include "io/convert.h"

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

using testing::ExpectUserError;
using testing::TempDir;
using testing::WriteText;

// Every user's items as raw ids, in stored order.
std::vector<std::vector<std::string>> Sequences(const Dataset& ds) {
  auto items = ds.ReadItemRawIds(0, ds.info().num_items);
  auto all = ds.ReadItems(0, ds.info().num_events);
  std::vector<std::vector<std::string>> out;
  const auto& off = ds.user_offsets();
  for (int64_t u = 0; u < ds.info().num_users; ++u) {
    out.emplace_back();
    for (int64_t k = off[u]; k < off[u + 1]; ++k) out.back().push_back(items[all[k]]);
  }
  return out;
}

ConvertOptions Format(const std::string& f) {
  ConvertOptions o;
  o.format = f;
  return o;
}

// ML-100K layout: tab-separated u.data, '|' u.item with Latin-1 titles and genre flags.
void WriteMl100k(const TempDir& dir) {
  WriteText(dir.File("u.data"),
            "2\t20\t4\t300\n"
            "1\t10\t5\t200\n"
            "1\t30\t1\t100\n"   // earlier than the line above: must come first
            "10\t10\t3\t50\n"   // user 10 sorts after 2 (numeric raw-id order)
            "2\t30\t5\t300\n"); // same time as (2,20): file order breaks the tie
  WriteText(dir.File("u.genre"), "unknown|0\nAction|1\nDrama|2\n\n");
  WriteText(dir.File("u.item"),
            "10|Caf\xE9 Society (1995)|01-Jan-1995||http://x|0|1|1\n"
            "20|Toy Story (1995)|01-Jan-1995||http://y|0|0|1\n"
            "30|Heat (1995)|01-Jan-1995||http://z|1|0|0\n");
}

TEST(ConvertMovieLens, Ml100kLayout) {
  TempDir dir;
  WriteMl100k(dir);
  ConvertReport r = ConvertToDataset(dir.path(), dir.File("out.h5"), Format("movielens"));
  EXPECT_EQ(r.input_events, 5);
  auto ds = Dataset::Open(dir.File("out.h5"));
  EXPECT_EQ(ds->info().num_users, 3);
  EXPECT_EQ(ds->info().num_items, 3);
  EXPECT_EQ(ds->ReadUserRawIds(0, 3), (std::vector<std::string>{"1", "2", "10"}));
  EXPECT_EQ(Sequences(*ds), (std::vector<std::vector<std::string>>{{"30", "10"}, {"20", "30"}, {"10"}}));
  EXPECT_EQ(ds->ReadTimestamps(0, 5), (std::vector<int64_t>{100, 200, 300, 300, 50}));
  // Latin-1 title decoded to UTF-8; genres from the flags.
  EXPECT_EQ(ds->ReadItemTitles(0, 3),
            (std::vector<std::string>{"Caf\xC3\xA9 Society (1995)", "Toy Story (1995)", "Heat (1995)"}));
  EXPECT_EQ(ds->ReadCategoryNames(), (std::vector<std::string>{"unknown", "Action", "Drama"}));
  auto cats = ds->ReadItemCategories(0, 3);
  EXPECT_EQ(cats.offsets, (std::vector<int64_t>{0, 2, 3, 4}));
  EXPECT_EQ(cats.values, (std::vector<int32_t>{1, 2, 2, 0}));
}

// The whole catalogue: a film in u.item nobody rated is kept (title, genres, no events); a k-core
// on items drops it like any item below the threshold.
TEST(ConvertMovieLens, CatalogueItemsWithoutRatingsAreKept) {
  TempDir dir;
  WriteMl100k(dir);
  WriteText(dir.File("u.item"), ReadFileToString(dir.File("u.item")) + "40|New Film (1998)|01-Jan-1998||http://w|0|1|0\n");
  ConvertReport r = ConvertToDataset(dir.path(), dir.File("out.h5"), Format("movielens"));
  EXPECT_EQ(r.items_without_events, 1);
  auto ds = Dataset::Open(dir.File("out.h5"));
  ASSERT_EQ(ds->info().num_items, 4);
  EXPECT_EQ(ds->ReadItemRawIds(0, 4), (std::vector<std::string>{"10", "20", "30", "40"}));
  EXPECT_EQ(ds->ReadItemTitles(3, 4), (std::vector<std::string>{"New Film (1998)"}));
  EXPECT_EQ(ds->ReadItemCategories(3, 4).values, (std::vector<int32_t>{1}));
  EXPECT_EQ(Sequences(*ds), (std::vector<std::vector<std::string>>{{"30", "10"}, {"20", "30"}, {"10"}}));
  ConvertOptions o = Format("movielens");
  o.min_item_events = 1;
  r = ConvertToDataset(dir.path(), dir.File("core.h5"), o);
  EXPECT_EQ(r.items_without_events, 0);
  EXPECT_EQ(Dataset::Open(dir.File("core.h5"))->info().num_items, 3);
}

TEST(ConvertMovieLens, MinRatingKeepsAtLeastThreshold) {
  TempDir dir;
  WriteMl100k(dir);
  ConvertOptions o = Format("movielens");
  o.min_rating = 4;
  ConvertReport r = ConvertToDataset(dir.File("u.data"), dir.File("out.h5"), o);  // file in dir works
  EXPECT_EQ(r.dropped_by_rating, 2);  // ratings 1 and 3
  auto ds = Dataset::Open(dir.File("out.h5"));
  EXPECT_EQ(Sequences(*ds), (std::vector<std::vector<std::string>>{{"10"}, {"20", "30"}}));
}

TEST(ConvertMovieLens, Ml1mLayout) {
  TempDir dir;
  WriteText(dir.File("ratings.dat"), "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n");
  WriteText(dir.File("movies.dat"),
            "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
            "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n");
  ConvertToDataset(dir.path(), dir.File("out.h5"), Format("movielens"));
  auto ds = Dataset::Open(dir.File("out.h5"));
  EXPECT_EQ(ds->info().num_users, 2);
  EXPECT_EQ(ds->ReadItemRawIds(0, 2), (std::vector<std::string>{"661", "1193"}));
  EXPECT_EQ(Sequences(*ds), (std::vector<std::vector<std::string>>{{"1193", "661"}, {"1193"}}));
  EXPECT_EQ(ds->ReadCategoryNames(),
            (std::vector<std::string>{"Drama", "Animation", "Children's", "Musical"}));
  auto cats = ds->ReadItemCategories(0, 2);
  EXPECT_EQ(cats.values, (std::vector<int32_t>{1, 2, 3, 0}));
}

TEST(ConvertSeq, LinesLayout) {
  TempDir dir;
  WriteText(dir.File("beauty.txt"), "1 5 6 7\n2 6 5\n3 7\n");
  ConvertReport r = ConvertToDataset(dir.File("beauty.txt"), dir.File("out.h5"), Format("seq"));
  EXPECT_NE(r.detected.find("lines"), std::string::npos);
  auto ds = Dataset::Open(dir.File("out.h5"));
  EXPECT_FALSE(ds->info().has_timestamps);
  EXPECT_EQ(Sequences(*ds), (std::vector<std::vector<std::string>>{{"5", "6", "7"}, {"6", "5"}, {"7"}}));
}

// --items: the catalogue of a sequence file: titles and categories by raw id, and items without
// events kept (item 8); an item with events but not listed keeps an empty title.
TEST(ConvertSeq, ItemsFileAddsTheCatalogue) {
  TempDir dir;
  WriteText(dir.File("s.txt"), "1 5 6 7\n2 6 5\n3 7\n");
  WriteText(dir.File("items.tsv"), "item\ttitle\tcategories\n5\tFive\ta|b\n6\tSix\n008\tEight\tb|b\n");
  ConvertOptions o = Format("seq");
  o.items_file = dir.File("items.tsv");
  ConvertReport r = ConvertToDataset(dir.File("s.txt"), dir.File("out.h5"), o);
  EXPECT_EQ(r.items_without_events, 1);
  auto ds = Dataset::Open(dir.File("out.h5"));
  ASSERT_EQ(ds->info().num_items, 4);
  EXPECT_EQ(ds->ReadItemRawIds(0, 4), (std::vector<std::string>{"5", "6", "7", "8"}));
  EXPECT_EQ(ds->ReadItemTitles(0, 4), (std::vector<std::string>{"Five", "Six", "", "Eight"}));
  EXPECT_EQ(ds->ReadCategoryNames(), (std::vector<std::string>{"a", "b"}));
  auto cats = ds->ReadItemCategories(0, 4);
  EXPECT_EQ(cats.offsets, (std::vector<int64_t>{0, 2, 2, 2, 3}));
  EXPECT_EQ(cats.values, (std::vector<int32_t>{0, 1, 1}));
  EXPECT_EQ(Sequences(*ds), (std::vector<std::vector<std::string>>{{"5", "6", "7"}, {"6", "5"}, {"7"}}));
  // Mistakes name the file and line; no output is left.
  WriteText(dir.File("dup.tsv"), "5\tFive\n6\tSix\n5\tAgain\n");
  o.items_file = dir.File("dup.tsv");
  ExpectUserError([&] { ConvertToDataset(dir.File("s.txt"), dir.File("bad.h5"), o); }, {"dup.tsv:3", "listed twice"});
  WriteText(dir.File("wide.tsv"), "5\tFive\ta\textra\n");
  o.items_file = dir.File("wide.tsv");
  ExpectUserError([&] { ConvertToDataset(dir.File("s.txt"), dir.File("bad.h5"), o); }, {"wide.tsv:1", "at most 3"});
  o.items_file = dir.File("absent.tsv");
  ExpectUserError([&] { ConvertToDataset(dir.File("s.txt"), dir.File("bad.h5"), o); }, {"absent.tsv"});
  EXPECT_FALSE(PathExists(dir.File("bad.h5")));
  ConvertOptions ml = Format("movielens");
  ml.items_file = dir.File("items.tsv");
  ExpectUserError([&] { ConvertToDataset(dir.path(), dir.File("bad.h5"), ml); }, {"--items", "MovieLens"});
}

TEST(ConvertSeq, PairsLayoutKeepsLineOrderPerUser) {
  TempDir dir;
  WriteText(dir.File("video.txt"), "1 9\n1 3\n2 3\n1 4\n2 9\n");
  ConvertReport r = ConvertToDataset(dir.File("video.txt"), dir.File("out.h5"), Format("seq"));
  EXPECT_NE(r.detected.find("pairs"), std::string::npos);
  auto ds = Dataset::Open(dir.File("out.h5"));
  EXPECT_EQ(Sequences(*ds), (std::vector<std::vector<std::string>>{{"9", "3", "4"}, {"3", "9"}}));
}

TEST(ConvertSeq, ExplicitLinesLayoutRejectsRepeatedUser) {
  TempDir dir;
  WriteText(dir.File("s.txt"), "1 9\n1 3\n");
  ConvertOptions o = Format("seq");
  o.seq_layout = "lines";
  ExpectUserError([&] { ConvertToDataset(dir.File("s.txt"), dir.File("out.h5"), o); },
                  {"s.txt:2:", "already has a line (line 1)"});
}

TEST(ConvertCsv, HeaderColumnsQuotesAndMapping) {
  TempDir dir;
  WriteText(dir.File("e.csv"),
            "ts,reviewer,\"asin\",stars\n"
            "5,\"A,1\",B01,4.5\n"
            "3,\"A,1\",\"B\"\"02\",2\n"
            "1,Z9,B01,5\n");
  ConvertOptions o = Format("csv");
  o.columns = "user=reviewer,timestamp=ts,rating=stars";  // item found by its known name 'asin'
  ConvertToDataset(dir.File("e.csv"), dir.File("out.h5"), o);
  auto ds = Dataset::Open(dir.File("out.h5"));
  EXPECT_EQ(ds->ReadUserRawIds(0, 2), (std::vector<std::string>{"A,1", "Z9"}));
  EXPECT_EQ(Sequences(*ds), (std::vector<std::vector<std::string>>{{"B\"02", "B01"}, {"B01"}}));
  o.min_rating = 3;
  ConvertToDataset(dir.File("e.csv"), dir.File("out2.h5"), o);
  EXPECT_EQ(Sequences(*Dataset::Open(dir.File("out2.h5"))),
            (std::vector<std::vector<std::string>>{{"B01"}, {"B01"}}));
}

TEST(ConvertCsv, TabDelimiterDetected) {
  TempDir dir;
  WriteText(dir.File("e.tsv"), "user_id\titem_id\n1\t2\n1\t3\n");
  ConvertToDataset(dir.File("e.tsv"), dir.File("out.h5"), Format("csv"));
  EXPECT_EQ(Sequences(*Dataset::Open(dir.File("out.h5"))),
            (std::vector<std::vector<std::string>>{{"2", "3"}}));
}

TEST(ConvertFilters, DedupKeepsFirstOccurrence) {
  TempDir dir;
  WriteText(dir.File("p.txt"), "1 5\n1 6\n1 5\n1 7\n1 6\n");
  ConvertOptions o = Format("seq");
  o.dedup = true;
  ConvertReport r = ConvertToDataset(dir.File("p.txt"), dir.File("out.h5"), o);
  EXPECT_EQ(r.dropped_duplicates, 2);
  EXPECT_EQ(Sequences(*Dataset::Open(dir.File("out.h5"))),
            (std::vector<std::vector<std::string>>{{"5", "6", "7"}}));
  // Without --dedup repeats stay.
  ConvertToDataset(dir.File("p.txt"), dir.File("all.h5"), Format("seq"));
  EXPECT_EQ(Dataset::Open(dir.File("all.h5"))->info().num_events, 5);
}

// A day's window [since, until): events outside it go, and raw ids keep their names, so the dense
// ids of two windows differ while their raw ids agree (what warm starts map by).
TEST(ConvertFilters, TimeWindowKeepsSinceUntilHalfOpen) {
  TempDir dir;
  WriteText(dir.File("e.csv"),
            "user,item,timestamp\n"
            "u1,a,100\nu1,b,199\nu1,c,200\nu2,d,150\nu2,a,250\nu3,e,300\n");
  ConvertOptions o = Format("csv");
  o.since = 150;
  o.until = 250;
  ConvertReport r = ConvertToDataset(dir.File("e.csv"), dir.File("day.h5"), o);
  EXPECT_EQ(r.dropped_by_time, 3);
  auto ds = Dataset::Open(dir.File("day.h5"));
  EXPECT_EQ(ds->ReadUserRawIds(0, 2), (std::vector<std::string>{"u1", "u2"}));
  EXPECT_EQ(Sequences(*ds), (std::vector<std::vector<std::string>>{{"b", "c"}, {"d"}}));
  o.since.reset();  // only an end
  EXPECT_EQ(ConvertToDataset(dir.File("e.csv"), dir.File("before.h5"), o).info.num_events, 4);
  o.since = 250;
  o.until = 250;
  ExpectUserError([&] { ConvertToDataset(dir.File("e.csv"), dir.File("x.h5"), o); }, {"--until 250 is not after --since 250"});
  o.since = 1000;
  o.until.reset();
  ExpectUserError([&] { ConvertToDataset(dir.File("e.csv"), dir.File("x.h5"), o); }, {"no events left", "6 by --since/--until"});
  WriteText(dir.File("p.txt"), "1 5\n1 6\n");
  ConvertOptions seq = Format("seq");
  seq.since = 0;
  ExpectUserError([&] { ConvertToDataset(dir.File("p.txt"), dir.File("x.h5"), seq); }, {"--since/--until", "has no timestamps"});
  EXPECT_FALSE(PathExists(dir.File("x.h5")));
}

TEST(ConvertFilters, KCoreIteratesToFixedPoint) {
  // min 2 events per user and per item. Round 1 drops user 3 (1 event) and item 9 (1 event);
  // that leaves user 2 with one event (item 8), so round 2 drops it, which leaves item 8 with
  // one event (user 1) -> round 3 drops it; user 1 keeps items 5, 6 (each also seen by user 4).
  TempDir dir;
  WriteText(dir.File("k.txt"),
            "1 5 6 8\n"
            "2 8 9\n"
            "3 5\n"
            "4 5 6\n");
  ConvertOptions o = Format("seq");
  o.min_user_events = 2;
  o.min_item_events = 2;
  ConvertReport r = ConvertToDataset(dir.File("k.txt"), dir.File("out.h5"), o);
  auto ds = Dataset::Open(dir.File("out.h5"));
  EXPECT_EQ(ds->ReadUserRawIds(0, ds->info().num_users), (std::vector<std::string>{"1", "4"}));
  EXPECT_EQ(Sequences(*ds), (std::vector<std::vector<std::string>>{{"5", "6"}, {"5", "6"}}));
  EXPECT_EQ(r.dropped_by_kcore, 4);
  EXPECT_GE(r.kcore_rounds, 3);
  // Every survivor meets both thresholds (the fixed point).
  EXPECT_EQ(ds->info().num_items, 2);
}

// ---- bad input: one clear message with file and line, and no output file --------------------

struct BadCase {
  std::string name, format, file, text, columns;
  std::vector<std::string> fragments;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class ConvertBadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConvertBadInput, ClearErrorAndNoOutput) {
  const BadCase& c = GetParam();
  TempDir dir;
  std::string input = dir.path();
  if (!c.file.empty()) {
    WriteText(dir.File(c.file), c.text);
    input = c.format == "movielens" ? dir.path() : dir.File(c.file);
  }
  ConvertOptions o = Format(c.format);
  o.columns = c.columns;
  ExpectUserError([&] { ConvertToDataset(input, dir.File("out.h5"), o); }, c.fragments);
  for (const auto& f : testing::ListDir(dir.path())) EXPECT_EQ(f.find("out.h5"), std::string::npos) << f;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConvertBadInput,
    ::testing::Values(
        BadCase{"ml_short_line", "movielens", "u.data", "1\t2\t3\t4\n1\t2\t3\n", "",
                {"u.data:2:", "expected 4 tab-separated fields", "got 3"}},
        BadCase{"ml_non_numeric_user", "movielens", "u.data", "1\t2\t3\t4\nabc\t2\t3\t4\n", "",
                {"u.data:2:", "expected an integer user id", "'abc'"}},
        BadCase{"ml_bad_timestamp", "movielens", "u.data", "1\t2\t3\tnoon\n", "",
                {"u.data:1:", "timestamp", "'noon'"}},
        BadCase{"ml_dat_fields", "movielens", "ratings.dat", "1::2::3\n", "",
                {"ratings.dat:1:", "4 '::'-separated fields"}},
        BadCase{"ml_missing_files", "movielens", "", "", "", {"no MovieLens ratings found"}},
        BadCase{"ml_empty", "movielens", "u.data", "", "", {"empty input"}},
        BadCase{"seq_one_field", "seq", "s.txt", "1 2 3\n4\n", "", {"s.txt:2:", "followed by item ids"}},
        BadCase{"seq_non_numeric_item", "seq", "s.txt", "1 2 x3\n", "",
                {"s.txt:1:", "expected an integer item id", "'x3'"}},
        BadCase{"seq_empty", "seq", "s.txt", "\n\n", "", {"s.txt", "empty input"}},
        BadCase{"csv_missing_column", "csv", "e.csv", "user,rating\n1,5\n", "",
                {"e.csv:1:", "no item column", "user, rating"}},
        BadCase{"csv_mapped_column_missing", "csv", "e.csv", "u,i\n1,5\n", "user=u,item=item_x",
                {"e.csv:1:", "no column named 'item_x'"}},
        BadCase{"csv_field_count", "csv", "e.csv", "user,item\n1,2\n1,2,3\n", "",
                {"e.csv:3:", "expected 2 fields", "got 3"}},
        BadCase{"csv_bad_timestamp", "csv", "e.csv", "user,item,timestamp\n1,2,yesterday\n", "",
                {"e.csv:2:", "timestamp in column timestamp", "'yesterday'"}},
        BadCase{"csv_unterminated_quote", "csv", "e.csv", "user,item\n\"1,2\n", "",
                {"e.csv:2:", "unterminated"}},
        BadCase{"csv_header_only", "csv", "e.csv", "user,item\n", "", {"empty input"}},
        BadCase{"csv_empty_file", "csv", "e.csv", "", "", {"e.csv", "empty input"}},
        BadCase{"seq_binary", "seq", "s.txt", std::string("1 2 3\n4 5\0 6\n", 12), "", {"s.txt:2:", "a NUL byte"}},
        BadCase{"csv_latin1_id", "csv", "e.csv", "user,item\nm\xfcller,2\n", "",
                {"e.csv:2:", "user id in column user is not UTF-8", "iconv"}},
        BadCase{"unknown_format", "parquet", "e.csv", "user,item\n", "",
                {"unknown format 'parquet'", "movielens, seq, csv or events"}}),
    [](const ::testing::TestParamInfo<BadCase>& i) { return i.param.name; });

TEST(ConvertBadInput, MissingFile) {
  TempDir dir;
  ExpectUserError([&] { ConvertToDataset(dir.File("nope.txt"), dir.File("o.h5"), Format("seq")); },
                  {"nope.txt", "cannot open"});
}

// An endless input (a device) ends at the line-length limit with a message, not by exhausting memory.
// Inputs are regular files: a device that never ends and a FIFO that would wait for a writer are
// refused by name before anything is read; a binary file stops at its first NUL byte, naming the
// line.
TEST(ConvertBadInput, DevicesFifosAndBinaryFilesAreRefused) {
  TempDir dir;
  ExpectUserError([&] { ConvertToDataset("/dev/zero", dir.File("o.h5"), Format("seq")); },
                  {"/dev/zero: is not a regular file (a device)"});
  const std::string fifo = dir.File("endless");
  ASSERT_EQ(testing::RunCommand("mkfifo " + fifo).exit_code, 0);
  ExpectUserError([&] { ConvertToDataset(fifo, dir.File("o.h5"), Format("seq")); }, {"endless: is not a regular file (a FIFO)"});
  WriteText(dir.File("b.txt"), std::string("1 2 3\n4 5") + '\0' + "6\n");
  ExpectUserError([&] { ConvertToDataset(dir.File("b.txt"), dir.File("o.h5"), Format("seq")); }, {"b.txt:2:", "NUL byte"});
  EXPECT_FALSE(PathExists(dir.File("o.h5")));
}

// The output may not replace an input, whatever path names it.
TEST(ConvertBadInput, OutputThatIsTheInput) {
  TempDir dir;
  WriteText(dir.File("s.txt"), "1 2 3\n");
  ExpectUserError([&] { ConvertToDataset(dir.File("s.txt"), dir.path() + "/./s.txt", Format("seq")); },
                  {"--output", "is an input file"});
  EXPECT_EQ(ReadFileToString(dir.File("s.txt")), "1 2 3\n");
  WriteText(dir.File("u.data"), "1\t2\t3\t4\n");
  ExpectUserError([&] { ConvertToDataset(dir.path(), dir.File("u.data"), Format("movielens")); }, {"is an input file"});
}

// A UTF-8 byte-order mark (as spreadsheet exports write) is not part of the first field.
TEST(ConvertCsv, ByteOrderMarkIsDropped) {
  TempDir dir;
  WriteText(dir.File("e.csv"), "\xEF\xBB\xBFuser,item\n1,2\n1,3\n");
  ConvertToDataset(dir.File("e.csv"), dir.File("o.h5"), Format("csv"));
  auto ds = Dataset::Open(dir.File("o.h5"));
  EXPECT_EQ(ds->info().num_events, 2);
}

TEST(ConvertBadInput, FiltersThatLeaveNothing) {
  TempDir dir;
  WriteText(dir.File("s.txt"), "1 2 3\n");
  ConvertOptions o = Format("seq");
  o.min_user_events = 5;
  ExpectUserError([&] { ConvertToDataset(dir.File("s.txt"), dir.File("o.h5"), o); },
                  {"no events left after filtering"});
  o = Format("seq");
  o.min_rating = 3;
  ExpectUserError([&] { ConvertToDataset(dir.File("s.txt"), dir.File("o.h5"), o); },
                  {"--min-rating", "has no ratings"});
  EXPECT_FALSE(PathExists(dir.File("o.h5")));
}

// ---- real data (skipped without ../shared) -----------------------------------------------------

TEST(ConvertRealData, MovieLens100K) {
  const std::string data = testing::SharedDataDir();
  if (data.empty()) GTEST_SKIP() << "../shared/data not found; set SHARDREC_DATA to run this test";
  TempDir dir;
  ConvertToDataset(data + "/ml-100k", dir.File("ml.h5"), Format("movielens"));
  auto ds = Dataset::Open(dir.File("ml.h5"));
  EXPECT_EQ(ds->info().num_users, 943);
  EXPECT_EQ(ds->info().num_items, 1682);
  EXPECT_EQ(ds->info().num_events, 100000);
  EXPECT_EQ(ds->info().num_categories, 19);
  EXPECT_EQ(ds->ReadItemTitles(0, 1)[0], "Toy Story (1995)");
}

TEST(ConvertRealData, AmazonVideoGamesSasrec) {
  const std::string data = testing::SharedDataDir();
  if (data.empty()) GTEST_SKIP() << "../shared/data not found; set SHARDREC_DATA to run this test";
  TempDir dir;
  ConvertReport r = ConvertToDataset(data + "/amazon-video-games-sasrec/Video.txt", dir.File("v.h5"),
                                     Format("seq"));
  EXPECT_NE(r.detected.find("pairs"), std::string::npos);
  auto ds = Dataset::Open(dir.File("v.h5"));
  EXPECT_EQ(ds->info().num_users, 31013);
  EXPECT_EQ(ds->info().num_items, 23715);
  EXPECT_EQ(ds->info().num_events, 287107);
}

}  // namespace
}  // namespace shardrec
