# Shared by the probe scripts here: a source file read once, patched by exact-text
# replacements (each must match, or the assert names the pattern that moved), written to
# a copy whose folders are created.
import os


class SourcePatch:
    def __init__(self, path):
        self.s = open(path).read()

    def rep(self, old, new):
        assert old in self.s, old
        self.s = self.s.replace(old, new, 1)

    def write(self, path):
        os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
        open(path, 'w').write(self.s)
