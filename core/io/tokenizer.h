// GPT-2's byte-level BPE tokenizer: loads vocab.json + merges.txt (Hugging Face) or
// encoder.json + vocab.bpe (OpenAI), pre-tokenizes with GPT-2's exact regex (PCRE2,
// Unicode properties, JIT) and encodes/decodes byte-exactly. Only GPT-2's scheme:
// no SentencePiece, no normalizers, no added-token files beyond <|endoftext|>.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wb {

// What encode() does with the text of a special token such as "<|endoftext|>".
enum class SpecialTokens {
  kAsText,  // ordinary text (OpenAI's encoder.py, tiktoken's encode_ordinary); the default
  kAllow,   // one special id (tiktoken's allowed_special="all")
  kReject,  // InputError (tiktoken's default disallowed_special="all")
};

struct EncodeOptions {
  SpecialTokens special = SpecialTokens::kAsText;
};

class Tokenizer {
 public:
  // Malformed files give an InputError naming the file (and line for merges).
  static Tokenizer fromHf(const std::filesystem::path& vocabJson,
                          const std::filesystem::path& mergesTxt);
  static Tokenizer fromOpenAi(const std::filesystem::path& encoderJson,
                              const std::filesystem::path& vocabBpe);
  // vocab.json + merges.txt if present, else encoder.json + vocab.bpe.
  static Tokenizer fromFolder(const std::filesystem::path& dir);
  // GPT-2's files from the verified assets (see assets.h); loaded once per process.
  static std::shared_ptr<const Tokenizer> gpt2Default();

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Thread-safe. Text must be valid UTF-8 (InputError with the byte offset otherwise).
  // The word cache lives for one call: encode a large text in one call, not per line.
  std::vector<int32_t> encode(std::string_view text, EncodeOptions options = {}) const;
  void encodeAppend(std::string_view text, std::vector<int32_t>& out,
                    EncodeOptions options = {}) const;
  // The exact bytes (possibly a partial UTF-8 sequence); InputError for an unknown id.
  std::string decode(std::span<const int32_t> ids) const;

  int32_t vocabSize() const;
  size_t mergeCount() const;
  const std::string& idToToken(int32_t id) const;   // as in the vocab file ("Ġworld")
  std::string_view idToBytes(int32_t id) const;     // raw bytes (" world")
  int32_t tokenToId(std::string_view token) const;  // vocab-file form; -1 when absent
  int32_t eotId() const;                            // <|endoftext|>, or -1
  const std::string& source() const;                // the files it was loaded from

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// GPT-2's bytes_to_unicode(): the printable character that stands for each byte in
// vocabulary files (0x20 ' ' -> U+0120 'Ġ').
char32_t gpt2ByteToUnicode(uint8_t byte);

}  // namespace wb
