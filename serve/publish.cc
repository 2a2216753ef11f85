#include "serve/publish.h"

#include <torch/torch.h>

#include <signal.h>
#include <unistd.h>

#include <glog/logging.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "common/file_util.h"
#include "common/manifest.h"
#include "common/strings.h"
#include "io/dataset.h"
#include "io/export_format.h"
#include "train/checkpoint.h"
#include "eval/evaluate.h"
#include "model/catalogue.h"
#include "retrieval/export_index.h"
#include "train/trainer.h"
#include "train/model_files.h"
#include "train/run_dir.h"

namespace shardrec {
namespace {

// What both evaluations need of the candidate's data, read once.
struct Holdout {
  ItemCatalog catalog;
  std::vector<int64_t> counts;  // training popularity (novelty)
};

// COLLECTIVE. Test metrics on the candidate's data of the model in `model_dir`. `remap`: the model
// may come from another id space (the served version): its rows are mapped by raw id, and items
// it never saw score -inf (it cannot recall them).
std::map<std::string, double> EvaluateDir(const PublishOptions& o, const Holdout& h, const std::string& model_dir,
                                          bool remap, Communicator& comm) {
  const ExportOptions& e = o.export_options;
  // The served model may keep another history length than the candidate (--max-len 0 derives it
  // from each run's data): each is built with its own.
  ModelConfig mc = e.model;
  mc.max_len = SavedMaxLen(model_dir, mc.dim);
  mc.context = SavedHasContext(model_dir);  // and the served one may predate context features
  // Each loaded as eval, export and query load it; the served model's items new since are masked.
  OpenedModel opened = OpenModel(model_dir, mc, h.catalog, remap ? LoadMode::kServing : LoadMode::kSameData, e.seed, comm);
  at::Tensor unknown;
  if (opened.report.remapped) unknown = opened.report.items_known.logical_not();
  return EvaluateModel(*opened.model,
                       {.data = e.data, .batch_size = o.eval_batch_size, .item_counts = h.counts, .unknown = unknown}, comm);
}

// The gate: empty when the candidate may be served, else why not.
std::string Gate(const PublishOptions& o, const PublishResult& r) {
  if (r.recall10 < o.min_recall) {
    return "index recall@10 " + std::to_string(r.recall10) + " is below --min-recall " + std::to_string(o.min_recall);
  }
  if (r.parent.empty()) return "";
  const double cand = r.candidate.at("ndcg@10"), served = r.served.at("ndcg@10");
  if (cand < served * (1 - o.tolerance)) {
    return "NDCG@10 " + std::to_string(cand) + " is below the served " + std::to_string(served) + " x (1 - --tolerance " +
           std::to_string(o.tolerance) + ")";
  }
  return "";
}

std::string PublishingMarker(const std::string& root, const std::string& version) { return root + "/." + version + ".publishing"; }

// COLLECTIVE. Finishes a publish of this run that was interrupted after its export; returns false
// (nothing done) when there is none.
bool ResumeInterrupted(const PublishOptions& o, PublishResult& r, Communicator& comm) {
  const ExportOptions& e = o.export_options;
  // A named version that exists already: a publish of this run that was interrupted (kill -9)
  // after the export. Its decision stands and is finished; without one, the unserved version is
  // removed and the gate runs again. A version from another run is an error.
  std::string resumed;
  RunAgreed(comm, [&] {
    if (comm.rank() != 0 || e.version.empty() || !PathExists(e.root + "/" + e.version + "/manifest.json")) return;
    const std::string dir = e.root + "/" + e.version;
    const ExportManifest m = ReadExportManifest(dir);
    if (!SameFile(m.source, RunDir(e.run_dir).model())) {
      Fail(dir, ": this version exists already, exported from ", m.source, "; pick another --export-version");
    }
    const std::string latest = ReadLatest(e.root);
    if (!m.has_lineage || m.gate_decision.empty()) {
      if (latest == e.version) Fail(dir, ": served, but its manifest records no gate decision; pick another --export-version");
      RemoveAll(dir);  // exported, never gated: start again
      return;
    }
    r.version = e.version;
    r.parent = m.parent;
    r.candidate = m.gate_candidate;
    r.served = m.gate_served;
    r.recall10 = m.index_dir.empty() ? -1 : ReadIndexManifest(dir + "/" + m.index_dir).recall10;
    r.decision = m.gate_decision;
    r.reason = r.decision == "published" ? "" : Gate(o, r);
    if (r.decision == "refused" && r.reason.empty()) r.reason = "refused when this version was gated (its manifest)";
    const std::string marker = PublishingMarker(e.root, e.version);
    if (r.decision == "refused" && o.force && latest == m.parent) {  // served anyway now, recorded
      ExportManifest forced = m;
      forced.gate_decision = r.decision = "forced";
      WriteFileAtomically(marker, m.parent + "\n");
      WriteExportManifest(dir, forced);
    }
    if (r.decision != "refused" && latest != e.version) {
      if (PathExists(marker) && latest == m.parent) {
        SetLatest(e.root, e.version);  // interrupted between the decision and LATEST
      } else {
        // Served before and replaced since (a rollback): a re-run does not serve it again.
        r.not_served = "LATEST names " + (latest.empty() ? std::string("nothing") : latest) +
                       ", set after this version was served; serve it again with shardrec publish --rollback " + e.version;
      }
    }
    RemoveAll(marker);
    r.removed = PruneVersions(e.root, o.keep, r.version);
    resumed = r.decision;
  });
  if (BroadcastString(comm, resumed, 0).empty()) return false;
  r.decision = BroadcastString(comm, r.decision, 0);
  r.reason = BroadcastString(comm, r.reason, 0);
  r.resumed = true;
  return true;
}

// COLLECTIVE. The last steps of a publish on rank 0, once `dir` is exported and indexed and both
// evaluations are in: the gate, the lineage in its manifest, LATEST, pruning; every rank learns the
// outcome (a failure removes the unserved version).
void GateAndServe(const PublishOptions& o, const std::string& dir, const Dataset& ds, PublishResult& r, Communicator& comm) {
  const ExportOptions& e = o.export_options;
  RunAgreed(comm, [&] {
    if (comm.rank() != 0) return;
    r.reason = Gate(o, r);
    r.decision = r.reason.empty() ? "published" : o.force ? "forced" : "refused";
    ExportManifest m = ReadExportManifest(dir);
    m.has_lineage = true;
    m.parent = r.parent;
    m.data_fingerprint = ds.DataFingerprint();
    m.gate_candidate = r.candidate;
    m.gate_served = r.served;
    m.gate_decision = r.decision;
    // The marker says "LATEST is about to move here": a re-run after an interruption finishes the
    // move only while it exists, and never undoes a later rollback.
    if (r.decision != "refused") WriteFileAtomically(PublishingMarker(e.root, r.version), r.parent + "\n");
    WriteExportManifest(dir, m);
    if (r.decision != "refused") {
      SetLatest(e.root, r.version);
      RemoveAll(PublishingMarker(e.root, r.version));
    }
    r.removed = PruneVersions(e.root, o.keep, r.version);
  }, [&] {
    if (comm.rank() == 0 && ReadLatest(e.root) != r.version) {
      RemoveAll(dir);
      RemoveAll(PublishingMarker(e.root, r.version));  // LATEST never moved: nothing to finish
    }
  });
  r.decision = BroadcastString(comm, r.decision, 0);
  r.reason = BroadcastString(comm, r.reason, 0);
}

}  // namespace

PublishResult Publish(const PublishOptions& o, Communicator& comm) {
  if (!(o.tolerance >= 0 && o.tolerance < 1)) Fail("--tolerance: expected a share in [0, 1), got ", o.tolerance);
  if (!(o.min_recall >= 0 && o.min_recall <= 1)) Fail("--min-recall: expected a value in [0, 1], got ", o.min_recall);
  if (o.keep < 0) Fail("--keep: expected 0 (keep all) or more versions, got ", o.keep);
  CheckIndexOptions(o.index);
  const ExportOptions& e = o.export_options;
  if (!e.version.empty()) CheckVersionName(e.version, "--export-version");  // before anything is written
  PublishResult r;
  // The root's lock, for the whole publish: a second publisher, a rollback or a re-index of the
  // root waits for it (--lock-wait) or is refused naming this process.
  std::unique_ptr<DirectoryLock> lock;
  RunAgreed(comm, [&] {
    if (comm.rank() == 0) lock = LockExportRoot(e.root, "a publish", o.lock_wait);
  });
  if (ResumeInterrupted(o, r, comm)) return r;
  RunAgreed(comm, [&] {
    if (comm.rank() == 0) r.parent = ReadLatest(e.root);
  });
  r.parent = BroadcastString(comm, r.parent, 0);
  auto ds = Dataset::Open(e.data);
  std::string served_source;
  if (!r.parent.empty()) {
    served_source = ReadExportManifest(e.root + "/" + r.parent).source;
    if (!PathExists(served_source + "/manifest.json")) {
      Fail(e.root, "/", r.parent, ": its model ", served_source, " is gone; the gate needs it to score the served version");
    }
    if (SameFile(served_source, RunDir(e.run_dir).model())) {
      Fail("the served version ", r.parent, " came from ", served_source, ", the candidate's own model directory (the run "
           "directory was reused): give each night's run its own --run-dir");
    }
  }
  // 1. The export and its index, complete but not served: servers keeping a standby load it
  // while the gate evaluates (docs/serving.md), so LATEST moving to it swaps at once.
  ExportOptions eo = e;
  eo.move_latest = false;
  const std::string dir = ExportEmbeddings(eo, comm);
  r.version = Basename(dir);
  auto unpublished = [&] {
    if (comm.rank() == 0 && ReadLatest(e.root) != r.version) RemoveAll(dir);
  };
  RunAgreed(comm, [&] {
    if (comm.rank() == 0) r.recall10 = BuildExportIndex(dir, o.index).recall10;
  }, unpublished);
  // 2. Both evaluations on the candidate's holdout; whatever ends them removes the unserved version.
  try {
    const Holdout holdout{LoadItemCatalog(*ds), TrainItemCounts(*ds, comm)};
    r.candidate = EvaluateDir(o, holdout, RunDir(e.run_dir).model(), /*remap=*/false, comm);
    if (!r.parent.empty()) r.served = EvaluateDir(o, holdout, served_source, /*remap=*/true, comm);
  } catch (...) {  // a mistake, or memory running out: the unserved version goes either way
    unpublished();
    throw;
  }
  GateAndServe(o, dir, *ds, r, comm);
  return r;
}

std::string Rollback(const std::string& root, const std::string& version, double lock_wait) {
  if (!IsDirectory(root)) Fail(root, ": no such export root");
  const auto lock = LockExportRoot(root, "a rollback", lock_wait);
  const std::string current = ReadLatest(root);
  std::string target = version;
  while (target.size() > 1 && target.back() == '/') target.pop_back();  // a shell's completion
  if (target.empty()) {
    if (current.empty()) Fail(root, ": no LATEST; nothing is served, so there is nothing to roll back");
    target = ReadExportManifest(root + "/" + current).parent;
    if (target.empty()) {
      Fail(root, "/", current, ": its manifest records no parent version (the first published, or exported without "
           "`shardrec publish`); name the version to serve: shardrec publish --rollback VERSION --export-root ", root);
    }
  }
  if (!PathExists(root + "/" + target + "/manifest.json")) {
    Fail(root, "/", target, ": no such complete version (it may have been removed by --keep)");
  }
  ReadExportManifest(root + "/" + target);  // verifies every file's size and checksum
  SetLatest(root, target);
  return target;
}

std::string PublishReportText(const PublishResult& r, const PublishOptions& o) {
  const ExportOptions& e = o.export_options;
  std::string out;
  if (r.resumed) {
    Appendf(out, "%s/%s was gated by an earlier, interrupted publish of this run: its recorded decision stands\n",
            e.root.c_str(), r.version.c_str());
  }
  Appendf(out, "candidate %s (from %s) against the served %s, test split of %s, full ranking:\n", r.version.c_str(),
          e.run_dir.c_str(), r.parent.empty() ? "(none)" : r.parent.c_str(), e.data.c_str());
  Appendf(out, "  %-22s %8s %8s %8s\n", "", "HR@10", "NDCG@10", "MRR");
  auto row = [&](const char* name, const std::map<std::string, double>& m) {
    auto get = [&](const char* k) { return m.count(k) ? m.at(k) : 0.0; };
    Appendf(out, "  %-22s %8.4f %8.4f %8.4f\n", name, get("hr@10"), get("ndcg@10"), get("mrr"));
  };
  row("candidate", r.candidate);
  if (!r.parent.empty()) row("served", r.served);
  Appendf(out, "  index recall@10 against exact search: %.4f\n", r.recall10);
  for (const auto& v : r.removed) Appendf(out, "removed %s/%s (--keep %lld)\n", e.root.c_str(), v.c_str(), static_cast<long long>(o.keep));
  if (r.decision == "refused") return out;
  if (!r.not_served.empty()) {
    Appendf(out, "%s earlier; not served now: %s\n", r.decision.c_str(), r.not_served.c_str());
    return out;
  }
  Appendf(out, "%s: %s/LATEST -> %s%s\n", r.decision.c_str(), e.root.c_str(), r.version.c_str(),
          r.decision == "forced" ? (" (the gate said: " + r.reason + ")").c_str() : "");
  return out;
}

}  // namespace shardrec
