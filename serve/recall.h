// `shardrec recall`: top-K lists for many users from an export, for a serving tier that wants them
// precomputed (io/recall_lists.h for the files). Each rank takes a contiguous range of the selected
// users and searches its own copy of the index; a user's list is exactly `shardrec query --user`'s
// (the same vector, the same search, the user's own items left out).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "distributed/communicator.h"

namespace shardrec {

struct RecallOptions {
  std::string export_dir;  // an export root (its LATEST) or a version directory
  std::string users = "all";  // "all" (every exported user) or a file of raw user ids, one per line
  int64_t k = 100;
  std::string out;  // must not exist; written as .<name>.partial beside it, then renamed
  bool exact = false;  // exact search even where the export has an index
  int threads = 0;     // search threads per rank (0: as many as cores)
  // Rank 0's progress over its own range: users done, its total, seconds so far.
  std::function<void(int64_t done, int64_t total, double seconds)> progress;
};

struct RecallReport {
  std::string dir;      // the finished lists
  std::string version;  // the export version they come from
  std::string search;   // "exact" or the index factory
  int64_t users = 0;    // over all ranks
  double seconds = 0;   // reading the users' vectors and events, and the search: the slowest rank (the lists' files excluded)
};

// Collective. A user's mistake (an unknown id in the users file, --out existing) or a failed write
// on any rank ends every rank with one message and leaves no output.
RecallReport WriteRecallLists(const RecallOptions& options, Communicator& comm);

}  // namespace shardrec
