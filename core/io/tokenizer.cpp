// GPT-2 byte-level BPE; see tokenizer.h. Loading and validation of the vocabulary
// files is at the top, the regex pre-tokenizer and the merge loop below.
#include "core/io/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/io/assets.h"

namespace wb {
namespace fs = std::filesystem;

namespace {

// GPT-2's pre-tokenizer, character for character as in OpenAI's encoder.py.
constexpr const char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kEndOfText = "<|endoftext|>";

struct ByteAlphabet {
  std::array<char32_t, 256> toUnicode{};
  std::array<int16_t, 512> toByte{};  // code point -> byte, -1 outside the alphabet
  ByteAlphabet() {
    // bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68
    // bytes are shifted to 256, 257, ... in ascending order.
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int shifted = 0;
    for (int b = 0; b < 256; ++b)
      toUnicode[b] = printable(b) ? char32_t(b) : char32_t(256 + shifted++);
    toByte.fill(-1);
    for (int b = 0; b < 256; ++b) toByte[toUnicode[b]] = int16_t(b);
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

std::string readWholeFile(const fs::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const bool exists = fs::exists(path);
    throw InputError(path.string(),
                     std::string(exists ? "cannot read " : "missing ") + what +
                         (exists ? std::string(": ") + std::strerror(errno) : std::string()));
  }
  return {std::istreambuf_iterator<char>(in), {}};
}

// Decodes a vocabulary-file token ("Ġworld") into its bytes (" world").
bool unmapToken(std::string_view token, std::string& bytes, char32_t& bad) {
  bytes.clear();
  const auto& a = alphabet();
  for (size_t i = 0; i < token.size();) {
    const auto c = static_cast<unsigned char>(token[i]);
    char32_t cp;
    if (c < 0x80) {
      cp = c;
      i += 1;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < token.size()) {
      cp = (char32_t(c & 0x1F) << 6) | (static_cast<unsigned char>(token[i + 1]) & 0x3F);
      i += 2;
    } else {
      // Longer sequences are all outside the 512-code-point alphabet; decode one for
      // the message only.
      const int len = (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
      cp = len == 3 ? (c & 0x0F) : (c & 0x07);
      for (int k = 1; k < len && i + k < token.size(); ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(token[i + k]) & 0x3F);
      bad = len == 1 ? char32_t(c) : cp;
      return false;
    }
    if (cp >= a.toByte.size() || a.toByte[cp] < 0) {
      bad = cp;
      return false;
    }
    bytes += static_cast<char>(a.toByte[cp]);
  }
  return true;
}

std::string hexCodePoint(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", unsigned(cp));
  return buf;
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Open-addressing map (pair of ids) -> (rank, merged id): the hot lookup of the merge
// loop, without std::unordered_map's node allocations and pointer chasing.
class MergeTable {
 public:
  struct Value {
    int32_t rank = -1, result = -1;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    keys_.assign(cap, kEmpty);
    values_.assign(cap, {});
    mask_ = cap - 1;
  }
  // False when the pair is already present (value left unchanged).
  bool insert(int32_t a, int32_t b, Value v) {
    const uint64_t key = pack(a, b);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return false;
      if (keys_[i] == kEmpty) {
        keys_[i] = key;
        values_[i] = v;
        ++size_;
        return true;
      }
    }
  }
  const Value* find(int32_t a, int32_t b) const {
    const uint64_t key = pack(a, b);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are non-negative int32
  static uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  size_t slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<Value> values_;
  size_t mask_ = 0, size_ = 0;
};

struct VocabEntry {
  std::string token;
  int32_t id;
};

std::vector<VocabEntry> parseVocabJson(const fs::path& path) {
  const std::string text = readWholeFile(path, "vocabulary file");
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    size_t line = 1 + std::count(text.begin(), text.begin() + std::min(e.byte, text.size()), '\n');
    throw InputError(path.string() + ":" + std::to_string(line),
                     std::string("not valid JSON: ") + e.what());
  }
  if (!root.is_object())
    throw InputError(path.string(),
                     std::string("expected a JSON object {token: id}, found ") + root.type_name());
  if (root.empty()) throw InputError(path.string(), "empty vocabulary");
  std::vector<VocabEntry> entries;
  entries.reserve(root.size());
  const size_t n = root.size();
  std::vector<int32_t> owner(n, -1);  // id -> index into entries
  for (const auto& [token, value] : root.items()) {
    if (!value.is_number_integer())
      throw InputError(path.string(),
                       "token \"" + token + "\": id " + value.dump() + " is not an integer");
    const int64_t id = value.get<int64_t>();
    if (id < 0 || id >= int64_t(n))
      throw InputError(path.string(), "token \"" + token + "\": id " + std::to_string(id) +
                                          " is outside 0.." + std::to_string(n - 1) +
                                          " (ids must be dense for " + std::to_string(n) +
                                          " tokens)");
    if (owner[id] >= 0)
      throw InputError(path.string(), "duplicate id " + std::to_string(id) + ": tokens \"" +
                                          entries[owner[id]].token + "\" and \"" + token + "\"");
    owner[id] = int32_t(entries.size());
    entries.push_back({token, int32_t(id)});
  }
  return entries;
}

struct MergeLine {
  std::string left, right;
  int line;
};

std::vector<MergeLine> parseMerges(const fs::path& path) {
  const std::string text = readWholeFile(path, "merges file");
  std::vector<MergeLine> merges;
  merges.reserve(50000);
  size_t pos = 0;
  for (int line = 1; pos < text.size(); ++line) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view s(text.data() + pos, end - pos);
    pos = end + 1;
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
    // Only a first line "#version ..." is a header: 8 of GPT-2's merges start with '#'.
    if (line == 1 && s.starts_with("#version")) continue;
    if (s.empty()) continue;
    std::vector<std::string_view> fields;
    for (size_t i = 0; i < s.size();) {
      while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
      const size_t start = i;
      while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
      if (i > start) fields.push_back(s.substr(start, i - start));
    }
    if (fields.size() != 2)
      throw InputError(path.string() + ":" + std::to_string(line),
                       "expected two symbols separated by a space, found " +
                           std::to_string(fields.size()) + ": \"" + std::string(s) + "\"");
    merges.push_back({std::string(fields[0]), std::string(fields[1]), line});
  }
  return merges;
}

}  // namespace

char32_t gpt2ByteToUnicode(uint8_t byte) {
  return alphabet().toUnicode[byte];
}

struct Tokenizer::Impl {
  std::vector<std::string> tokens;  // vocabulary-file form, by id
  std::vector<std::string> bytes;   // raw bytes, by id
  StringMap tokenIds;               // vocabulary-file form -> id
  std::array<int32_t, 256> byteIds{};
  MergeTable merges;
  std::vector<std::pair<std::string, int32_t>> specials;  // bytes -> id
  int32_t eot = -1;
  std::string source;
  pcre2_code* regex = nullptr;

