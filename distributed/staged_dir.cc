#include "distributed/staged_dir.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <glog/logging.h>

#include "common/error.h"
#include "common/file_util.h"

namespace shardrec {

std::string StagedDir::StagingPath(const std::string& final_path) {
  return Dirname(final_path) + "/." + Basename(final_path) + ".partial";
}

StagedDir::StagedDir(std::string final_path, Communicator& comm, Existing existing, std::string what)
    : comm_(comm), existing_(existing), what_(std::move(what)) {
  while (final_path.size() > 1 && final_path.back() == '/') final_path.pop_back();
  final_ = std::move(final_path);
  staged_ = StagingPath(final_);
  RunAgreed(comm_, [&] {
    if (comm_.rank() != 0) return;
    if (existing_ == Existing::kRefuse && PathExists(final_)) {
      Fail(what_, ": ", final_, " exists already; it is written once (choose a new directory)");
    }
    RemoveAll(staged_);
    MakeDirs(staged_);
  });
}

StagedDir::~StagedDir() {
  if (committed_ || comm_.rank() != 0) return;
  try {
    RemoveAll(staged_);
  } catch (...) {  // a destructor reports nothing; the next writer removes a stale one
  }
}

void StagedDir::RemoveStaged() const {
  if (comm_.rank() == 0) RemoveAll(staged_);
}

void StagedDir::Run(const std::function<void()>& fn) {
  CHECK(!committed_) << final_ << ": written after its commit";
  RunAgreed(comm_, fn, [this] { RemoveStaged(); });
}

void StagedDir::Commit(const std::function<void()>& finish) {
  CHECK(!committed_) << final_ << ": committed twice";
  RunAgreed(comm_, [&] {
    if (comm_.rank() != 0) return;
    if (finish) finish();
    PutInPlace();
  }, [this] { RemoveStaged(); });
  committed_ = true;
}

void StagedDir::PutInPlace() const {
  const std::string old = Dirname(final_) + "/." + Basename(final_) + ".old";
  const bool replacing = PathExists(final_);
  if (replacing && existing_ == Existing::kRefuse) {
    Fail(what_, ": ", final_, " appeared while it was written; not replaced");
  }
  if (replacing) {
    RemoveAll(old);
    if (std::rename(final_.c_str(), old.c_str()) != 0) Fail(final_, ": cannot replace: ", std::strerror(errno));
  }
  if (std::rename(staged_.c_str(), final_.c_str()) != 0) {
    const int err = errno;
    if (replacing) std::rename(old.c_str(), final_.c_str());
    Fail(final_, ": cannot rename the finished ", what_, " into place: ", std::strerror(err));
  }
  if (replacing) {
    RemoveAll(old);
    try {
      SyncPath(Dirname(final_));
    } catch (const UserError&) {  // in place already: the directory entry's sync is best effort
    }
    return;
  }
  try {
    SyncPath(Dirname(final_));
  } catch (const UserError&) {
    // Not durably in place: back to the staging name (removed by the caller's clean-up).
    std::rename(final_.c_str(), staged_.c_str());
    throw;
  }
}

}  // namespace shardrec
