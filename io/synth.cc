#include "io/synth.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <unordered_set>

#include "common/error.h"
#include "common/rng.h"

namespace shardrec {
namespace {

// Stream keys: every random decision is drawn from HashKeys({seed, stream, id}).
enum Stream : uint64_t {
  kItemTopic = 1,
  kPopularity = 2,
  kSuccessors = 3,
  kUser = 4,
  kCentroid = 5,
  kItemMeta = 6,
  kLengths = 7,
  kTopicWords = 8,
  kShift = 9,
};

const char* const kThemeWords[] = {
    "ocean",   "harbor",  "storm",   "island",  "forest",   "river",   "mountain", "desert",
    "galaxy",  "planet",  "rocket",  "star",    "castle",   "knight",  "dragon",   "sword",
    "kitchen", "bread",   "garden",  "spice",   "engine",   "circuit", "robot",    "signal",
    "jazz",    "guitar",  "drum",    "melody",  "crime",    "detective", "secret", "shadow",
    "winter",  "snow",    "frost",   "ice",     "summer",   "beach",   "sun",      "wave",
    "football", "race",   "champion", "arena",  "farm",     "horse",   "barn",     "harvest",
    "city",    "street",  "night",   "neon",    "ghost",    "haunted", "midnight", "grave",
    "school",  "teacher", "lesson",  "friend",  "war",      "soldier", "battle",   "empire"};
const char* const kFormWords[] = {"story",   "guide",  "collection", "edition", "tales",
                                  "journey", "legend", "chronicles", "diary",   "manual",
                                  "saga",    "album"};
constexpr int kNumTheme = sizeof(kThemeWords) / sizeof(kThemeWords[0]);
constexpr int kNumForm = sizeof(kFormWords) / sizeof(kFormWords[0]);
constexpr int kWordsPerTopic = 4;

struct Mix {
  std::vector<int> topics;
  std::vector<double> weights;  // sums to 1
};

class Generator {
 public:
  explicit Generator(const SynthOptions& o) : o_(o), fresh_topics_(o.drift > 0 ? std::max(1, o.topics / 8) : 0) {}

  void BuildItems() {
    const int64_t n = o_.items;
    topic_.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      topic_[i] = static_cast<int32_t>(Rng(HashKeys({o_.seed, kItemTopic, uint64_t(i)})).Below(o_.topics));
    }
    // Popularity: a random permutation gives each item its rank; weight = (rank+1)^-zipf.
    by_rank_.resize(n);
    std::iota(by_rank_.begin(), by_rank_.end(), 0);
    Rng prng(HashKeys({o_.seed, kPopularity}));
    prng.Shuffle(by_rank_.begin(), by_rank_.begin() + n);
    rank_.resize(n);
    for (int64_t r = 0; r < n; ++r) rank_[by_rank_[r]] = static_cast<int32_t>(r);
    // Per-topic lists in popularity order with cumulative weights.
    topic_off_.assign(o_.topics + 1, 0);
    for (int64_t i = 0; i < n; ++i) ++topic_off_[topic_[i] + 1];
    std::partial_sum(topic_off_.begin(), topic_off_.end(), topic_off_.begin());
    topic_items_.resize(n);
    topic_cum_.resize(n);
    std::vector<int64_t> fill(topic_off_.begin(), topic_off_.end() - 1);
    for (int64_t r = 0; r < n; ++r) {
      int32_t it = by_rank_[r];
      topic_items_[fill[topic_[it]]++] = it;
    }
    for (int t = OldTopics(); t < o_.topics; ++t) {
      if (topic_off_[t + 1] > topic_off_[t]) fresh_with_items_.push_back(t);
    }
    for (int t = 0; t < o_.topics; ++t) {
      double acc = 0;
      for (int64_t k = topic_off_[t]; k < topic_off_[t + 1]; ++k) {
        acc += Weight(topic_items_[k]);
        topic_cum_[k] = acc;
      }
    }
  }

