// Full-ranking evaluation metrics (DESIGN section 8): every item is a candidate, the user's
// earlier items are excluded, ties are broken by item id (lower id ranks first) so results are
// deterministic. Per-user results are gathered and summed in user order on every rank, so the
// metrics are bitwise identical for any world size.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace shardrec {

struct UserResult {
  int64_t user = 0;
  int64_t rank = 0;              // 0-based position of the target in the ranking
  std::vector<int64_t> top10;    // the 10 best items
};

// Ranks of targets for a batch: scores [B x I]; excluded[b] = items not ranked for row b (the
// target itself is never excluded). Returns 0-based ranks and the top-10 lists.
std::vector<UserResult> RankTargets(const at::Tensor& scores, const std::vector<int64_t>& users,
                                    const std::vector<int64_t>& targets,
                                    const std::vector<std::vector<int64_t>>& excluded);

// COLLECTIVE. Gathers every rank's results and computes, on every rank:
//   hr@K and ndcg@K for K in {10, 50, 200} (one target per user: HR@K == Recall@K), mrr,
//   coverage@10 (distinct items in top-10 lists / items), novelty@10 (mean -log2 of the
//   training popularity share of top-10 items; unseen items count as seen once), users, items.
std::map<std::string, double> ReduceMetrics(Communicator& comm, const std::vector<UserResult>& local,
                                            int64_t num_items, const std::vector<int64_t>& item_counts);

}  // namespace shardrec
