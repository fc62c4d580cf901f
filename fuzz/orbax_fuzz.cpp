// Fuzzes the Orbax readers. The first input byte picks the entry point:
//   0  an OCDBT manifest file          1  one encoded OCDBT b-tree node
//   2  .zarray JSON, NUL, one chunk     3  zarr.json JSON, NUL, one chunk (shards included)
//   4  a whole checkpoint as an in-memory file set: records of [u8 name length][name][u32 LE size][bytes],
//      read end to end (OCDBT manifests, tree walk, data files, zarr metadata, chunk assembly).
// Sizes are capped (decompressed objects 16 MiB, arrays 4 MiB) so that the fuzzer looks for bugs,
// not for large allocations the readers would refuse anyway.
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "formats/orbax/ocdbt.h"
#include "formats/orbax/orbax.h"
#include "formats/orbax/zarr.h"

namespace {

using namespace gemma;

constexpr uint64_t kMaxChunk = 4 << 20;

void zarr_chunk(std::span<const uint8_t> in, bool v3) {
  const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(in.data(), 0, in.size()));
  const size_t meta_len = nul ? static_cast<size_t>(nul - in.data()) : in.size();
  std::string_view meta(reinterpret_cast<const char*>(in.data()), meta_len);
  auto m = v3 ? parse_zarr_json(meta, "fuzz/zarr.json") : parse_zarray(meta, "fuzz/.zarray");
  if (!m.ok() || !nul) return;
  uint64_t bytes = static_cast<uint64_t>(m->itemsize);
  for (int64_t c : m->chunks) bytes *= static_cast<uint64_t>(c);
  if (bytes > kMaxChunk) return;
  std::vector<uint8_t> out(bytes);
  (void)zarr_decode_chunk(*m, in.subspan(meta_len + 1), out, "fuzz/0");
  std::vector<int64_t> idx(m->shape.size(), 0);
  (void)zarr_chunk_key(*m, idx);
}

void file_set(std::span<const uint8_t> in) {
  std::map<std::string, std::string> files;
  size_t p = 0;
  while (p < in.size()) {
    const size_t n = in[p++];
    if (p + n + 4 > in.size()) break;
    std::string name(reinterpret_cast<const char*>(in.data() + p), n);
    p += n;
    uint32_t len;
    std::memcpy(&len, in.data() + p, 4);
    p += 4;
    len = static_cast<uint32_t>(std::min<size_t>(len, in.size() - p));
    files[name] = std::string(reinterpret_cast<const char*>(in.data() + p), len);
    p += len;
  }
  auto set = memory_file_set("fuzz", std::move(files));
  OrbaxReadOptions opt;
  opt.max_array_bytes = kMaxChunk;
  opt.ocdbt.max_manifest_bytes = opt.ocdbt.max_node_bytes = 16 << 20;
  if (auto db = OcdbtDatabase::open(set, "", opt.ocdbt); db.ok())
    for (const std::string& k : (*db)->keys()) (void)(*db)->read(k);
  TensorSet ts;
  (void)read_orbax(set, ts, opt);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::span<const uint8_t> in(data + 1, size - 1);
  OcdbtLimits limits;
  limits.max_manifest_bytes = limits.max_node_bytes = 16 << 20;
  switch (data[0] % 5) {
    case 0: (void)parse_ocdbt_manifest(in, "fuzz/manifest.ocdbt", limits); break;
    case 1: (void)parse_ocdbt_btree_node(in, "", "fuzz/d/node", limits); break;
    case 2: zarr_chunk(in, false); break;
    case 3: zarr_chunk(in, true); break;
    case 4: file_set(in); break;
  }
  return 0;
}
