#include "io/reader.h"

#include <glog/logging.h>

#include <algorithm>

#include "common/error.h"
#include "common/rng.h"

namespace shardrec {

const char* SplitName(Split s) {
  switch (s) {
    case Split::kTrain: return "train";
    case Split::kValid: return "valid";
    case Split::kTest: return "test";
  }
  return "?";
}

namespace {
constexpr uint64_t kShuffleStream = 0x5348554646ULL;  // "SHUFF"
constexpr uint64_t kBucketStream = 0x4255434BULL;     // "BUCK"
constexpr uint64_t kSampleStream = 0x53414D50ULL;     // "SAMP"

// [begin, end) of the events that form the input of `split`, plus the target position (or -1).
struct Span {
  int64_t begin, end, target;
};

std::optional<Span> SplitSpan(int64_t b, int64_t e, Split split) {
  const int64_t n = e - b;
  switch (split) {
    case Split::kTrain: {
      const int64_t end = TrainEventsEnd(b, e);
      if (end - b < 2) return std::nullopt;  // needs one (input, next) pair
      return Span{b, end, -1};
    }
    case Split::kValid:
      if (n < 3) return std::nullopt;
      return Span{b, e - 2, e - 2};
    case Split::kTest:
      if (n < 3) return std::nullopt;
      return Span{b, e - 1, e - 1};
  }
  return std::nullopt;
}
}  // namespace

SequenceReader::SequenceReader(const std::string& path, const ReaderOptions& options)
    : options_(options), dataset_(Dataset::Open(path)) {
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size) {
    Fail("reader: rank ", options_.rank, " is outside world size ", options_.world_size);
  }
  if (options_.global_batch_size < 1) Fail("--batch-size: must be >= 1, got ", options_.global_batch_size);
  if (options_.max_len < 1) Fail("--max-len: must be >= 1, got ", options_.max_len);
  const auto& off = dataset_->user_offsets();
  if (options_.bucket_batches < 0) Fail("reader: bucket_batches must be >= 0, got ", options_.bucket_batches);
  const int64_t keep = options_.split == Split::kTrain ? options_.max_len + 1 : options_.max_len;
  row_length_.assign(off.size() - 1, 0);
  for (int64_t u = 0; u + 1 < static_cast<int64_t>(off.size()); ++u) {
    if (auto s = SplitSpan(off[u], off[u + 1], options_.split)) {
      eligible_.push_back(u);
      row_length_[u] = static_cast<int32_t>(std::min(keep, s->end - s->begin));
    }
  }
  if (options_.sample_users < 0) Fail("reader: sample_users must be >= 0, got ", options_.sample_users);
  if (options_.sample_users > 0 && options_.sample_users < static_cast<int64_t>(eligible_.size())) {
    Rng rng(HashKeys({options_.seed, kSampleStream}));
    rng.Shuffle(eligible_.begin(), eligible_.end());
    eligible_.resize(static_cast<size_t>(options_.sample_users));
    std::sort(eligible_.begin(), eligible_.end());
    std::vector<int32_t> kept(row_length_.size(), 0);
    for (int64_t u : eligible_) kept[u] = row_length_[u];
    row_length_.swap(kept);
  }
  StartEpoch(0);
}

