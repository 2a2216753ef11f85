#include "train/run_dir.h"

#include <cstdio>

namespace shardrec {

std::string RunDir::checkpoint(int64_t step) const {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%09lld", static_cast<long long>(step));
  return checkpoints() + "/" + name;
}

bool RunDir::IsRunEntry(const std::string& name) {
  for (const char* exact : {"config.yaml", "metrics.jsonl", "plan.txt", "model", "checkpoints", "eval.json"}) {
    if (name == exact) return true;
  }
  return name.rfind("events.out.tfevents.", 0) == 0 ||
         (name.rfind("eval-", 0) == 0 && name.size() > 10 && name.compare(name.size() - 5, 5, ".json") == 0);
}

}  // namespace shardrec
