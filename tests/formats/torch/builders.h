// Test helpers: a pickle assembler (opcodes as bytes) and a ZIP writer laid out like torch.save's
// (stored entries, 64-byte-aligned data behind an 'FB' padding extra, ZIP64 end records), so
// hostile archives can be built byte by byte.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace gemma::test {

template <typename T>
void put(std::string& s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  s.append(b, sizeof(T));
}

// Pickle opcodes with their arguments, protocol 2 style.
struct Pk {
  std::string b = "\x80\x02";
  Pk& raw(const std::string& s) { return b += s, *this; }
  Pk& op(char c) { return b += c, *this; }
  Pk& str(const std::string& s) {
    b += 'X';
    put<uint32_t>(b, static_cast<uint32_t>(s.size()));
    return b += s, *this;
  }
  Pk& i1(uint8_t v) { return b += 'K', b += static_cast<char>(v), *this; }
  Pk& i4(int32_t v) { return b += 'J', put(b, v), *this; }
  Pk& global(const std::string& module, const std::string& name) {
    return b += 'c' + module + '\n' + name + '\n', *this;
  }
  Pk& mark() { return op('('); }
  Pk& tuple() { return op('t'); }
  Pk& stop() { return op('.'); }
  // ('storage', torch.<cls>, key, 'cpu', numel) BINPERSID
  Pk& storage(const std::string& cls, const std::string& key, int numel) {
    mark().str("storage").global("torch", cls).str(key).str("cpu").i4(numel).tuple();
    return op('Q');
  }
  // _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
  Pk& tensor(const std::string& cls, const std::string& key, int numel, int offset, const std::vector<int>& size,
             const std::vector<int>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    storage(cls, key, numel).i4(offset);
    mark();
    for (int s : size) i4(s);
    tuple().mark();
    for (int s : stride) i4(s);
    tuple().op('\x89').global("collections", "OrderedDict").op(')').op('R');
    return tuple().op('R');
  }
};

struct ZipOptions {
  uint16_t method = 0;
  uint16_t flags = 0x0808;  // what torch writes: data descriptor + UTF-8
};

// A torch-like archive: entries in order, each data start aligned to 64 bytes.
inline std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries, ZipOptions o = {}) {
  std::string out, central;
  for (const auto& [name, data] : entries) {
    const uint32_t offset = static_cast<uint32_t>(out.size());
    const size_t start = offset + 30 + name.size() + 4;
    const size_t pad = (64 - start % 64) % 64;
    put<uint32_t>(out, 0x04034b50);
    put<uint16_t>(out, 0);
    put<uint16_t>(out, o.flags);
    put<uint16_t>(out, o.method);
    put<uint32_t>(out, 0);  // time, date
    put<uint32_t>(out, 0);  // crc (unchecked)
    put<uint32_t>(out, 0);
    put<uint32_t>(out, 0);
    put<uint16_t>(out, static_cast<uint16_t>(name.size()));
    put<uint16_t>(out, static_cast<uint16_t>(4 + pad));
    out += name;
    out += "FB";
    put<uint16_t>(out, static_cast<uint16_t>(pad));
    out += std::string(pad, 'Z');
    out += data;
    put<uint32_t>(central, 0x02014b50);
    put<uint32_t>(central, 0);  // versions
    put<uint16_t>(central, o.flags);
    put<uint16_t>(central, o.method);
    put<uint32_t>(central, 0);
    put<uint32_t>(central, 0);
    put<uint32_t>(central, static_cast<uint32_t>(data.size()));
    put<uint32_t>(central, static_cast<uint32_t>(data.size()));
    put<uint16_t>(central, static_cast<uint16_t>(name.size()));
    put<uint16_t>(central, 0);
    put<uint16_t>(central, 0);
    put<uint16_t>(central, 0);
    put<uint16_t>(central, 0);
    put<uint32_t>(central, 0);
    put<uint32_t>(central, offset);
    central += name;
  }
  const uint64_t cd_offset = out.size();
  out += central;
  const uint64_t end64 = out.size();
  put<uint32_t>(out, 0x06064b50);
  put<uint64_t>(out, 44);
  put<uint32_t>(out, 0);
  put<uint64_t>(out, 0);  // disks
  put<uint64_t>(out, entries.size());
  put<uint64_t>(out, entries.size());
  put<uint64_t>(out, central.size());
  put<uint64_t>(out, cd_offset);
  put<uint32_t>(out, 0x07064b50);
  put<uint32_t>(out, 0);
  put<uint64_t>(out, end64);
  put<uint32_t>(out, 1);
  put<uint32_t>(out, 0x06054b50);
  put<uint32_t>(out, 0);
  put<uint16_t>(out, static_cast<uint16_t>(entries.size()));
  put<uint16_t>(out, static_cast<uint16_t>(entries.size()));
  put<uint32_t>(out, static_cast<uint32_t>(central.size()));
  put<uint32_t>(out, static_cast<uint32_t>(cd_offset));
  put<uint16_t>(out, 0);
  return out;
}

// An archive "archive/" holding data.pkl and the given storage records.
inline std::string make_torch_zip(const std::string& pickle,
                                  const std::vector<std::pair<std::string, std::string>>& records = {},
                                  ZipOptions o = {}) {
  std::vector<std::pair<std::string, std::string>> e = {{"archive/data.pkl", pickle}, {"archive/byteorder", "little"}};
  for (const auto& [k, v] : records) e.push_back({"archive/data/" + k, v});
  e.push_back({"archive/version", "3\n"});
  return make_zip(e, o);
}

}  // namespace gemma::test
