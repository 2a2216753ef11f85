// Full-ranking evaluation metrics (DESIGN section 8): every item is a candidate, the user's
// earlier items are excluded, ties are broken by item id (lower id ranks first) so results are
// deterministic. Per-user results are reduced to per-user figures on their own rank, gathered, and
// summed in user order on every rank, so the metrics are bitwise identical for any world size.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace shardrec {

// The list lengths at which every metric is reported, and the longest list kept per user.
inline constexpr int kListCutoffs[] = {10, 50, 200};
inline constexpr int64_t kListLength = 200;

struct UserResult {
  int64_t user = 0;
  int64_t rank = 0;            // 0-based position of the target in the ranking
  int64_t history = 0;         // the user's training events (history-length slices)
  std::vector<int64_t> top;    // the best items, best first: min(kListLength, items ranked)
};

// Ranks of targets for a batch: scores [B x I]; excluded[b] = items not ranked for row b (the
// target itself is never excluded). Returns 0-based ranks and the top-kListLength lists
// (`history` is left 0 for the caller).
std::vector<UserResult> RankTargets(const at::Tensor& scores, const std::vector<int64_t>& users,
                                    const std::vector<int64_t>& targets,
                                    const std::vector<std::vector<int64_t>>& excluded);

// What the list metrics know about items.
struct ListContext {
  int64_t num_items = 0;
  std::vector<int64_t> item_counts;  // training events per item (novelty, popularity bias)
  // [items x F] float rows of unit length (or zero): diversity@K = 1 - the mean cosine similarity
  // of the pairs of a top-K list. Undefined: diversity is not reported.
  at::Tensor features;
};

// COLLECTIVE. Gathers every rank's results and computes, on every rank:
//   hr@K and ndcg@K for K in {10, 50, 200} (one target per user: HR@K == Recall@K), mrr;
//   at every K: coverage@K (distinct items in top-K lists / items), novelty@K (mean -log2 of the
//   training popularity share of listed items; unseen items count as seen once), popularity_bias@K
//   (mean popularity percentile of listed items: 1 = the most trained item, 0 = the least, ties at
//   their mid rank) and, with features, diversity@K;
//   by training history length (1-2, 3-5, 6-20, 21+ events): hist_B.hr@10, .ndcg@10, .hr@50,
//   .mrr, .users;
//   users, items.
std::map<std::string, double> ReduceMetrics(Communicator& comm, const std::vector<UserResult>& local,
                                            const ListContext& items);

// Item features for diversity@K: each item's categories as a unit multi-hot vector (an item
// without categories gets a column of its own). offsets: CSR [items + 1].
at::Tensor CategoryFeatures(int64_t num_items, int64_t num_categories, const std::vector<int64_t>& offsets,
                            const std::vector<int64_t>& values);
// Rows of `vectors` [items x d] scaled to unit length (zero rows stay zero), as float on the CPU.
at::Tensor UnitRows(const at::Tensor& vectors);

}  // namespace shardrec
