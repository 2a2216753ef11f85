#include "launch/flags.h"

DEFINE_string(format, "", "input format: movielens | seq | csv");
DEFINE_string(input, "", "input file or directory");
DEFINE_string(output, "", "output file (written to a temporary name, renamed when complete)");
DEFINE_string(seq_layout, "auto",
              "seq: 'lines' (user item1 item2 ...), 'pairs' (user item per line) or 'auto'");
DEFINE_string(columns, "",
              "csv: map roles to column names, e.g. user=reviewerID,item=asin,timestamp=ts,rating=r");
DEFINE_string(delimiter, "", "csv: field delimiter (',', ';', 'tab'); empty = detect from header");
DEFINE_string(min_rating, "", "keep events with rating >= this (empty = keep all)");
DEFINE_string(since, "", "convert: keep events at or after this Unix time in seconds (needs timestamps)");
DEFINE_string(until, "", "convert: keep events before this Unix time in seconds (needs timestamps)");
DEFINE_int64(min_user_events, 0, "k-core: drop users with fewer events (iterated with items)");
DEFINE_int64(min_item_events, 0, "k-core: drop items with fewer events (iterated with users)");
DEFINE_bool(dedup, false, "keep only the first event of each (user, item) pair");
DEFINE_bool(json, false, "print machine-readable JSON");
DEFINE_string(users, "", "data synth: how many users (default 10000); recall: 'all' (default) or a file of raw user ids, one per line");
DEFINE_int32(days, 0, "synth: cut the data into this many day files (--output names a directory: day-1.h5 ...); 0 = one file");
DEFINE_double(first_day_share, 0.7, "synth --days: the share of the world's events day 1 holds");
DEFINE_double(new_items, 0.05, "synth --days: probability per day that an item arrives (days 2..D)");
DEFINE_double(retired_items, 0.02, "synth --days: probability per day that an item retires (days 2..D)");
DEFINE_string(items, "", "data synth: how many items (default 5000); data convert (seq, csv): the item catalogue, tab-separated "
              "'item<TAB>title<TAB>cat1|cat2' lines; items without events are kept");
DEFINE_int64(events, 0, "synthetic events in total (0 = 20 per user; at least 3 per user)");
DEFINE_uint64(seed, 7, "random seed (the same seed gives the same output)");
DEFINE_int32(topics, 32, "synthetic latent topics");
DEFINE_int32(categories, 16, "synthetic item categories (0 = none)");
DEFINE_int32(content_dim, 16, "synthetic item content vector size (0 = none)");
DEFINE_double(zipf, 1.0, "synthetic item popularity exponent");
DEFINE_double(stay, 0.8, "synthetic P(next topic = previous item's topic)");
DEFINE_double(transition, 0.3, "synthetic P(next item is a successor of the previous item)");
DEFINE_int32(successors, 4, "synthetic successors per item");
DEFINE_bool(titles, true, "synthetic item titles");
DEFINE_string(workdir, "runs/demo", "directory for the demo's files");
DEFINE_int64(batch_size, 256, "global batch size (users per batch over all ranks)");
DEFINE_int64(max_len, 50, "history length kept per user; train: 0 = from the data (docs/training.md)");
DEFINE_int32(world_size, 2, "demo: reader ranks simulated in one process");
DEFINE_string(backend, "auto",
              "collectives: auto (one process: inprocess; several: mpi on cpu, nccl on cuda), "
              "inprocess, mpi, nccl");
DEFINE_string(device, "cpu", "cpu or cuda (the GPU is picked by the local rank)");
DEFINE_double(comm_timeout, 600, "seconds a collective may take before the job is ended");
DEFINE_int64(bytes, 1 << 20, "comm check: message size for the bandwidth line");
DEFINE_string(data, "", "dataset file (shardrec data convert / synth)");
DEFINE_string(config, "", "config file (flat YAML 'key: value', keys = flag names); flags given on the command line win");
DEFINE_string(run_dir, "", "run directory: config.yaml, metrics.jsonl, TensorBoard events, model/, eval.json");
DEFINE_int64(epochs, 20, "passes over the training users");
DEFINE_int64(max_steps, 0, "stop after this many steps (0 = no limit)");
DEFINE_double(time_budget, 0,
              "wall seconds of training (validation included; 0 = no limit): no epoch starts that would end past it");