  ~Impl() {
    if (regex) pcre2_code_free(regex);
  }

  void build(std::vector<VocabEntry> vocab, const fs::path& vocabPath,
             const std::vector<MergeLine>& mergeLines, const fs::path& mergesPath);
  void compileRegex();
  void encodeOrdinary(std::string_view text, size_t baseOffset, std::vector<int32_t>& out) const;
};

void Tokenizer::Impl::build(std::vector<VocabEntry> vocab, const fs::path& vocabPath,
                            const std::vector<MergeLine>& mergeLines, const fs::path& mergesPath) {
  const size_t n = vocab.size();
  tokens.resize(n);
  bytes.resize(n);
  tokenIds.reserve(n);
  std::string raw;
  for (auto& e : vocab) {
    char32_t bad = 0;
    if (!unmapToken(e.token, raw, bad))
      throw InputError(vocabPath.string(),
                       "token \"" + e.token + "\" (id " + std::to_string(e.id) + ") has " +
                           hexCodePoint(bad) + ", outside GPT-2's byte alphabet",
                       "is this a GPT-2 byte-level BPE vocabulary?");
    bytes[e.id] = raw;
    tokenIds.emplace(e.token, e.id);
    tokens[e.id] = std::move(e.token);
  }
  StringMap bytesIds;
  bytesIds.reserve(n);
  for (size_t id = 0; id < n; ++id) bytesIds.emplace(bytes[id], int32_t(id));
  for (int b = 0; b < 256; ++b) {
    const auto it = bytesIds.find(std::string(1, char(b)));
    if (it == bytesIds.end()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      throw InputError(vocabPath.string(), std::string("no token for byte ") + hex +
                                               " (the byte-level alphabet must be complete)");
    }
    byteIds[b] = it->second;
  }
  if (const auto it = bytesIds.find(kEndOfText); it != bytesIds.end()) {
    eot = it->second;
    specials.emplace_back(std::string(kEndOfText), eot);
  }

  merges.reserve(mergeLines.size());
  std::vector<int> firstLine(mergeLines.size());
  for (size_t rank = 0; rank < mergeLines.size(); ++rank) {
    const MergeLine& m = mergeLines[rank];
    const std::string where = mergesPath.string() + ":" + std::to_string(m.line);
    const auto a = tokenIds.find(m.left);
    const auto b = tokenIds.find(m.right);
    for (const auto& [it, sym] : {std::pair{a, &m.left}, std::pair{b, &m.right}}) {
      if (it == tokenIds.end())
        throw InputError(
            where, "merge symbol \"" + *sym + "\" is not in the vocabulary " + vocabPath.string());
    }
    const auto merged = tokenIds.find(m.left + m.right);
    if (merged == tokenIds.end())
      throw InputError(where, "merge result \"" + m.left + m.right +
                                  "\" is not in the vocabulary " + vocabPath.string());
    if (!merges.insert(a->second, b->second, {int32_t(rank), merged->second})) {
      const int rankBefore = merges.find(a->second, b->second)->rank;
      throw InputError(where, "duplicate merge \"" + m.left + " " + m.right + "\" (first on line " +
                                  std::to_string(firstLine[rankBefore]) + ")");
    }
    firstLine[rank] = m.line;
  }
  source = vocabPath.string() + " + " + mergesPath.string();
  compileRegex();
}

void Tokenizer::Impl::compileRegex() {
  int err = 0;
  PCRE2_SIZE errOffset = 0;
  regex = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP, &err, &errOffset, nullptr);
  if (!regex) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw RunError("tokenizer regex", reinterpret_cast<const char*>(msg),
                   "PCRE2 must be built with Unicode support");
  }
  // Without JIT (an unsupported CPU) pcre2_match interprets the pattern: slower, same result.
  pcre2_jit_compile(regex, PCRE2_JIT_COMPLETE);
}