  const std::vector<int32_t>& topics() const { return topic_; }
  // --drift: a UserError unless the fresh topics have items and the old ones enough for the longest
  // sequence (no user reaches a fresh item early).
  void CheckDriftTopics() const {
    if (fresh_topics_ == 0) return;
    if (fresh_with_items_.empty()) Fail("--drift: no item fell in the ", fresh_topics_, " fresh topic(s); raise --items or lower --topics");
    const int64_t old_items = topic_off_[OldTopics()], longest = std::max<int64_t>(3, o_.items / 2);
    if (old_items <= longest) Fail("--drift: the old topics hold ", old_items, " items, not more than a sequence may need (", longest, "); raise --topics or --items");
  }
  double Weight(int32_t item) const { return std::pow(double(rank_[item]) + 1.0, -o_.zipf); }
  double TopicTotal(int t) const {
    return topic_off_[t + 1] > topic_off_[t] ? topic_cum_[topic_off_[t + 1] - 1] : 0.0;
  }

  // An item of topic t drawn by popularity (ignores history).
  int32_t DrawFromTopic(int t, Rng& rng) const {
    const int64_t b = topic_off_[t], e = topic_off_[t + 1];
    double u = rng.Uniform() * TopicTotal(t);
    int64_t k = std::upper_bound(topic_cum_.begin() + b, topic_cum_.begin() + e, u) - topic_cum_.begin();
    return topic_items_[std::min(k, e - 1)];
  }

