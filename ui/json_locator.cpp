// JSON pointer -> text position; see json_locator.h.
#include "ui/json_locator.h"

namespace wb::ui {
namespace {

class Scanner {
 public:
  Scanner(const QString& text, const QString& target) : t_(text), target_(target) {}

  std::optional<TextRange> run() {
    skipWs();
    value(QString(), pos_);
    return best_;
  }

 private:
  void skipWs() {
    while (pos_ < t_.size() && t_[pos_].isSpace()) ++pos_;
  }

  // Records `pointer` when it is the target or a longer prefix of it than before.
  void record(const QString& pointer, int start, int end) {
    if (pointer == target_) {
      best_ = TextRange{start, end, true};
      return;
    }
    if ((target_.startsWith(pointer + QLatin1Char('/')) || pointer.isEmpty()) &&
        (!best_ || (!best_->exact && pointer.size() >= bestLen_))) {
      best_ = TextRange{start, end, false};
      bestLen_ = static_cast<int>(pointer.size());
    }
  }

  static QString escape(QString key) {
    return key.replace(QLatin1Char('~'), QStringLiteral("~0")).replace(QLatin1Char('/'), QStringLiteral("~1"));
  }

  QString string() {
    QString out;
    ++pos_;  // opening quote
    while (pos_ < t_.size() && t_[pos_] != QLatin1Char('"')) {
      if (t_[pos_] == QLatin1Char('\\') && pos_ + 1 < t_.size()) {
        // Escapes matter only for keys; keep the escaped character approximately.
        out += t_[pos_ + 1];
        pos_ += 2;
        continue;
      }
      out += t_[pos_++];
    }
    ++pos_;  // closing quote
    return out;
  }

  void value(const QString& pointer, int keyStart) {
    skipWs();
    if (pos_ >= t_.size()) return;
    const QChar c = t_[pos_];
    if (c == QLatin1Char('{')) {
      ++pos_;
      skipWs();
      while (pos_ < t_.size() && t_[pos_] != QLatin1Char('}')) {
        const int childStart = pos_;
        const QString key = string();
        skipWs();
        if (pos_ < t_.size() && t_[pos_] == QLatin1Char(':')) ++pos_;
        value(pointer + QLatin1Char('/') + escape(key), childStart);
        skipWs();
        if (pos_ < t_.size() && t_[pos_] == QLatin1Char(',')) ++pos_;
        skipWs();
      }
      ++pos_;
    } else if (c == QLatin1Char('[')) {
      ++pos_;
      skipWs();
      int index = 0;
      while (pos_ < t_.size() && t_[pos_] != QLatin1Char(']')) {
        const int childStart = pos_;
        value(pointer + QLatin1Char('/') + QString::number(index++), childStart);
        skipWs();
        if (pos_ < t_.size() && t_[pos_] == QLatin1Char(',')) ++pos_;
        skipWs();
      }
      ++pos_;
    } else if (c == QLatin1Char('"')) {
      string();
    } else {
      while (pos_ < t_.size() && !t_[pos_].isSpace() && t_[pos_] != QLatin1Char(',') &&
             t_[pos_] != QLatin1Char('}') && t_[pos_] != QLatin1Char(']'))
        ++pos_;
    }
    record(pointer, keyStart, static_cast<int>(pos_));
  }

  const QString& t_;
  const QString& target_;
  qsizetype pos_ = 0;
  std::optional<TextRange> best_;
  int bestLen_ = -1;
};

}  // namespace

std::optional<TextRange> locateJsonPointer(const QString& text, const QString& pointer) {
  return Scanner(text, pointer == QStringLiteral("/") ? QString() : pointer).run();
}

}  // namespace wb::ui