DEFINE_double(lr, 1e-3, "AdamW learning rate of the dense parameters");
DEFINE_double(weight_decay, 0.0, "AdamW weight decay");
DEFINE_int64(warmup_steps, 100, "linear learning-rate warm-up steps");
DEFINE_string(retired, "drop", "warm start: drop | keep the rows of ids PREV had and --data no longer has (kept rows come back with their ids)");
DEFINE_string(init_from, "", "warm start: a previous run directory, checkpoint, model or export; rows carry over by raw id (docs/training.md)");
DEFINE_string(lr_schedule, "constant", "dense learning rate after warm-up: constant | cosine (decays to lr x --min-lr-ratio at the last step)");
DEFINE_bool(exclude_history, false, "a position's softmax leaves out the items earlier in its sequence (evaluation never ranks them); off for data where users repeat items");
DEFINE_double(min_lr_ratio, 0.0, "cosine schedule: the final rate as a fraction of --lr");
DEFINE_double(clip_norm, 1.0, "clip the dense gradient to this norm (0 = off)");
DEFINE_string(precision, "float32",
              "train: float32, or bfloat16 (the user tower's products under autocast: faster on CPUs with "
              "AVX512-BF16/AMX and on GPUs; the loss, evaluation and export stay float32)");
DEFINE_string(loss, "auto", "full (softmax over all items), sampled (in-batch + uniform negatives) or auto");
DEFINE_int64(negatives, 256, "sampled softmax: uniform negatives per step");
DEFINE_int64(full_softmax_max_items, 50000, "--loss auto: full softmax up to this many items, sampled above");
DEFINE_double(temperature, 0, "softmax temperature: logits = scores / temperature (0 = 0.05 with --score cosine, 1 with dot)");
DEFINE_bool(logq, true, "sampled softmax: subtract log of each candidate's sampling rate");
DEFINE_int64(eval_every, 1, "validate every N epochs (0 = never); early stopping on NDCG@10");
DEFINE_int64(patience, 5, "validations without improvement before stopping");
DEFINE_int64(eval_batch_size, 256, "users per evaluation batch (global)");
DEFINE_string(eval_scoring, "auto",
              "eval: auto | replicated (every rank encodes the whole catalogue) | sharded (each rank 1/W of it; "
              "the ranks merge their top lists); auto = sharded above 1 GiB of catalogue vectors with 2+ ranks");
DEFINE_int64(eval_users, 0, "eval: rank only a uniform sample of this many users of the split (the same users for every model of the data; 0 = all)");
DEFINE_double(log_every, 10, "seconds between progress lines");
DEFINE_int64(length_groups, 8,
             "run each training batch's rows through the user tower in this many groups of similar length, "
             "each padded to its own longest row (the batch is unchanged; 1 = the whole batch at once)");
DEFINE_int64(bucket_batches, 0,
             "length bucketing: sort windows of this many training batches by sequence length, so batches "
             "hold similar lengths (faster; changes which users share a batch); 0 = off");
DEFINE_double(memory_per_rank, 16, "sharding planner: memory budget per rank for embedding tables and their "
              "optimizer state, GiB");
DEFINE_double(memory_bandwidth, 50, "sharding planner: memory bandwidth per rank, GB/s (lookup cost estimate)");
DEFINE_double(link_bandwidth, 10, "sharding planner: network bandwidth per rank, GB/s (all-to-all cost estimate)");
DEFINE_int64(dim, 64, "embedding and Transformer width");
DEFINE_int64(blocks, 2, "Transformer blocks of the user tower");
DEFINE_int64(heads, 1, "attention heads");
DEFINE_double(dropout, 0.2, "dropout of the user tower");
DEFINE_double(id_dropout, 0, "item tower: probability that an item of a step loses its id vector (training only; needs "
              "categories or content), so the content path can serve items never trained on");
DEFINE_double(content_loss, 0, "item tower: weight of a second softmax over the same candidates in which each target is "
              "scored by its content-only vector (no id row), as a cold item is served; 0 = off (needs categories or content; "
              "use with --id-dropout; docs/training.md)");
DEFINE_double(cold_items, 0, "cold-start protocol: hold this fraction of the items with events out of training "
              "(train), or slice the metrics by them (eval); 0 = off (docs/training.md)");
DEFINE_string(add_items, "", "export: a dataset whose catalogue holds items new since training (e.g. converted with "
              "--items, content from tools/embed_item_text.py); they are embedded from their content and published with the rest");
DEFINE_string(untrained_items, "content", "eval, export and query: serve an item without a trained id row (cold, or added "
              "since training) from its content path alone (content) or from the id rows of its nearest trained items by "
              "content (neighbours)");
DEFINE_uint64(cold_seed, 1, "cold-start protocol: the seed that picks the cold items");
DEFINE_int64(time_buckets, 16, "time-gap buckets (0 = off)");
DEFINE_bool(context, true, "user tower: hour of day and day of week (UTC) of each event and of the request, and the gap "
            "from the last event to the request (off without timestamps)");