  // Distinct successors of an item (same topic, by popularity), a pure function of (seed, item).
  std::vector<int32_t> Successors(int32_t item) const {
    std::vector<int32_t> out;
    const int t = topic_[item];
    if (topic_off_[t + 1] - topic_off_[t] <= 1) return out;
    Rng rng(HashKeys({o_.seed, kSuccessors, uint64_t(item)}));
    for (int tries = 0; tries < 8 * o_.successors && int(out.size()) < o_.successors; ++tries) {
      int32_t s = DrawFromTopic(t, rng);
      if (s != item && std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    }
    return out;
  }

  // Topics [0, OldTopics()) exist from the start; the rest (with --drift) only after the shift.
  int OldTopics() const { return o_.topics - fresh_topics_; }
  bool Fresh(int32_t item) const { return topic_[item] >= OldTopics(); }
  void SetShiftTime(int64_t t) { shift_time_ = t; }

  // A preference mix over the old topics, or over the fresh ones.
  Mix DrawMix(Rng& rng, bool fresh = false) const {
    Mix m;
    const int count = fresh ? static_cast<int>(fresh_with_items_.size()) : OldTopics();
    int k = std::min(o_.topics_per_user, count);
    while (int(m.topics.size()) < k) {
      const int pick = static_cast<int>(rng.Below(count));
      int t = fresh ? fresh_with_items_[pick] : pick;
      if (std::find(m.topics.begin(), m.topics.end(), t) == m.topics.end()) m.topics.push_back(t);
    }
    double total = 0;
    for (int i = 0; i < k; ++i) {
      m.weights.push_back(rng.Gamma(1.0) + 1e-9);
      total += m.weights.back();
    }
    for (auto& w : m.weights) w /= total;
    return m;
  }

  static int DrawTopic(const Mix& m, Rng& rng) {
    double u = rng.Uniform();
    for (size_t i = 0; i < m.topics.size(); ++i) {
      if (u < m.weights[i]) return m.topics[i];
      u -= m.weights[i];
    }
    return m.topics.back();
  }

  // One item of topic t by popularity, not in `hist`; -1 if the topic is exhausted.
  int32_t DrawNew(int t, const std::unordered_set<int32_t>& hist, Rng& rng) const {
    for (int tries = 0; tries < 64; ++tries) {
      int32_t it = DrawFromTopic(t, rng);
      if (!hist.count(it)) return it;
    }
    // Dense history in this topic: draw exactly among the remaining items.
    double rest = 0;
    for (int64_t k = topic_off_[t]; k < topic_off_[t + 1]; ++k) {
      if (!hist.count(topic_items_[k])) rest += Weight(topic_items_[k]);
    }
    if (rest <= 0) return -1;
    double u = rng.Uniform() * rest;
    int32_t last = -1;
    for (int64_t k = topic_off_[t]; k < topic_off_[t + 1]; ++k) {
      int32_t it = topic_items_[k];
      if (hist.count(it)) continue;
      last = it;
      u -= Weight(it);
      if (u < 0) return it;
    }
    return last;
  }

  std::vector<int32_t> Lengths() const {
    const int64_t u = o_.users;
    const int64_t cap = std::max<int64_t>(3, o_.items / 2);
    std::vector<int32_t> len(u, 3);
    int64_t extra = o_.events - 3 * u;
    std::vector<double> w(u);
    Rng rng(HashKeys({o_.seed, kLengths}));
    double total = 0;
    for (int64_t i = 0; i < u; ++i) {
      w[i] = std::exp(1.0 * rng.Normal());
      total += w[i];
    }
    int64_t given = 0;
    for (int64_t i = 0; i < u; ++i) {
      int64_t add = std::min<int64_t>(cap - 3, static_cast<int64_t>(std::floor(extra * w[i] / total)));
      len[i] += static_cast<int32_t>(add);
      given += add;
    }
    // Remainder one by one, round robin over users below the cap.
    for (int64_t i = 0; given < extra; i = (i + 1) % u) {
      if (len[i] < cap) {
        ++len[i];
        ++given;
      }
    }
    return len;
  }

  struct UserResult {
    bool oracle_hit = false;
    double oracle_ndcg = 0;
    bool pop_hit = false;
    double pop_ndcg = 0;
    bool moved = false;  // --drift: moved to fresh topics at the shift
  };

  // Generates user u's sequence and scores the oracle and the popularity ranker on its last event.
  UserResult GenerateUser(int64_t u, int32_t n, std::vector<int32_t>* items,
                          std::vector<int64_t>* times) const {
    Rng rng(HashKeys({o_.seed, kUser, uint64_t(u)}));
    Mix start = DrawMix(rng);
    Mix end = rng.Bernoulli(o_.mix_drift) ? DrawMix(rng) : start;
    // --drift: whether this user moves at the shift (its own stream: the events before are the same).
    Rng shift_rng(HashKeys({o_.seed, kShift, uint64_t(u)}));
    const bool shifts = fresh_topics_ > 0 && shift_rng.Uniform() < o_.drift;
    std::unordered_set<int32_t> hist;
    hist.reserve(n * 2);
    items->clear();
    times->clear();
    int64_t t = 1600000000 + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(std::llround(1e7 / o_.time_scale))));
    UserResult res;
    bool moved_last = false;  // the last event was the move
    for (int32_t k = 0; k < n; ++k) {
      const double lambda = n > 1 ? double(k) / double(n - 1) : 0.0;
      int32_t next = -1;
      bool switched = false;
      const bool move = shifts && !res.moved && k > 0 && t > shift_time_;
      moved_last = move;
      if (move) {  // the first event after the shift: from a fresh mix, and so on from then
        res.moved = true;
        start = end = DrawMix(shift_rng, /*fresh=*/true);
        next = DrawNew(DrawTopic(start, rng), hist, rng);
        switched = true;
      } else if (k > 0) {
        const int32_t prev = items->back();
        std::vector<int32_t> succ = AvailableSuccessors(prev, hist);
        if (!succ.empty() && rng.Bernoulli(o_.transition)) {
          next = succ[rng.Below(succ.size())];
        } else {
          int topic = rng.Bernoulli(o_.stay) ? topic_[prev]
                                             : DrawTopic(rng.Bernoulli(lambda) ? end : start, rng);
          switched = topic != topic_[prev];
          next = DrawNew(topic, hist, rng);
        }
      } else {
        next = DrawNew(DrawTopic(start, rng), hist, rng);
      }
      for (int tries = 0; next < 0; ++tries) {  // topic exhausted: any topic, then any item
        next = tries < 16 ? DrawNew(res.moved ? fresh_with_items_[rng.Below(fresh_with_items_.size())]
                                              : static_cast<int>(rng.Below(OldTopics())), hist, rng)
                          : FirstUnseen(hist, res.moved);
      }
      t += 1 + static_cast<int64_t>(rng.Exponential((switched ? 7 * 86400.0 : 86400.0) / o_.time_scale));
      items->push_back(next);
      times->push_back(t);
      hist.insert(next);
    }
    // Score the real target now that it is known.
    hist.erase(items->back());
    Score((*items)[n - 2], start, end, 1.0, hist, items->back(), /*mix_only=*/moved_last, &res);
    return res;
  }