namespace {

// Reused across the words of one encode() call so the merge loop does not allocate.
struct Scratch {
  struct Candidate {
    int32_t rank, pos, left, right;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<int32_t> id, prev, next;
  std::vector<Candidate> heap, pending;
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, StringHash, std::equal_to<>>
      cache;  // word bytes -> (offset, count) in cachedIds
  std::vector<int32_t> cachedIds;
};

// Byte-pair merges of one pre-tokenized word, with the semantics of encoder.py's bpe():
// repeatedly take the lowest-ranked adjacent pair and merge all its occurrences left to
// right. A heap of candidates (rank, position) makes this O(n log n) instead of O(n^2) for
// long words; pairs created during a pass wait in `pending` until that pass is complete,
// exactly as the Python loop only looks for the next bigram after finishing one.
void bpeWord(std::string_view word, const std::array<int32_t, 256>& byteIds,
             const MergeTable& merges, Scratch& s, std::vector<int32_t>& out) {
  const int32_t n = int32_t(word.size());
  if (n == 1) {
    out.push_back(byteIds[static_cast<unsigned char>(word[0])]);
    return;
  }
  s.id.resize(n);
  s.prev.resize(n);
  s.next.resize(n);
  s.heap.clear();
  s.pending.clear();
  for (int32_t i = 0; i < n; ++i) {
    s.id[i] = byteIds[static_cast<unsigned char>(word[i])];
    s.prev[i] = i - 1;
    s.next[i] = i + 1;
  }
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const auto* m = merges.find(s.id[i], s.id[i + 1]))
      s.heap.push_back({m->rank, i, s.id[i], s.id[i + 1]});
  }
  const auto cmp = std::greater<Scratch::Candidate>();
  std::make_heap(s.heap.begin(), s.heap.end(), cmp);
  int32_t passRank = -1;
  for (;;) {
    if (s.heap.empty() || s.heap.front().rank != passRank) {
      for (const auto& c : s.pending) {
        s.heap.push_back(c);
        std::push_heap(s.heap.begin(), s.heap.end(), cmp);
      }
      s.pending.clear();
      if (s.heap.empty()) break;
      passRank = s.heap.front().rank;
    }
    std::pop_heap(s.heap.begin(), s.heap.end(), cmp);
    const Scratch::Candidate c = s.heap.back();
    s.heap.pop_back();
    // Stale when an earlier merge consumed either symbol (ids only ever grow longer).
    const int32_t i = c.pos;
    if (s.id[i] != c.left) continue;
    const int32_t j = s.next[i];
    if (j >= n || s.id[j] != c.right) continue;
    s.id[i] = merges.find(c.left, c.right)->result;
    s.id[j] = -1;
    s.next[i] = s.next[j];
    if (s.next[i] < n) s.prev[s.next[i]] = i;
    if (const int32_t p = s.prev[i]; p >= 0) {
      if (const auto* m = merges.find(s.id[p], s.id[i]))
        s.pending.push_back({m->rank, p, s.id[p], s.id[i]});
    }
    if (const int32_t q = s.next[i]; q < n) {
      if (const auto* m = merges.find(s.id[i], s.id[q]))
        s.pending.push_back({m->rank, i, s.id[i], s.id[q]});
    }
  }
  for (int32_t i = 0; i < n; i = s.next[i]) out.push_back(s.id[i]);
}