DEFINE_bool(use_categories, true, "item tower: add pooled category embeddings when the data has categories");
DEFINE_bool(use_content, true, "item tower: add projected content vectors when the data has them");
DEFINE_string(embedding_optimizer, "rowwise_adagrad", "sparse optimizer of embedding tables: sgd, rowwise_adagrad, adam");
DEFINE_double(embedding_lr, 0.05, "learning rate of the sparse optimizer");
DEFINE_string(positions, "oldest", "user tower: position embeddings counted from the oldest or the newest event");
DEFINE_string(score, "cosine", "cosine (L2-normalised vectors: scores in [-1, 1]) or dot (raw inner products: norms carry popularity)");
DEFINE_string(input_vectors, "tied",
              "item vectors the user tower reads: tied (the scored vectors) or separate (a second id table)");
DEFINE_string(sharding, "auto", "auto (planner) or table_wise, row_wise, column_wise, data_parallel for every table");
DEFINE_string(split, "test", "eval: valid or test");
DEFINE_string(baseline, "", "eval: pop (most popular) or cooc (item-to-item transitions) instead of a model");
DEFINE_string(out, "", "eval: write the metrics JSON here (default RUN/eval.json or RUN/eval-<baseline>.json); export: the export root; recall: the directory the lists go to (must not exist)");
DEFINE_int64(checkpoint_every, 0, "steps between checkpoints in RUN/checkpoints (0: only at the end of the run)");
DEFINE_bool(overwrite, false, "train: replace the run already in --run-dir (its config, metrics, model and checkpoints)");
DEFINE_int64(keep_checkpoints, 3, "newest checkpoints kept");
DEFINE_string(resume, "",
              "continue a run from its checkpoint (any world size): RUN (its newest checkpoint, which must "
              "verify), or latest / latest-valid for the run of --run-dir (latest-valid: the newest checkpoint "
              "that verifies, skipping damaged newer ones); a run directory named like a keyword is ./latest");
DEFINE_string(export_version, "", "export: version name (default v<UTC date-time>)");
DEFINE_string(export_root, "", "publish: the export root the serving tier reads (ROOT/LATEST names the served version)");
DEFINE_double(tolerance, 0.02, "publish: serve the candidate if its NDCG@10 >= the served version's x (1 - tolerance)");
DEFINE_double(min_recall, 0.95, "publish: the candidate's index must reach this recall@10 against exact search");
DEFINE_bool(force, false, "publish: serve the candidate even if the gate refuses it (recorded in its manifest)");
DEFINE_int64(keep, 0, "publish: versions kept under the export root, oldest removed first (the served one always stays); 0 = all");
DEFINE_bool(rollback, false, "publish: point LATEST back at VERSION (a positional argument), or at the served version's parent");
DEFINE_string(export_dir, "", "an export root (uses ROOT/LATEST) or one version directory");
DEFINE_string(factory, "auto", "index: FAISS factory string (auto: Flat below 100k items per shard, else IVF<4 sqrt(n)>,Flat)");
DEFINE_int64(queries, 1000, "index: user vectors used to measure recall against exact search");
DEFINE_int64(ef_search, 128, "index: HNSW search breadth (stored with the index, used by query)");
DEFINE_int64(nprobe, 32, "index: IVF lists probed (stored with the index, used by query)");
DEFINE_int64(refine, 4, "index: with a '...,RFlat' factory, the base index proposes refine x k candidates that are "
                        "re-ranked on the exact vectors");
DEFINE_int64(train_vectors, 0,
             "index: vectors that train an IVF/PQ index per shard, a uniform sample (0: auto, max(100000, "
             "64 x lists), at most the shard)");
DEFINE_string(user, "", "query: a raw user id of the export");
DEFINE_string(history, "", "query: raw item ids, oldest first, comma-separated (runs the user tower)");
DEFINE_string(at, "", "query: the request time (unix seconds, or 'now'): its hour, day and gap to the last event enter the "
              "user tower (context); without it the request adds nothing");
DEFINE_int64(k, 10, "query, recall: how many items per user");
DEFINE_int32(threads, 0, "recall: search threads per rank (0 = this machine's cores divided by the ranks on it)");
DEFINE_bool(exact, false, "query: exact search instead of the ANN index");
DEFINE_bool(explain, false, "query: under each recalled item, the history events that drove it (leave-one-out contributions)");
DEFINE_bool(ann, false, "eval: also rank through the ANN index of --export (ann_* metrics beside exact)");

// shardrec plan
DEFINE_string(cluster, "", "plan: a cluster description (configs/cluster-*.yaml: nodes, GPUs, memory, bandwidths)");
DEFINE_string(id_order, "shuffled",
              "plan: how item popularity maps to rows: shuffled (independent of the row, as raw-id order gives) or "
              "sorted (row 0 the most popular: the worst case for row-wise blocks)");
