// removeTree (core/io/remove_tree.h), the remove_all replacement: nested folders
// with files go, a symlink is deleted but its target outside the tree survives
// (FTW_PHYS), a missing path is not an error, a plain file is removed, and a
// failure names the entry that stayed.
#include <sys/stat.h>
#include <unistd.h>

#include <QTemporaryDir>
#include <QtTest>
#include <fstream>

#include "core/errors.h"
#include "core/io/remove_tree.h"

using namespace wb;
namespace fs = std::filesystem;

namespace {
void writeFile(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}
}  // namespace

class TestRemoveTree : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void removesNestedTreeButNotSymlinkTargets() {
    QTemporaryDir tmp;
    const fs::path base = tmp.path().toStdString();
    const fs::path outside = base / "outside.txt";
    writeFile(outside, "keep me");
    fs::create_directories(base / "outsideDir");
    writeFile(base / "outsideDir" / "inner.txt", "keep me too");

    const fs::path root = base / "tree";
    fs::create_directories(root / "a" / "b" / "c");
    fs::create_directories(root / "empty");
    writeFile(root / "top.txt", "1");
    writeFile(root / "a" / "one.txt", "2");
    writeFile(root / "a" / "b" / "c" / "deep.txt", "3");
    fs::create_symlink(outside, root / "a" / "link-to-file");
    fs::create_directory_symlink(base / "outsideDir", root / "a" / "b" / "link-to-dir");

    // root, a, b, c, empty, 3 files, 2 symlinks
    QCOMPARE(removeTree(root), std::uintmax_t(10));
    QVERIFY(!fs::exists(fs::symlink_status(root)));
    QVERIFY(fs::is_regular_file(outside));
    QVERIFY(fs::is_regular_file(base / "outsideDir" / "inner.txt"));
  }
  void missingPathIsNotAnError() {
    QTemporaryDir tmp;
    const fs::path missing = fs::path(tmp.path().toStdString()) / "never-created" / "x";
    QCOMPARE(removeTree(missing), std::uintmax_t(0));
    QVERIFY(fs::exists(tmp.path().toStdString()));
  }
  void removesAPlainFileAndASymlinkRoot() {
    QTemporaryDir tmp;
    const fs::path base = tmp.path().toStdString();
    writeFile(base / "file.bin", "data");
    QCOMPARE(removeTree(base / "file.bin"), std::uintmax_t(1));
    QVERIFY(!fs::exists(base / "file.bin"));

    // A symlink given as the root is removed itself, its target folder stays whole.
    fs::create_directories(base / "target");
    writeFile(base / "target" / "t.txt", "t");
    fs::create_directory_symlink(base / "target", base / "link");
    QCOMPARE(removeTree(base / "link"), std::uintmax_t(1));
    QVERIFY(!fs::exists(fs::symlink_status(base / "link")));
    QVERIFY(fs::is_regular_file(base / "target" / "t.txt"));
  }
  void failureThrowsRunErrorNamingTheEntry() {
    // An entry that cannot be unlinked: a file in a read-only folder, or for root
    // (who ignores folder permissions) a procfs file, which refuses unlink to everyone.
    QTemporaryDir tmp;
    const fs::path locked = fs::path(tmp.path().toStdString()) / "locked";
    fs::path root, stays;
    if (::geteuid() == 0) {
      root = stays = "/proc/self/cmdline";
    } else {
      fs::create_directories(locked / "sub");
      writeFile(locked / "sub" / "f.txt", "x");
      ::chmod((locked / "sub").c_str(), 0500);
      root = locked;
      stays = locked / "sub" / "f.txt";
    }
    std::string message;
    try {
      removeTree(root);
    } catch (const RunError& e) {
      message = e.what();
    }
    if (::geteuid() != 0) ::chmod((locked / "sub").c_str(), 0700);
    QVERIFY2(message.find(stays.string() + ": cannot remove: ") == 0, message.c_str());
    QVERIFY(fs::exists(stays));
  }
};

QTEST_APPLESS_MAIN(TestRemoveTree)
#include "test_remove_tree.moc"