 private:
  std::vector<int32_t> AvailableSuccessors(int32_t prev, const std::unordered_set<int32_t>& hist) const {
    std::vector<int32_t> succ = Successors(prev);
    succ.erase(std::remove_if(succ.begin(), succ.end(), [&](int32_t s) { return hist.count(s) > 0; }),
               succ.end());
    return succ;
  }

  // The most popular item not in `hist` (of the fresh topics only with `fresh`, else of the old).
  int32_t FirstUnseen(const std::unordered_set<int32_t>& hist, bool fresh) const {
    for (int32_t it : by_rank_) {
      if (!hist.count(it) && Fresh(it) == fresh) return it;
    }
    for (int32_t it : by_rank_) {  // a moved user may go back to the old items; nobody goes early to fresh ones
      if (!hist.count(it) && fresh) return it;
    }
    LOG(FATAL) << "user has seen every item";
  }

  // Ranks items by the generator's predictive distribution of the event after `prev` (history
  // `hist` excluded) and records HR@10/NDCG@10 of `target`, and the same for true popularity.
  // `mix_only`: the event was drawn from the mix alone (a --drift move), no transition or stay.
  void Score(int32_t prev, const Mix& start, const Mix& end, double lambda, const std::unordered_set<int32_t>& hist,
             int32_t target, bool mix_only, UserResult* res) const {
    constexpr int kTop = 10;
    std::vector<int32_t> succ = AvailableSuccessors(prev, hist);
    const double tr = succ.empty() || mix_only ? 0.0 : o_.transition, stay = mix_only ? 0.0 : o_.stay;
    // Topic weights of the next draw.
    std::vector<std::pair<int, double>> tw;
    auto add = [&](int topic, double w) {
      for (auto& p : tw) {
        if (p.first == topic) {
          p.second += w;
          return;
        }
      }
      tw.emplace_back(topic, w);
    };
    add(topic_[prev], stay);
    for (size_t i = 0; i < start.topics.size(); ++i) add(start.topics[i], (1 - stay) * (1 - lambda) * start.weights[i]);
    for (size_t i = 0; i < end.topics.size(); ++i) add(end.topics[i], (1 - stay) * lambda * end.weights[i]);
    // Remaining (non-history) mass per topic.
    std::vector<double> remaining(tw.size());
    for (size_t j = 0; j < tw.size(); ++j) {
      double r = TopicTotal(tw[j].first);
      for (int32_t h : hist) {
        if (topic_[h] == tw[j].first) r -= Weight(h);
      }
      remaining[j] = std::max(r, 1e-300);
    }
    auto score = [&](int32_t item) {
      double s = 0;
      if (std::find(succ.begin(), succ.end(), item) != succ.end()) s += tr / succ.size();
      for (size_t j = 0; j < tw.size(); ++j) {
        if (tw[j].first == topic_[item]) s += (1 - tr) * tw[j].second * Weight(item) / remaining[j];
      }
      return s;
    };
    // Candidates: successors + the top non-history items of each weighted topic.
    std::vector<int32_t> cand(succ.begin(), succ.end());
    for (auto& [topic, w] : tw) {
      if (w <= 0) continue;
      int got = 0;
      for (int64_t k = topic_off_[topic]; k < topic_off_[topic + 1] && got < kTop; ++k) {
        if (!hist.count(topic_items_[k])) {
          cand.push_back(topic_items_[k]);
          ++got;
        }
      }
    }
    std::sort(cand.begin(), cand.end());
    cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
    std::vector<std::pair<double, int32_t>> scored;
    for (int32_t c : cand) scored.emplace_back(-score(c), c);
    std::sort(scored.begin(), scored.end());
    for (int r = 0; r < kTop && r < int(scored.size()); ++r) {
      if (scored[r].second == target) {
        res->oracle_hit = true;
        res->oracle_ndcg = 1.0 / std::log2(r + 2.0);
      }
    }
    int r = 0;
    for (int32_t it : by_rank_) {
      if (r >= kTop) break;
      if (hist.count(it)) continue;
      if (it == target) {
        res->pop_hit = true;
        res->pop_ndcg = 1.0 / std::log2(r + 2.0);
      }
      ++r;
    }
  }

