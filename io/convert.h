// Converters from public recommendation formats to the ShardRec dataset (io/dataset.h).
// Ratings become implicit events; events are sorted by (user, time, input order); dense ids follow
// the raw ids' order (numeric when every raw id is an integer, else byte order).
// Every item of the catalogue (MovieLens u.item / movies.dat, or --items FILE) is kept, with or
// without events, so a new item can be embedded from its content and recalled; only
// --min-item-events drops catalogue items (the k-core counts events, so an item without any is
// below every threshold).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "io/dataset.h"

namespace shardrec {

struct ConvertOptions {
  // "movielens": a directory (or a file inside it) with u.data + u.item + u.genre (ML-100K) or
  //              ratings.dat + movies.dat (ML-1M/10M, "::"-separated).
  // "seq":       "user item1 item2 ..." per line (S3-Rec/ICLRec) or "user item" pairs per line in
  //              time order (SASRec); see seq_layout.
  // "csv":       header line naming the columns; delimiter ',', ';' or tab (detected).
  // "events":    an event log directory (io/event_log.h): every complete segment in log order; the
  //              items' titles and categories from the events (the last given wins, over --items).
  std::string format;
  std::string seq_layout = "auto";  // auto | lines | pairs
  // csv: "user=NAME,item=NAME,timestamp=NAME,rating=NAME" (any subset) to map other column names.
  std::string columns;
  char delimiter = 0;  // csv: 0 = detect from the header
  std::optional<double> min_rating;  // keep events with rating >= this (needs ratings)
  int64_t min_user_events = 0;       // k-core: iterate both filters to a fixed point
  int64_t min_item_events = 0;
  bool dedup = false;  // keep only the first event of each (user, item) pair
  // A time window: keep events with since <= timestamp < until (seconds; needs timestamps). Applied
  // first, so the other filters see only the window.
  std::optional<int64_t> since, until;
  // seq and csv: the item catalogue, one item per line, tab-separated: raw item id, then optionally
  // the title and the categories ('|'-separated); a first line "item<TAB>title<TAB>categories" (or
  // with item_id / id) is a header. MovieLens reads its own (u.item, movies.dat).
  std::string items_file;
};

struct ConvertReport {
  std::string detected;  // e.g. "movielens (ml-100k: u.data, u.item, u.genre)"
  int64_t input_events = 0;
  int64_t dropped_by_time = 0;
  int64_t dropped_by_rating = 0;
  int64_t dropped_duplicates = 0;
  int64_t dropped_by_kcore = 0;
  int kcore_rounds = 0;
  // Catalogue items kept without any event (they can only be recalled through their content).
  int64_t items_without_events = 0;
  DatasetInfo info;
};

// Reads `input`, writes the dataset to `output` atomically. Any problem with the input (missing
// file or column, malformed line, non-numeric id, empty input, unknown format, filters that leave
// nothing) throws UserError naming the file and line; no output file is left behind then.
ConvertReport ConvertToDataset(const std::string& input, const std::string& output,
                               const ConvertOptions& options);

// What `shardrec data convert` prints: what was read, what each filter dropped, what was written to
// `output` in `seconds`.
std::string ConvertReportText(const ConvertReport& report, const ConvertOptions& options, const std::string& output,
                              double seconds);

// The dataset's events as "user,item,timestamp" CSV with raw ids, users in dense-id order and each
// user's events in order: the input `--format csv` reads back into the same events.
void WriteEventsCsv(const Dataset& dataset, const std::string& path);
// Whether two datasets hold the same users, events and event order, items compared by raw id
// (dense item ids may differ: a CSV omits items without events).
bool SameEventsByRawId(const Dataset& a, const Dataset& b);

}  // namespace shardrec