struct MatchData {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  explicit MatchData(const pcre2_code* re) {
    data = pcre2_match_data_create_from_pattern(re, nullptr);
    context = pcre2_match_context_create(nullptr);
    // A roomier JIT stack than the 32 KiB default, for very long runs of whitespace.
    stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (!data || !context || !stack) throw std::bad_alloc();
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchData() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
};

}  // namespace

void Tokenizer::Impl::encodeOrdinary(std::string_view text, size_t baseOffset,
                                     std::vector<int32_t>& out) const {
  if (text.empty()) return;
  MatchData md(regex);
  Scratch scratch;
  const auto encodeWord = [&](std::string_view word) {
    if (const auto it = scratch.cache.find(word); it != scratch.cache.end()) {
      const auto [offset, count] = it->second;
      out.insert(out.end(), scratch.cachedIds.begin() + offset,
                 scratch.cachedIds.begin() + offset + count);
      return;
    }
    const size_t before = out.size();
    bpeWord(word, byteIds, merges, scratch, out);
    const auto offset = uint32_t(scratch.cachedIds.size());
    scratch.cachedIds.insert(scratch.cachedIds.end(), out.begin() + before, out.end());
    scratch.cache.emplace(std::string(word), std::pair{offset, uint32_t(out.size() - before)});
  };
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  uint32_t options = 0;  // the first match validates all the UTF-8, later ones skip that
  for (size_t at = 0; at < text.size();) {
    const int rc = pcre2_match(regex, subject, text.size(), at, options, md.data, md.context);
    options = PCRE2_NO_UTF_CHECK;
    if (rc == PCRE2_ERROR_NOMATCH) {
      encodeWord(text.substr(at));  // cannot happen: the last two alternatives match any rest
      break;
    }
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
        throw InputError("text", "not valid UTF-8 at byte " +
                                     std::to_string(baseOffset + pcre2_get_startchar(md.data)) +
                                     ": " + reinterpret_cast<const char*>(msg));
      throw RunError("tokenizer regex", reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.data);
    if (ov[0] > at) encodeWord(text.substr(at, ov[0] - at));  // likewise unreachable
    if (ov[1] == ov[0]) {  // an empty match would loop forever; the pattern has none
      throw RunError("tokenizer regex", "empty match at byte " + std::to_string(baseOffset + at));
    }
    encodeWord(text.substr(ov[0], ov[1] - ov[0]));
    at = ov[1];
  }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::fromHf(const fs::path& vocabJson, const fs::path& mergesTxt) {
  auto impl = std::make_unique<Impl>();
  impl->build(parseVocabJson(vocabJson), vocabJson, parseMerges(mergesTxt), mergesTxt);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::fromOpenAi(const fs::path& encoderJson, const fs::path& vocabBpe) {
  // Same formats under other names: encoder.json is vocab.json, vocab.bpe is merges.txt.
  return fromHf(encoderJson, vocabBpe);
}

Tokenizer Tokenizer::fromFolder(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw InputError(dir.string(), "tokenizer folder does not exist");
  const bool hfVocab = fs::exists(dir / "vocab.json"), hfMerges = fs::exists(dir / "merges.txt");
  const bool oaVocab = fs::exists(dir / "encoder.json"), oaMerges = fs::exists(dir / "vocab.bpe");
  if (hfVocab && hfMerges) return fromHf(dir / "vocab.json", dir / "merges.txt");
  if (oaVocab && oaMerges) return fromOpenAi(dir / "encoder.json", dir / "vocab.bpe");
  std::string message =
      "no tokenizer: expected vocab.json + merges.txt or encoder.json + vocab.bpe";
  if (hfVocab != hfMerges)
    message += hfVocab ? " (merges.txt is missing)" : " (vocab.json is missing)";
  if (oaVocab != oaMerges)
    message += oaVocab ? " (vocab.bpe is missing)" : " (encoder.json is missing)";
  throw InputError(dir.string(), message);
}

std::shared_ptr<const Tokenizer> Tokenizer::gpt2Default() {
  static std::mutex mutex;
  static std::shared_ptr<const Tokenizer> cached;
  std::lock_guard lock(mutex);
  if (!cached) {
    cached = std::make_shared<const Tokenizer>(
        fromOpenAi(assetPath("encoder.json"), assetPath("vocab.bpe")));
  }
  return cached;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, EncodeOptions options) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 4 + 16);
  encodeAppend(text, ids, options);
  return ids;
}

