#include "model/catalogue.h"

#include <ATen/ATen.h>

#include "io/reader.h"

namespace shardrec {

ItemCatalog LoadItemCatalog(const Dataset& ds) {
  ItemCatalog c;
  c.num_items = ds.info().num_items;
  c.data = ds.path();
  c.item_ids_fingerprint = ds.ItemIdsFingerprint();
  if (ds.info().has_categories && ds.info().num_categories > 0) {
    auto cats = ds.ReadItemCategories(0, c.num_items);
    c.num_categories = ds.info().num_categories;
    c.category_offsets = cats.offsets;
    c.category_values.assign(cats.values.begin(), cats.values.end());
  }
  if (ds.info().content_dim > 0) {
    std::vector<float> v = ds.ReadItemContent(0, c.num_items);
    c.content = at::from_blob(v.data(), {c.num_items, ds.info().content_dim}, at::kFloat).clone();
  }
  return c;
}

void ForEachTrainSequence(const Dataset& ds, int64_t begin, int64_t end,
                          const std::function<void(std::span<const int32_t>)>& fn) {
  const auto& off = ds.user_offsets();
  int64_t u = begin;
  while (u < end) {
    int64_t v = u + 1;
    while (v < end && off[v + 1] - off[u] < (1 << 20)) ++v;
    const std::vector<int32_t> items = ds.ReadItems(off[u], off[v]);
    for (int64_t w = u; w < v; ++w) {
      const int32_t* first = items.data() + (off[w] - off[u]);
      fn(std::span<const int32_t>(first, static_cast<size_t>(TrainEventsEnd(off[w], off[w + 1]) - off[w])));
    }
    u = v;
  }
}

std::vector<int64_t> TrainItemCounts(const Dataset& ds, Communicator& comm) {
  const int64_t users = ds.info().num_users;
  at::Tensor counts = at::zeros({ds.info().num_items}, at::kLong);
  int64_t* c = counts.data_ptr<int64_t>();
  const auto [begin, end] = RankRange(users, comm);
  ForEachTrainSequence(ds, begin, end, [&](std::span<const int32_t> seq) {
    for (int32_t it : seq) ++c[it];
  });
  at::Tensor d = counts.to(c10::Device(comm.device()));
  comm.AllReduce(d, ReduceOp::kSum);
  counts = d.cpu();
  return std::vector<int64_t>(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel());
}

}  // namespace shardrec