int64_t SequenceReader::num_batches() const {
  const int64_t n = num_users(), b = options_.global_batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void SequenceReader::StartEpoch(int64_t epoch) {
  epoch_ = epoch;
  next_batch_ = 0;
  order_ = eligible_;
  if (options_.shuffle) {
    Rng rng(HashKeys({options_.seed, kShuffleStream, static_cast<uint64_t>(epoch)}));
    rng.Shuffle(order_.begin(), order_.end());
  }
  if (options_.bucket_batches > 0) BucketByLength();
}

void SequenceReader::BucketByLength() {
  const int64_t b = options_.global_batch_size, n = static_cast<int64_t>(order_.size());
  const int64_t window = b * options_.bucket_batches;
  for (int64_t w = 0; w < n; w += window) {
    const auto first = order_.begin() + w, last = order_.begin() + std::min(n, w + window);
    std::stable_sort(first, last, [&](int64_t x, int64_t y) { return row_length_[x] < row_length_[y]; });
  }
  // Shuffle the full batches (the short last batch stays last, so batch i is always rows
  // [i * b, i * b + b) of the order).
  const int64_t full = n / b;
  std::vector<int64_t> perm(static_cast<size_t>(full));
  for (int64_t i = 0; i < full; ++i) perm[i] = i;
  Rng rng(HashKeys({options_.seed, kBucketStream, static_cast<uint64_t>(epoch_)}));
  rng.Shuffle(perm.begin(), perm.end());
  std::vector<int64_t> out;
  out.reserve(order_.size());
  for (int64_t i : perm) {
    out.insert(out.end(), order_.begin() + i * b, order_.begin() + (i + 1) * b);
    // Rows in random order inside the batch: each rank's contiguous piece then gets a fair share
    // of the long sequences, instead of the last rank getting the longest.
    rng.Shuffle(out.end() - b, out.end());
  }
  out.insert(out.end(), order_.begin() + full * b, order_.end());
  order_ = std::move(out);
}

void SequenceReader::Seek(int64_t index) {
  if (index < 0 || index > num_batches()) {
    Fail("reader: batch ", index, " is outside epoch ", epoch_, " (", num_batches(), " batches); the checkpoint "
         "belongs to another dataset or batch size");
  }
  next_batch_ = index;
}

std::vector<int64_t> SequenceReader::GlobalBatchUsers(int64_t index) const {
  const int64_t b = options_.global_batch_size;
  const int64_t begin = index * b;
  const int64_t end = std::min<int64_t>(begin + b, static_cast<int64_t>(order_.size()));
  CHECK_LE(begin, end);
  return {order_.begin() + begin, order_.begin() + end};
}

std::optional<Batch> SequenceReader::Next() {
  if (next_batch_ >= num_batches()) return std::nullopt;
  const std::vector<int64_t> global = GlobalBatchUsers(next_batch_);
  Batch batch;
  batch.epoch = epoch_;
  batch.index = next_batch_++;
  batch.global_rows = static_cast<int64_t>(global.size());
  // Contiguous piece per rank, sizes differing by at most one.
  const int64_t g = batch.global_rows, w = options_.world_size, r = options_.rank;
  batch.row_offset = g * r / w;
  batch.rows = g * (r + 1) / w - batch.row_offset;
  const bool train = options_.split == Split::kTrain;
  if (train) {
    for (int64_t u : global) batch.global_positions += row_length_[u] - 1;
  }
  const int64_t keep = train ? options_.max_len + 1 : options_.max_len;
  const auto& off = dataset_->user_offsets();
  std::vector<Span> spans;
  if (options_.full_history) batch.history_offsets.push_back(0);
  for (int64_t i = 0; i < batch.rows; ++i) {
    const int64_t u = global[batch.row_offset + i];
    Span s = *SplitSpan(off[u], off[u + 1], options_.split);
    if (options_.full_history) {
      std::vector<int32_t> all = dataset_->ReadItems(s.begin, s.end);
      batch.history_items.insert(batch.history_items.end(), all.begin(), all.end());
      batch.history_offsets.push_back(static_cast<int64_t>(batch.history_items.size()));
    }
    s.begin = std::max(s.begin, s.end - keep);
    spans.push_back(s);
    batch.users.push_back(u);
    batch.lengths.push_back(static_cast<int32_t>(s.end - s.begin));
  }
  int64_t width = options_.pad_to_max_len ? keep : 0;
  for (int32_t len : batch.lengths) width = std::max<int64_t>(width, len);
  batch.width = width;
  const bool ts = dataset_->info().has_timestamps;
  batch.items.assign(static_cast<size_t>(batch.rows * width), options_.pad_id);
  if (ts) batch.timestamps.assign(static_cast<size_t>(batch.rows * width), 0);
  for (int64_t i = 0; i < batch.rows; ++i) {
    const Span& s = spans[i];
    // One read covers the input and the target (they are adjacent).
    const int64_t read_end = s.target >= 0 ? s.target + 1 : s.end;
    std::vector<int32_t> items = dataset_->ReadItems(s.begin, read_end);
    std::copy(items.begin(), items.begin() + (s.end - s.begin), batch.items.begin() + i * width);
    if (s.target >= 0) batch.targets.push_back(items.back());
    if (ts) {
      std::vector<int64_t> t = dataset_->ReadTimestamps(s.begin, read_end);
      std::copy(t.begin(), t.begin() + (s.end - s.begin), batch.timestamps.begin() + i * width);
      if (s.target >= 0) batch.target_timestamps.push_back(t.back());
    }
  }
  return batch;
}

ShardedReadCheck CheckShardedReading(const std::string& path, ReaderOptions o, int world) {
  o.rank = 0;
  o.world_size = 1;
  SequenceReader single(path, o);
  std::vector<std::unique_ptr<SequenceReader>> ranks;
  for (int r = 0; r < world; ++r) {
    o.rank = r;
    o.world_size = world;
    ranks.push_back(std::make_unique<SequenceReader>(path, o));
  }
  ShardedReadCheck c;
  while (auto whole = single.Next()) {
    std::vector<int64_t> users;
    for (auto& r : ranks) {
      auto piece = r->Next();
      CHECK(piece.has_value());
      users.insert(users.end(), piece->users.begin(), piece->users.end());
      for (int32_t l : piece->lengths) c.positions += l;
    }
    c.equal = c.equal && users == whole->users;
    ++c.batches;
    c.rows += whole->rows;
  }
  return c;
}

}  // namespace shardrec