void Tokenizer::encodeAppend(std::string_view text, std::vector<int32_t>& out,
                             EncodeOptions options) const {
  if (options.special == SpecialTokens::kAsText || impl_->specials.empty()) {
    impl_->encodeOrdinary(text, 0, out);
    return;
  }
  // Split at special tokens; the text between them is encoded on its own, so the regex
  // never sees across a special token (as in tiktoken).
  size_t at = 0;
  while (at <= text.size()) {
    size_t best = std::string_view::npos;
    const std::pair<std::string, int32_t>* which = nullptr;
    for (const auto& sp : impl_->specials) {
      const size_t p = text.find(sp.first, at);
      if (p < best) best = p, which = &sp;
    }
    if (!which) {
      impl_->encodeOrdinary(text.substr(at), at, out);
      break;
    }
    if (options.special == SpecialTokens::kReject)
      throw InputError(
          "text", "contains the special token " + which->first + " at byte " + std::to_string(best),
          "allow special tokens, or encode it as ordinary text");
    impl_->encodeOrdinary(text.substr(at, best - at), at, out);
    out.push_back(which->second);
    at = best + which->first.size();
  }
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  text.reserve(ids.size() * 4);
  const auto n = int32_t(impl_->bytes.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= n)
      throw InputError("decode", "token id " + std::to_string(ids[i]) + " at position " +
                                     std::to_string(i) + " is outside the vocabulary 0.." +
                                     std::to_string(n - 1));
    text += impl_->bytes[ids[i]];
  }
  return text;
}

int32_t Tokenizer::vocabSize() const {
  return int32_t(impl_->tokens.size());
}
size_t Tokenizer::mergeCount() const {
  return impl_->merges.size();
}

const std::string& Tokenizer::idToToken(int32_t id) const {
  if (id < 0 || id >= vocabSize())
    throw InputError("tokenizer", "token id " + std::to_string(id) + " is outside the vocabulary");
  return impl_->tokens[id];
}

std::string_view Tokenizer::idToBytes(int32_t id) const {
  if (id < 0 || id >= vocabSize())
    throw InputError("tokenizer", "token id " + std::to_string(id) + " is outside the vocabulary");
  return impl_->bytes[id];
}

int32_t Tokenizer::tokenToId(std::string_view token) const {
  const auto it = impl_->tokenIds.find(token);
  return it == impl_->tokenIds.end() ? -1 : it->second;
}

int32_t Tokenizer::eotId() const {
  return impl_->eot;
}
const std::string& Tokenizer::source() const {
  return impl_->source;
}

}  // namespace wb
