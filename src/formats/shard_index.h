// The index of a sharded Hugging Face-style checkpoint (model.safetensors.index.json,
// pytorch_model.bin.index.json): {"weight_map": {tensor name: shard file name}}.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "util/result.h"

namespace gemma {

struct ShardIndex {
  std::map<std::string, std::vector<std::string>> names_by_shard;  // shard file -> tensors it holds
  std::set<std::string> names;                                     // every tensor the index lists
};

// Reads and checks an index: a weight_map object of strings, each a plain file name (no path
// separators, not "." or ".."), so a hostile index cannot point outside its directory.
Result<ShardIndex> read_shard_index(const std::string& index_path);

}  // namespace gemma
