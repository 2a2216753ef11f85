// A directory that appears whole or not at all, written by every rank of a job (leveldb's atomic
// commit, for a directory of several ranks' files): the ranks fill DIR/.NAME.partial, agree that
// every write succeeded, and rank 0 renames it to DIR/NAME and syncs DIR. A failure on any rank, at
// any point before the commit has finished, removes the staging directory on rank 0 and ends every
// rank with the first rank's message (RunAgreed). Checkpoints, exports and recall lists are
// committed through it, so a reader never meets a half-written one.
//
// Collective: every rank constructs, runs and commits the same StagedDir in the same order. Not
// thread-safe; one object per output.
#pragma once

#include <functional>
#include <string>

#include "distributed/communicator.h"

namespace shardrec {

class StagedDir {
 public:
  // What the commit does when DIR/NAME exists.
  enum class Existing {
    kRefuse,   // a UserError (at construction and again at the commit): outputs are written once
    // The old directory moves aside (DIR/.NAME.old) just before the new one takes its name and is
    // removed after; syncing DIR is then best effort (the new one is in place), as for a file.
    kReplace,
  };
  // COLLECTIVE. Rank 0 removes a stale staging directory (a killed writer's) and creates it empty.
  // `what` names the output in messages ("--out", "checkpoint").
  StagedDir(std::string final_path, Communicator& comm, Existing existing = Existing::kRefuse,
            std::string what = "output");
  // An uncommitted staging directory is removed (rank 0, best effort): an exception between the
  // collective calls leaves nothing behind.
  ~StagedDir();
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  // Where the ranks write: DIR/.NAME.partial.
  const std::string& path() const { return staged_; }
  const std::string& final_path() const { return final_; }

  // COLLECTIVE. Runs this rank's part `fn` (no collective call inside, as for RunAgreed); a
  // UserError on any rank removes the staging directory and is rethrown on every rank.
  void Run(const std::function<void()>& fn);

  // COLLECTIVE. Rank 0 runs `finish` (the last files, such as a manifest written once every rank's
  // files exist), renames the staging directory into place and syncs the parent directory. On any
  // failure the staging directory is removed (an existing DIR/NAME is left as it was) and every
  // rank throws the message; with kRefuse that includes a failed sync (the new directory goes back
  // to its staging name and is removed: it was never durably in place).
  void Commit(const std::function<void()>& finish = {});
  bool committed() const { return committed_; }

  // "a/b/NAME" -> "a/b/.NAME.partial": where a StagedDir for `final_path` writes.
  static std::string StagingPath(const std::string& final_path);

 private:
  void RemoveStaged() const;
  void PutInPlace() const;  // rank 0

  std::string final_;
  std::string staged_;
  Communicator& comm_;
  Existing existing_;
  std::string what_;
  bool committed_ = false;
};

}  // namespace shardrec
