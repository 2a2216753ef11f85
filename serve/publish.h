// `shardrec publish`: export a trained run, index and verify it, and serve it only if it is no worse
// than what is served now (the gate); retention and rollback of served versions.
//
// Order, so that exactly one complete version is served throughout:
//   1. export the candidate to ROOT/<version> (complete, not served);
//   2. build its index and measure recall@10 against exact search (from here a server keeping a
//      standby loads the version while the gate evaluates: docs/serving.md);
//   3. evaluate the candidate (RUN/model) and the served version (ROOT/LATEST's model, loaded into
//      the candidate's catalogue by raw id; items it never saw cannot be recalled by it) on the same
//      holdout: the test split of the candidate's data, full ranking;
//   4. record the lineage (parent, data fingerprint, both evaluations, decision) in its manifest;
//   5. only if NDCG@10 >= served x (1 - tolerance) and recall@10 >= min_recall (or when forced),
//      point ROOT/LATEST at it (atomic rename); otherwise LATEST is left as it was;
//   6. remove the oldest versions beyond `keep` (never the served one).
// Publishing again under the same --export-version after an interruption (kill -9) is safe: a
// version gated earlier keeps its recorded decision (LATEST is moved if the decision was to serve
// and the interruption came before the move, never after a later rollback; a refused one is served
// with --force); one exported but not gated is removed and redone.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "distributed/communicator.h"
#include "serve/export_root.h"
#include "serve/index_build.h"
#include "serve/export.h"

namespace shardrec {

struct PublishOptions {
  ExportOptions export_options;  // run_dir, data, root, version, model, seed (move_latest is ignored)
  IndexOptions index;
  double tolerance = 0.02;   // the candidate's NDCG@10 may be this share below the served one's
  double min_recall = 0.95;  // the index's recall@10 against exact search
  bool force = false;        // serve even if the gate refuses (recorded as "forced")
  int64_t keep = 0;          // versions kept under ROOT (the served one and its parent always); 0 = all
  double lock_wait = 0;      // seconds to wait for the root's lock held by another publish or rollback
  int64_t eval_batch_size = 256;
};

struct PublishResult {
  std::string version;  // the candidate's version name
  std::string parent;   // the version served before ("" on the first)
  std::string decision; // "published", "refused" or "forced"
  std::string reason;   // why the gate refused ("" when it passed)
  std::map<std::string, double> candidate, served;  // test metrics (served: empty on the first)
  double recall10 = 0;
  std::vector<std::string> removed;  // versions removed by `keep`
  // The named version had been gated by an earlier, interrupted publish of the same run: its
  // recorded decision was finished (LATEST moved if it had not), nothing was evaluated again.
  bool resumed = false;
  // When resumed: why a version decided "published" earlier is not served now ("" when it is).
  std::string not_served;
};

// COLLECTIVE. Throws UserError on a bad option or a failed stage (LATEST is then unchanged); a
// refusal is not an error: the result says so (the command exits non-zero).
PublishResult Publish(const PublishOptions& options, Communicator& comm);

// What `shardrec publish` prints: both evaluations side by side, the index's recall, the versions
// removed, and what is served now (a refusal's reason is the caller's to report).
std::string PublishReportText(const PublishResult& result, const PublishOptions& options);

// Points ROOT/LATEST at `version`, or, when empty, at the parent recorded in the served version's
// lineage, under the root's lock. Returns the version now served. UserError if there is nothing to
// roll back to.
std::string Rollback(const std::string& root, const std::string& version, double lock_wait = 0);

}  // namespace shardrec
