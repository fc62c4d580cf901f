#include "formats/torch/pickle.h"

#include <array>
#include <bit>
#include <cstring>
#include <unordered_map>

#include "util/byte_reader.h"
#include "util/printable.h"

namespace gemma {

namespace {

constexpr std::array<TorchTypeInfo, static_cast<size_t>(TorchType::kUntyped) + 1> kTypes = {{
    {"FloatStorage", "float32", 4, DType::F32},
    {"DoubleStorage", "float64", 8, DType::F64},
    {"HalfStorage", "float16", 2, DType::F16},
    {"BFloat16Storage", "bfloat16", 2, DType::BF16},
    {"CharStorage", "int8", 1, DType::I8},
    {"ByteStorage", "uint8", 1, std::nullopt},
    {"ShortStorage", "int16", 2, std::nullopt},
    {"IntStorage", "int32", 4, DType::I32},
    {"LongStorage", "int64", 8, std::nullopt},
    {"BoolStorage", "bool", 1, std::nullopt},
    {"ComplexFloatStorage", "complex64", 8, std::nullopt},
    {"ComplexDoubleStorage", "complex128", 16, std::nullopt},
    {"", "uint16", 2, std::nullopt},
    {"", "uint32", 4, std::nullopt},
    {"", "uint64", 8, std::nullopt},
    {"", "float8_e4m3fn", 1, std::nullopt},
    {"", "float8_e5m2", 1, std::nullopt},
    {"", "float8_e4m3fnuz", 1, std::nullopt},
    {"", "float8_e5m2fnuz", 1, std::nullopt},
    {"UntypedStorage", "", 1, std::nullopt},
}};

// Opcode names, for errors about the ones we reject as well as the ones we run.
const char* opcode_name(uint8_t op) {
  switch (op) {
    case 0x80: return "PROTO";
    case 0x95: return "FRAME";
    case '.': return "STOP";
    case 'c': return "GLOBAL";
    case 0x93: return "STACK_GLOBAL";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 0x94: return "MEMOIZE";
    case 'h': return "BINGET";
    case 'j': return "LONG_BINGET";
    case '(': return "MARK";
    case '}': return "EMPTY_DICT";
    case ']': return "EMPTY_LIST";
    case ')': return "EMPTY_TUPLE";
    case 't': return "TUPLE";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 's': return "SETITEM";
    case 'u': return "SETITEMS";
    case 'a': return "APPEND";
    case 'e': return "APPENDS";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'M': return "BININT2";
    case 0x8a: return "LONG1";
    case 'X': return "BINUNICODE";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 'U': return "SHORT_BINSTRING";
    case 'T': return "BINSTRING";
    case 'N': return "NONE";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 'G': return "BINFLOAT";
    case 'R': return "REDUCE";
    case 'b': return "BUILD";
    case 0x81: return "NEWOBJ";
    case 'Q': return "BINPERSID";
    // Not in the subset torch.save writes:
    case 'P': return "PERSID";
    case 'i': return "INST";
    case 'o': return "OBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x8b: return "LONG4";
    case 'p': return "PUT";
    case 'g': return "GET";
    case 'I': return "INT";
    case 'L': return "LONG";
    case 'F': return "FLOAT";
    case 'S': return "STRING";
    case 'V': return "UNICODE";
    case 'd': return "DICT";
    case 'l': return "LIST";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

const char* kind_name(PickleKind k) {
  switch (k) {
    case PickleKind::kNone: return "None";
    case PickleKind::kBool: return "bool";
    case PickleKind::kInt: return "int";
    case PickleKind::kFloat: return "float";
    case PickleKind::kString: return "str";
    case PickleKind::kTuple: return "tuple";
    case PickleKind::kList: return "list";
    case PickleKind::kDict: return "dict";
    case PickleKind::kGlobal: return "global";
    case PickleKind::kStorage: return "storage";
    case PickleKind::kTensor: return "tensor";
  }
  return "?";
}

// Python's names for the allowed globals. GLOBAL and STACK_GLOBAL both resolve through this.
struct GlobalName {
  std::string_view module, name;
  TorchGlobal global;
};
constexpr GlobalName kCallables[] = {
    {"collections", "OrderedDict", TorchGlobal::kOrderedDict},
    {"torch._utils", "_rebuild_tensor_v2", TorchGlobal::kRebuildTensorV2},
    {"torch._utils", "_rebuild_tensor_v3", TorchGlobal::kRebuildTensorV3},
    {"torch._utils", "_rebuild_parameter", TorchGlobal::kRebuildParameter},
};

class Machine {
 public:
  Machine(std::span<const uint8_t> bytes, const std::string& src, PickleLimits limits, std::deque<PickleValue>& arena)
      : bytes_(bytes), r_(bytes), src_(src), limits_(limits), arena_(arena) {}

  Result<const PickleValue*> run();

 private:
  template <typename... Args>
  Error fail(fmt::format_string<Args...> f, Args&&... args) {
    const char* n = opcode_name(op_);
    return corrupt_input("{}: {} (opcode {} at byte {})", src_, fmt::format(f, std::forward<Args>(args)...),
                         n ? std::string(n) : fmt::format("0x{:02x}", op_), at_);
  }

  // Counts references put into containers against limits_.max_items.
  Status add_items(size_t n) {
    items_ += n;
    if (items_ > limits_.max_items) return fail("pickle containers hold more than {} references", limits_.max_items);
    return {};
  }
  PickleValue* make(PickleKind k) {
    PickleValue& v = arena_.emplace_back();
    v.kind = k;
    return &v;
  }
  Status push(PickleValue* v) {
    if (stack_.size() + marks_.size() >= limits_.max_stack)
      return fail("pickle stack deeper than {} entries", limits_.max_stack);
    stack_.push_back(v);
    return {};
  }
  // Values above the innermost MARK: the only ones an opcode may pop.
  size_t available() const { return stack_.size() - (marks_.empty() ? 0 : marks_.back().depth); }
  Result<PickleValue*> pop() {
    if (available() == 0) return fail("stack underflow");
    PickleValue* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Result<PickleValue*> top() {
    if (available() == 0) return fail("stack underflow");
    return stack_.back();
  }
  // Pops everything above the innermost MARK, and the MARK.
  Result<std::vector<PickleValue*>> pop_mark() {
    if (marks_.empty()) return fail("no MARK to close (stack underflow)");
    const size_t d = marks_.back().depth;
    marks_.pop_back();
    std::vector<PickleValue*> items(stack_.begin() + static_cast<std::ptrdiff_t>(d), stack_.end());
    stack_.resize(d);
    return items;
  }
  // One '\n'-terminated line of GLOBAL's argument (module or name).
  Result<std::string_view> line() {
    const size_t start = r_.pos();
    for (size_t n = 0; n < 256 && start + n < bytes_.size(); ++n) {
      if (bytes_[start + n] != '\n') continue;
      std::string_view s = r_.take_string(n);
      r_.skip(1);
      return s;
    }
    return fail("GLOBAL argument not terminated by a newline within 256 bytes");
  }
  Result<PickleValue*> read_string(uint64_t n) {
    if (n > r_.remaining()) return fail("string of {} bytes runs past the end of the pickle", n);
    PickleValue* v = make(PickleKind::kString);
    v->s = std::string(r_.take_string(n));
    return v;
  }
  template <typename T>
  T read() {
    return r_.read<T>();  // a short read leaves !ok(), reported after the opcode
  }

  Result<PickleValue*> global(std::string_view module, std::string_view name);
  Status reduce(PickleValue* callable, PickleValue* args);
  Result<PickleValue*> persistent_id(PickleValue* pid);
  Result<PickleValue*> rebuild_tensor(const std::vector<PickleValue*>& a, bool v3);
  Status memo_put(uint64_t idx);
  Status memo_get(uint64_t idx);
  Status step();

  std::span<const uint8_t> bytes_;
  ByteReader r_;
  const std::string& src_;
  PickleLimits limits_;
  std::deque<PickleValue>& arena_;
  struct Mark {
    size_t depth, at;
  };
  std::vector<PickleValue*> stack_;
  std::vector<Mark> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;
  size_t items_ = 0;
  size_t at_ = 0;
  uint8_t op_ = 0;
  bool stopped_ = false;
};

Result<PickleValue*> Machine::global(std::string_view module, std::string_view name) {
  PickleValue* g = make(PickleKind::kGlobal);
  g->s = fmt::format("{}.{}", module, name);
  for (const GlobalName& c : kCallables)
    if (module == c.module && name == c.name) {
      g->global = c.global;
      return g;
    }
  if (module == "torch" || (module == "torch.storage" && name == "UntypedStorage")) {
    for (size_t t = 0; t < kTypes.size(); ++t) {
      const TorchTypeInfo& info = kTypes[t];
      if (!info.storage_class.empty() && name == info.storage_class) {
        g->global = TorchGlobal::kStorageClass;
        g->type = static_cast<TorchType>(t);
        return g;
      }
      if (module == "torch" && !info.dtype_name.empty() && name == info.dtype_name) {
        g->global = TorchGlobal::kDtype;
        g->type = static_cast<TorchType>(t);
        return g;
      }
    }
  }
  return fail("global '{}.{}' is not allowed in a torch checkpoint", printable(module, 100), printable(name, 100));
}

Status Machine::memo_put(uint64_t idx) {
  GE_ASSIGN(PickleValue * v, top());
  if (memo_.size() >= limits_.max_memo && !memo_.count(idx))
    return fail("pickle memo larger than {} entries", limits_.max_memo);
  memo_[idx] = v;
  return {};
}

Status Machine::memo_get(uint64_t idx) {
  auto it = memo_.find(idx);
  if (it == memo_.end()) return fail("memo slot {} read before it was written", idx);
  return push(it->second);
}

Result<PickleValue*> Machine::persistent_id(PickleValue* pid) {
  // ('storage', <StorageClass>, '<decimal key>', '<location>', numel)
  const auto& a = pid->items;
  if (pid->kind != PickleKind::kTuple || a.size() != 5 || a[0]->kind != PickleKind::kString || a[0]->s != "storage")
    return fail("persistent id is not a ('storage', class, key, location, numel) tuple");
  if (a[1]->kind != PickleKind::kGlobal || a[1]->global != TorchGlobal::kStorageClass)
    return fail("persistent id names '{}', not a torch storage class",
                a[1]->kind == PickleKind::kGlobal ? a[1]->s : kind_name(a[1]->kind));
  const std::string& key = a[2]->s;
  if (a[2]->kind != PickleKind::kString || key.empty() || key.size() > 20 ||
      key.find_first_not_of("0123456789") != std::string::npos)
    return fail("persistent id storage key '{}' is not a decimal number", printable(key, 100));
  // The location (where the tensor lived when saved: cpu, cuda:0, ...) does not matter to a CPU
  // reader; it must only look like one.
  const std::string& loc = a[3]->s;
  if (a[3]->kind != PickleKind::kString || loc.empty() || loc.size() > 32 ||
      loc.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_:") != std::string::npos)
    return fail("persistent id location '{}' is not a device name", printable(loc, 100));
  if (a[4]->kind != PickleKind::kInt || a[4]->i < 0) return fail("persistent id has an invalid element count");
  PickleValue* s = make(PickleKind::kStorage);
  s->type = a[1]->type;
  s->s = key;
  s->i = a[4]->i;
  return s;
}

Result<PickleValue*> Machine::rebuild_tensor(const std::vector<PickleValue*>& a, bool v3) {
  // v2: (storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
  // v3: (storage, offset, size, stride, requires_grad, backward_hooks, dtype[, metadata])
  const char* fn = v3 ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2";
  const size_t base = v3 ? 7 : 6;
  if (a.size() != base && a.size() != base + 1) return fail("{} called with {} arguments", fn, a.size());
  if (a[0]->kind != PickleKind::kStorage)
    return fail("{}: argument 1 is a {}, not a storage", fn, kind_name(a[0]->kind));
  if (a[1]->kind != PickleKind::kInt || a[1]->i < 0) return fail("{}: storage offset is not a non-negative int", fn);
  if (a[2]->kind != PickleKind::kTuple || a[3]->kind != PickleKind::kTuple ||
      a[2]->items.size() != a[3]->items.size() || a[2]->items.size() > 64)
    return fail("{}: size and stride are not tuples of equal length (at most 64)", fn);
  if (a[4]->kind != PickleKind::kBool) return fail("{}: requires_grad is not a bool", fn);
  if (a[5]->kind != PickleKind::kDict || a[5]->dict_size() != 0)
    return fail("{}: backward hooks are not an empty OrderedDict", fn);
  if (a.size() == base + 1) {
    const PickleValue* m = a[base];
    if (m->kind == PickleKind::kDict && m->dict_size() > 0) {
      std::string keys;
      for (size_t i = 0; i < m->items.size(); i += 2)
        keys += fmt::format("{}'{}'", i ? ", " : "",
                            m->items[i]->kind == PickleKind::kString ? printable(m->items[i]->s, 100) : "?");
      return fail("{}: tensor metadata {{{}}} (a negated or conjugated view) is not supported", fn, keys);
    }
    if (m->kind != PickleKind::kNone && m->kind != PickleKind::kDict) return fail("{}: metadata is not a dict", fn);
  }
  PickleValue* t = make(PickleKind::kTensor);
  TensorRef& ref = t->tensor;
  ref.storage = a[0];
  ref.offset = a[1]->i;
  if (v3) {
    if (a[6]->kind != PickleKind::kGlobal || a[6]->global != TorchGlobal::kDtype)
      return fail("_rebuild_tensor_v3: dtype argument is not a torch dtype");
    ref.type = a[6]->type;
  } else {
    if (a[0]->type == TorchType::kUntyped) return fail("_rebuild_tensor_v2 on an untyped storage");
    ref.type = a[0]->type;
  }
  for (size_t d = 0; d < a[2]->items.size(); ++d) {
    const PickleValue* sz = a[2]->items[d];
    const PickleValue* st = a[3]->items[d];
    if (sz->kind != PickleKind::kInt || st->kind != PickleKind::kInt || sz->i < 0 || st->i < 0)
      return fail("{}: size or stride {} is not a non-negative int", fn, d);
    ref.shape.push_back(sz->i);
    ref.stride.push_back(st->i);
  }
  return t;
}

Status Machine::reduce(PickleValue* callable, PickleValue* args) {
  if (callable->kind != PickleKind::kGlobal)
    return fail("REDUCE on a {} (only torch's rebuild functions may be called)", kind_name(callable->kind));
  if (args->kind != PickleKind::kTuple) return fail("REDUCE arguments are a {}, not a tuple", kind_name(args->kind));
  const auto& a = args->items;
  switch (callable->global) {
    case TorchGlobal::kOrderedDict:
      if (!a.empty()) return fail("OrderedDict called with {} arguments (torch writes OrderedDict())", a.size());
      return push(make(PickleKind::kDict));
    case TorchGlobal::kRebuildTensorV2:
    case TorchGlobal::kRebuildTensorV3: {
      GE_ASSIGN(PickleValue * t, rebuild_tensor(a, callable->global == TorchGlobal::kRebuildTensorV3));
      return push(t);
    }
    case TorchGlobal::kRebuildParameter:
      // (tensor, requires_grad, backward_hooks): a Parameter is its tensor to us.
      if (a.size() != 3 || a[0]->kind != PickleKind::kTensor || a[1]->kind != PickleKind::kBool ||
          a[2]->kind != PickleKind::kDict || a[2]->dict_size() != 0)
        return fail("_rebuild_parameter arguments are not (tensor, bool, OrderedDict())");
      return push(a[0]);
    case TorchGlobal::kStorageClass:
    case TorchGlobal::kDtype: break;
  }
  return fail("REDUCE on '{}', which is not a callable torch checkpoints use", callable->s);
}

Status Machine::step() {
  at_ = r_.pos();
  op_ = r_.read<uint8_t>();
  if (!r_.ok()) {
    at_ = bytes_.size();
    op_ = 0;
    return corrupt_input("{}: pickle ends at byte {} without STOP (truncated?)", src_, bytes_.size());
  }
  switch (op_) {
    case 0x80: {  // PROTO
      const uint8_t v = read<uint8_t>();
      if (r_.ok() && (v < 2 || v > 5)) return fail("pickle protocol {} is not one torch.save writes (2 to 5)", v);
      break;
    }
    case 0x95: {  // FRAME: a length prefix for buffered reading; the data follows inline
      const uint64_t n = read<uint64_t>();
      if (r_.ok() && n > r_.remaining()) return fail("frame of {} bytes runs past the end of the pickle", n);
      break;
    }
    case '.': {  // STOP
      if (!marks_.empty()) return fail("MARK opened at byte {} is never closed", marks_.back().at);
      if (stack_.size() != 1) return fail("pickle ends with {} values on the stack instead of 1", stack_.size());
      stopped_ = true;
      return {};
    }
    case 'c': {  // GLOBAL
      GE_ASSIGN(std::string_view module, line());
      GE_ASSIGN(std::string_view name, line());
      GE_ASSIGN(PickleValue * g, global(module, name));
      return push(g);
    }
    case 0x93: {  // STACK_GLOBAL
      GE_ASSIGN(PickleValue * name, pop());
      GE_ASSIGN(PickleValue * module, pop());
      if (name->kind != PickleKind::kString || module->kind != PickleKind::kString)
        return fail("STACK_GLOBAL operands are not strings");
      GE_ASSIGN(PickleValue * g, global(module->s, name->s));
      return push(g);
    }
    case 'q':
    case 'r':
    case 'h':
    case 'j': {
      const uint64_t idx = (op_ == 'q' || op_ == 'h') ? read<uint8_t>() : read<uint32_t>();
      if (!r_.ok()) break;
      return (op_ == 'q' || op_ == 'r') ? memo_put(idx) : memo_get(idx);
    }
    case 0x94: return memo_put(memo_.size());
    case '(':
      if (stack_.size() + marks_.size() >= limits_.max_stack)
        return fail("pickle stack deeper than {} entries", limits_.max_stack);
      marks_.push_back({stack_.size(), at_});
      break;
    case '}': return push(make(PickleKind::kDict));
    case ']': return push(make(PickleKind::kList));
    case ')': return push(make(PickleKind::kTuple));
    case 't': {
      GE_ASSIGN(std::vector<PickleValue*> items, pop_mark());
      GE_TRY(add_items(items.size()));
      PickleValue* t = make(PickleKind::kTuple);
      t->items = std::move(items);
      return push(t);
    }
    case 0x85:
    case 0x86:
    case 0x87: {
      const size_t n = static_cast<size_t>(op_ - 0x84);
      if (available() < n) return fail("stack underflow");
      GE_TRY(add_items(n));
      PickleValue* t = make(PickleKind::kTuple);
      t->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
      stack_.resize(stack_.size() - n);
      return push(t);
    }
    case 's': {
      GE_ASSIGN(PickleValue * value, pop());
      GE_ASSIGN(PickleValue * key, pop());
      GE_ASSIGN(PickleValue * dict, top());
      if (dict->kind != PickleKind::kDict) return fail("SETITEM on a {}", kind_name(dict->kind));
      GE_TRY(add_items(2));
      dict->items.push_back(key);
      dict->items.push_back(value);
      break;
    }
    case 'u': {
      GE_ASSIGN(std::vector<PickleValue*> items, pop_mark());
      GE_ASSIGN(PickleValue * dict, top());
      if (dict->kind != PickleKind::kDict) return fail("SETITEMS on a {}", kind_name(dict->kind));
      if (items.size() % 2) return fail("SETITEMS with an odd number ({}) of keys and values", items.size());
      GE_TRY(add_items(items.size()));
      dict->items.insert(dict->items.end(), items.begin(), items.end());
      break;
    }
    case 'a': {
      GE_ASSIGN(PickleValue * value, pop());
      GE_ASSIGN(PickleValue * list, top());
      if (list->kind != PickleKind::kList) return fail("APPEND on a {}", kind_name(list->kind));
      GE_TRY(add_items(1));
      list->items.push_back(value);
      break;
    }
    case 'e': {
      GE_ASSIGN(std::vector<PickleValue*> items, pop_mark());
      GE_ASSIGN(PickleValue * list, top());
      if (list->kind != PickleKind::kList) return fail("APPENDS on a {}", kind_name(list->kind));
      GE_TRY(add_items(items.size()));
      list->items.insert(list->items.end(), items.begin(), items.end());
      break;
    }
    case 'J':
    case 'K':
    case 'M':
    case 0x8a: {
      PickleValue* v = make(PickleKind::kInt);
      if (op_ == 'J') v->i = read<int32_t>();
      if (op_ == 'K') v->i = read<uint8_t>();
      if (op_ == 'M') v->i = read<uint16_t>();
      if (op_ == 0x8a) {  // LONG1: n bytes of little-endian two's complement (n = 0 means 0)
        const uint8_t n = read<uint8_t>();
        if (n > 8) return fail("integer of {} bytes does not fit 64 bits", n);
        uint64_t u = 0;
        std::span<const uint8_t> b = r_.take(n);
        for (size_t k = 0; k < b.size(); ++k) u |= static_cast<uint64_t>(b[k]) << (8 * k);
        if (b.size() == n && n > 0 && n < 8 && (b[n - 1] & 0x80)) u |= ~uint64_t{0} << (8 * n);  // sign-extend
        v->i = static_cast<int64_t>(u);
      }
      if (!r_.ok()) break;
      return push(v);
    }
    case 'X': {
      GE_ASSIGN(PickleValue * v, read_string(read<uint32_t>()));
      return push(v);
    }
    case 0x8c:
    case 'U': {
      GE_ASSIGN(PickleValue * v, read_string(read<uint8_t>()));
      return push(v);
    }
    case 0x8d: {
      GE_ASSIGN(PickleValue * v, read_string(read<uint64_t>()));
      return push(v);
    }
    case 'T': {
      const int32_t n = read<int32_t>();
      if (n < 0) return fail("BINSTRING with negative length {}", n);
      GE_ASSIGN(PickleValue * v, read_string(static_cast<uint64_t>(n)));
      return push(v);
    }
    case 'N': return push(make(PickleKind::kNone));
    case 0x88:
    case 0x89: {
      PickleValue* v = make(PickleKind::kBool);
      v->b = op_ == 0x88;
      return push(v);
    }
    case 'G': {  // 8-byte big-endian IEEE double
      const uint64_t be = read<uint64_t>();
      PickleValue* v = make(PickleKind::kFloat);
      v->f = std::bit_cast<double>(__builtin_bswap64(be));
      if (!r_.ok()) break;
      return push(v);
    }
    case 'R': {
      GE_ASSIGN(PickleValue * args, pop());
      GE_ASSIGN(PickleValue * callable, pop());
      return reduce(callable, args);
    }
    case 0x81: {  // NEWOBJ: cls.__new__(cls, *args); only OrderedDict()
      GE_ASSIGN(PickleValue * args, pop());
      GE_ASSIGN(PickleValue * cls, pop());
      if (cls->kind != PickleKind::kGlobal || cls->global != TorchGlobal::kOrderedDict ||
          args->kind != PickleKind::kTuple || !args->items.empty())
        return fail("NEWOBJ other than OrderedDict() ({})",
                    cls->kind == PickleKind::kGlobal ? cls->s : kind_name(cls->kind));
      return push(make(PickleKind::kDict));
    }
    case 'b': {  // BUILD: only the state dict's {'_metadata': ...}, which we ignore
      GE_ASSIGN(PickleValue * state, pop());
      GE_ASSIGN(PickleValue * obj, top());
      if (obj->kind != PickleKind::kDict || state->kind != PickleKind::kDict)
        return fail("BUILD on a {} with a {} state (torch only sets a state dict's _metadata)", kind_name(obj->kind),
                    kind_name(state->kind));
      break;
    }
    case 'Q': {
      GE_ASSIGN(PickleValue * pid, pop());
      GE_ASSIGN(PickleValue * storage, persistent_id(pid));
      return push(storage);
    }
    default: {
      const char* n = opcode_name(op_);
      return n ? fail("opcode not supported in a torch checkpoint") : fail("unknown opcode");
    }
  }
  if (!r_.ok()) return fail("argument runs past the end of the pickle (truncated?)");
  return {};
}

Result<const PickleValue*> Machine::run() {
  while (!stopped_) {
    GE_TRY(step());
    if (!r_.ok()) return fail("argument runs past the end of the pickle (truncated?)");
    if (arena_.size() > limits_.max_values) return fail("pickle creates more than {} values", limits_.max_values);
  }
  if (!r_.at_end()) return corrupt_input("{}: {} bytes after STOP at byte {}", src_, r_.remaining(), at_);
  return stack_.back();
}

}  // namespace

const TorchTypeInfo& torch_type_info(TorchType t) { return kTypes[static_cast<size_t>(t)]; }

const PickleValue* PickleValue::get(std::string_view key) const {
  for (size_t k = items.size(); k >= 2; k -= 2)
    if (items[k - 2]->kind == PickleKind::kString && items[k - 2]->s == key) return items[k - 1];
  return nullptr;
}

Result<Pickle> Pickle::parse(std::span<const uint8_t> bytes, const std::string& source, PickleLimits limits) {
  Pickle p;
  p.arena_ = std::make_unique<std::deque<PickleValue>>();
  Machine m(bytes, source, limits, *p.arena_);
  GE_ASSIGN(p.root_, m.run());
  return p;
}

}  // namespace gemma
