// Full-ranking evaluation metrics (docs/training.md, "Evaluation"): every item is a candidate, the user's
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
  int64_t target = -1;         // the held-out item (warm / cold slices)
  int64_t cold_rank = -1;      // a cold target's rank among the cold items alone (-1: not computed)
  // With ListContext::list_vectors: the unit vectors of `top` [top.size() x list_vector_dim], CPU
  // float (an evaluation that holds no catalogue-wide vectors ships them with the lists).
  at::Tensor top_vectors;
};

// The best min(kListLength, n) columns of each row of `scores` [B x n] (CPU, float, contiguous),
// best first: by score, ties by lower column; -inf columns (excluded) are not listed.
std::vector<std::vector<int64_t>> TopLists(const at::Tensor& scores);

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
  // Diversity@K = 1 - the mean cosine similarity of the pairs of a top-K list, by one of:
  // - categories (CSR over items, offsets [items + 1]): each item a unit multi-hot vector; items
  //   without categories are alike among themselves;
  // - vectors [items x d] (e.g. the model's item vectors), compared by cosine.
  // Neither (num_categories == 0 and vectors undefined): diversity is not reported.
  int64_t num_categories = 0;
  std::vector<int64_t> category_offsets, category_values;
  at::Tensor vectors;
  // Or: every UserResult brings its listed items' unit vectors (top_vectors) of this width.
  bool list_vectors = false;
  int64_t list_vector_dim = 0;
  // The cold-start protocol (io/cold_start.h), when evaluated under it: cold[i] = 1 for a cold item
  // (empty: no warm / cold slices) and each cold item's rank among the cold items by its eventual
  // popularity (ColdPopularityRanks), the cold slice's popularity baseline.
  std::vector<uint8_t> cold;
  std::vector<int64_t> cold_popularity_rank;
};

// Per-user figures of this rank's users, reduced as they come (an evaluation adds each batch's
// results, then drops their lists), then gathered by Reduce.
class MetricsAccumulator {
 public:
  explicit MetricsAccumulator(ListContext context);
  void Add(const std::vector<UserResult>& results);
  // COLLECTIVE. Computes, on every rank, from every rank's users:
  //   hr@K and ndcg@K for K in {10, 50, 200} (one target per user: HR@K == Recall@K), mrr;
  //   at every K, over users whose list is not empty: coverage@K (distinct items in top-K lists /
  //   items), novelty@K (mean -log2 of the training popularity share of listed items; unseen items
  //   count as seen once), popularity_bias@K (mean popularity percentile of listed items: 1 = the
  //   most trained item, 0 = the least, ties at their mid rank) and, with features, diversity@K
  //   (over lists of at least 2 items);
  //   by training history length (1-2, 3-5, 6-20, 21+ events): hist_B.hr@10, .ndcg@10, .hr@50,
  //   .mrr, .users;
  //   under the cold-start protocol (context.cold), by the target: warm.* and cold.* (hr@10,
  //   ndcg@10, hr@50, ndcg@50, mrr, users), all.* (the same over every user), and the popularity
  //   baseline on the cold slice, ranking only cold items: cold.pop_hr@10, cold.pop_ndcg@10,
  //   cold.pop_hr@50, and the model ranking only cold items the same way (from cold_rank):
  //   cold.among_cold_hr@10, cold.among_cold_ndcg@10, cold.among_cold_hr@50;
  //   users, items.
  std::map<std::string, double> Reduce(Communicator& comm) const;

 private:
  double Diversity(const UserResult& r, size_t end, std::vector<double>* sum, double* norm2, size_t* done) const;

  ListContext c_;
  std::vector<double> percentile_;
  double total_events_ = 1;
  std::vector<double> rows_;     // per user: the figures Reduce gathers
  std::vector<uint8_t> covered_;  // [cut-offs x items]: listed by some user of this rank
};

// COLLECTIVE. MetricsAccumulator over `local`, reduced.
std::map<std::string, double> ReduceMetrics(Communicator& comm, const std::vector<UserResult>& local,
                                            const ListContext& items);

}  // namespace shardrec