 public:
  void WriteItems(DatasetWriter* w) const {
    // Topic vocabularies and content centroids.
    std::vector<std::vector<int>> words(o_.topics);
    for (int t = 0; t < o_.topics; ++t) {
      Rng rng(HashKeys({o_.seed, kTopicWords, uint64_t(t)}));
      while (int(words[t].size()) < kWordsPerTopic) {
        // Topics take consecutive theme words first, so small topic counts get disjoint vocabularies.
        int cand = t * kWordsPerTopic + int(words[t].size()) < kNumTheme
                       ? t * kWordsPerTopic + int(words[t].size())
                       : static_cast<int>(rng.Below(kNumTheme));
        if (std::find(words[t].begin(), words[t].end(), cand) == words[t].end()) words[t].push_back(cand);
      }
    }
    const int d = o_.content_dim;
    std::vector<float> centroids(size_t(o_.topics) * d);
    for (int t = 0; t < o_.topics; ++t) {
      Rng rng(HashKeys({o_.seed, kCentroid, uint64_t(t)}));
      double norm = 0;
      for (int k = 0; k < d; ++k) {
        centroids[t * d + k] = static_cast<float>(rng.Normal());
        norm += centroids[t * d + k] * centroids[t * d + k];
      }
      for (int k = 0; k < d; ++k) centroids[t * d + k] /= static_cast<float>(std::sqrt(norm) + 1e-12);
    }
    std::vector<int32_t> cats;
    std::vector<float> content(d);
    for (int64_t i = 0; i < o_.items; ++i) {
      Rng rng(HashKeys({o_.seed, kItemMeta, uint64_t(i)}));
      const int t = topic_[i];
      std::string title;
      if (o_.titles) {
        auto word = [&]() -> std::string {
          return rng.Bernoulli(0.8) ? kThemeWords[words[t][rng.Below(kWordsPerTopic)]]
                                    : kThemeWords[rng.Below(kNumTheme)];
        };
        std::string a = word(), b = word();
        title = a + " " + b + " " + kFormWords[rng.Below(kNumForm)] + " " + std::to_string(i + 1);
      }
      cats.clear();
      if (o_.categories > 0) {
        cats.push_back(rng.Bernoulli(0.85) ? t % o_.categories : static_cast<int32_t>(rng.Below(o_.categories)));
        if (rng.Bernoulli(0.25)) cats.push_back(static_cast<int32_t>(rng.Below(o_.categories)));
        std::sort(cats.begin(), cats.end());
        cats.erase(std::unique(cats.begin(), cats.end()), cats.end());
      }
      for (int k = 0; k < d; ++k) {
        content[k] = centroids[t * d + k] + static_cast<float>(0.6 * rng.Normal() / std::sqrt(double(d)));
      }
      w->AddItem(std::to_string(i + 1), title, cats, std::span<const float>(content.data(), d));
    }
  }

