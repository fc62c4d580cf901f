// Orbax PyTree checkpoints (Kaggle Flax Gemma downloads; docs/spec/formats.md §1): every array, named by its
// Orbax parameter name ("transformer/layer_0/attn/q_einsum.w"), dtype and row-major shape as
// stored. Three layouts: a merged OCDBT root (manifest.ocdbt at the top), per-process OCDBT
// databases only (ocdbt.process_*/), and the older one zarr directory per array; zarr v2 or v3.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/orbax/file_set.h"
#include "formats/orbax/ocdbt.h"
#include "formats/orbax/zarr.h"
#include "formats/tensor_set.h"
#include "util/result.h"

namespace gemma {

struct OrbaxReadOptions {
  std::function<bool(const std::string& name)> select;  // arrays to read; all when empty
  uint64_t max_array_bytes = uint64_t{1} << 36;         // refuse arrays larger than this (hostile metadata)
  OcdbtLimits ocdbt;
};

struct OrbaxArray {
  std::string name;
  ZarrMetadata meta;
};

class OrbaxCheckpoint {
 public:
  static Result<std::unique_ptr<OrbaxCheckpoint>> open(const std::string& dir, const OrbaxReadOptions& options = {});
  static Result<std::unique_ptr<OrbaxCheckpoint>> open(std::shared_ptr<const FileSet> files,
                                                       const OrbaxReadOptions& options = {});
  virtual ~OrbaxCheckpoint() = default;

  // "OCDBT (root manifest)" (Orbax's merged root, or a plain database), "OCDBT (2 per-process
  // databases)" or "zarr directories".
  virtual std::string layout() const = 0;
  // Arrays sorted by name (SigLIP and the text model alike; `select` is not applied here).
  const std::vector<OrbaxArray>& arrays() const { return arrays_; }
  const OrbaxArray* find(const std::string& name) const;
  // Reads a whole array into `out` (meta.nbytes() bytes): C order, little-endian.
  virtual Status read(const OrbaxArray& a, std::span<uint8_t> out) const = 0;
  const std::string& path() const { return path_; }

 protected:
  std::vector<OrbaxArray> arrays_;
  std::string path_;
};

// Reads every (selected) array of the checkpoint at `dir` into `out`, data owned by `out`.
Status read_orbax(const std::string& dir, TensorSet& out);
Status read_orbax(std::shared_ptr<const FileSet> files, TensorSet& out, const OrbaxReadOptions& options = {});

}  // namespace gemma
