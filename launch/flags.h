// Every command-line flag of `shardrec`, defined once in flags.cc. Commands list the flags they
// read (cli::Command::flags); a flag given to a command that does not read it is an error.
#pragma once

#include <gflags/gflags.h>

// data convert
DECLARE_string(format);
DECLARE_string(input);
DECLARE_string(output);
DECLARE_string(seq_layout);
DECLARE_string(columns);
DECLARE_string(delimiter);
DECLARE_string(min_rating);
DECLARE_string(since);
DECLARE_string(until);
DECLARE_int64(min_user_events);
DECLARE_int64(min_item_events);
DECLARE_bool(dedup);
// data stats
DECLARE_bool(json);
// data synth (and demo)
DECLARE_string(users);
DECLARE_int32(days);
DECLARE_double(first_day_share);
DECLARE_double(new_items);
DECLARE_double(retired_items);
DECLARE_string(items);
DECLARE_int64(events);
DECLARE_uint64(seed);
DECLARE_int32(topics);
DECLARE_int32(categories);
DECLARE_int32(content_dim);
DECLARE_double(zipf);
DECLARE_double(stay);
DECLARE_double(transition);
DECLARE_int32(successors);
DECLARE_bool(titles);
// reader (demo)
DECLARE_string(workdir);
DECLARE_int64(batch_size);
DECLARE_int64(max_len);
DECLARE_int32(world_size);
// distributed jobs
DECLARE_string(backend);
DECLARE_string(device);
DECLARE_double(comm_timeout);
DECLARE_int64(bytes);
// train / eval
DECLARE_string(data);
DECLARE_string(config);
DECLARE_string(run_dir);
DECLARE_int64(epochs);
DECLARE_int64(max_steps);
DECLARE_double(time_budget);
DECLARE_double(lr);
DECLARE_double(weight_decay);
DECLARE_int64(warmup_steps);
DECLARE_string(lr_schedule);
DECLARE_string(init_from);
DECLARE_string(retired);
DECLARE_double(min_lr_ratio);
DECLARE_bool(exclude_history);
DECLARE_double(content_loss);
DECLARE_double(clip_norm);
DECLARE_string(loss);
DECLARE_string(precision);
DECLARE_int64(negatives);
DECLARE_int64(full_softmax_max_items);
DECLARE_double(temperature);
DECLARE_bool(logq);
DECLARE_int64(eval_every);
DECLARE_int64(patience);
DECLARE_int64(eval_batch_size);
DECLARE_int64(eval_users);
DECLARE_string(eval_scoring);
DECLARE_string(cluster);
DECLARE_string(id_order);
DECLARE_double(log_every);
DECLARE_int64(dim);
DECLARE_int64(blocks);
DECLARE_int64(heads);
DECLARE_double(dropout);
DECLARE_double(id_dropout);
DECLARE_double(cold_items);
DECLARE_uint64(cold_seed);
DECLARE_string(add_items);
DECLARE_string(untrained_items);
DECLARE_int64(time_buckets);
DECLARE_bool(context);
DECLARE_bool(use_categories);
DECLARE_bool(use_content);
DECLARE_string(embedding_optimizer);
DECLARE_double(embedding_lr);
DECLARE_string(sharding);
DECLARE_string(positions);
DECLARE_string(score);
DECLARE_string(input_vectors);
DECLARE_string(split);
DECLARE_string(baseline);
DECLARE_string(out);
DECLARE_int64(checkpoint_every);
DECLARE_bool(overwrite);
DECLARE_int64(keep_checkpoints);
DECLARE_string(resume);
DECLARE_int64(bucket_batches);
DECLARE_int64(length_groups);
DECLARE_double(memory_per_rank);
DECLARE_double(memory_bandwidth);
DECLARE_double(link_bandwidth);
// export / index / query
DECLARE_string(export_version);
DECLARE_string(export_root);
DECLARE_double(tolerance);
DECLARE_double(min_recall);
DECLARE_bool(force);
DECLARE_int64(keep);
DECLARE_bool(rollback);
DECLARE_string(export_dir);
DECLARE_string(factory);
DECLARE_int64(queries);
DECLARE_int64(ef_search);
DECLARE_int64(nprobe);
DECLARE_int64(refine);
DECLARE_int64(train_vectors);
DECLARE_string(user);
DECLARE_string(history);
DECLARE_string(at);
DECLARE_int64(k);
DECLARE_int32(threads);
DECLARE_bool(exact);
DECLARE_bool(explain);
DECLARE_bool(ann);