 private:
  const SynthOptions& o_;
  std::vector<int32_t> topic_, by_rank_, rank_;
  std::vector<int64_t> topic_off_;
  std::vector<int32_t> topic_items_;
  std::vector<double> topic_cum_;
  const int fresh_topics_;                             // --drift: the last topics, fresh at the shift
  std::vector<int> fresh_with_items_;                  // those of them that have items
  int64_t shift_time_ = std::numeric_limits<int64_t>::max();
};

// --drift's shift time: the end of the hour in which 80% of the events have happened, from a pass
// over the users without the shift (the events before it are the same with it: whether a user moves
// is drawn apart). Memory O(hours), not O(events).
int64_t ShiftTime(const Generator& gen, const std::vector<int32_t>& lengths, int64_t users) {
  std::vector<int32_t> items;
  std::vector<int64_t> times;
  std::map<int64_t, int64_t> per_hour;
  int64_t total = 0;
  for (int64_t u = 0; u < users; ++u) {
    gen.GenerateUser(u, lengths[u], &items, &times);
    for (int64_t ts : times) ++per_hour[ts / 3600];
    total += static_cast<int64_t>(times.size());
  }
  int64_t seen = 0;
  for (const auto& [hour, n] : per_hour) {
    seen += n;
    if (seen >= static_cast<int64_t>(0.8 * static_cast<double>(total))) return hour * 3600 + 3599;
  }
  return per_hour.empty() ? 0 : per_hour.rbegin()->first * 3600 + 3599;
}

}  // namespace

void CheckSynthOptions(const SynthOptions& in) {
  SynthOptions o = in;
  if (o.users < 1 || o.users > INT32_MAX) Fail("--users: expected 1 to ", INT32_MAX, ", got ", o.users);
  if (o.events == 0) o.events = 20 * o.users;
  if (o.items < 10) Fail("--items: must be >= 10, got ", o.items);
  if (o.items > INT32_MAX) Fail("--items: at most ", INT32_MAX, ", got ", o.items);
  if (o.events < 3 * o.users) Fail("--events: every user needs at least 3 events; got ", o.events, " for ", o.users, " users");
  if (o.events > o.users * std::max<int64_t>(3, o.items / 2)) {
    Fail("--events: ", o.events, " events for ", o.users, " users would need sequences longer than half of the ",
         o.items, " items (no item repeats within a user); raise --items or --users");
  }
  if (o.topics < 1 || o.topics > o.items) Fail("--topics: must be in [1, items], got ", o.topics);
  if (o.categories < 0 || o.categories > (1 << 20)) Fail("--categories: expected 0 to 1048576, got ", o.categories);
  if (o.content_dim < 0 || o.content_dim > 4096) Fail("--content-dim: expected 0 to 4096, got ", o.content_dim);
  if (o.successors < 0 || o.successors > 1024) Fail("--successors: expected 0 to 1024, got ", o.successors);
  for (auto [name, p] : {std::pair{"--stay", o.stay}, {"--transition", o.transition}, {"--drift", o.drift}, {"mix drift", o.mix_drift}}) {
    if (!(p >= 0 && p <= 1)) Fail(name, ": must be a probability in [0, 1], got ", p);
  }
  if (o.topics_per_user < 1) Fail("--topics-per-user: must be >= 1");
  if (!(o.time_scale >= 1 && o.time_scale <= 86400)) Fail("--time-scale: expected 1 to 86400, got ", o.time_scale);
  if (o.drift > 0 && o.topics < 2) Fail("--drift: needs at least 2 topics (fresh ones to move to), got --topics ", o.topics);
}

SynthReport GenerateSynthetic(const std::string& output, const SynthOptions& in) {
  CheckSynthOptions(in);
  SynthOptions o = in;
  if (o.events == 0) o.events = 20 * o.users;
  Generator gen(o);
  gen.BuildItems();
  gen.CheckDriftTopics();
  DatasetWriterOptions wo;
  wo.timestamps = true;
  wo.titles = o.titles;
  wo.categories = o.categories > 0;
  wo.content_dim = o.content_dim;
  wo.source = "shardrec data synth --users " + std::to_string(o.users) + " --items " +
              std::to_string(o.items) + " --events " + std::to_string(o.events) + " --seed " +
              std::to_string(o.seed) + " --topics " + std::to_string(o.topics);
  std::vector<int32_t> lengths = gen.Lengths();
  std::vector<int32_t> items;
  std::vector<int64_t> times;
  SynthReport rep;
  if (o.drift > 0) {
    rep.drift_time = ShiftTime(gen, lengths, o.users);
    gen.SetShiftTime(rep.drift_time);
    char share[32];
    std::snprintf(share, sizeof share, "%g", o.drift);
    wo.source += std::string(" --drift ") + share;
  }
  if (o.time_scale != 1) {
    char scale[32];
    std::snprintf(scale, sizeof scale, "%g", o.time_scale);
    wo.source += std::string(" --time-scale ") + scale;
  }
  auto writer = DatasetWriter::Create(output, wo);
  double ohr = 0, ondcg = 0, phr = 0, pndcg = 0;
  int64_t events_done = 0;
  for (int64_t u = 0; u < o.users; ++u) {
    if (o.progress && u % 4096 == 0) o.progress(u, events_done);
    events_done += lengths[u];
    auto r = gen.GenerateUser(u, lengths[u], &items, &times);
    rep.drifted_users += r.moved;
    ohr += r.oracle_hit;
    ondcg += r.oracle_ndcg;
    phr += r.pop_hit;
    pndcg += r.pop_ndcg;
    writer->AddUser(std::to_string(u + 1), items, times);
  }
  gen.WriteItems(writer.get());
  if (o.categories > 0) {
    std::vector<std::string> names;
    for (int c = 0; c < o.categories; ++c) names.push_back("category-" + std::to_string(c));
    writer->SetCategoryNames(names);
  }
  rep.test_users = o.users;
  rep.oracle_hr10 = ohr / o.users;
  rep.oracle_ndcg10 = ondcg / o.users;
  rep.popularity_hr10 = phr / o.users;
  rep.popularity_ndcg10 = pndcg / o.users;
  writer->SetAttribute("/oracle", "hr@10", rep.oracle_hr10);
  writer->SetAttribute("/oracle", "ndcg@10", rep.oracle_ndcg10);
  writer->SetAttribute("/oracle", "popularity_hr@10", rep.popularity_hr10);
  writer->SetAttribute("/oracle", "popularity_ndcg@10", rep.popularity_ndcg10);
  writer->SetAttribute("/oracle", "test_users", static_cast<double>(rep.test_users));
  writer->SetAttribute("/oracle", "protocol",
                       std::string("leave-one-out: each user's last event, ranked against all items with "
                                   "the user's earlier items excluded; oracle = the generator's own "
                                   "predictive distribution; popularity = true global popularity"));
  if (o.drift > 0) {
    writer->SetAttribute("/drift", "share", o.drift);
    writer->SetAttribute("/drift", "time", static_cast<double>(rep.drift_time));
    writer->SetAttribute("/drift", "fresh_topics", static_cast<double>(std::max(1, o.topics / 8)));
    writer->SetAttribute("/drift", "moved_users", static_cast<double>(rep.drifted_users));
  }
  rep.info = writer->Finish();
  return rep;
}

std::vector<int32_t> SyntheticItemTopics(const SynthOptions& o) {
  Generator gen(o);
  gen.BuildItems();
  return gen.topics();
}

std::vector<std::vector<int32_t>> SyntheticSuccessors(const SynthOptions& o) {
  Generator gen(o);
  gen.BuildItems();
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(o.items));
  for (int64_t i = 0; i < o.items; ++i) out[i] = gen.Successors(static_cast<int32_t>(i));
  return out;
}

}  // namespace shardrec
